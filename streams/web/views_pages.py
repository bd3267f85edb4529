"""Pages that need no account: home and FAQ."""

from __future__ import annotations

from aiohttp import web

from streams.web.responses import render


async def home(request: web.Request) -> web.Response:
    return render(request, "web/home.html.j2")


async def faq(request: web.Request) -> web.Response:
    return render(request, "web/faq.html.j2")
