"""The long-running commands (up, worker, web) and the broker's setup (resync, topics)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import structlog

from streams import topics
from streams.adapters.broker import EmbeddedBroker, ensure_topics, wait_for_broker
from streams.adapters.broker_probe import needs_single_record_batches
from streams.bootstrap import build_runtime, build_stream_graph
from streams.entrypoints.supervisor import Part, start_part, supervise
from streams.entrypoints.usage import broker_file, require_broker, running_broker
from streams.runtime import Runtime
from streams.settings import Settings

logger = structlog.get_logger()


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
            broker_file(settings).write_text(broker.bootstrap)  # how the other parts find it
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
            f"sor-notify is up: web site http://{settings.web_host}:{settings.web_port}/, "
            f"broker {broker_url}, database {_safe_db(settings)}, "
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
            broker_file(settings).unlink(missing_ok=True)


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
            broker_url,
            topics.topic_configs(settings.app_id),
            settings.partitions,
            settings.topic_replication,
        )
    )
    print(f"topics ready ({len(created)} created, {settings.partitions} partitions each)")
    return 0
