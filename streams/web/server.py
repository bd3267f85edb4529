"""Run the site: the app (with its producer for subscription changes and its hourly housekeeping) on a TCP site."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from streams.runtime import Runtime
from streams.web.app import init_app


async def serve(runtime: Runtime, broker_url: str | None) -> None:
    settings = runtime.settings
    app = init_app(runtime, broker_url=broker_url, purge_hourly=True)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.web_host, settings.web_port)
        await site.start()
        print(f"web site on http://{settings.web_host}:{settings.web_port}/", file=sys.stderr, flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
