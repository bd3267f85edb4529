"""(filled in by the account flows)."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
