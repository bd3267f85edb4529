"""The public statistics: registrants by county, tier and compliance status, as a page and a CSV."""

from __future__ import annotations

from aiohttp import web

from streams.adapters.registrant_statistics import Statistics
from streams.web.keys import STATISTICS, db, runtime_of
from streams.web.responses import render
from streams.web.statistics_page import page_context, statistics_csv


async def _statistics(request: web.Request) -> Statistics:
    stats: Statistics = await db(request, request.app[STATISTICS].get)
    return stats


async def statistics_page(request: web.Request) -> web.Response:
    stats = await _statistics(request)
    return render(request, "web/statistics.html.j2", page_context(stats, runtime_of(request).settings.zone))


async def statistics_download(request: web.Request) -> web.Response:
    stats = await _statistics(request)
    day = f"-{stats.as_of.astimezone(runtime_of(request).settings.zone):%Y-%m-%d}" if stats.as_of else ""
    return web.Response(
        text=statistics_csv(stats),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="missouri-registrants-by-county{day}.csv"'},
    )
