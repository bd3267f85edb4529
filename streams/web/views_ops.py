"""Operations endpoints of the site: /metrics, /healthz, /readyz (counted by middlewares.metrics_middleware)."""

from __future__ import annotations

from aiohttp import web

from streams.adapters import metrics
from streams.web.keys import runtime_of


async def metrics_page(request: web.Request) -> web.Response:
    return web.Response(body=metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"alive": True})


async def readyz(request: web.Request) -> web.Response:
    ok, body = await metrics.readiness({"database": metrics.database_answers(runtime_of(request).engine)})
    return web.json_response(body, status=200 if ok else 503)
