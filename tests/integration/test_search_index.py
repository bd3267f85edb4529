"""The in-process search against a plain filter over the records themselves, and how it follows registry changes."""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import replace

import pytest
from sqlalchemy.engine import Engine

from streams.adapters import repository
from streams.adapters.search_index import SearchIndex
from streams.domain.model import (
    Address,
    Alias,
    OffenderProfile,
    OffenderState,
    Offense,
    digest_online_identifier,
)

LAST = [
    "Smith",
    "Smithers",
    "O'Brien",
    "OBrien",
    "St. John",
    "Saint-John",
    "Mc Allister",
    "Lee",
    "Leeds",
    "Ng",
]
FIRST = ["Ann", "Anna", "Bob", "Bobby", "Mary Jo", "Jo", "Sam"]
CITIES = [("St. Louis", "St. Louis City"), ("Saint Charles", "St. Charles County"), ("O'Fallon", "St. Charles"),
          ("Columbia", "Boone County"), ("Fort Leonard Wood", "Pulaski"), ("Mount Vernon", "Lawrence")]  # fmt: skip
STREETS = ["Elm St", "Elmwood Ave", "Main St", "Saint Charles Rock Rd", "Olive Blvd", "Mt. Vernon Rd"]
TYPES = ["home", "work", "school", "temporary"]


def dataset(n: int, seed: int) -> list[OffenderState]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        city, county = rng.choice(CITIES)
        addresses = tuple(
            Address(
                rng.choice(TYPES),
                f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
                city if rng.random() < 0.8 else rng.choice(CITIES)[0],
                "MO",
                rng.choice(["63101", "63101-1234", "65201", "63366", "6330"]),
                county=rng.choice([county, county.removesuffix(" County"), None]),
            )
            for _ in range(rng.randint(0, 3))
        )
        profile = OffenderProfile(
            rng.choice(LAST),
            rng.choice(FIRST),
            "1970-01-01",
            rng.randint(1, 3),
            "compliant",
            juvenile=i % 11 == 5,
            offenses=(Offense("Offense"),),
            aliases=tuple(
                Alias(rng.choice(LAST), rng.choice(FIRST)) for _ in range(rng.choice([0, 0, 1, 2]))
            ),
            online_identifier_digests=(digest_online_identifier(f"handle{i}@example.net"),),
        )
        out.append(OffenderState(f"MO-{i:04d}", 1, i % 13 == 7, profile, addresses))
    return out


Listed = tuple[list[tuple[str, tuple[int, ...]]], bool]  # (record, its matching addresses), and "more"


# --- the oracle: the rules as the page promises them, written out plainly ------------------


def plain(text: str | None) -> str:
    t = (text or "").upper().replace(".", "").replace("'", "")
    words = re.sub(r"[^A-Z0-9]+", " ", t).split()
    swap = {"SAINT": "ST", "SAINTE": "STE", "MOUNT": "MT", "FORT": "FT"}
    return " ".join(swap.get(w, w) for w in words)


def plain_county(text: str | None) -> str:
    t = plain(text)
    return t[:-7] if t.endswith(" COUNTY") else t


def five(z: str) -> str:
    digits = re.sub(r"\D", "", z)
    return digits[:5] if len(digits) >= 5 else ""


def oracle(states: list[OffenderState], q: dict[str, str], limit: int = 50) -> Listed:
    last, first = plain(q.get("last_name")), plain(q.get("first_name"))
    type_, street, city = q.get("address_type", ""), plain(q.get("street")), plain(q.get("city"))
    county, zip_ = plain_county(q.get("county")), q.get("zip", "").strip()
    ident = q.get("online_identifier", "").strip().lower()
    if not (last or first or street or city or county or zip_ or ident):
        return [], False
    rows = []
    for s in states:
        if s.removed or s.profile is None or s.profile.juvenile:
            continue
        p = s.profile
        names = [(p.last_name, p.first_name)] + [(a.last_name, a.first_name) for a in p.aliases]
        if not any(plain(ln).startswith(last) and plain(fn).startswith(first) for ln, fn in names):
            continue
        if ident and digest_online_identifier(ident) not in p.online_identifier_digests:
            continue
        positions = tuple(
            i
            for i, a in enumerate(s.addresses)
            if (not type_ or a.type == type_)
            and (not street or street in plain(a.street))
            and (not city or plain(a.city).startswith(city))
            and (not county or plain_county(a.county).startswith(county))
            and (not zip_ or (five(zip_) != "" and five(a.zip) == five(zip_)))
        )
        if type_ or street or city or county or zip_:
            if not positions:
                continue
        else:
            positions = tuple(range(len(s.addresses)))
        rows.append(((plain(p.last_name), plain(p.first_name), s.offender_id), positions))
    rows.sort()
    return [(key[2], pos) for key, pos in rows[:limit]], len(rows) > limit


def stored(engine: Engine, states: list[OffenderState]) -> None:
    for start in range(0, len(states), 200):
        repository.save_offender_states(engine, states[start : start + 200])


def found(index: SearchIndex, q: dict[str, str], limit: int = 50) -> Listed:
    result = index.search(**q, limit=limit)  # type: ignore[arg-type]
    return [(h.record.offender_id, h.addresses) for h in result.hits], result.more


QUERIES: list[dict[str, str]] = [
    {"last_name": "smith"},
    {"last_name": "Smi", "first_name": "ann"},
    {"last_name": "o'brien"},
    {"last_name": "OBR"},
    {"last_name": "Saint John"},
    {"last_name": "st j"},
    {"last_name": "mc"},
    {"first_name": "Mary Jo"},
    {"first_name": "jo"},
    {"first_name": "Bob", "address_type": "home"},
    {"city": "saint louis"},
    {"city": "St", "address_type": "work"},
    {"city": "ofallon"},
    {"city": "Ft. Leonard"},
    {"county": "St. Charles"},
    {"county": "Boone County"},
    {"county": "st", "city": "st c"},
    {"zip": "63101"},
    {"zip": "63101-9999"},
    {"zip": "6330"},  # partial: nothing
    {"zip": "65201", "address_type": "school"},
    {"street": "elm"},
    {"street": "Saint Charles Rock"},
    {"street": "mount vernon", "city": "Mt Vernon"},
    {"street": "olive", "zip": "63366"},
    {"last_name": "lee", "city": "columbia", "county": "boone"},
    {"address_type": "home"},  # a type alone lists no one
    {"online_identifier": "HANDLE3@example.net"},
    {"online_identifier": "handle3@example"},  # part of one: nothing
    {"online_identifier": "handle5@example.net"},  # a juvenile's: nothing
    {"online_identifier": "handle7@example.net"},  # a removed one's: nothing
    {"online_identifier": "handle12@example.net", "last_name": "zzz"},
]


def test_the_index_finds_what_a_plain_filter_over_the_records_finds(engine: Engine) -> None:
    states = dataset(600, 3)
    stored(engine, states)
    index = SearchIndex()
    index.load(engine)
    assert len(index) == sum(1 for s in states if s.is_public)
    for q in QUERIES:
        assert found(index, q) == oracle(states, q), q
        assert found(index, q, limit=5) == oracle(states, q, limit=5), q
    # Several more pages than one: the first 50 in order, "more" said.
    assert found(index, {"city": "s"})[1] is True


def test_juvenile_and_removed_records_are_never_found(engine: Engine) -> None:
    states = dataset(300, 4)
    stored(engine, states)
    index = SearchIndex()
    index.load(engine)
    hidden = {s.offender_id for s in states if not s.is_public}
    assert hidden
    for q in [{"last_name": x} for x in LAST] + [{"city": c} for c, _ in CITIES] + [{"zip": "63101"}]:
        assert not hidden & {h.record.offender_id for h in index.search(**q, limit=10_000).hits}, q
    for oid in sorted(hidden):
        n = int(oid.split("-")[1])
        assert index.search(online_identifier=f"handle{n}@example.net").hits == []


def test_a_registry_change_is_found_once_the_index_looks_again(engine: Engine) -> None:
    states = dataset(50, 5)
    stored(engine, states)
    now = [0.0]
    index = SearchIndex(every_s=5.0, clock=lambda: now[0])

    async def search(**q: str) -> set[str]:
        await index.fresh(engine)
        return {h.record.offender_id for h in index.search(**q).hits}

    async def scenario() -> None:
        assert "MO-0000" in await search(last_name=states[0].profile.last_name)  # type: ignore[union-attr]
        newcomer = OffenderState(
            "MO-NEW",
            1,
            False,
            OffenderProfile(
                "Quillfeather", "Zed", "1980-01-01", 2, "compliant", False, (Offense("Offense"),)
            ),
            (Address("home", "1 Elm St", "Columbia", "MO", "65201", county="Boone"),),
        )
        repository.save_offender_state(engine, newcomer)
        repository.save_offender_state(engine, replace(states[0], revision=2, removed=True))
        now[0] += 4.0  # not yet looked again: what was held
        assert await search(last_name="quill") == set()
        now[0] += 1.0
        assert await search(last_name="quill") == {"MO-NEW"}
        assert "MO-0000" not in await search(last_name=states[0].profile.last_name)  # type: ignore[union-attr]
        assert "MO-0000" not in await search(zip="63101") | await search(city="s")
        # A record made juvenile later, and one made public again, follow too.
        repository.save_offender_state(
            engine, replace(newcomer, revision=2, profile=replace(newcomer.profile, juvenile=True))
        )
        repository.save_offender_state(engine, replace(states[0], revision=3))
        now[0] += 5.0
        assert await search(last_name="quill") == set()
        assert "MO-0000" in await search(last_name=states[0].profile.last_name)  # type: ignore[union-attr]

    asyncio.run(scenario())


@pytest.mark.parametrize("late_by_s", [1, 30])
def test_a_change_committed_after_a_newer_one_is_not_missed(engine: Engine, late_by_s: int) -> None:
    """Writers stamp rows before they commit: one stamped earlier may land after a later one."""
    from datetime import timedelta

    from sqlalchemy import func, select, update

    from streams.adapters.offender_search import offender_search
    from streams.adapters.sql import stored_utc

    states = dataset(20, 6)
    stored(engine, states)
    index = SearchIndex(every_s=0.0)
    index.load(engine)
    assert index.refresh(engine) == 0  # looked once more: nothing new
    with engine.connect() as conn:
        newest = stored_utc(conn.execute(select(func.max(offender_search.c.updated_at))).scalar_one())
    late = OffenderState(
        "MO-LATE",
        1,
        False,
        OffenderProfile("Latecomer", "Lou", "1980-01-01", 1, "compliant", False, (Offense("Offense"),)),
        (),
    )
    repository.save_offender_state(engine, late)
    with engine.begin() as conn:  # as if stamped before the newest row the index has seen
        conn.execute(
            update(offender_search)
            .where(offender_search.c.offender_id == "MO-LATE")
            .values(updated_at=newest - timedelta(seconds=late_by_s))
        )
    index.refresh(engine)
    assert [h.record.offender_id for h in index.search(last_name="Latecomer").hits] == ["MO-LATE"]


def test_a_database_that_stops_answering_leaves_the_held_records_searchable(engine: Engine) -> None:
    from streams.adapters.db import make_engine

    stored(engine, dataset(30, 7))
    index = SearchIndex(every_s=0.0)
    asyncio.run(index.fresh(engine))
    before = found(index, {"city": "s"})
    assert before[0]
    gone = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2")  # nobody listens
    try:
        asyncio.run(index.fresh(gone))  # not raised: the page still answers from what is held
        assert found(index, {"city": "s"}) == before
        with pytest.raises(Exception):  # noqa: B017, PT011 - nothing held yet: the error is the request's
            asyncio.run(SearchIndex().fresh(gone))
    finally:
        gone.dispose()
