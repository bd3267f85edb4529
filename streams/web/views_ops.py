"""Operations endpoints of the site (/metrics, /healthz, /readyz) and the request-counting middleware."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from streams.adapters import metrics
from streams.web.app import _security_headers, render, services_of

routes = web.RouteTableDef()

OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
# Anything else a client sends as a method is counted as "other": labels stay a short list.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@routes.get("/metrics")
async def metrics_page(request: web.Request) -> web.Response:
    return web.Response(body=metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"alive": True})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    ok, body = await metrics.readiness({"database": metrics.database_answers(services_of(request).engine)})
    return web.json_response(body, status=200 if ok else 503)


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
        _security_headers(request, exc)
        raise
    except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError
        response = render(request, "web/error.html.j2", {
            "title": "This form could not be read",
            "message": "What was sent is not a form this site can read (it must be UTF-8 text). "
                       "Go back, reload the page and try again.",
        }, status=400)
        _security_headers(request, response)
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
    elif method == "GET" and route == "/confirm/{token}" and status == 303:
        metrics.WEB_ENROLLMENTS.labels(stage="confirmed").inc()
