"""The public records' search rows in normal form, what the search index loads from them, and who is near a point."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.sql.expression import ColumnElement

from streams.adapters.db import metadata, offenders, utcnow
from streams.adapters.sql import Bind, reading, reading_all, stored_utc, transaction
from streams.domain.addresses import zip5
from streams.domain.geocoding import PROXIMITY_PRECISIONS
from streams.domain.geometry import bounding_box, distance_within
from streams.domain.model import (
    ALERTING_TYPES,
    Address,
    OffenderState,
)

offender_search = Table(
    "offender_search",
    metadata,
    Column("offender_id", String(100), primary_key=True),
    Column("last_name_norm", String(100), nullable=False, index=True),
    Column("first_name_norm", String(100), nullable=False),
    # "|LAST/FIRST|ALIAS LAST/ALIAS FIRST|": the normal form below keeps only letters, digits
    # and spaces, so "|" and "/" delimit names and a LIKE pattern needs no escaping.
    Column("names_text", Text, nullable=False),
    # Not removed, has a profile, not juvenile (RSMo 43.650.5): only these are ever searched.
    Column("public", Boolean, nullable=False, index=True),
    Column("tier", Integer, nullable=True),
    # Indexed: each site process's search index asks for what changed since it last looked.
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

offender_search_addresses = Table(
    "offender_search_addresses",
    metadata,
    Column("offender_id", String(100), primary_key=True),
    Column("position", Integer, primary_key=True),  # index into OffenderState.addresses
    Column("type", String(16), nullable=False),
    # The street as registered and in USPS form, "|"-joined: "Elm Street" and "Elm St" both match.
    Column("street_norm", String(450), nullable=False),
    Column("city_norm", String(100), nullable=False),
    Column("county_norm", String(100), nullable=False),
    Column("zip", String(5), nullable=False),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("precision", String(20), nullable=True),
    Index("ix_offender_search_addresses_city", "city_norm"),
    Index("ix_offender_search_addresses_zip", "zip"),
    Index("ix_offender_search_addresses_lat", "lat"),
)

# SHA-256 of the lower-cased identifier only (the registry feed never hands us the text):
# a search can match it exactly, nobody can list or display it.
offender_identifier_digests = Table(
    "offender_identifier_digests",
    metadata,
    Column("offender_id", String(100), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Index("ix_offender_identifier_digests_digest", "digest"),
)

SEARCH_TABLES = (offender_search, offender_search_addresses, offender_identifier_digests)

_DROP = re.compile(r"[.']")
_OTHER = re.compile(r"[^A-Z0-9]+")
_WORDS = {"SAINT": "ST", "SAINTE": "STE", "MOUNT": "MT", "FORT": "FT"}


def norm(text: str | None) -> str:
    """Upper case, letters and digits only; "O'Fallon" = "OFALLON", "Saint Louis" = "ST LOUIS"."""
    words = _OTHER.sub(" ", _DROP.sub("", (text or "").upper())).split()
    return " ".join(_WORDS.get(w, w) for w in words)


def norm_county(text: str | None) -> str:
    n = norm(text)
    return n[: -len(" COUNTY")] if n.endswith(" COUNTY") else n


def _street_text(a: Address) -> str:
    usps = a.normalized.split(",", 1)[0] if a.normalized else ""
    return "|".join(dict.fromkeys(x for x in (norm(a.street), norm(usps)) if x))


@dataclass(frozen=True)
class AddressKeys:
    """One registered address as the search compares it."""

    type: str
    street: str  # the street as registered and in USPS form, "|"-joined
    city: str
    county: str
    zip: str


def name_keys(state: OffenderState) -> tuple[tuple[str, str], ...]:
    """(last, first) of the name and of every alias, in normal form, each once."""
    p = state.profile
    assert p is not None
    names = [(p.last_name, p.first_name)] + [(a.last_name, a.first_name) for a in p.aliases]
    return tuple(dict.fromkeys((norm(last), norm(first)) for last, first in names))


def address_keys(a: Address) -> AddressKeys:
    return AddressKeys(a.type, _street_text(a), norm(a.city), norm_county(a.county), zip5(a.zip))


def sort_key(state: OffenderState) -> tuple[str, str, str]:
    """The order results are listed in: last name, first name, record number."""
    p = state.profile
    assert p is not None
    return (norm(p.last_name)[:100], norm(p.first_name)[:100], state.offender_id)


def index_offender(bind: Bind, state: OffenderState) -> None:
    """Rewrite one offender's search rows from its state (in the caller's transaction)."""
    index_offenders(bind, [state])


def index_offenders(bind: Bind, states: Sequence[OffenderState]) -> None:
    """Rewrite these offenders' search rows from their states, a few statements for all of
    them (in the caller's transaction)."""
    if not states:
        return
    ids = list(dict.fromkeys(s.offender_id for s in states))
    now = utcnow()
    heads: list[dict[str, Any]] = []
    addresses: list[dict[str, Any]] = []
    digests: list[dict[str, Any]] = []
    for state in {s.offender_id: s for s in states}.values():
        oid = state.offender_id
        if not state.is_public:
            # A hidden record keeps only its row (so it counts as indexed): no name, no address,
            # no identifier of it is ever in the search tables.
            heads.append(
                {
                    "offender_id": oid,
                    "last_name_norm": "",
                    "first_name_norm": "",
                    "names_text": "|",
                    "public": False,
                    "tier": None,
                    "updated_at": now,
                }
            )
            continue
        p = state.profile
        assert p is not None  # is_public
        names_text = "|" + "|".join(f"{last}/{first}" for last, first in name_keys(state)) + "|"
        last_norm, first_norm, _ = sort_key(state)
        heads.append(
            {
                "offender_id": oid,
                "last_name_norm": last_norm,
                "first_name_norm": first_norm,
                "names_text": names_text,
                "public": True,
                "tier": p.tier,
                "updated_at": now,
            }
        )
        addresses.extend(
            {
                "offender_id": oid,
                "position": i,
                "type": k.type,
                "street_norm": k.street[:450],
                "city_norm": k.city[:100],
                "county_norm": k.county[:100],
                "zip": k.zip,
                "lat": a.lat if a.has_point else None,
                "lon": a.lon if a.has_point else None,
                "precision": a.precision,
            }
            for i, (a, k) in enumerate((a, address_keys(a)) for a in state.addresses)
        )
        digests.extend({"offender_id": oid, "digest": d} for d in sorted(set(p.online_identifier_digests)))
    with transaction(bind) as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for table in SEARCH_TABLES:
                conn.execute(delete(table).where(table.c.offender_id.in_(chunk)))
        conn.execute(offender_search.insert(), heads)
        if addresses:
            conn.execute(offender_search_addresses.insert(), addresses)
        if digests:
            conn.execute(offender_identifier_digests.insert(), digests)


def index_missing(engine: Engine) -> int:
    """Index offenders stored before the search existed (idempotent; cheap when none are missing)."""
    stmt = select(offenders.c.state_json).where(
        ~exists().where(offender_search.c.offender_id == offenders.c.offender_id)
    )
    with reading(engine) as conn:
        docs = list(conn.execute(stmt).scalars())
    for start in range(0, len(docs), 500):
        with engine.begin() as conn:
            index_offenders(conn, [OffenderState.from_dict(doc) for doc in docs[start : start + 500]])
    return len(docs)


# --- reading ---------------------------------------------------------------------------


def _shown() -> Any:
    """Public in the index and, defensively, in the system of record itself."""
    return and_(
        offender_search.c.public.is_(True),
        offenders.c.removed.is_(False),
        offenders.c.juvenile.is_(False),
    )


def _public_state(doc: Any) -> OffenderState | None:
    state = OffenderState.from_dict(doc)
    return state if state.is_public else None


def public_offender(bind: Bind, offender_id: str) -> OffenderState | None:
    """The record the public may see; None alike for unknown, removed and juvenile."""
    with reading(bind) as conn:
        doc = conn.execute(
            select(offenders.c.state_json).where(
                offenders.c.offender_id == offender_id,
                offenders.c.removed.is_(False),
                offenders.c.juvenile.is_(False),
            )
        ).scalar()
    return _public_state(doc) if doc is not None else None


def public_states(bind: Bind) -> Iterator[OffenderState]:
    """Every record the public may see (the statistics' one pass over the registry)."""
    stmt = (
        select(offenders.c.state_json)
        .select_from(
            offender_search.join(offenders, offenders.c.offender_id == offender_search.c.offender_id)
        )
        .where(_shown())
        .execution_options(yield_per=1000)
    )
    with reading_all(bind) as conn:
        for doc in conn.execute(stmt).scalars():
            if (state := _public_state(doc)) is not None:
                yield state


def search_versions(bind: Bind, since: datetime | None = None) -> dict[str, datetime]:
    """When each record's search rows were last written (all records, or those written after
    `since`): what a search index compares with what it holds."""
    stmt = select(offender_search.c.offender_id, offender_search.c.updated_at)
    if since is not None:
        stmt = stmt.where(offender_search.c.updated_at > since)
    with reading_all(bind) as conn:
        return {oid: stored_utc(t) for oid, t in conn.execute(stmt.execution_options(yield_per=5000))}


def search_window(bind: Bind, since: datetime | None) -> tuple[int, datetime | None]:
    """How many records' search rows were written after `since`, and the newest stamp: one
    indexed range count, the same while nothing is written."""
    t = offender_search.c.updated_at
    stmt = select(func.count(), func.max(t))
    if since is not None:
        stmt = stmt.where(t > since)
    with reading(bind) as conn:
        n, newest = conn.execute(stmt).one()
    return n, stored_utc(newest) if newest is not None else None


def public_records(bind: Bind, ids: Sequence[str] | None = None) -> Iterator[tuple[datetime, OffenderState]]:
    """The records the public may see (all, or those of `ids`), each with when its search rows
    were written; a hidden one is simply not among them."""
    stmt = (
        select(offender_search.c.updated_at, offenders.c.state_json)
        .select_from(
            offender_search.join(offenders, offenders.c.offender_id == offender_search.c.offender_id)
        )
        .where(_shown())
    )
    chunks = [None] if ids is None else [list(ids[i : i + 500]) for i in range(0, len(ids), 500)]
    with reading_all(bind) as conn:
        for chunk in chunks:
            q = stmt if chunk is None else stmt.where(offender_search.c.offender_id.in_(chunk))
            for t, doc in conn.execute(q.execution_options(yield_per=1000)):
                if (state := _public_state(doc)) is not None:
                    yield stored_utc(t), state


def offenders_within(
    bind: Bind, lat: float, lon: float, radius_m: float
) -> list[tuple[OffenderState, Address, float]]:
    """Public offenders with a home, work or school address within radius_m, nearest first.

    Only addresses placed exactly enough to say "within 500 ft" count; the box only
    narrows the search, the geodesic distance decides.
    """
    min_lon, min_lat, max_lon, max_lat = bounding_box(lat, lon, radius_m)
    a = offender_search_addresses
    lon_conds: list[ColumnElement[bool]] = [a.c.lon.between(min_lon, max_lon)]
    # Near the antimeridian the box runs past +/-180: look on the other side too.
    if min_lon < -180:
        lon_conds.append(a.c.lon >= min_lon + 360)
    if max_lon > 180:
        lon_conds.append(a.c.lon <= max_lon - 360)
    stmt = (
        select(a.c.offender_id, a.c.position, offenders.c.state_json)
        .select_from(
            a.join(offender_search, offender_search.c.offender_id == a.c.offender_id).join(
                offenders, offenders.c.offender_id == a.c.offender_id
            )
        )
        .where(
            _shown(),
            a.c.type.in_(sorted(ALERTING_TYPES)),
            a.c.lat.between(min_lat, max_lat),
            or_(*lon_conds),
            or_(a.c.precision.is_(None), a.c.precision.in_(sorted(PROXIMITY_PRECISIONS))),
        )
    )
    found: list[tuple[OffenderState, Address, float]] = []
    with reading(bind) as conn:
        for row in conn.execute(stmt):
            state = _public_state(row.state_json)
            if state is None or row.position >= len(state.addresses):
                continue
            address = state.addresses[row.position]
            if not address.locates or address.type not in ALERTING_TYPES:
                continue
            d, inside = distance_within(lat, lon, radius_m, address.lat, address.lon)
            if inside:
                found.append((state, address, d))
    found.sort(key=lambda t: (t[2], t[0].offender_id, t[1].type))
    return found
