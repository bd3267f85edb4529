"""What the site keeps on its app and its requests (typed keys), and the helpers views read it through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

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
SESSION = web.RequestKey("session", sessions.Session)  # set by middlewares.session_middleware


def now() -> datetime:
    return datetime.now(UTC)


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


async def db(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    """fn(engine, *args) off the loop."""
    return await runtime_of(request).db_once(fn, *args)


def session_of(request: web.Request) -> sessions.Session:
    return request[SESSION]


def client_key(request: web.Request) -> str:
    trusted = runtime_of(request).settings.web_trusted_proxies
    return client_address(request.remote, request.headers.getall("X-Forwarded-For", ()), trusted)


async def publish(request: web.Request, change: SubscriberChange) -> None:
    """Tell the stream at once; without a broker the next `up`/`resync` carries it."""
    await request.app[CHANGES].send(change)


async def login_session(request: web.Request, subscriber_id: int | None) -> None:
    old = session_of(request)
    request[SESSION] = await db(request, sessions.rotate, old, subscriber_id, now())


async def flash(request: web.Request, message: str) -> None:
    await db(request, sessions.set_flash, session_of(request), message)
