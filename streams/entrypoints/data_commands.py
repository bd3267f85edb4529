"""The commands that bring data in or mail it out: registry publish, imports, digest send."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streams.bootstrap import build_runtime
from streams.entrypoints.usage import UsageError, require_broker, running_broker
from streams.runtime import publisher_for
from streams.settings import Settings


def cmd_registry_publish(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.publishing import publish_registry_file

    path = input_file(args.file)
    broker_url = require_broker(settings)

    async def run() -> Any:
        async with publisher_for(settings, broker_url) as pub:  # no database needed
            return await publish_registry_file(pub, path, baseline=args.baseline)

    report = asyncio.run(run())
    print_rejected(path, report.rejected)
    kind = "baseline events (no alerts)" if args.baseline else "events"
    print(f"published {report.published} {kind}, rejected {len(report.rejected)}")
    return 1 if report.rejected else 0


def cmd_subscribers_import(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.importing import ImportStopped, import_subscribers

    path = input_file(args.file)
    runtime = build_runtime(settings)
    try:
        report = asyncio.run(import_subscribers(runtime, path, running_broker(settings)))
    except ImportStopped as err:
        print(f"{path}: import stopped: {err}", file=sys.stderr)
        return 1
    print_rejected(path, report.rejected)
    print(
        f"imported {report.imported} subscribers ({report.confirmed} confirmed), "
        f"rejected {len(report.rejected)}"
        + ("" if report.published else "; no broker running: `sor-notify up` will publish them")
    )
    return 1 if report.rejected else 0


def cmd_gazetteer_import(settings: Settings, args: argparse.Namespace) -> int:
    from streams.adapters.gazetteer_import import import_gazetteer

    path = input_file(args.file, folder_too=True)
    runtime = build_runtime(settings)
    report = import_gazetteer(
        runtime.engine,
        path,
        args.format,
        default_state=settings.service_state,
        progress=not args.no_progress,
    )
    print_rejected(path, report.rejected[:20])
    if len(report.rejected) > 20:
        print(f"… and {len(report.rejected) - 20} more rejected rows", file=sys.stderr)
    reasons = "".join(f"\n  {count:>8}  {reason}" for reason, count in report.by_reason.most_common())
    print(
        f"gazetteer {report.fmt}: {report.inserted} new, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.rejected)} rejected" + reasons
    )
    return 0


def cmd_digest_send(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.digests import send_digests

    runtime = build_runtime(settings)
    report = asyncio.run(send_digests(runtime, args.period))
    print(
        f"digests: {report.sent} sent, {report.empty} with nothing to say, "
        f"{report.failed} failed, {report.skipped_already_sent} already sent, "
        f"{report.deferred} deferred (temporary mail failure: retried with backoff), "
        f"{report.suspended} subscribers suspended after repeated bounces"
        + ("" if settings.uses_smtp else f" (Maildir: {settings.maildir})")
    )
    return 1 if report.failed else 0


def print_rejected(path: Path, rejected: Iterable[tuple[int, str]]) -> None:
    """One line per rejected line of an input file, `file:line: rejected: reason`, on stderr."""
    for n, reason in rejected:
        print(f"{path}:{n}: rejected: {reason}", file=sys.stderr)


def input_file(name: str, *, folder_too: bool = False) -> Path:
    """The file a command reads (or, with `folder_too`, a folder such as a shapefile's), or a usage error."""
    path = Path(name)
    if not (path.exists() if folder_too else path.is_file()):
        raise UsageError(f"{path}: no such file")
    return path
