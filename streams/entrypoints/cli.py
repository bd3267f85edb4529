"""The `sor-notify` command: translate arguments, build through bootstrap, dispatch."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
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
from streams.bootstrap import Services, build_services, build_stream_graph
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
    bootstrap = running_broker(settings)
    if bootstrap is None:
        raise UsageError(
            "no broker to publish to: start `sor-notify up` in another terminal "
            "(it runs the embedded broker), or set SOR_BROKER_URL=host:port"
        )
    return bootstrap


async def _prepare(settings: Settings, services: Services, bootstrap: str, resync: bool) -> None:
    """Topics always; a resync where the broker may have lost its data (`up`, `resync`)."""
    from streams.services.publishing import resync as publish_resync

    await wait_for_broker(bootstrap)
    if resync:
        from streams.adapters.offender_search import index_missing

        await asyncio.to_thread(index_missing, services.engine)
    async with services.publisher(bootstrap) as pub:
        if resync:
            report = await publish_resync(
                services.engine, pub, app_id=settings.app_id, partitions=settings.partitions
            )
            logger.info("resync published", **report.__dict__)


def _run_worker(
    settings: Settings, services: Services, bootstrap: str, *, resync: bool, demo: bool = False
) -> int:
    import faust

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(_prepare(settings, services, bootstrap, resync))
    if demo:
        from streams.services.demo import seed_demo

        loop.run_until_complete(seed_demo(services, bootstrap))
    graph = build_stream_graph(settings, bootstrap, services)
    if demo:
        from streams.services.demo import register_demo_digest

        register_demo_digest(graph, services, bootstrap)
    worker = faust.Worker(
        graph.app,
        loop=loop,
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

    services = build_services(settings)
    asyncio.run(serve(services, running_broker(settings)))
    return 0


def _start_web_process() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "streams.entrypoints.cli", "web"])


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    services = build_services(settings)
    broker: EmbeddedBroker | None = None
    if settings.embedded_broker:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        broker = EmbeddedBroker(settings.embedded_broker_port, settings.data_dir / "broker.log")
        broker.start()
        _broker_file(settings).write_text(broker.bootstrap)
        bootstrap = broker.bootstrap
    else:
        assert settings.broker_url
        bootstrap = settings.broker_url
    site = _start_web_process()
    print(
        f"sor-notify is up: web site http://{settings.web_host}:{settings.web_port}/, broker {bootstrap}, database {_safe_db(settings)}, "
        + (f"mail via SMTP {settings.smtp_host}" if settings.uses_smtp else f"mail to {settings.maildir}")
        + f", worker web on 127.0.0.1:{settings.worker_web_port}. Ctrl-C stops it.",
        file=sys.stderr,
    )
    try:
        return _run_worker(settings, services, bootstrap, resync=True, demo=args.demo)
    finally:
        site.terminate()
        try:
            site.wait(10)
        except subprocess.TimeoutExpired:
            site.kill()
        if broker:
            _broker_file(settings).unlink(missing_ok=True)
            broker.stop()


def _safe_db(settings: Settings) -> str:
    url = settings.database_url
    if "@" in url:  # never print a password
        scheme, _, rest = url.partition("://")
        url = f"{scheme}://…@{rest.split('@', 1)[1]}"
    return url


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    bootstrap = require_broker(settings)
    return _run_worker(settings, build_services(settings), bootstrap, resync=False)


def cmd_resync(settings: Settings, args: argparse.Namespace) -> int:
    services = build_services(settings)
    bootstrap = require_broker(settings)
    asyncio.run(_prepare(settings, services, bootstrap, resync=True))
    print("resync done: circles, offender watches and offender states re-published")
    return 0


def cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    bootstrap = require_broker(settings)
    created = asyncio.run(
        ensure_topics(bootstrap, topics.all_topic_names(settings.app_id), settings.partitions)
    )
    print(f"topics ready ({len(created)} created, {settings.partitions} partitions each)")
    return 0


def cmd_registry_publish(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.publishing import publish_registry_file

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    bootstrap = require_broker(settings)
    services = build_services(settings)

    async def run() -> Any:
        async with services.publisher(bootstrap) as pub:
            return await publish_registry_file(pub, path, baseline=args.baseline)

    report = asyncio.run(run())
    for n, reason in report.rejected:
        print(f"{path}:{n}: rejected: {reason}", file=sys.stderr)
    kind = "baseline events (no alerts)" if args.baseline else "events"
    print(f"published {report.published} {kind}, rejected {len(report.rejected)}")
    return 1 if report.rejected else 0


def cmd_subscribers_import(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.importing import import_subscribers

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    services = build_services(settings)
    report = asyncio.run(import_subscribers(services, path, running_broker(settings)))
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
    services = build_services(settings)
    report = import_gazetteer(
        services.engine, path, args.format, default_state=settings.service_state,
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
    services = build_services(settings)
    report = asyncio.run(services.send_digests(args.period))
    print(
        f"digests: {report.sent} sent, {report.empty} with nothing to say, "
        f"{report.failed} failed, {report.skipped_already_sent} already sent, "
        f"{report.deferred} deferred (mail server unavailable: retried on the next run)"
        + ("" if settings.uses_smtp else f" (Maildir: {settings.maildir})")
    )
    return 1 if report.failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sor-notify",
        description="Community notification: registry changes in, daily digest e-mails out.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything: embedded broker (unless SOR_BROKER_URL), worker")
    up.add_argument("--demo", action="store_true", help="seed demo subscribers and events, mail a digest")
    up.set_defaults(fn=cmd_up)
    sub.add_parser("worker", help="run a stream worker against SOR_BROKER_URL").set_defaults(fn=cmd_worker)
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except SettingsError as err:
        print(f"sor-notify: configuration error: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        return int(args.fn(settings, args))
    except (UsageError, BrokerError) as err:
        print(f"sor-notify: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
