"""The eight radius choices a subscriber may track, and the proximity bands alerts show."""

from __future__ import annotations

FOOT_M = 0.3048
MILE_M = 1609.344

# code -> (metres, label); ordered from smallest to largest.
RADII: dict[str, tuple[float, str]] = {
    "500ft": (500 * FOOT_M, "500 ft"),
    "1000ft": (1000 * FOOT_M, "1000 ft"),
    "0.25mi": (0.25 * MILE_M, "1/4 mi"),
    "0.5mi": (0.5 * MILE_M, "1/2 mi"),
    "1mi": (1 * MILE_M, "1 mi"),
    "2mi": (2 * MILE_M, "2 mi"),
    "3mi": (3 * MILE_M, "3 mi"),
    "5mi": (5 * MILE_M, "5 mi"),
}
RADIUS_CODES: tuple[str, ...] = tuple(RADII)
MAX_RADIUS_M: float = max(m for m, _ in RADII.values())


class UnknownRadius(ValueError):
    pass


def radius_m(code: str) -> float:
    try:
        return RADII[code][0]
    except KeyError:
        raise UnknownRadius(
            f"radius {code!r} is not offered; choose one of {', '.join(RADIUS_CODES)}"
        ) from None


def radius_label(code: str) -> str:
    return RADII[code][1]


def proximity_band(distance_m: float) -> str:
    """The smallest offered distance the offender lies within, e.g. 'within 1/4 mi'."""
    for metres, label in RADII.values():
        if distance_m <= metres:
            return f"within {label}"
    return f"more than {RADII['5mi'][1]}"
