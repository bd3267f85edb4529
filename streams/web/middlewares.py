"""The site's middlewares, outermost first: counting, security headers, sessions, CSRF, unknown pages."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from streams.adapters import db_calls, metrics
from streams.web import sessions
from streams.web.keys import CSRF_SEED, SESSION, CsrfSeed, clock_of, runtime_of, session_of
from streams.web.responses import not_found, render
from streams.web.security import content_security_policy

OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
# Anything else a client sends as a method is counted as "other": labels stay a short list.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# POSTs that carry their own proof instead of a session (RFC 8058 one-click unsubscribe).
CSRF_EXEMPT_PREFIXES = ("/unsubscribe/",)
# Pages whose URL holds a secret: never leak it through the Referer header.
TOKEN_PATH_PREFIXES = ("/confirm/", "/reset/", "/delete/confirm/", "/email/confirm/", "/unsubscribe/")


# --- request counting --------------------------------------------------------------------


@web.middleware
async def metrics_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Outermost: counts every request with the status the client got."""
    if request.path in OPS_PATHS and request.method in {"GET", "HEAD"}:
        # Straight to the view, past sessions and CSRF: a scraper must not leave a session row
        # behind on every scrape, and /readyz must answer 503 (not fail) when the database is down.
        handler = request.match_info.handler
    status = 500
    try:
        if request.method == "POST" and (unreadable := await _unreadable_form(request)) is not None:
            status = unreadable.status
            return unreadable
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away first (nginx's code for it)
        raise
    finally:
        _count(request, status)


async def _unreadable_form(request: web.Request) -> web.Response | None:
    """Read the form before anything else does (later reads get the same one): a body that
    is not UTF-8, names an unknown charset or is broken multipart is the client's mistake,
    answered 400, not a server error."""
    try:
        await request.post()
    except web.HTTPException as exc:  # 413: too large; the same headers as any answer
        security_headers(request, exc)
        raise
    except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError
        response = render(
            request,
            "web/error.html.j2",
            {
                "title": "This form could not be read",
                "message": "What was sent is not a form this site can read (it must be UTF-8 text). "
                "Go back, reload the page and try again.",
            },
            status=400,
        )
        security_headers(request, response)
        return response
    return None


def _count(request: web.Request, status: int) -> None:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    method = request.method if request.method in METHODS else "other"
    metrics.WEB_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    # The account views answer each outcome with its own status; reading it here keeps them
    # free of metrics code.
    if method == "POST" and route == "/login":
        if status == 400:
            metrics.WEB_LOGINS_FAILED.labels(reason="refused").inc()
        elif status == 429:
            metrics.WEB_LOGINS_FAILED.labels(reason="rate_limited").inc()
    elif method == "POST" and route == "/enroll" and status == 200:
        metrics.WEB_ENROLLMENTS.labels(stage="requested").inc()
    elif method == "POST" and route == "/confirm/{token}" and status == 303:
        metrics.WEB_ENROLLMENTS.labels(stage="confirmed").inc()


# --- security headers --------------------------------------------------------------------


@web.middleware
async def headers_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        security_headers(request, exc)
        raise
    security_headers(request, response)
    return response


def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    tiles = runtime_of(request).settings.map_tiles_url
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(tiles)) if tiles else None
    h = response.headers
    h.setdefault("Content-Security-Policy", content_security_policy(origin))
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h["Server"] = "sor-notify"  # not aiohttp's "Python/3.x aiohttp/3.x": no versions to look up
    if runtime_of(request).settings.public_url.startswith("https://"):
        # A year of HTTPS only, subdomains too: no first plain-HTTP request to strip or to
        # plant a cookie through once a browser has been here.
        h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    h["Referrer-Policy"] = "no-referrer" if request.path.startswith(TOKEN_PATH_PREFIXES) else "same-origin"
    if not request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-store")


# --- sessions and CSRF -------------------------------------------------------------------


@web.middleware
async def session_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """The stored session of the cookie, if any; else an anonymous one whose CSRF token is
    signed from the CSRF cookie. Nothing is written for a visitor until something needs it
    (a login, a message for the next page): a crawler leaves no rows behind."""
    if request.path.startswith("/static/"):
        return await handler(request)
    secure = served_over_https(request)
    s = None
    if raw := request.cookies.get(sessions.cookie_name(sessions.COOKIE, secure)):
        s = await db_calls.call(runtime_of(request).engine, sessions.load, raw, clock_of(request))
    seed = request[CSRF_SEED] = _csrf_seed(request, secure)
    if s is None or not s.stored:
        csrf = sessions.csrf_token_for(runtime_of(request).settings.secret_key, seed.value)
        s = sessions.anonymous(csrf, s.flash if s else None)
    request[SESSION] = s
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _set_cookies(request, exc, secure)
        raise
    _set_cookies(request, response, secure)
    return response


def _csrf_seed(request: web.Request, secure: bool) -> CsrfSeed:
    seed = request.cookies.get(sessions.cookie_name(sessions.CSRF_COOKIE, secure))
    if seed is not None and sessions.valid_csrf_seed(seed):
        return CsrfSeed(seed)
    return CsrfSeed(sessions.new_csrf_seed(), changed=True)  # none yet, or not one of ours


def served_over_https(request: web.Request) -> bool:
    return request.secure or runtime_of(request).settings.public_url.startswith("https://")


def _set_cookies(request: web.Request, response: web.StreamResponse, secure: bool) -> None:
    # HttpOnly: no script reads them; SameSite=Lax: no other site's POST carries them;
    # Secure and the __Host- prefix over HTTPS; Path=/ and no Domain always.
    attrs: dict[str, Any] = {"httponly": True, "samesite": "Lax", "secure": secure, "path": "/"}
    s = request[SESSION]
    name = sessions.cookie_name(sessions.COOKIE, secure)
    if s.raw_id is not None and s.changed:
        response.set_cookie(name, s.raw_id, max_age=int(sessions.ABSOLUTE.total_seconds()), **attrs)
    elif not s.stored and name in request.cookies:
        response.del_cookie(name, **attrs)  # ended, spent or unknown: the browser forgets it
    seed = request[CSRF_SEED]
    if seed.changed:  # a browser-session cookie: gone when the browser closes
        response.set_cookie(sessions.cookie_name(sessions.CSRF_COOKIE, secure), seed.value, **attrs)


@web.middleware
async def csrf_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.method in {"POST", "PUT", "PATCH", "DELETE"} and not request.path.startswith(
        CSRF_EXEMPT_PREFIXES
    ):
        form = await request.post()
        sent = str(form.get("csrf_token", ""))
        expected = session_of(request).csrf_token
        if not sent or not hmac.compare_digest(sent, expected):
            return render(
                request,
                "web/error.html.j2",
                {
                    "title": "This form has expired",
                    "message": "For your safety the form could not be accepted."
                    " Go back, reload the page and try again.",
                },
                status=403,
            )
    return await handler(request)


@web.middleware
async def unmatched_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """An address with no page gets the site's own "Page not found" (its title, landmarks and a
    way back), not aiohttp's one line of plain text."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.match_info.http_exception is None or request.method not in {"GET", "HEAD"}:
            raise
        return not_found(request)


MIDDLEWARES = (
    metrics_middleware,
    headers_middleware,
    session_middleware,
    csrf_middleware,
    unmatched_middleware,
)
