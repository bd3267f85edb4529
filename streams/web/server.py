"""Run the site: the app (with its producer for subscription changes and its hourly housekeeping) on a TCP site."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from streams.runtime import Runtime
from streams.web.app import init_app, init_metrics_app
from streams.web.keys import NEAR


async def serve(runtime: Runtime, broker_url: str | None) -> None:
    settings = runtime.settings
    app = init_app(runtime, broker_url=broker_url, purge_hourly=True)
    runner = web.AppRunner(app, access_log=None)
    ops = web.AppRunner(init_metrics_app(runtime), access_log=None)
    await runner.setup()
    await ops.setup()
    warming: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, settings.web_host, settings.web_port)
        await site.start()
        # The near page's points, built while the first visitors are on other pages.
        warming = asyncio.get_running_loop().create_task(app[NEAR].warm(runtime.db_once))
        print(f"web site on http://{settings.web_host}:{settings.web_port}/", file=sys.stderr, flush=True)
        if settings.web_metrics_port:
            await web.TCPSite(ops, settings.web_metrics_host, settings.web_metrics_port).start()
            print(
                f"web site metrics on http://{settings.web_metrics_host}:{settings.web_metrics_port}/metrics",
                file=sys.stderr,
                flush=True,
            )
        await asyncio.Event().wait()
    finally:
        if warming is not None:
            warming.cancel()
        await ops.cleanup()
        await runner.cleanup()
