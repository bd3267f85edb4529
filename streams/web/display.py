"""How the tracking pages and the settings e-mail word registry and tracking data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from streams.domain import radii
from streams.domain.geocoding import (
    ADDRESS_POINT,
    INTERPOLATED,
    PROVIDED,
    STREET,
    ZIP_CENTROID,
    precise_enough,
)
from streams.domain.model import Address, OffenderState
from streams.web.paths import Paths

RADIUS_CHOICES: tuple[tuple[str, str], ...] = (
    ("500ft", "500 feet"),
    ("1000ft", "1,000 feet"),
    ("0.25mi", "1/4 mile"),
    ("0.5mi", "1/2 mile"),
    ("1mi", "1 mile"),
    ("2mi", "2 miles"),
    ("3mi", "3 miles"),
    ("5mi", "5 miles"),
)
RADIUS_TEXT = dict(RADIUS_CHOICES)
DEFAULT_RADIUS = "1mi"
PRECISION_TEXT = {
    ADDRESS_POINT: "mapped to the house",
    INTERPOLATED: "placed along the street",
    PROVIDED: "location supplied with the address",
    STREET: "location approximate",
    ZIP_CENTROID: "location approximate",
}
ADDRESS_TYPES: tuple[tuple[str, str], ...] = (
    ("home", "Home"),
    ("work", "Work"),
    ("school", "School"),
    ("temporary", "Temporary"),
)
ADDRESS_TYPE_TEXT = dict(ADDRESS_TYPES)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PHOTO_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?")


def clean(value: Any, limit: int) -> str:
    """Form text on one line, control characters gone, at most `limit` characters."""
    return " ".join(_CONTROL.sub(" ", str(value or "")).split())[:limit]


def radius_text(code: str) -> str:
    return RADIUS_TEXT.get(code, code)


def precision_text(precision: str | None) -> str:
    return PRECISION_TEXT.get(precision or PROVIDED, "location approximate")


def distance_text(metres: float) -> str:
    feet = metres / radii.FOOT_M
    if feet < 1000:
        return f"{max(10, round(feet, -1)):.0f} feet"
    return f"{metres / radii.MILE_M:.1f} miles"


def day_text(t: datetime) -> str:
    """ "December 8, 2026", in the time zone `t` is in."""
    return f"{t:%B} {t.day}, {t.year}"


def when_text(t: datetime) -> str:
    """ "December 8, 2026 at 6:00 AM CST", in the time zone `t` is in."""
    return f"{day_text(t)} at {t.hour % 12 or 12}:{t:%M %p %Z}"


def dob_text(value: str) -> str:
    try:
        return date.fromisoformat(value).strftime("%m/%d/%Y")
    except (TypeError, ValueError):
        return value or "not listed"


def listed_name(last: str, first: str, middle: str | None = None, suffix: str | None = None) -> str:
    """ "Smith Jr., John Mitchell", the registry's own order."""
    surname = f"{last} {suffix}" if suffix else last
    given = " ".join(p for p in (first, middle) if p)
    return f"{surname}, {given}" if given else surname


def address_line(a: Address) -> str:
    parts = [a.street, a.city, f"{a.state} {a.zip}".strip()]
    line = ", ".join(p for p in parts if p)
    if not a.county:
        return line
    county = a.county if a.county.lower().endswith(("county", "city")) else f"{a.county} County"
    return f"{line} ({county})"


def address_type_text(a: Address) -> str:
    return ADDRESS_TYPE_TEXT.get(a.type, a.type)


def photo_of(state: OffenderState) -> str | None:
    url = state.profile.photo_url if state.profile else None
    return url if url and PHOTO_ORIGIN.match(url) else None


@dataclass(frozen=True)
class Nearby:
    """One offender address inside a tracked circle, as pages and e-mails list it."""

    offender_id: str
    name: str
    address_type: str
    address: str
    offense: str
    band: str
    distance: str
    record_path: str
    map_path: str


def nearby_rows(
    found: list[tuple[OffenderState, Address, float]], tracked_id: int, paths: Paths
) -> list[Nearby]:
    rows = []
    for state, a, d in found:
        p = state.profile
        assert p is not None
        rows.append(
            Nearby(
                state.offender_id,
                p.display_name,
                address_type_text(a),
                address_line(a),
                p.main_offense or "not listed",
                radii.proximity_band(d),
                distance_text(d),
                paths.record(state.offender_id),
                paths.map(tracked_id, state.offender_id),
            )
        )
    return rows


def address_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "label": row.label,
        "one_line": f"{row.street}, {row.city}, {row.state} {row.zip}".strip(),
        "radius": radius_text(row.radius_code),
        "precision": precision_text(row.precision),
        "approximate": not precise_enough(row.precision),
    }


def offender_view(oid: str, state: OffenderState | None, paths: Paths) -> dict[str, Any]:
    delete_path = paths.delete_watch(oid)
    if state is None or state.profile is None:
        # Removed or made non-public since: the subscriber may still drop the watch.
        return {"public": False, "name": "No longer on the public registry", "dob": "", "delete": delete_path}
    p = state.profile
    return {
        "public": True,
        "name": p.display_name,
        "dob": dob_text(p.date_of_birth),
        "record": paths.record(oid),
        "delete": delete_path,
    }


def record_view(state: OffenderState, paths: Paths) -> dict[str, Any]:
    p = state.profile
    assert p is not None
    height = f"{p.height_in // 12} ft {p.height_in % 12} in" if p.height_in else None
    return {
        "id": state.offender_id,
        "name": p.display_name,
        "record": paths.record(state.offender_id),
        "listed": listed_name(p.last_name, p.first_name, p.middle_name, p.suffix),
        "aliases": [listed_name(a.last_name, a.first_name) for a in p.aliases],
        "dob": dob_text(p.date_of_birth),
        "sex": p.sex,
        "race": p.race,
        "height": height,
        "weight": f"{p.weight_lb} lb" if p.weight_lb else None,
        "tier": p.tier,
        "compliance": p.compliance,
        "photo": photo_of(state),
        "offenses": [
            {
                "description": o.description,
                "code": o.code,
                "convicted_on": dob_text(o.convicted_on) if o.convicted_on else None,
            }
            for o in p.offenses
        ],
        "addresses": [
            {
                "type": address_type_text(a),
                "line": address_line(a),
                "approximate": a.has_point and not a.locates,
                "unmapped": not a.has_point,
            }
            for a in state.addresses
        ],
        "mappable": any(a.has_point for a in state.addresses),
        "map": paths.map(offender_id=state.offender_id),
    }
