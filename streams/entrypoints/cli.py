"""The `sor-notify` command: translate arguments, build through the composition root, dispatch."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import structlog

from streams import topics
from streams.adapters.broker import (
    BrokerError,
    EmbeddedBroker,
    ensure_topics,
    wait_for_broker,
)
from streams.adapters.broker_probe import needs_single_record_batches
from streams.bootstrap import build_runtime, build_stream_graph
from streams.runtime import Runtime, publisher_for
from streams.entrypoints.isolation import drop_library_variables
from streams.entrypoints.supervisor import Part, start_part, supervise
from streams.logs import configure_logging
from streams.settings import Settings, SettingsError, load_settings

logger = structlog.get_logger()


class UsageError(Exception):
    """A problem the person running the command can fix; printed without a traceback."""


def _broker_file(settings: Settings) -> Path:
    return settings.data_dir / "broker.addr"


def running_broker(settings: Settings) -> str | None:
    """The configured broker, or the embedded one a running `sor-notify up` announced."""
    if settings.broker_url:
        return settings.broker_url
    path = _broker_file(settings)
    if path.exists():
        return path.read_text().strip()
    return None


def require_broker(settings: Settings) -> str:
    broker_url = running_broker(settings)
    if broker_url is None:
        raise UsageError(
            "no broker to publish to: start `sor-notify up` in another terminal "
            "(it runs the embedded broker), or set SOR_BROKER_URL=host:port"
        )
    return broker_url


async def _prepare(settings: Settings, runtime: Runtime, broker_url: str, resync: bool) -> None:
    """Topics always; a resync where the broker may have lost its data (`up`, `resync`)."""
    from streams.services.publishing import resync as publish_resync

    await wait_for_broker(broker_url)
    if resync:
        from streams.adapters.offender_search import index_missing

        await runtime.db_once(index_missing)
    async with runtime.publisher(broker_url) as pub:
        if resync:
            report = await publish_resync(
                runtime.engine, pub, app_id=settings.app_id, partitions=settings.partitions
            )
            logger.info("resync published", **report.__dict__)


def _run_worker(
    settings: Settings, runtime: Runtime, broker_url: str, *, resync: bool, demo: bool = False
) -> int:
    import faust

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(_prepare(settings, runtime, broker_url, resync))
    single = loop.run_until_complete(
        needs_single_record_batches(broker_url, settings.single_record_batches, settings.topic_replication)
    )
    graph = build_stream_graph(settings, broker_url, runtime, single_record_batches=single)
    if demo:
        from streams.services.demo import register_demo_digest

        register_demo_digest(graph, runtime, broker_url)
    worker = faust.Worker(
        graph.app,
        loop=loop,
        debug=False,  # not FAUST_DEBUG: settings come from Settings alone
        loglevel=settings.log_level.upper(),
        override_logging=False,
        redirect_stdouts=False,
        quiet=True,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from streams.web.server import serve

    runtime = build_runtime(settings)
    asyncio.run(serve(runtime, running_broker(settings)))
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """The embedded broker (unless SOR_BROKER_URL), a resync, the worker and the site, each a
    child process; if one dies, all stop (streams/entrypoints/supervisor.py)."""
    runtime = build_runtime(settings)
    broker: EmbeddedBroker | None = None
    parts: list[Part] = []
    try:
        if settings.embedded_broker:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            broker = EmbeddedBroker(settings.embedded_broker_port, settings.data_dir / "broker.log")
            broker.start()
            assert broker.process is not None
            parts.append(Part("embedded broker", broker.process, stop=broker.stop))
            _broker_file(settings).write_text(broker.bootstrap)  # how the other parts find it
            broker_url = broker.bootstrap
        else:
            assert settings.broker_url
            broker_url = settings.broker_url

        async def prepare() -> None:
            await _prepare(settings, runtime, broker_url, resync=True)
            if args.demo:
                from streams.services.demo import seed_demo

                await seed_demo(runtime, broker_url)

        asyncio.run(prepare())
        parts.append(Part("worker", start_part("worker", *(["--demo"] if args.demo else []))))
        parts.append(Part("web site", start_part("web")))
        print(
            f"sor-notify is up: web site http://{settings.web_host}:{settings.web_port}/, broker {broker_url}, database {_safe_db(settings)}, "
            + (f"mail via SMTP {settings.smtp_host}" if settings.uses_smtp else f"mail to {settings.maildir}")
            + f", worker web on 127.0.0.1:{settings.worker_web_port}. Ctrl-C stops it.",
            file=sys.stderr,
        )
        return supervise(parts)
    finally:
        for part in reversed(parts):  # stopped already unless preparing failed
            if part.process.poll() is None:
                part.process.terminate()
        if broker:
            broker.stop()
            _broker_file(settings).unlink(missing_ok=True)


def _safe_db(settings: Settings) -> str:
    url = settings.database_url
    if "@" in url:  # never print a password
        scheme, _, rest = url.partition("://")
        url = f"{scheme}://…@{rest.split('@', 1)[1]}"
    return url


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    broker_url = require_broker(settings)
    return _run_worker(settings, build_runtime(settings), broker_url, resync=False, demo=args.demo)


def cmd_resync(settings: Settings, args: argparse.Namespace) -> int:
    runtime = build_runtime(settings)
    broker_url = require_broker(settings)
    asyncio.run(_prepare(settings, runtime, broker_url, resync=True))
    print("resync done: circles, offender watches and offender states re-published")
    return 0


def cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    broker_url = require_broker(settings)
    created = asyncio.run(
        ensure_topics(
            broker_url, topics.topic_configs(settings.app_id), settings.partitions,
            settings.topic_replication,
        )
    )
    print(f"topics ready ({len(created)} created, {settings.partitions} partitions each)")
    return 0


def cmd_registry_publish(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.publishing import publish_registry_file

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    broker_url = require_broker(settings)

    async def run() -> Any:
        async with publisher_for(settings, broker_url) as pub:  # no database needed
            return await publish_registry_file(pub, path, baseline=args.baseline)

    report = asyncio.run(run())
    for n, reason in report.rejected:
        print(f"{path}:{n}: rejected: {reason}", file=sys.stderr)
    kind = "baseline events (no alerts)" if args.baseline else "events"
    print(f"published {report.published} {kind}, rejected {len(report.rejected)}")
    return 1 if report.rejected else 0


def cmd_subscribers_import(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.importing import ImportStopped, import_subscribers

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    runtime = build_runtime(settings)
    try:
        report = asyncio.run(import_subscribers(runtime, path, running_broker(settings)))
    except ImportStopped as err:
        print(f"{path}: import stopped: {err}", file=sys.stderr)
        return 1
    for n, reason in report.rejected:
        print(f"{path}:{n}: rejected: {reason}", file=sys.stderr)
    print(
        f"imported {report.imported} subscribers ({report.confirmed} confirmed), "
        f"rejected {len(report.rejected)}"
        + ("" if report.published else "; no broker running: `sor-notify up` will publish them")
    )
    return 1 if report.rejected else 0


def cmd_gazetteer_import(settings: Settings, args: argparse.Namespace) -> int:
    from streams.adapters.gazetteer_import import import_gazetteer

    path = Path(args.file)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    runtime = build_runtime(settings)
    report = import_gazetteer(
        runtime.engine, path, args.format, default_state=settings.service_state,
        progress=not args.no_progress,
    )
    for n, reason in report.rejected[:20]:
        print(f"{path}:{n}: rejected: {reason}", file=sys.stderr)
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


def _broker_hint(err: BrokerError, broker_url: str) -> UsageError:
    return UsageError(
        f"{err}\n  is the broker running? start `sor-notify up`, or check SOR_BROKER_URL ({broker_url})"
    )


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]], right: set[int]) -> str:
    cells = [header, *[tuple("-" if v is None else str(v) for v in row) for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            (c.rjust(w) if i in right else c.ljust(w)) for i, (c, w) in enumerate(zip(r, widths))
        ).rstrip()
        for r in cells
    )


def _format_status(st: Any) -> str:
    out = [f"Consumer group {st.group_id!r} on broker {st.broker_url or '(none)'}", ""]
    if st.partitions:
        rows = [(p.topic, p.partition, p.end_offset, p.committed, p.lag) for p in st.partitions]
        out.append(_table(("TOPIC", "PARTITION", "END OFFSET", "COMMITTED", "LAG"), rows, {1, 2, 3, 4}))
        out.append(f"total lag: {st.total_lag} (- : not read by the workers' group; the DLQ is for `sor-notify dlq`)")
    elif st.broker_error:
        out.append("offsets and lag unknown: the broker cannot be reached")
    else:
        out.append("no topics yet: `sor-notify topics` creates them")
    t = st.tables
    out += [
        "",
        "Database",
        (
            f"  subscribers        {t.subscribers:>8}  ({t.subscribers_confirmed} confirmed, {t.subscribers_active} active, "
            f"{t.subscribers_mail_suspended} with mail suspended after repeated bounces)"
        ),
        f"  tracked addresses  {t.tracked_addresses:>8}",
        f"  offender watches   {t.offender_watches:>8}",
        (
            f"  offenders          {t.offenders:>8}  ({t.offenders_public} public, "
            f"{t.offenders_removed} removed, {t.offenders_juvenile} juvenile)"
        ),
        f"  pending alerts     {t.pending_alerts:>8}  (not yet in a digest)",
        f"  geocode cache      {t.geocode_cache:>8}",
        f"  gazetteer points   {t.gazetteer_points:>8}  ({t.gazetteer_ranges} TIGER address ranges)",
        "",
        "Last digest run",
    ]
    d = st.to_dict()["last_digest"]
    if d["period"] is None:
        out.append("  none yet")
    else:
        counts = ", ".join(f"{n} {s}" for s, n in d["by_status"].items())
        out.append(f"  period {d['period']}: {counts}")
    out.append(f"  last digest mailed: {d['last_sent_at'] or 'never'}")
    return "\n".join(out)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.operations import status

    runtime = build_runtime(settings)
    st = asyncio.run(status(settings, runtime, running_broker(settings)))
    print(json.dumps(st.to_dict(), indent=2) if args.json else _format_status(st))
    if st.broker_error:
        raise UsageError(
            f"offsets and lag unavailable: {st.broker_error}"
            + ("" if st.broker_url is None else "; start `sor-notify up`, or check SOR_BROKER_URL")
        )
    return 0


def _dlq_call(settings: Settings, make: Any, still_invalid: str = "the event") -> Any:
    """Run one DLQ operation; its refusals become messages for the operator."""
    from streams.services.operations import OperationError, StillInvalid

    broker_url = require_broker(settings)
    try:
        return asyncio.run(make(broker_url))
    except StillInvalid as err:
        raise UsageError(
            f"refused: {still_invalid} would be dead-lettered again: {err.reason}: {err.detail}\n"
            "  correct it and replay it with --file FIXED.json (`sor-notify dlq show ID` prints the original)"
        ) from None
    except OperationError as err:
        raise UsageError(str(err)) from None
    except BrokerError as err:
        raise _broker_hint(err, broker_url) from None


def cmd_dlq_list(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.operations import dlq_list

    runtime = build_runtime(settings)
    listing = _dlq_call(settings, lambda b: dlq_list(b, args.limit, runtime=runtime))
    if args.json:
        print(json.dumps({"total": listing.total, "entries": [e.to_dict() for e in listing.entries]}, indent=2))
        return 0
    if not listing.entries:
        print(f"the dead-letter queue ({topics.DEAD_LETTERS.name}) is empty")
        return 0
    rows = [
        (
            e.id,
            e.dead_lettered_at,
            e.reason,
            e.source.get("key"),
            f"yes, as {e.replayed_as}" if e.replayed_at else "no",
            e.detail,
        )
        for e in listing.entries
    ]
    print(_table(("ID", "DEAD-LETTERED AT", "REASON", "KEY", "REPLAYED", "DETAIL"), rows, set()))
    shown = len(listing.entries)
    print(
        f"\n{listing.total} dead letter{'s' if listing.total != 1 else ''}"
        + (f", the {shown} most recent shown (--limit)" if shown < listing.total else "")
        + "; `sor-notify dlq show ID` shows one with its original event"
    )
    return 0


def cmd_dlq_show(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.operations import dlq_show

    runtime = build_runtime(settings)
    shown = _dlq_call(settings, lambda b: dlq_show(b, args.id, runtime=runtime))
    e = shown.entry
    src = e.source
    replayed = f"yes, at {e.replayed_at} as event {e.replayed_as!r}" if e.replayed_at else "no"
    print(
        f"DLQ entry {e.id}\n"
        f"  reason:           {e.reason}\n"
        f"  detail:           {e.detail}\n"
        f"  dead-lettered at: {e.dead_lettered_at}\n"
        f"  received on:      {src.get('topic')} partition {src.get('partition')} offset {src.get('offset')}, "
        f"key {src.get('key')!r}\n"
        f"  replayed:         {replayed}\n"
    )
    note = "" if shown.valid_utf8 else " (NOT valid UTF-8: undecodable bytes shown as \ufffd)"
    print(
        f"===== BEGIN ORIGINAL EVENT as received{note} =====\n"
        "===== it may hold online identifiers: keep it out of tickets, chat and logs ====="
    )
    print(shown.original_text)
    print("===== END ORIGINAL EVENT =====")
    print(
        f"\nto replay: fix the cause upstream and run `sor-notify dlq replay {e.id}`, or save a "
        f"corrected event and run `sor-notify dlq replay {e.id} --file FIXED.json`"
    )
    return 0


def cmd_dlq_replay(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.operations import dlq_replay

    fixed = None
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        fixed = path.read_bytes()
    runtime = build_runtime(settings)
    result = _dlq_call(
        settings,
        lambda b: dlq_replay(runtime, b, args.id, fixed=fixed, force=args.force),
        still_invalid=f"the corrected event in {args.file}" if args.file else "the original event",
    )
    for warning in result.warnings:
        print(f"sor-notify: warning: {warning}", file=sys.stderr)
    how = f"corrected from {args.file}" if result.corrected else "as received"
    print(
        f"replayed DLQ entry {result.entry_id} {how}: event {result.event_id!r} for offender "
        f"{result.offender_id!r}, revision {result.revision}, sent to {topics.REGISTRY_EVENTS.name}"
    )
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sor-notify",
        description="Community notification: registry changes in, daily digest e-mails out.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything: embedded broker (unless SOR_BROKER_URL), worker")
    up.add_argument("--demo", action="store_true", help="seed demo subscribers and events, mail a digest")
    up.set_defaults(fn=cmd_up)
    worker = sub.add_parser("worker", help="run a stream worker against SOR_BROKER_URL")
    worker.add_argument("--demo", action="store_true", help=argparse.SUPPRESS)  # `up --demo`'s worker
    worker.set_defaults(fn=cmd_worker)
    sub.add_parser("web", help="run the subscriber web site (SOR_WEB_HOST:SOR_WEB_PORT)").set_defaults(fn=cmd_web)
    sub.add_parser("resync", help="re-publish circles, watches and offender states from the database").set_defaults(fn=cmd_resync)
    sub.add_parser("topics", help="create every topic with SOR_PARTITIONS partitions").set_defaults(fn=cmd_topics)

    reg = sub.add_parser("registry", help="registry side").add_subparsers(dest="registry_cmd", required=True)
    pub = reg.add_parser("publish", help="publish registry events from a JSON-lines file")
    pub.add_argument("file")
    pub.add_argument("--baseline", action="store_true", help="record state, alert nobody (bulk load)")
    pub.set_defaults(fn=cmd_registry_publish)

    subs = sub.add_parser("subscribers", help="subscribers").add_subparsers(dest="sub_cmd", required=True)
    imp = subs.add_parser("import", help="import subscribers from a JSON-lines file (legacy migration)")
    imp.add_argument("file")
    imp.set_defaults(fn=cmd_subscribers_import)

    gaz = sub.add_parser("gazetteer", help="the local address gazetteer").add_subparsers(dest="gaz_cmd", required=True)
    gimp = gaz.add_parser("import", help="load address points (OpenAddresses) or TIGER/Line address ranges")
    gimp.add_argument("file")
    gimp.add_argument("--format", choices=["oa-csv", "oa-geojson", "tiger"], help="default: from the file name")
    gimp.add_argument("--no-progress", action="store_true", help="no progress bar")
    gimp.set_defaults(fn=cmd_gazetteer_import)

    dig = sub.add_parser("digest", help="digests").add_subparsers(dest="digest_cmd", required=True)
    send = dig.add_parser("send", help="send due digests now (a period is never mailed twice)")
    send.add_argument("--period", help="local date YYYY-MM-DD (default: today in SOR_TIMEZONE)")
    send.set_defaults(fn=cmd_digest_send)

    st = sub.add_parser("status", help="lag per topic and partition, database counts, last digest run")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(fn=cmd_status)

    dlq = sub.add_parser("dlq", help="the dead-letter queue of registry events").add_subparsers(
        dest="dlq_cmd", required=True
    )
    dls = dlq.add_parser("list", help="the most recent dead letters with their reasons (no event content)")
    dls.add_argument("--limit", type=_positive, default=50, help="how many, newest last (default 50)")
    dls.add_argument("--json", action="store_true", help="machine-readable output")
    dls.set_defaults(fn=cmd_dlq_list)
    dsh = dlq.add_parser("show", help="one dead letter with its original event, to correct it")
    dsh.add_argument("id", help="PARTITION:OFFSET, as `dlq list` shows it")
    dsh.set_defaults(fn=cmd_dlq_show)
    drp = dlq.add_parser("replay", help="send a dead letter (as received, or corrected) to registry-events again")
    drp.add_argument("id", help="PARTITION:OFFSET, as `dlq list` shows it")
    drp.add_argument("--file", metavar="FIXED.json", help="a corrected event (one JSON object) to send instead")
    drp.add_argument("--force", action="store_true", help="replay an entry that was replayed before")
    drp.set_defaults(fn=cmd_dlq_replay)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except SettingsError as err:
        print(f"sor-notify: configuration error: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    ignored = drop_library_variables(os.environ)
    if ignored:
        logger.warning("environment variables meant for faust ignored: sor-notify takes its settings "
                       "from SOR_* alone", names=ignored)
    try:
        return int(args.fn(settings, args))
    except (UsageError, BrokerError) as err:
        print(f"sor-notify: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
