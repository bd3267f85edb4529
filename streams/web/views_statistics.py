"""The public statistics: registrants by county, tier and compliance status, as a page and a CSV."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup

from streams.adapters.registrant_statistics import Statistics
from streams.web.keys import STATISTICS, db, runtime_of
from streams.web.responses import render
from streams.web.statistics_page import page_context, statistics_csv


@dataclass(frozen=True)
class _Rendered:
    stats: Statistics
    zone: ZoneInfo
    body: Markup
    csv: str


# The content and the CSV of the counts held: alike for every visitor, so made once per count
# (a 60 kB table and map take ~15 ms to render; the page around them, with its session, is cheap).
_rendered: list[_Rendered] = []


def _of(request: web.Request, stats: Statistics) -> _Rendered:
    zone = runtime_of(request).settings.zone
    if _rendered and _rendered[0].stats is stats and _rendered[0].zone == zone:
        return _rendered[0]
    template = aiohttp_jinja2.get_env(request.app).get_template("web/_statistics_body.html.j2")
    made = _Rendered(stats, zone, Markup(template.render(page_context(stats, zone))), statistics_csv(stats))
    _rendered[:] = [made]
    return made


async def _statistics(request: web.Request) -> _Rendered:
    stats: Statistics = await db(request, request.app[STATISTICS].get)
    return _of(request, stats)


async def statistics_page(request: web.Request) -> web.Response:
    return render(request, "web/statistics.html.j2", {"body": (await _statistics(request)).body})


async def statistics_download(request: web.Request) -> web.Response:
    rendered = await _statistics(request)
    as_of = rendered.stats.as_of
    day = f"-{as_of.astimezone(rendered.zone):%Y-%m-%d}" if as_of else ""
    return web.Response(
        text=rendered.csv,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="missouri-registrants-by-county{day}.csv"'},
    )
