"""The public statistics: every public registrant counted once into a Missouri county, cached
per "registry as of" so a page costs one indexed lookup while the registry stands still."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from streams.adapters import basemap, offender_search, registry_freshness
from streams.adapters.sql import Bind
from streams.domain.model import Address, OffenderState
from streams.domain.regions import Region
from streams.domain.registrant_counts import RegistrantCounts, tally

logger = structlog.get_logger()

MISSOURI = "29"
MISSOURI_USPS = "MO"


def _key(text: str) -> str:
    """The registry's county text compared without spaces or a trailing "County"/"Co.":
    "Saint Louis County", "St. Louis Co." and "st louis" agree; so do "De Kalb" and "DeKalb"."""
    words = offender_search.norm_county(text).split()
    if len(words) > 1 and words[-1] == "CO":
        words.pop()
    return "".join(words)


def is_independent_city(fips: str) -> bool:
    """Census FIPS county codes 510 and up are independent cities (St. Louis city is 29510)."""
    return fips[2:] >= "510"


class CountyNames:
    """A state's counties by the names a registry writes. A city that is no county's part is
    named with "City" ("St. Louis City", "City of St. Louis"); its bare name is the county's
    (the registry writes "St. Louis" for St. Louis County)."""

    def __init__(self, counties: tuple[Region, ...]) -> None:
        self._by_key: dict[str, Region] = {}
        for c in counties:
            if is_independent_city(c.id):
                for name in (f"{c.name} City", f"City of {c.name}"):
                    self._by_key[_key(name)] = c
        for c in counties:
            self._by_key.setdefault(_key(c.name), c)

    def find(self, text: str | None) -> Region | None:
        return self._by_key.get(_key(text)) if text and text.strip() else None


def home_address(state: OffenderState) -> Address | None:
    return next((a for a in state.addresses if a.type == "home"), None)


def county_of(
    state: OffenderState, names: CountyNames, locate: Callable[[float, float], Region | None]
) -> str | None:
    """The FIPS of the Missouri county of the registered home address, or None (no home
    address, one outside Missouri, or a county neither the registry nor the map can tell).

    The registry's county wins over the map: the base layer is drawn at 1:10,000,000, so a
    home near a county line can fall on the wrong side of it; the point decides only when the
    registry names no county (or one it does not know).
    """
    home = home_address(state)
    if home is None or home.state.strip().upper() != MISSOURI_USPS:
        return None
    if (named := names.find(home.county)) is not None:
        return named.id
    if home.has_point:
        assert home.lon is not None and home.lat is not None
        found = locate(home.lon, home.lat)
        if found is not None and found.state == MISSOURI:
            return found.id
    return None


def missouri_counties() -> tuple[Region, ...]:
    return tuple(sorted(basemap.counties_of(MISSOURI), key=lambda c: c.id))


def _in_missouri(lon: float, lat: float) -> Region | None:
    return basemap.county_at(lon, lat, state=MISSOURI)


def _registrants(bind: Bind, names: CountyNames) -> Iterator[tuple[str | None, int, str]]:
    for state in offender_search.public_states(bind):
        p = state.profile
        assert p is not None  # public
        yield county_of(state, names, _in_missouri), p.tier, p.compliance


def count_registrants(bind: Bind) -> RegistrantCounts:
    """One pass over the public records."""
    counties = missouri_counties()
    return tally(_registrants(bind, CountyNames(counties)), [(c.id, c.name) for c in counties])


@dataclass(frozen=True)
class Statistics:
    as_of: datetime | None  # registry_freshness.registry_as_of when counted
    counts: RegistrantCounts


class StatisticsCache:
    """The counts of the latest "registry as of", recounted at most once per `min_interval`
    (a recount reads every record, ~6 s at 20,000: on a busy registry day, one per event would
    keep a core busy). A recount runs in a thread of its own: the request that finds the counts
    stale, and every other, is answered from the counts before it (the page says which "as of"
    it shows), so a surge never waits for one. Only with nothing held (the first request, or any
    before the first registry event, as records may still be loaded without one) does a request
    count, and wait for it."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        min_interval: timedelta = timedelta(minutes=1),
        count: Callable[[Bind], RegistrantCounts] = count_registrants,
    ) -> None:
        self._clock = clock
        self._min_interval = min_interval
        self._count = count
        self._held: Statistics | None = None
        self._counted_at: datetime | None = None
        self._counting = threading.Lock()
        self._recount: threading.Thread | None = None

    def get(self, bind: Bind) -> Statistics:
        as_of = registry_freshness.registry_as_of(bind)
        held, counted_at = self._held, self._counted_at
        if held is not None and as_of is not None:
            due = counted_at is None or self._clock() - counted_at >= self._min_interval
            if held.as_of != as_of and due:
                self._start_recount(bind, as_of)
            return held
        with self._counting:
            current = self._held
            if current is not None and as_of is not None and current.as_of == as_of:
                return current  # counted by the request this one waited for
            started = self._clock()
            fresh = Statistics(as_of, self._count(bind))
            if as_of is not None:
                self._held, self._counted_at = fresh, started
            return fresh

    def _start_recount(self, bind: Bind, as_of: datetime) -> None:
        if not self._counting.acquire(blocking=False):
            return  # one under way already
        self._counted_at = self._clock()  # the next one a minute after this one started

        def recount() -> None:
            try:
                self._held = Statistics(as_of, self._count(bind))
            except Exception as exc:  # noqa: BLE001 - the held counts stay; tried again after min_interval
                logger.warning("statistics recount failed", error=type(exc).__name__)
            finally:
                self._counting.release()

        self._recount = threading.Thread(target=recount, name="statistics-recount", daemon=True)
        self._recount.start()

    def settled(self, timeout: float | None = None) -> bool:
        """Wait for a recount under way (blocking); whether none is running now."""
        if (t := self._recount) is not None:
            t.join(timeout)
            return not t.is_alive()
        return True
