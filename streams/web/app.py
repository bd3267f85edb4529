"""The subscriber web site's app factory: state, middlewares, templates, routes, and what lives as long as the app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web

from streams.adapters import web_db  # noqa: F401 (its tables)
from streams.adapters.near_index import NearIndex
from streams.adapters.registrant_statistics import StatisticsCache
from streams.adapters.search_index import SearchIndex
from streams.adapters.subscriber_store import SubscriberChange
from streams.services.publishing import publish_subscriber_change
from streams.web import display, housekeeping, routes, sessions, views_offenders, views_ops
from streams.web.account_requests import carry_out
from streams.web.account_work import ACCOUNT_WORK, AccountWork
from streams.web.area_carry import carried
from streams.web.confirmations import send_due_notices
from streams.web.keys import (
    CHANGES,
    CLOCK,
    LIMITER,
    NEAR,
    RUNTIME,
    SEARCH,
    SESSION,
    STATISTICS,
    ChangeFeed,
    Clock,
    Publish,
    Runtime,
    now,
)
from streams.web.middlewares import MIDDLEWARES
from streams.web.near_rows import describe_with
from streams.web.paths import Paths
from streams.web.security import RateLimiter

logger = structlog.get_logger()

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
STATIC = Path(__file__).resolve().parent / "static"


async def _context(request: web.Request) -> dict[str, Any]:
    s: sessions.Session | None = request.get(SESSION)
    return {
        "session": s,
        "csrf_token": s.csrf_token if s else "",
        "flash": s.flash if s else None,
        "logged_in": bool(s and s.logged_in),
        "path": request.path,
        "carry": carried(request),  # an address on its way to the add-address form (area_carry)
    }


def _publisher(broker_url: str) -> Callable[[web.Application], AsyncIterator[None]]:
    """A producer for subscription changes while the app runs."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with app[RUNTIME].publisher(broker_url) as pub:

            async def send(change: SubscriberChange) -> None:
                try:
                    await publish_subscriber_change(pub, change)
                except Exception as exc:  # noqa: BLE001 - the database has it; resync will carry it
                    logger.warning("subscription change not published", error=type(exc).__name__)

            feed = app[CHANGES]
            feed.send = send
            try:
                yield
            finally:
                feed.send = ChangeFeed().send

    return ctx


async def _account_work(app: web.Application) -> AsyncIterator[None]:
    work = app[ACCOUNT_WORK]
    task = asyncio.get_running_loop().create_task(work.run())
    yield
    await work.stop(task)


async def _search_loaded(app: web.Application) -> AsyncIterator[None]:
    """Start loading the search index with the site: the first searches wait for it, not for a
    page of their own."""

    async def load() -> None:
        try:
            await app[SEARCH].fresh(app[RUNTIME].engine)
        except Exception as exc:  # noqa: BLE001 - the first search tries again (and answers for it)
            logger.warning("search index not loaded at start", error=type(exc).__name__)

    task = asyncio.get_running_loop().create_task(load())
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def _housekeeping(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.get_running_loop().create_task(housekeeping.purge_hourly(app[RUNTIME].engine))
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def init_metrics_app(runtime: Runtime) -> web.Application:
    """The site's /metrics (with /healthz and /readyz) on a port of its own, never the public
    one: how often mail was sent after a form moves with who is enrolled."""
    app = web.Application()
    app[RUNTIME] = runtime
    app.router.add_get("/metrics", views_ops.metrics_page, name="metrics")
    app.router.add_get("/healthz", views_ops.healthz, name="healthz")
    app.router.add_get("/readyz", views_ops.readyz, name="readyz")
    return app


def init_app(
    runtime: Runtime,
    *,
    publish: Publish | None = None,
    limiter: RateLimiter | None = None,
    broker_url: str | None = None,
    purge_hourly: bool = False,
    account_work: bool = True,
    clock: Clock = now,
    search_every_s: float = 2.0,
) -> web.Application:
    """The site on `runtime`. Changes go to `publish` when given, else to a broker producer at
    `broker_url` while the app runs, else nowhere (the next resync carries them); `purge_hourly`
    runs the housekeeping while the app runs. The search index looks for registry changes at
    most every `search_every_s` seconds. `account_work` carries out the account requests
    the forms queue, and sends the settings notices, while the app runs (off: they stay queued,
    for a test of what a request alone does); sessions time out by `clock`."""
    app = web.Application(
        middlewares=list(MIDDLEWARES),
        client_max_size=64 * 1024,  # forms only: nothing here needs more
    )
    app[RUNTIME] = runtime
    app[CHANGES] = ChangeFeed(publish) if publish is not None else ChangeFeed()
    app[LIMITER] = limiter or RateLimiter()
    app[CLOCK] = clock
    app[STATISTICS] = StatisticsCache(clock)
    app[NEAR] = NearIndex(describe_with(lambda: Paths(app.router)))
    app[ACCOUNT_WORK] = AccountWork(partial(carry_out, app), partial(send_due_notices, app), now)
    if account_work:
        app.cleanup_ctx.append(_account_work)
    if publish is None and broker_url:
        app.cleanup_ctx.append(_publisher(broker_url))
    if purge_hourly:
        app.cleanup_ctx.append(_housekeeping)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        context_processors=[_context],
    )
    env.globals["public_url"] = runtime.settings.public_url
    env.globals["map_tiles_url"] = runtime.settings.map_tiles_url
    zone = runtime.settings.zone
    env.filters["distance"] = display.distance_text
    env.filters["radius"] = display.radius_text
    env.filters["local_day"] = lambda t: display.day_text(t.astimezone(zone))
    env.filters["local_when"] = lambda t: display.when_text(t.astimezone(zone))
    routes.setup(app)
    app[SEARCH] = SearchIndex(views_offenders.search_row(env, Paths(app.router)), every_s=search_every_s)
    app.cleanup_ctx.append(_search_loaded)
    app.router.add_static("/static/", STATIC, name="static")
    return app
