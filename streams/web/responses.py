"""Answers views share: rendered pages, redirects, the login gate and the common error pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from streams.web.keys import session_of


def render(
    request: web.Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, context or {}, status=status)


def redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def require_login(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    async def wrapped(request: web.Request) -> web.StreamResponse:
        if not session_of(request).logged_in:
            raise redirect(str(request.app.router["login_form"].url_for()))
        return await handler(request)

    wrapped.__name__ = handler.__name__
    return wrapped


def not_found(request: web.Request) -> web.Response:
    return render(
        request,
        "web/error.html.j2",
        {
            "title": "Page not found",
            "message": "There is nothing here, or it is not yours to see.",
        },
        status=404,
    )


def no_record(request: web.Request) -> web.Response:
    """One page for unknown, removed and juvenile records: it must not tell them apart."""
    return render(
        request,
        "web/error.html.j2",
        {
            "title": "No public record",
            "message": "There is no public registry record at this address. Search the registry to find a record.",
        },
        status=404,
    )
