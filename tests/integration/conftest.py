"""A real database per test (SQLite always, PostgreSQL when SOR_TEST_DATABASE_URL is set) and builders."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from streams.adapters import subscriber_store
from streams.adapters.all_tables import metadata
from streams.adapters.db import make_engine
from streams.adapters.subscriber_import import ImportedAddress, ImportedSubscriber
from streams.domain.addresses import normalize_address
from streams.domain.model import (
    Address,
    Alert,
    OffenderProfile,
    OffenderState,
    Offense,
    SeenEvent,
    alert_id_for,
    digest_online_identifier,
)
from streams.domain.radii import proximity_band
from tests.conftest import database_urls
from tests.databases import at_head, drop_everything

_pg_schema_ready = False


def _postgres_engine() -> Engine:
    """Schema rebuilt once per session (it may be from an older version), emptied per test."""
    global _pg_schema_ready
    engine = make_engine(os.environ["SOR_TEST_DATABASE_URL"])
    if not _pg_schema_ready:
        drop_everything(engine)
        at_head(engine)
        _pg_schema_ready = True
    else:
        at_head(engine)  # another suite may have dropped it
        names = ", ".join(t.name for t in metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture(params=database_urls())
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'db' / 'sor-notify.db'}")
        at_head(eng)
    else:
        eng = _postgres_engine()
    try:
        yield eng
    finally:
        eng.dispose()


# --- builders ----------------------------------------------------------------------------

ST_LOUIS = (38.6270, -90.1994)


def imported_address(
    label: str = "Home",
    street: str = "1 Market St",
    radius: str = "1mi",
    city: str = "St. Louis",
    zip_: str = "63101",
    at: tuple[float, float] = ST_LOUIS,
) -> ImportedAddress:
    return ImportedAddress(
        label=label,
        street=street,
        city=city,
        state="MO",
        zip=zip_,
        radius_code=radius,
        lat=at[0],
        lon=at[1],
        normalized=normalize_address(street, city, "MO", zip_),
    )


def imported(
    email: str,
    *,
    confirmed: bool = True,
    addresses: tuple[ImportedAddress, ...] | None = None,
    offenders: tuple[str, ...] = (),
) -> ImportedSubscriber:
    return ImportedSubscriber(
        email=email,
        confirmed=confirmed,
        addresses=(imported_address(),) if addresses is None else addresses,
        offenders=offenders,
    )


def offender_state(
    oid: str,
    revision: int = 1,
    *,
    first: str = "Ray",
    last: str = "Abbott",
    removed: bool = False,
    juvenile: bool = False,
) -> OffenderState:
    profile = OffenderProfile(
        last_name=last,
        first_name=first,
        date_of_birth="1975-03-09",
        tier=2,
        compliance="compliant",
        juvenile=juvenile,
        offenses=(Offense(f"Offense of {last}"),),
        online_identifier_digests=(digest_online_identifier(f"handle-{last}"),),
    )
    home = Address(
        "home",
        "800 Olive St",
        "St. Louis",
        "MO",
        "63101",
        lat=38.63,
        lon=-90.19,
        normalized="800 OLIVE ST, ST LOUIS, MO 63101",
    )
    return OffenderState(
        oid, revision, removed, profile, () if removed else (home,), (SeenEvent(f"{oid}-r{revision}", None),)
    )


_n = itertools.count(1)


def _addr(street: str, type_: str = "home", city: str = "St. Louis", zip_: str = "63101") -> dict[str, Any]:
    return Address(
        type_,
        street,
        city,
        "MO",
        zip_,
        lat=38.63,
        lon=-90.19,
        normalized=f"{street}, {city}, MO {zip_}".upper(),
    ).to_dict()


def proximity_alert(
    subscriber_id: int,
    tracked_address_id: int,
    oid: str,
    name: str,
    street: str,
    *,
    kind: str = "moved_in",
    distance: float = 800.0,
    label: str = "Home",
    offense: str = "Sexual assault",
) -> Alert:
    n = next(_n)
    return Alert(
        alert_id=alert_id_for("it", n),
        subscriber_id=subscriber_id,
        offender_id=oid,
        kind=kind,
        event_id=f"{oid}-e{n}",
        occurred_at=f"2026-11-20T14:{n % 60:02d}:00Z",
        offender={
            "offender_id": oid,
            "name": name,
            "main_offense": offense,
            "tier": 2,
            "compliance": "compliant",
        },
        tracked_address_id=tracked_address_id,
        tracked_label=label,
        tracked_one_line="1 Market St, St. Louis, MO 63101",
        address=_addr(street),
        distance_m=distance,
        band=proximity_band(distance),
    )


def watch_alert(
    subscriber_id: int, oid: str, name: str, old: list[str], new: list[str], *, removed: bool = False
) -> Alert:
    n = next(_n)
    return Alert(
        alert_id=alert_id_for("it", n),
        subscriber_id=subscriber_id,
        offender_id=oid,
        kind="watch_removed" if removed else "watch_changed",
        event_id=f"{oid}-e{n}",
        occurred_at=f"2026-11-20T15:{n % 60:02d}:00Z",
        offender={
            "offender_id": oid,
            "name": name,
            "main_offense": "Sexual misconduct",
            "tier": 1,
            "compliance": "compliant",
        },
        old_addresses=[_addr(s, city="Springfield", zip_="65806") for s in old],
        new_addresses=[_addr(s, city="Springfield", zip_="65803") for s in new],
    )


@pytest.fixture
def subscribe(engine: Engine) -> Callable[..., subscriber_store.SubscriberChange]:
    def _subscribe(email: str, **kw: Any) -> subscriber_store.SubscriberChange:
        return subscriber_store.upsert_subscriber(engine, imported(email, **kw))

    return _subscribe
