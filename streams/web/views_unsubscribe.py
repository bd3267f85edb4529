"""One-click unsubscribe (RFC 8058): the page a mailed link opens, and the POST that stops all mail."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from streams.adapters import tracking_db
from streams.domain import links
from streams.web.keys import db, now, publish, runtime_of
from streams.web.responses import render


def _signed_link(request: web.Request) -> links.UnsubscribeLink | None:
    return links.verify_unsubscribe_token(
        runtime_of(request).settings.secret_key, request.match_info["token"]
    )


async def _its_subscriber(request: web.Request, link: links.UnsubscribeLink) -> Any:
    """The enrollment the link was mailed to; None once it is gone. A link mailed to a deleted
    enrollment never reaches whoever holds its id next (there is none: ids are never reused;
    and a link binds its enrollment's own key)."""
    sub = await db(request, tracking_db.subscriber, link.subscriber_id)
    return sub if sub is not None and link.is_for(sub.link_key) else None


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
    link = _signed_link(request)
    if link is None:
        return _bad_link(request)
    sub = await _its_subscriber(request, link)
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
    link = _signed_link(request)
    if link is None:
        if "from_page" in await request.post():
            return _bad_link(request)
        return web.Response(status=400, text="This unsubscribe link is not valid.\n")
    sub = await _its_subscriber(request, link)
    change = None if sub is None else await db(request, tracking_db.unsubscribe, sub.id, now())
    if change is not None and (change.removed_circles or change.removed_watches):
        await publish(request, change)
    if "from_page" in await request.post():
        return render(
            request,
            "web/unsubscribe.html.j2",
            {"done": sub is not None, "already": sub is None, "action": request.path},
        )
    # A mail program's one-click POST: a plain answer nobody has to read.
    return web.Response(text="You are unsubscribed: no more registry alert e-mails will be sent.\n")
