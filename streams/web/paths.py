"""In-site paths from the named routes (routes.py), quoted as the pages always have been."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from streams.domain import links
from streams.web.keys import RUNTIME


class Paths:
    """The links pages (and the settings e-mail, after the site's address) carry.

    An offender id is free text: it is quoted whole (a "/" too, which `url_for` would keep and
    so make a path no route matches), into the named route's pattern.
    """

    def __init__(self, router: web.UrlDispatcher) -> None:
        self._router = router

    def _with_id(self, name: str, offender_id: str) -> str:
        return self._router[name].canonical.format(offender_id=quote(offender_id, safe=""))

    def record(self, offender_id: str) -> str:
        return self._with_id("record", offender_id)

    def delete_watch(self, offender_id: str) -> str:
        return self._with_id("delete_watch", offender_id)

    def address(self, address_id: int) -> str:
        return str(self._router["address"].url_for(address_id=str(address_id)))

    def map(self, tracked_id: int | None = None, offender_id: str | None = None) -> str:
        q: dict[str, Any] = {}
        if tracked_id is not None:
            q["tracked"] = tracked_id
        if offender_id is not None:
            q["offender"] = offender_id
        return f"{self._router['map'].url_for()}?{urlencode(q)}"

    def why(self, offender_id: str) -> str:
        return f"{self._router['why'].url_for()}?{urlencode({'offender': offender_id})}"

    def of(self, name: str) -> str:
        return str(self._router[name].url_for())


def paths_of(request: web.Request) -> Paths:
    return Paths(request.app.router)


def absolute(request: web.Request, name: str, **parts: str) -> str:
    """The absolute link to a named route an e-mail carries ("confirm", token=...)."""
    return site_link(request.app, name, **parts)


def site_link(app: web.Application, name: str, **parts: str) -> str:
    """`absolute` for mail composed away from any request (the site's background work)."""
    return links.site_url(app[RUNTIME].settings.public_url, str(app.router[name].url_for(**parts)))
