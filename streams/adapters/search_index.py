"""The public search in this process's memory: every public record's search keys, kept fresh from the database."""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from streams.adapters import db_calls
from streams.adapters.offender_search import (
    AddressKeys,
    address_keys,
    name_keys,
    norm,
    norm_county,
    public_records,
    search_versions,
    search_window,
    sort_key,
)
from streams.domain.addresses import zip5
from streams.domain.model import OffenderState, digest_online_identifier

logger = structlog.get_logger()

# A writer stamps its rows before it commits: a row stamped earlier than the newest one seen
# may still turn up. Asking again for this long before the newest stamp catches it.
LATE_COMMIT = timedelta(seconds=60)


@dataclass(frozen=True)
class Record:
    """One public record as the search finds and lists it."""

    offender_id: str
    key: tuple[str, str, str]  # the listing order
    names: tuple[tuple[str, str], ...]  # (last, first) of the name and each alias
    addresses: tuple[AddressKeys, ...]  # in the record's order
    digests: frozenset[str]  # online identifiers, hashed: matched whole, never shown
    view: Any  # what the site shows of it, made once when the record is loaded

    @property
    def all_positions(self) -> tuple[int, ...]:
        return tuple(range(len(self.addresses)))


@dataclass(frozen=True)
class Hit:
    record: Record
    addresses: tuple[int, ...]  # positions of the addresses matching the address fields, else all


@dataclass(frozen=True)
class Found:
    hits: list[Hit]
    more: bool  # there were more than `limit` matches


class _Field:
    """One search field: each distinct value with the ranks of the records holding it (ascending),
    so the records under a prefix come out in listing order by merging a few runs."""

    def __init__(self, pairs: Iterable[tuple[str, int]]) -> None:
        runs: dict[str, set[int]] = {}
        for value, rank in pairs:
            runs.setdefault(value, set()).add(rank)
        self.values = sorted(runs)
        self.ranks = [sorted(runs[v]) for v in self.values]
        self.before = list(itertools.accumulate((len(r) for r in self.ranks), initial=0))
        self._joined: str | None = None  # for `containing`, made on its first use
        self._starts: list[int] = []

    def prefixed(self, prefix: str) -> tuple[int, Iterator[int]]:
        """How many (at most) and, in rank order, the records with a value starting so."""
        lo = bisect.bisect_left(self.values, prefix)
        hi = bisect.bisect_left(self.values, prefix + "\uffff")
        return self.before[hi] - self.before[lo], _merged(self.ranks[lo:hi])

    def exactly(self, value: str) -> tuple[int, Iterator[int]]:
        i = bisect.bisect_left(self.values, value)
        if i < len(self.values) and self.values[i] == value:
            return len(self.ranks[i]), iter(self.ranks[i])
        return 0, iter(())

    def containing(self, text: str) -> tuple[int, list[int]]:
        """At most how many records, and which values (by index), have `text` inside: one scan
        of all the values in C (they are joined once, on the first use)."""
        if self._joined is None:
            self._joined = "\n".join(self.values)  # "\n" is in no normal form: no match spans two
            self._starts = list(itertools.accumulate((len(v) + 1 for v in self.values), initial=0))
        joined, starts, found = self._joined, self._starts, []
        at = joined.find(text)
        while at >= 0:
            i = bisect.bisect_right(starts, at) - 1
            found.append(i)
            at = joined.find(text, starts[i + 1])  # on from the next value
        return sum(len(self.ranks[i]) for i in found), found


def _merged(runs: list[list[int]]) -> Iterator[int]:
    if len(runs) == 1:
        return iter(runs[0])
    return (rank for rank, _ in itertools.groupby(heapq.merge(*runs)))  # each record once


class _Tables:
    """Records in listing order and, per search field, the ranks holding each value. Built whole
    from the records, never changed: a reload builds another and swaps it in."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.records = sorted(records, key=lambda r: r.key)
        ranked = list(enumerate(self.records))
        self.last = _Field((ln, rank) for rank, r in ranked for ln, _ in r.names)
        self.first = _Field((fn, rank) for rank, r in ranked for _, fn in r.names)
        self.city = _Field((a.city, rank) for rank, r in ranked for a in r.addresses)
        self.county = _Field((a.county, rank) for rank, r in ranked for a in r.addresses)
        self.zip = _Field((a.zip, rank) for rank, r in ranked for a in r.addresses)
        # Each word of the street texts (as registered and in USPS form): few enough to scan.
        self.street_words = _Field(
            (w, rank) for rank, r in ranked for a in r.addresses for w in a.street.replace("|", " ").split()
        )
        self.digest = _Field((d, rank) for rank, r in ranked for d in r.digests)


def _address_matches(a: AddressKeys, type_: str, street: str, city: str, county: str, zip_: str) -> bool:
    return (
        (not type_ or a.type == type_)
        and (not street or street in a.street)
        and (not city or a.city.startswith(city))
        and (not county or a.county.startswith(county))
        and (not zip_ or a.zip == zip_)
    )


class SearchIndex:
    """The public records of the search, held whole in this process.

    Each process of the site holds its own. At most every `every_s` seconds a request asks the
    database which records' search rows were written since (offender_search.updated_at,
    indexed) and reloads those: a new registrant is found, a removed or juvenile one is gone,
    that soon after the registry agent stored it. `view(state)` is what the site keeps of a
    record to show it (rendered once here, not on every request).
    """

    def __init__(
        self,
        view: Callable[[OffenderState], Any] = lambda state: None,
        *,
        every_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._view = view
        self.every_s = every_s
        self._clock = clock
        self._tables: _Tables | None = None
        self._records: dict[str, Record] = {}
        self._versions: dict[str, datetime] = {}  # every record's, public or not
        self._newest: datetime | None = None
        self._probe: tuple[Any, ...] | None = None  # since, how many after it, newest
        self._checked_at: float | None = None
        self._checking: asyncio.Future[int] | None = None

    # --- keeping fresh ----------------------------------------------------------------------

    def _record(self, state: OffenderState) -> Record:
        p = state.profile
        assert p is not None
        return Record(
            state.offender_id,
            sort_key(state),
            name_keys(state),
            tuple(address_keys(a) for a in state.addresses),
            frozenset(p.online_identifier_digests),
            self._view(state),
        )

    def load(self, engine: Engine) -> None:
        """Everything, from the database (blocking: run it off the loop)."""
        versions = search_versions(engine)
        records = {s.offender_id: self._record(s) for _, s in public_records(engine)}
        self._swap(records, versions)
        logger.info("search index loaded", records=len(records))

    def refresh(self, engine: Engine) -> int:
        """Reload the records written since the last look (blocking); returns how many."""
        if self._tables is None:
            self.load(engine)
            return len(self._records)
        since = self._newest - LATE_COMMIT if self._newest is not None else None
        probe = (since, *search_window(engine, since))
        if probe == self._probe:
            return 0  # nothing written since the last look
        self._probe = probe
        seen = search_versions(engine, since)
        changed = sorted(oid for oid, t in seen.items() if self._versions.get(oid) != t)
        if not changed:
            return 0
        records = dict(self._records)
        for oid in changed:
            records.pop(oid, None)
        records.update((s.offender_id, self._record(s)) for _, s in public_records(engine, changed))
        self._swap(records, self._versions | seen)
        return len(changed)

    def _swap(self, records: dict[str, Record], versions: dict[str, datetime]) -> None:
        tables = _Tables(records.values())
        self._records, self._versions, self._tables = records, versions, tables
        self._newest = max(versions.values(), default=None)

    async def fresh(self, engine: Engine) -> None:
        """Look for changes if the last look is `every_s` old. The request that looks waits for
        it; others meanwhile use what is held (the first ever request waits too). A database
        that does not answer then leaves what is held in use (logged); with nothing held yet,
        the error is the request's."""
        now = self._clock()
        if self._checking is not None:
            if self._tables is None:
                await asyncio.shield(self._checking)
            return
        if self._checked_at is not None and now - self._checked_at < self.every_s:
            return
        self._checked_at = now
        self._checking = asyncio.ensure_future(db_calls.call(engine, self.refresh))
        try:
            await asyncio.shield(self._checking)
        except (OperationalError, InterfaceError) as exc:
            if self._tables is None:
                raise
            logger.warning("search index not refreshed", error=type(exc).__name__, records=len(self._records))
        finally:
            self._checking = None

    # --- searching --------------------------------------------------------------------------

    def search(
        self,
        last_name: str = "",
        first_name: str = "",
        address_type: str = "",
        street: str = "",
        city: str = "",
        county: str = "",
        zip: str = "",  # noqa: A002 - the form's field name
        online_identifier: str = "",
        limit: int = 50,
    ) -> Found:
        """Public records matching every field given, in listing order.

        Names match by prefix against the name and every alias (last and first name on the same
        one); address fields all on one address (street: part of it; city and county: the
        start; ZIP: all five digits); the online identifier only as a whole, by its digest.
        """
        tables = self._tables
        last, first = norm(last_name), norm(first_name)
        s, c, co = norm(street), norm(city), norm_county(county)
        z = zip5(zip) if zip.strip() else ""
        ident = digest_online_identifier(online_identifier) if online_identifier.strip() else ""
        if tables is None or not (last or first or s or c or co or zip.strip() or ident):
            return Found([], False)  # an address type alone would list everyone
        if zip.strip() and not z:
            return Found([], False)  # a partial ZIP matches nothing rather than a whole region
        # The narrowest field gives the candidates, in listing order; each is checked against
        # every field, so the first `limit` that pass are the page.
        sources: list[tuple[int, Iterator[int]]] = []
        if ident:
            sources.append(tables.digest.exactly(ident))
        if z:
            sources.append(tables.zip.exactly(z))
        if last:
            sources.append(tables.last.prefixed(last))
        if c:
            sources.append(tables.city.prefixed(c))
        if co:
            sources.append(tables.county.prefixed(co))
        if first and not last:
            sources.append(tables.first.prefixed(first))
        streets: set[int] | None = None
        if s:
            # The records with a street word holding the query's longest word: more than the
            # street matches (each is checked below), and all of them.
            bound, words = tables.street_words.containing(max(s.split(), key=len))
            if not sources or bound < min(n for n, _ in sources):
                streets = set().union(*(tables.street_words.ranks[i] for i in words))
                if not sources:
                    sources.append((len(streets), iter(sorted(streets))))
        _, candidates = min(sources, key=lambda src: src[0])
        by_address = bool(address_type or s or c or co or z)
        hits: list[Hit] = []
        for rank in candidates:
            if streets is not None and rank not in streets:
                continue  # no street word of it holds the query's
            r = tables.records[rank]
            if ident and ident not in r.digests:
                continue
            if (last or first) and not any(
                ln.startswith(last) and fn.startswith(first) for ln, fn in r.names
            ):
                continue
            if by_address:
                matching = tuple(
                    i for i, a in enumerate(r.addresses) if _address_matches(a, address_type, s, c, co, z)
                )
                if not matching:
                    continue
            else:
                matching = tuple(range(len(r.addresses)))
            if len(hits) == limit:
                return Found(hits, True)
            hits.append(Hit(r, matching))
        return Found(hits, False)

    def __len__(self) -> int:
        return len(self._records)
