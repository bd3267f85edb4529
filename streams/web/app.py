"""The subscriber web site: app factory, middlewares, and the helpers views share."""

from __future__ import annotations

import asyncio
import hmac
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web

from streams.adapters import web_db  # noqa: F401 (its tables)
from streams.adapters.repository import SubscriberChange
from streams.runtime import Runtime as Services  # renamed throughout the site next
from streams.web import sessions
from streams.web.security import RateLimiter, content_security_policy

logger = structlog.get_logger()

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
STATIC = Path(__file__).resolve().parent / "static"

Publish = Callable[[SubscriberChange], Awaitable[None]]

SERVICES = web.AppKey("services", Services)
PUBLISH = web.AppKey("publish", object)  # Publish
LIMITER = web.AppKey("limiter", RateLimiter)

# POSTs that carry their own proof instead of a session (RFC 8058 one-click unsubscribe).
CSRF_EXEMPT_PREFIXES = ("/unsubscribe/",)
# Pages whose URL holds a secret: never leak it through the Referer header.
TOKEN_PATH_PREFIXES = ("/confirm/", "/reset/", "/delete/confirm/", "/email/confirm/", "/unsubscribe/")


def now() -> datetime:
    return datetime.now(timezone.utc)


def services_of(request: web.Request) -> Services:
    return request.app[SERVICES]


async def db(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, services_of(request).engine, *args)


def session_of(request: web.Request) -> sessions.Session:
    return request["session"]


def client_key(request: web.Request) -> str:
    return request.remote or "unknown"


async def publish(request: web.Request, change: SubscriberChange) -> None:
    """Tell the stream at once; without a broker the next `up`/`resync` carries it."""
    await request.app[PUBLISH](change)  # type: ignore[operator]


async def login_session(request: web.Request, subscriber_id: int | None) -> None:
    old = session_of(request)
    request["session"] = await asyncio.to_thread(
        sessions.rotate, services_of(request).engine, old, subscriber_id, now()
    )


async def flash(request: web.Request, message: str) -> None:
    await asyncio.to_thread(sessions.set_flash, services_of(request).engine, session_of(request), message)


def redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def require_login(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    async def wrapped(request: web.Request) -> web.StreamResponse:
        if not session_of(request).logged_in:
            raise redirect("/login")
        return await handler(request)

    wrapped.__name__ = handler.__name__
    return wrapped


def render(request: web.Request, template: str, context: dict[str, Any] | None = None,
           status: int = 200) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, context or {}, status=status)


async def _context(request: web.Request) -> dict[str, Any]:
    s: sessions.Session | None = request.get("session")
    return {
        "session": s,
        "csrf_token": s.csrf_token if s else "",
        "flash": s.flash if s else None,
        "logged_in": bool(s and s.logged_in),
        "path": request.path,
    }


@web.middleware
async def session_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith("/static/"):
        return await handler(request)
    engine = services_of(request).engine
    s = await asyncio.to_thread(sessions.load, engine, request.cookies.get(sessions.COOKIE), now())
    if s is None:
        s = await asyncio.to_thread(sessions.create, engine, None, now())
    request["session"] = s
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _set_cookie(request, response)
        raise
    _set_cookie(request, response)
    return response


def _set_cookie(request: web.Request, response: web.StreamResponse) -> None:
    s: sessions.Session = request["session"]
    if s.changed:
        secure = request.secure or services_of(request).settings.public_url.startswith("https://")
        response.set_cookie(
            sessions.COOKIE, s.raw_id, httponly=True, samesite="Lax", secure=secure, path="/",
            max_age=int(sessions.ABSOLUTE.total_seconds()),
        )


@web.middleware
async def csrf_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.method in {"POST", "PUT", "PATCH", "DELETE"} and not request.path.startswith(CSRF_EXEMPT_PREFIXES):
        form = await request.post()
        sent = str(form.get("csrf_token", ""))
        expected = session_of(request).csrf_token
        if not sent or not hmac.compare_digest(sent, expected):
            return render(request, "web/error.html.j2", {
                "title": "This form has expired",
                "message": "For your safety the form could not be accepted. Go back, reload the page and try again.",
            }, status=403)
    return await handler(request)


@web.middleware
async def headers_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _security_headers(request, exc)
        raise
    _security_headers(request, response)
    return response


def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    tiles = services_of(request).settings.map_tiles_url
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(tiles)) if tiles else None
    h = response.headers
    h.setdefault("Content-Security-Policy", content_security_policy(origin))
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h["Referrer-Policy"] = "no-referrer" if request.path.startswith(TOKEN_PATH_PREFIXES) else "same-origin"
    if not request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-store")


async def _not_published(change: SubscriberChange) -> None:
    logger.info("no broker: subscription change will be published by the next resync")


def init_app(services: Services, *, publish: Publish | None = None,
             limiter: RateLimiter | None = None) -> web.Application:
    from streams.web import routes, views_ops

    app = web.Application(
        middlewares=[views_ops.metrics_middleware, headers_middleware, session_middleware, csrf_middleware],
        client_max_size=64 * 1024,  # forms only: nothing here needs more
    )
    app[SERVICES] = services
    app[PUBLISH] = publish or _not_published
    app[LIMITER] = limiter or RateLimiter()
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        context_processors=[_context],
    )
    env.globals["public_url"] = services.settings.public_url
    env.globals["map_tiles_url"] = services.settings.map_tiles_url
    routes.setup(app)
    app.router.add_static("/static/", STATIC, name="static")
    return app
