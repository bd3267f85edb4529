"""The public statistics page and its CSV: who is counted where, and the counts kept per registry update."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.adapters import repository
from streams.adapters.registrant_statistics import StatisticsCache, count_registrants
from streams.adapters.repository import AppliedEvent
from streams.domain.model import Address, OffenderProfile, OffenderState, Offense, SeenEvent
from streams.web.keys import STATISTICS
from tests.web.conftest import Site, open_site
from tests.web.test_sessions import MovedClock

COMPLIANCE = ("compliant", "noncompliant", "absconded", "incarcerated")
ELSEWHERE = "elsewhere"


@dataclass(frozen=True)
class Registrant:
    """One record put in the registry, with the row a person would expect it in (worked out by
    hand from the address, not by the code under test); None: not counted at all."""

    state: OffenderState
    expected: str | None  # a county FIPS, ELSEWHERE, or None


def home(
    county: str | None,
    at: tuple[float, float] | None = None,
    state: str = "MO",
    kind: str = "home",
) -> Address:
    lat, lon = at if at else (None, None)
    return Address(kind, "1 Main St", "Somewhere", state, "65000", county=county, lat=lat, lon=lon)


def registrant(
    oid: str,
    expected: str | None,
    *addresses: Address,
    tier: int = 2,
    compliance: str = "compliant",
    juvenile: bool = False,
    removed: bool = False,
    revision: int = 1,
) -> Registrant:
    p = OffenderProfile(
        last_name=f"Last{oid}",
        first_name="First",
        date_of_birth="1970-01-01",
        tier=tier,
        compliance=compliance,
        juvenile=juvenile,
        offenses=(Offense("Offense", "566.030"),),
    )
    state = OffenderState(oid, revision, removed, p, addresses, (SeenEvent(f"{oid}-e{revision}", None),))
    return Registrant(state, expected)


COLUMBIA = (38.9517, -92.3341)  # Boone County
SPRINGFIELD = (37.2090, -93.2923)  # Greene County
JEFFERSON_CITY = (38.5767, -92.1735)  # Cole County
DOWNTOWN_STL = (38.6270, -90.1994)  # St. Louis City
CLAYTON = (38.6426, -90.3237)  # St. Louis County
KANSAS_CITY_KS = (39.1141, -94.6859)  # Wyandotte County, Kansas

REGISTRY = [
    registrant("A", "29019", home("Boone"), tier=1),
    registrant("B", "29019", home("BOONE COUNTY", COLUMBIA), compliance="noncompliant"),
    registrant("C", "29510", home("St. Louis City", DOWNTOWN_STL), tier=3),
    registrant("D", "29189", home("Saint Louis", CLAYTON), tier=3, compliance="absconded"),
    # The registry's county and the point disagree: the registry's county counts.
    registrant("E", "29189", home("St. Louis County", COLUMBIA), tier=1, compliance="incarcerated"),
    # No county from the registry: the point says Greene; an unknown name: the point says Cole.
    registrant("F", "29077", home(None, SPRINGFIELD)),
    registrant("G", "29051", home("Atlantis", JEFFERSON_CITY), tier=3, compliance="noncompliant"),
    registrant("H", "29077", home("Greene County"), tier=1, compliance="absconded"),
    # Not a Missouri county: another state, no home address, a point across the state line, nothing.
    registrant("I", ELSEWHERE, home("Wyandotte", KANSAS_CITY_KS, state="KS"), tier=3),
    registrant("J", ELSEWHERE, home("Boone", COLUMBIA, kind="work")),
    registrant("K", ELSEWHERE),
    registrant("L", ELSEWHERE, home(None, KANSAS_CITY_KS), compliance="incarcerated"),
    registrant("M", ELSEWHERE, home(None)),
    # The first home address listed counts.
    registrant("N", "29051", home("Boone", kind="work"), home("Cole"), home("Boone")),
    # Never counted: a juvenile adjudication, a removed record.
    registrant("Y", None, home("Boone", COLUMBIA), juvenile=True, tier=1),
    registrant("Z", None, home("Boone", COLUMBIA), removed=True),
]


def oracle(registry: list[Registrant]) -> dict[str, Counter[str]]:
    """Row -> Counter of "total", "tier N" and each compliance status."""
    rows: dict[str, Counter[str]] = {}
    for r in registry:
        if r.expected is None:
            continue
        p = r.state.profile
        assert p is not None
        for row in (r.expected, "total"):
            rows.setdefault(row, Counter()).update(["total", f"tier {p.tier}", p.compliance])
    return rows


def numbers(c: Counter[str]) -> list[int]:
    return [c["total"], c["tier 1"], c["tier 2"], c["tier 3"], *(c[s] for s in COMPLIANCE)]


def seed(engine: Any, registry: list[Registrant], event: str | None = None) -> None:
    """Store these records, as applied registry events when `event` names them (one id each)."""
    applied = [
        AppliedEvent(f"{event}-{r.state.offender_id}", r.state.offender_id, r.state.revision, "0" * 64)
        for r in registry
        if event
    ]
    assert repository.save_offender_states(engine, [r.state for r in registry], applied) == len(registry)


ROW = re.compile(r'<tr id="county-([^"]+)">(.*?)</tr>', re.S)
CELL = re.compile(r"<t[hd][^>]*>(.*?)</t[hd]>", re.S)


def table_rows(page: str) -> dict[str, list[str]]:
    """The county table as a reader sees it: row id -> cell texts."""
    return {
        rid: [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in CELL.findall(body)]
        for rid, body in ROW.findall(page)
    }


def counts_in(cells: list[str]) -> list[int]:
    return [int(c.replace(",", "")) for c in cells[2:]]


async def test_the_page_counts_public_registrants_by_county_tier_and_status(site, engine) -> None:
    seed(engine, REGISTRY)
    want = oracle(REGISTRY)
    status, page = await site.get("/statistics")
    assert status == 200
    rows = table_rows(page)
    assert len(rows) == 115 + 2  # every county, the rest, the total
    for fips, cells in rows.items():
        key = {"elsewhere": ELSEWHERE, "total": "total"}.get(fips, fips)
        assert counts_in(cells) == numbers(want.get(key, Counter())), (fips, cells)
    assert rows["29510"][:2] == ["St. Louis City", "29510"]
    assert rows["29189"][:2] == ["St. Louis County", "29189"]
    assert rows["elsewhere"][0] == "Outside Missouri, no home address, or county not known"
    assert counts_in(rows["total"])[0] == 14  # 16 records, less the juvenile and the removed one
    # Nothing of the hidden records, nor any name, is on the page.
    assert "LastY" not in page and "LastZ" not in page and "LastA" not in page
    # The statewide tier x status table adds up to the same total.
    assert "Public registrants by tier and compliance status" in page
    assert (
        "14 people are on the public registry; 9 of them have a registered home address in a Missouri county."
        in html.unescape(page)
    )


async def test_the_map_draws_every_county_with_its_count_and_a_text_alternative(site, engine) -> None:
    seed(engine, REGISTRY)
    want = oracle(REGISTRY)
    _, page = await site.get("/statistics")
    [svg] = re.findall(r'<svg class="choropleth".*?</svg>', page, re.S)
    assert 'role="img"' in svg and 'aria-label="Map of Missouri' in svg
    paths = re.findall(r'<path d="([^"]+)" fill="([^"]+)" data-fips="(\d{5})"><title>([^<]+)</title>', svg)
    assert len(paths) == 115 and len({f for _, _, f, _ in paths}) == 115
    fills = {f: fill for _, fill, f, _ in paths}
    titles = {f: html.unescape(t) for _, _, f, t in paths}
    assert titles["29019"] == "Boone County: 2 registrants"
    assert titles["29510"] == "St. Louis City: 1 registrant"
    assert titles["29001"] == "Adair County: 0 registrants"
    # None: hatched, not a shade; the busiest counties darker than the others.
    assert fills["29001"] == "url(#stat-none)" and 'id="stat-none"' in svg
    assert {fills[f] for f in want if f.startswith("29")} <= {
        "#ffffcc",
        "#a1dab4",
        "#41b6c4",
        "#2c7fb8",
        "#253494",
    }
    assert fills["29019"] != fills["29510"]
    # Each county's number is also in the table beside the map, reachable by keyboard.
    assert re.search(
        r'<div class="table-scroll" role="region" aria-labelledby="county-caption" tabindex="0">', page
    )
    assert '<caption id="county-caption">' in page and '<th scope="col">County</th>' in page
    assert '<th scope="row">Boone County</th>' in page
    # And the page is linked from every page's navigation.
    _, home_page = await site.get("/")
    assert 'href="/statistics"' in home_page


async def test_the_csv_holds_the_page_s_numbers_one_row_per_county(site, engine) -> None:
    seed(engine, REGISTRY, event="load")
    _, page = await site.get("/statistics")
    resp = await site.client.get("/statistics.csv")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and re.search(r'filename="[\w-]+\.csv"', disposition)
    body = await resp.text()
    assert "\r\n" in body
    table = list(csv.reader(io.StringIO(body)))
    header, *rows = table
    assert header == [
        "FIPS",
        "County",
        "Total",
        "Tier 1",
        "Tier 2",
        "Tier 3",
        "Compliant",
        "Not compliant",
        "Absconded",
        "Incarcerated",
    ]
    assert len(rows) == 115 + 2
    counties = [r for r in rows if r[0]]
    assert len(counties) == 115 and len({r[0] for r in counties}) == 115
    *_, elsewhere, total = rows
    assert total[:2] == ["", "Total"] and elsewhere[1].startswith("Outside Missouri")
    sums = [sum(int(r[i]) for r in rows[:-1]) for i in range(2, 10)]
    assert sums == [int(v) for v in total[2:]]
    page_rows = table_rows(page)
    assert [int(v) for v in total[2:]] == counts_in(page_rows["total"])
    for r in counties:
        assert [int(v) for v in r[2:]] == counts_in(page_rows[r[0]]), r
    assert next(r[:2] for r in counties if r[0] == "29510") == ["29510", "St. Louis City"]


async def recounted(site: Site) -> None:
    """Once the recount under way, if any, is done."""
    assert await asyncio.to_thread(site.client.server.app[STATISTICS].settled, 30)


@pytest.fixture
def clock() -> MovedClock:
    return MovedClock()


@pytest.fixture
async def timed_site(engine, smtp_server, tmp_path: Path, clock: MovedClock) -> AsyncIterator[Site]:
    catcher, port = smtp_server
    async with open_site(engine, port, catcher, tmp_path, clock=clock) as opened:
        yield opened


async def test_the_counts_are_kept_until_the_registry_changes(timed_site, engine, clock) -> None:
    site = timed_site
    first = REGISTRY[:4]
    seed(engine, first, event="day-1")
    _, page = await site.get("/statistics")
    as_of_1 = re.search(r"Registry as of ([^<]+)\.", page)
    assert as_of_1 and counts_in(table_rows(page)["total"])[0] == 4
    # Written without a registry event ("registry as of" stands still): the page is the one counted.
    quiet = registrant("Q1", "29019", home("Boone"))
    seed(engine, [quiet])
    _, page = await site.get("/statistics")
    assert counts_in(table_rows(page)["total"])[0] == 4
    # A registry event applied: counted anew, with the new "as of", once a minute has passed
    # since the last count (a busy registry day is not recounted at every event).
    moved = registrant("A", "29051", home("Cole"), tier=1, revision=2)
    seed(engine, [moved, registrant("Q2", "29019", home("Boone"))], event="day-2")
    clock.move(seconds=59)
    _, page = await site.get("/statistics")
    assert counts_in(table_rows(page)["total"])[0] == 4
    clock.move(seconds=2)
    # The request that finds them stale starts a recount and, like every other, is answered
    # at once from the counts held, with their own "as of".
    _, page = await site.get("/statistics")
    assert counts_in(table_rows(page)["total"])[0] == 4
    assert re.search(r"Registry as of ([^<]+)\.", page).group(1) == as_of_1.group(1)  # type: ignore[union-attr]
    await recounted(site)
    _, page = await site.get("/statistics")
    assert re.search(r"Registry as of ([^<]+)\.", page)
    rows = table_rows(page)
    want = oracle([moved, *first[1:], quiet, registrant("Q2", "29019", home("Boone"))])
    assert counts_in(rows["total"]) == numbers(want["total"])
    assert counts_in(rows["29051"]) == numbers(want["29051"]) and counts_in(rows["29051"])[0] == 1
    assert counts_in(rows["29019"])[0] == 3  # B, Q1, Q2


async def test_before_any_registry_event_the_page_says_so_and_counts_every_time(site, engine) -> None:
    status, page = await site.get("/statistics")
    assert status == 200 and "no registry update has been received yet" in page
    assert counts_in(table_rows(page)["total"])[0] == 0
    seed(engine, REGISTRY[:2])
    _, page = await site.get("/statistics")
    assert counts_in(table_rows(page)["total"])[0] == 2


def test_a_slow_recount_holds_no_request_up(engine) -> None:
    """A recount takes seconds at a registry's size: while it runs, every request (the one that
    started it too) gets the counts held at once, and only one recount runs."""
    seed(engine, REGISTRY[:4], event="day-1")
    gate = threading.Event()
    counts: list[int] = []

    def count(bind: Any) -> Any:
        counts.append(1)
        if len(counts) > 1:
            assert gate.wait(30)  # the recount, held until the test has asked its questions
        return count_registrants(bind)

    clock = MovedClock()
    cache = StatisticsCache(clock, count=count)
    first = cache.get(engine)  # nothing held yet: this one counts, and waits for it
    assert first.counts.total.total == 4
    seed(engine, [registrant("N", "29019", home("Boone"))], event="day-2")
    clock.move(seconds=61)
    assert cache.get(engine) is first  # stale: a recount starts, the answer is the held counts
    assert not cache.settled(0)
    assert cache.get(engine) is first and cache.get(engine) is first
    gate.set()
    assert cache.settled(30)
    fresh = cache.get(engine)
    assert len(counts) == 2 and fresh.counts.total.total == 5
    assert fresh.as_of is not None and first.as_of is not None and fresh.as_of > first.as_of
