"""Fixtures of the property tests: a pool of schema-valid events, a SQLite database, counts."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from streams.adapters.db import make_engine
from streams.adapters.dead_letters import InvalidEvent
from streams.adapters.event_codec import decode_registry_event
from tests.counts import report
from tests.databases import at_head
from tests.e2e.conftest import broker, system  # noqa: F401 (fixtures for the hostile pipeline)
from tests.property.hostile import PLAIN_OFFENDER, Tally, property_settings, schema_events

# How many inputs the property tests tried in all, for the last line of the report.
TRIED: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TRIED:
        terminalreporter.write_line(f"property tests: {sum(TRIED)} hostile and valid inputs tried in all")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Each test's count lines, reported (tests/counts.py) once it ran, passed or failed."""
    yield
    for t in getattr(item, "tallies", ()):
        TRIED.append(t.tried)
        report(t.line())
        for line in t.notes:
            report(line)


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Callable[[str], Tally]:
    """tally(name) -> a Tally whose count line is reported when the test has run."""
    made: list[Tally] = []
    request.node.tallies = made

    def make(name: str) -> Tally:
        made.append(Tally(name))
        return made[-1]

    return make


def realistic_upsert() -> dict[str, Any]:
    return {
        "schema": "registry-event/1",
        "event_id": "mshp-2026-000123",
        "offender_id": "MO-0042",
        "revision": 7,
        "occurred_at": "2026-01-05T09:00:00-06:00",
        "kind": "upsert",
        "offender": copy.deepcopy(PLAIN_OFFENDER)
        | {
            "middle_name": "Allen",
            "suffix": "Jr.",
            "aliases": [{"last_name": "Dough", "first_name": "Rick"}],
            "sex": "M",
            "race": "W",
            "height_in": 70,
            "weight_lb": 185,
            "offenses": [
                {"code": "566.030", "description": "Rape in the first degree", "convicted_on": "2004-06-11"}
            ],
            "photo_url": "https://www.mshp.dps.missouri.gov/photos/MO-0042.jpg",
            "online_identifiers": ["R.Doe1980@Example.com", "rdoe_stl"],
        },
        "addresses": [
            {
                "type": "home",
                "street": "1510 East Elm Street",
                "city": "Jefferson City",
                "state": "mo",
                "zip": "65101-1234",
                "county": "Cole",
                "lat": 38.5713,
                "lon": -92.1636,
            },
            {
                "type": "work",
                "street": "300 E High St",
                "city": "Jefferson City",
                "state": "MO",
                "zip": "65101",
            },
        ],
    }


@pytest.fixture(scope="session")
def event_pool() -> list[dict[str, Any]]:
    """Schema-valid events from hypothesis-jsonschema (drawing one costs ~40 ms, so the
    mutation tests draw their bases from this pool), plus a realistic upsert and remove."""
    pool: list[dict[str, Any]] = [
        realistic_upsert(),
        {
            "schema": "registry-event/1",
            "event_id": "mshp-2026-000124",
            "offender_id": "MO-0042",
            "revision": 8,
            "occurred_at": "2026-01-06T15:00:00Z",
            "kind": "remove",
        },
    ]

    @property_settings(60)
    @given(schema_events())
    def collect(doc: dict[str, Any]) -> None:
        raw = json.dumps(doc).encode()
        try:
            decode_registry_event(raw)
        except InvalidEvent:
            return  # the codec's own rule (no U+0000), shown in test_events
        pool.append(json.loads(raw))

    collect()
    return pool


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Any]:
    """SQLite only: these tests are about input, and run in CI's time once, not per database."""
    eng = make_engine(f"sqlite:///{tmp_path / 'db' / 'property.db'}")
    at_head(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The e2e `system` fixture on SQLite only (it is parametrized by database elsewhere)."""
    return f"sqlite:///{tmp_path / 'e2e.db'}"
