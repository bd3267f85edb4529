"""(filled in by the tracking flows)."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
