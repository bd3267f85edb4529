"""A gazetteer file's records checked and made into address-point and street-range rows, or the
reason one is rejected."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from streams.adapters.gazetteer_db import (
    normalize_city,
    normalize_number,
    normalize_state,
    normalize_street,
    number_int,
    plain,
    row_hash,
    zip5,
)

Bounds = tuple[float, float, float, float]

# Missouri with a few kilometres to spare: (min_lon, min_lat, max_lon, max_lat).
MISSOURI_BOUNDS: tuple[float, float, float, float] = (-95.8, 35.9, -89.0, 40.7)

MAX_HOUSE_NUMBER = 999_999


class Rejected(Exception):
    """One row that cannot be imported; the message is its reason, the same for every such row."""


def _float(value: Any, name: str) -> float:
    if value is None or str(value).strip() == "":
        raise Rejected(f"{name} is missing")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise Rejected(f"{name} is not a number") from None
    if not math.isfinite(v):
        raise Rejected(f"{name} is not a number")
    return v


def _inside(lon: float, lat: float, bounds: Bounds) -> bool:
    return bounds[0] <= lon <= bounds[2] and bounds[1] <= lat <= bounds[3]


def _point_row(
    props: dict[str, Any], lon: float, lat: float, bounds: Bounds, default_state: str, source: str
) -> dict[str, Any]:
    number = normalize_number(props.get("NUMBER"))
    if not number:
        raise Rejected("no house number")
    if len(number) > 32:  # before int(): Python refuses to read more than 4300 digits
        raise Rejected("house number is too long")
    if not number.isprintable():  # NUL, controls, lone surrogates: PostgreSQL would fail the batch
        raise Rejected("house number holds a character that is not text")
    n = number_int(number)
    if n is None:
        raise Rejected("house number does not start with a digit")
    if n > MAX_HOUSE_NUMBER:
        raise Rejected("house number is too long")
    street = _street(props.get("STREET"), "no street name")
    state = normalize_state(str(props.get("REGION") or "")) or default_state
    if state != default_state:
        raise Rejected(f"REGION is not {default_state}")
    city = _city(props.get("CITY"))
    zip_code = zip5(props.get("POSTCODE")) or None
    if city is None and zip_code is None:
        raise Rejected("no city and no ZIP code")
    if not _inside(lon, lat, bounds):
        raise Rejected("coordinates are outside the service area")
    unit = plain(str(props.get("UNIT") or ""))
    if len(unit) > 64:
        raise Rejected("unit is too long")
    return {
        "number": number,
        "number_int": n,
        "street_norm": street,
        "unit": unit,
        "city_norm": city,
        "state": state,
        "zip": zip_code,
        "lat": lat,
        "lon": lon,
        "source": source,
        "hash": row_hash(number, street, unit, city, zip_code),
    }


def csv_point(record: dict[str, str], bounds: Bounds, default_state: str, source: str) -> dict[str, Any]:
    lon, lat = _float(record.get("LON"), "LON"), _float(record.get("LAT"), "LAT")
    return _point_row(record, lon, lat, bounds, default_state, source)


def _upper_props(feature: Any) -> dict[str, Any]:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise Rejected("not a GeoJSON Feature")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise Rejected("properties is not an object")
    return {str(k).upper(): v for k, v in props.items()}


def geojson_point(feature: Any, bounds: Bounds, default_state: str, source: str) -> dict[str, Any]:
    props = _upper_props(feature)
    geom = feature.get("geometry") or {}
    coords = geom.get("coordinates") if isinstance(geom, dict) and geom.get("type") == "Point" else None
    if not isinstance(coords, list) or len(coords) < 2:
        raise Rejected("geometry is not a point")
    lon, lat = _float(coords[0], "longitude"), _float(coords[1], "latitude")
    return _point_row(props, lon, lat, bounds, default_state, source)


def _house_number(value: Any) -> int | None:
    text = str(value if value is not None else "").strip()
    if not text:
        return None
    if text.endswith(".0"):  # a shapefile numeric field read as float
        text = text[:-2]
    if not text.isdecimal():  # not isdigit(): int() refuses "²", which isdigit() takes
        return None
    if len(text) > 32 or int(text) > MAX_HOUSE_NUMBER:
        raise Rejected("house number is too long")
    return int(text)


# Lengths of the columns: one overlong value must not fail a whole batch on PostgreSQL.
def _street(value: Any, missing: str) -> str:
    street = normalize_street(str(value or ""))
    if not street:
        raise Rejected(missing)
    if len(street) > 200:
        raise Rejected("street name is too long")
    return street


def _city(value: Any) -> str | None:
    city = normalize_city(str(value or "")) or None
    if city is not None and len(city) > 100:
        raise Rejected("city name is too long")
    return city


def _line_coords(geom: Any) -> list[list[float]]:
    if not isinstance(geom, dict):
        raise Rejected("geometry is not a line")
    kind = geom.get("type")
    coords: Any = geom.get("coordinates")
    if kind == "LineString":
        parts = [coords]
    elif kind == "MultiLineString":
        parts = coords
    else:
        raise Rejected("geometry is not a line")
    line: list[list[float]] = []
    try:
        for part in parts or []:
            for p in part or []:
                pt = [float(p[0]), float(p[1])]
                if not all(map(math.isfinite, pt)):
                    raise ValueError(pt)
                if not line or line[-1] != pt:  # parts of one edge join end to start
                    line.append(pt)
    except (TypeError, ValueError, IndexError, KeyError):  # a number, a string, an object...
        raise Rejected("geometry has a coordinate that is not a number") from None
    if len(line) < 2:
        raise Rejected("geometry has fewer than two points")
    return line


def range_row(feature: Any, bounds: Bounds, source: str) -> dict[str, Any]:
    props = _upper_props(feature)
    street = _street(props.get("FULLNAME"), "no street name (FULLNAME)")
    fl, tl = _house_number(props.get("LFROMHN")), _house_number(props.get("LTOHN"))
    fr, tr = _house_number(props.get("RFROMHN")), _house_number(props.get("RTOHN"))
    if fl is None or tl is None:
        fl = tl = None
    if fr is None or tr is None:
        fr = tr = None
    zl = zip5(props.get("ZIPL")) or None if fl is not None else None
    zr = zip5(props.get("ZIPR")) or None if fr is not None else None
    if fl is None and fr is None:
        raise Rejected("no house-number range on either side")
    city = _city(props.get("PLACE") or props.get("CITY"))
    if zl is None and zr is None and city is None:
        raise Rejected("no ZIP code and no place")
    line = _line_coords(feature.get("geometry"))
    if not any(_inside(lon, lat, bounds) for lon, lat in line):
        raise Rejected("line lies outside the service area")
    tlid = str(props.get("TLID") or "").removesuffix(".0")
    if not tlid.isprintable():  # it goes into the row's hash, which needs UTF-8 text
        raise Rejected("TLID holds a character that is not text")
    return {
        "street_norm": street,
        "city_norm": city,
        "zip_left": zl,
        "zip_right": zr,
        "from_left": fl,
        "to_left": tl,
        "from_right": fr,
        "to_right": tr,
        "geometry": line,
        "source": source,
        # Not the geometry: a re-import with a redrawn edge updates it in place.
        "hash": row_hash(tlid, street, city, zl, zr, fl, tl, fr, tr),
    }


def point_streets(row: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield row["street_norm"], row["city_norm"] or "", row["zip"] or ""


def range_streets(row: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for side_zip, side_from in ((row["zip_left"], row["from_left"]), (row["zip_right"], row["from_right"])):
        if side_from is not None:
            yield row["street_norm"], row["city_norm"] or "", side_zip or ""
