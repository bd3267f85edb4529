"""Tables of the local gazetteer and the normal forms of the keys they are searched by."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from scourgify import normalize_address_record
from scourgify.address_constants import STATE_ABBREVIATIONS
from scourgify.exceptions import AddressNormalizationError
from sqlalchemy import Column, Float, Index, Integer, String, Table, UniqueConstraint

from streams.adapters.db import JsonDoc, metadata
from streams.domain import addresses

# Surveyed points (OpenAddresses): one row per address, unit included.
address_points = Table(
    "address_points",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("number", String(32), nullable=False),  # as published, e.g. "1510", "1510A", "1510 1/2"
    Column("number_int", Integer, nullable=False),  # its leading digits, for nearest-number logic
    Column("street_norm", String(200), nullable=False),  # USPS Pub 28, e.g. "E ELM ST"
    Column("unit", String(64), nullable=False, default=""),
    Column("city_norm", String(100), nullable=True),  # many sources publish no city
    Column("state", String(2), nullable=False),
    Column("zip", String(5), nullable=True),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("source", String(200), nullable=False),
    # number+street+unit+city+zip, never the coordinates: a re-import moves a point, it does
    # not add a second one.
    Column("hash", String(40), nullable=False, unique=True),
    # The import that last saw this row: an address listed twice in one file is caught even
    # batches apart, and rows a source no longer lists can be found.
    Column("import_run", String(32), nullable=True),
    Index("ix_address_points_street_zip", "street_norm", "zip"),
    Index("ix_address_points_street_city", "street_norm", "city_norm"),
)

# TIGER/Line ADDRFEAT house-number ranges; "left" and "right" follow the digitized direction.
street_ranges = Table(
    "street_ranges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("street_norm", String(200), nullable=False),
    Column("city_norm", String(100), nullable=True),
    Column("zip_left", String(5), nullable=True),
    Column("zip_right", String(5), nullable=True),
    Column("from_left", Integer, nullable=True),  # NULL: no addresses on that side
    Column("to_left", Integer, nullable=True),
    Column("from_right", Integer, nullable=True),
    Column("to_right", Integer, nullable=True),
    Column("geometry", JsonDoc, nullable=False),  # [[lon, lat], ...] from the FROM end
    Column("source", String(200), nullable=False),
    Column("hash", String(40), nullable=False, unique=True),
    Column("import_run", String(32), nullable=True),
    Index("ix_street_ranges_street_zip_left", "street_norm", "zip_left"),
    Index("ix_street_ranges_street_zip_right", "street_norm", "zip_right"),
    Index("ix_street_ranges_street_city", "street_norm", "city_norm"),
)

# Which street names exist in which city and ZIP (points and ranges alike): small, so that
# "is this ZIP known", "which cities share it" and "a street named like this" stay cheap.
# "" rather than NULL where a source has no city or ZIP, so the unique key holds on PostgreSQL.
gazetteer_streets = Table(
    "gazetteer_streets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("street_norm", String(200), nullable=False),
    Column("city_norm", String(100), nullable=False),
    Column("zip", String(5), nullable=False),
    UniqueConstraint("street_norm", "city_norm", "zip", name="uq_gazetteer_streets"),
    Index("ix_gazetteer_streets_zip", "zip"),
    Index("ix_gazetteer_streets_city", "city_norm"),
)

GAZETTEER_TABLES = (address_points, street_ranges, gazetteer_streets)

# --- normal forms -------------------------------------------------------------------------

_DROP = re.compile(r"[.']")
_SPACE = re.compile(r"[^\w#/-]+")
# scourgify wants a whole record; the street is normalized inside a fixed one so that the
# same street text always gives the same key, whatever number or city came with it.
_PLACEHOLDER = {"city": "ANYTOWN", "state": "MO", "postal_code": "65101"}
_NUMBER_LETTER = re.compile(r"^(\d+)[\s-]+([A-Z])$")
_LEADING_DIGITS = re.compile(r"^(\d+)")


def plain(text: str | None) -> str:
    return " ".join(_SPACE.sub(" ", _DROP.sub("", (text or "").upper())).split())


@lru_cache(maxsize=200_000)
def normalize_street(street: str) -> str:
    """'East Elm Street' -> 'E ELM ST'; idempotent, so stored and queried forms agree."""
    text = plain(street)
    if not text:
        return ""
    try:
        rec = normalize_address_record({"address_line_1": f"1 {text}", **_PLACEHOLDER})
    except AddressNormalizationError:
        return text
    line = plain(rec["address_line_1"])
    return line[2:] if line.startswith("1 ") and len(line) > 2 else text


def normalize_city(city: str | None) -> str:
    text = plain(city)
    # "St. Louis", "Saint Louis" and "ST LOUIS" are one city.
    text = re.sub(r"^SAINTE\b", "STE", text)
    return re.sub(r"^SAINT\b", "ST", text)


def normalize_state(state: str | None) -> str:
    text = plain(state)
    if len(text) == 2:
        return text
    return STATE_ABBREVIATIONS.get(text, text)


def zip5(zip_code: object) -> str:
    """A gazetteer file's ZIP: its data may have been read as numbers (domain.addresses.zip5)."""
    return addresses.zip5(zip_code, restore_leading_zeros=True)


def normalize_number(number: object) -> str:
    """'1510', '1510A' ('1510 A', '1510-a'), '1510 1/2'; '' when there is none."""
    text = " ".join(str(number or "").upper().split())
    return _NUMBER_LETTER.sub(r"\1\2", text)


def number_int(number: str) -> int | None:
    m = _LEADING_DIGITS.match(number)
    return int(m.group(1)) if m else None


def row_hash(*parts: object) -> str:
    joined = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()
