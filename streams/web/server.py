"""Run the site: a producer for subscription changes, the app, and housekeeping."""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack

import structlog
from aiohttp import web

from streams.adapters.repository import SubscriberChange
from streams.runtime import Runtime as Services  # renamed throughout the site next
from streams.services.publishing import publish_subscriber_change
from streams.web import sessions
from streams.web.app import init_app, now

logger = structlog.get_logger()


async def serve(services: Services, bootstrap: str | None) -> None:
    settings = services.settings
    async with AsyncExitStack() as stack:
        publish = None
        if bootstrap:
            pub = await stack.enter_async_context(services.publisher(bootstrap))

            async def publish(change: SubscriberChange) -> None:
                try:
                    await publish_subscriber_change(pub, change)
                except Exception as exc:  # noqa: BLE001 - the database has it; resync will carry it
                    logger.warning("subscription change not published", error=type(exc).__name__)

        app = init_app(services, publish=publish)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, settings.web_host, settings.web_port)
        await site.start()
        print(f"web site on http://{settings.web_host}:{settings.web_port}/", file=sys.stderr, flush=True)
        while True:
            await asyncio.to_thread(sessions.purge_expired, services.engine, now())
            await _purge_hook(services)
            await asyncio.sleep(3600)


async def _purge_hook(services: Services) -> None:
    """Expired enrollments and tokens (the account flows register their purge here)."""
    from streams.web import views_account

    purge = getattr(views_account, "purge_expired", None)
    if purge is not None:
        await asyncio.to_thread(purge, services.engine, now())
