"""What the site keeps on its app and its requests (typed keys), and the helpers views read it through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from streams.adapters.near_index import NearIndex
from streams.adapters.registrant_statistics import StatisticsCache
from streams.adapters.search_index import SearchIndex
from streams.adapters.subscriber_store import SubscriberChange
from streams.runtime import Runtime
from streams.web import sessions
from streams.web.client_address import client_address
from streams.web.security import RateLimiter

logger = structlog.get_logger()

Publish = Callable[[SubscriberChange], Awaitable[None]]


async def _not_published(change: SubscriberChange) -> None:
    logger.info("no broker: subscription change will be published by the next resync")


@dataclass
class ChangeFeed:
    """Where subscription changes go: the broker once the app's publisher is up, else nowhere
    (the next `up`/`resync` carries them)."""

    send: Publish = _not_published


RUNTIME = web.AppKey("runtime", Runtime)
CHANGES = web.AppKey("changes", ChangeFeed)
LIMITER = web.AppKey("limiter", RateLimiter)
STATISTICS = web.AppKey("statistics", StatisticsCache)  # the public counts, per registry as of
SEARCH = web.AppKey("search", SearchIndex)  # the public search, held in this process
NEAR = web.AppKey("near", NearIndex)  # the public points in memory, and the registry's "as of"
SESSION = web.RequestKey("session", sessions.Session)  # set by middlewares.session_middleware
Clock = Callable[[], datetime]


@dataclass
class CsrfSeed:
    """The browser's CSRF cookie (middlewares.session_middleware): its value, and whether the
    answer must send it (new, or renewed at login and logout)."""

    value: str
    changed: bool = False


CSRF_SEED = web.RequestKey("csrf_seed", CsrfSeed)


def now() -> datetime:
    return datetime.now(UTC)


# What sessions time themselves by: `now`, unless a test moves it (init_app(clock=...)).
CLOCK: web.AppKey[Clock] = web.AppKey("clock")


def clock_of(request: web.Request) -> datetime:
    return request.app.get(CLOCK, now)()


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


async def db(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    """fn(engine, *args) off the loop."""
    return await runtime_of(request).db_once(fn, *args)


async def search_index(request: web.Request) -> SearchIndex:
    """The site's search index, fresh to within its `every_s`."""
    index = request.app[SEARCH]
    await index.fresh(runtime_of(request).engine)
    return index


def session_of(request: web.Request) -> sessions.Session:
    return request[SESSION]


def client_key(request: web.Request) -> str:
    trusted = runtime_of(request).settings.web_trusted_proxies
    return client_address(request.remote, request.headers.getall("X-Forwarded-For", ()), trusted)


async def publish(request: web.Request, change: SubscriberChange) -> None:
    """Tell the stream at once; without a broker the next `up`/`resync` carries it."""
    await request.app[CHANGES].send(change)


def renew_csrf_seed(request: web.Request) -> str:
    """A new CSRF cookie; returns the token forms carry with it."""
    seed = request[CSRF_SEED] = CsrfSeed(sessions.new_csrf_seed(), changed=True)
    return sessions.csrf_token_for(runtime_of(request).settings.secret_key, seed.value)


async def login_session(request: web.Request, subscriber_id: int | None) -> None:
    """Log in (a new stored session) or out (none stored): either way the old session ends and
    the CSRF cookie is new, so no id or token seen before carries over."""
    old = session_of(request)
    csrf = renew_csrf_seed(request)
    if subscriber_id is None:
        await db(request, sessions.destroy, old)
        request[SESSION] = sessions.anonymous(csrf)
    else:
        request[SESSION] = await db(request, sessions.rotate, old, subscriber_id, clock_of(request))


async def stored_session(request: web.Request) -> sessions.Session:
    """The visitor's session, stored now if nothing was: for state a sign-in keeps between two
    requests (a passkey's challenge, a second step), which points at a session row."""
    s = session_of(request)
    if not s.stored:
        s = request[SESSION] = await db(request, sessions.create, None, clock_of(request), s.csrf_token)
    return s


async def flash(request: web.Request, message: str) -> None:
    """A message for the next page: the first thing that stores a session for a visitor."""
    s = session_of(request)
    if s.stored:
        await db(request, sessions.set_flash, s, message)
    else:
        request[SESSION] = await db(request, sessions.create, None, clock_of(request), s.csrf_token, message)
