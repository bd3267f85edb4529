"""What the statistics page and its CSV show: the counts as tables, a county map and CSV rows."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from streams.adapters.registrant_statistics import Statistics, is_independent_city, missouri_counties
from streams.domain import choropleth
from streams.domain.map_projection import fit
from streams.domain.registrant_counts import COMPLIANCE, TIERS, Counts, CountyCounts
from streams.web.display import when_text

COMPLIANCE_TEXT = {
    "compliant": "Compliant",
    "noncompliant": "Not compliant",
    "absconded": "Absconded",
    "incarcerated": "Incarcerated",
}
ELSEWHERE = "Outside Missouri, no home address, or county not known"
MAP_WIDTH = 640
# ColorBrewer YlGnBu, 5 classes: sequential and safe for every common colour-vision deficiency.
PALETTE = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")
NONE_FILL = "url(#stat-none)"  # white, hatched: the map's "none", never a shade of the scale
# Spreadsheets run a cell that starts with one of these as a formula (OWASP, CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def county_label(fips: str, name: str) -> str:
    """ "Boone County", "St. Louis City": the bare name would not tell St. Louis's two apart."""
    return f"{name} City" if is_independent_city(fips) else f"{name} County"


@dataclass(frozen=True)
class Drawn:
    picture_width: float
    picture_height: float
    paths: dict[str, str]  # county FIPS -> SVG path data


@cache
def missouri_map() -> Drawn:
    """The counties' outlines in SVG units: the layer does not change while the site runs."""
    counties = missouri_counties()
    picture = fit([o for c in counties for o in c.outlines], MAP_WIDTH)
    return Drawn(
        round(picture.width, 1), round(picture.height, 1), {c.id: picture.path(c.outlines) for c in counties}
    )


def number(n: int) -> str:
    return f"{n:,}"


def _numbers(c: Counts) -> dict[str, Any]:
    """The counts as the page prints them ("1,234")."""
    return {
        "total": number(c.total),
        "tiers": [number(x) for x in c.tiers],
        "compliance": [number(x) for x in c.compliance],
    }


def registrants_text(n: int) -> str:
    return f"{n:,} registrant" + ("" if n == 1 else "s")


def page_context(stats: Statistics, zone: ZoneInfo) -> dict[str, Any]:
    counts = stats.counts
    classed = choropleth.bins([c.counts.total for c in counts.counties])
    drawn = missouri_map()
    rows = []
    shapes = []
    for c in counts.counties:
        label = county_label(c.fips, c.name)
        shade = choropleth.shade_of(c.counts.total, classed)
        rows.append({"fips": c.fips, "label": label, **_numbers(c.counts)})
        shapes.append(
            {
                "fips": c.fips,
                "d": drawn.paths[c.fips],
                "fill": PALETTE[shade - 1] if shade else NONE_FILL,
                "title": f"{label}: {registrants_text(c.counts.total)}",
            }
        )
    total = counts.total
    return {
        "as_of": when_text(stats.as_of.astimezone(zone)) if stats.as_of else None,
        "tiers": TIERS,
        "compliance": [COMPLIANCE_TEXT[s] for s in COMPLIANCE],
        "total": _numbers(total),
        "cross": [
            {
                "tier": t,
                "cells": [number(x) for x in total.by_tier_compliance[i]],
                "total": number(total.tiers[i]),
            }
            for i, t in enumerate(TIERS)
        ],
        "rows": rows,
        "elsewhere": {"label": ELSEWHERE, **_numbers(counts.elsewhere)},
        "map": {"width": drawn.picture_width, "height": drawn.picture_height, "shapes": shapes},
        "legend": [{"label": b.label, "fill": PALETTE[b.shade - 1]} for b in classed],
        "palette_none": NONE_FILL,
        "in_counties": number(total.total - counts.elsewhere.total),
    }


def text_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: a leading apostrophe before a formula's start."""
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_text(rows: list[CountyCounts], elsewhere: Counts, total: Counts) -> str:
    """RFC 4180 (CRLF, quoted as needed): a header, a row per county, the rest, the total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        ["FIPS", "County", "Total", *(f"Tier {t}" for t in TIERS), *(COMPLIANCE_TEXT[s] for s in COMPLIANCE)]
    )

    def row(fips: str, label: str, c: Counts) -> None:
        writer.writerow([text_cell(fips), text_cell(label), c.total, *c.tiers, *c.compliance])

    for c in rows:
        row(c.fips, county_label(c.fips, c.name), c.counts)
    row("", ELSEWHERE, elsewhere)
    row("", "Total", total)
    return out.getvalue()


def statistics_csv(stats: Statistics) -> str:
    c = stats.counts
    return csv_text(list(c.counties), c.elsewhere, c.total)
