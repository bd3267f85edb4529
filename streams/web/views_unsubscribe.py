"""One-click unsubscribe (RFC 8058): the page a mailed link opens, and the POST that stops all mail."""

from __future__ import annotations

from aiohttp import web

from streams.adapters import tracking_db
from streams.domain import links
from streams.web.keys import db, now, publish, runtime_of
from streams.web.responses import render


def _token_subscriber(request: web.Request) -> int | None:
    return links.verify_unsubscribe_token(
        runtime_of(request).settings.secret_key, request.match_info["token"]
    )


def _bad_link(request: web.Request) -> web.Response:
    return render(
        request,
        "web/error.html.j2",
        {
            "title": "This link does not work",
            "message": "The unsubscribe link is incomplete or was changed. Use the link from your most recent e-mail, "
            "or log in and stop the e-mails from My account.",
        },
        status=400,
    )


async def unsubscribe_page(request: web.Request) -> web.Response:
    # Mail programs and scanners fetch links on their own: a GET only asks.
    sid = _token_subscriber(request)
    if sid is None:
        return _bad_link(request)
    sub = await db(request, tracking_db.subscriber, sid)
    return render(
        request,
        "web/unsubscribe.html.j2",
        {
            "done": False,
            "already": sub is None or sub.status == "unsubscribed",
            "action": request.path,
        },
    )


async def unsubscribe(request: web.Request) -> web.Response:
    sid = _token_subscriber(request)
    if sid is None:
        if "from_page" in await request.post():
            return _bad_link(request)
        return web.Response(status=400, text="This unsubscribe link is not valid.\n")
    change = await db(request, tracking_db.unsubscribe, sid, now())
    if change is not None and (change.removed_circles or change.removed_watches):
        await publish(request, change)
    if "from_page" in await request.post():
        return render(
            request, "web/unsubscribe.html.j2", {"done": True, "already": False, "action": request.path}
        )
    # A mail program's one-click POST: a plain answer nobody has to read.
    return web.Response(text="You are unsubscribed: no more registry alert e-mails will be sent.\n")
