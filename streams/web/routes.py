"""Every URL of the site, gathered from the view modules."""

from __future__ import annotations

from aiohttp import web

from streams.web import views_account, views_ops, views_pages, views_tracking


def setup(app: web.Application) -> None:
    for module in (views_pages, views_account, views_tracking, views_ops):
        app.add_routes(module.routes)
