"""What a geocoder answers: a point with its precision, or a reason and nearby suggestions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

# How exact a location is, best first.
ADDRESS_POINT = "address_point"  # a surveyed point for this house number (rooftop/parcel)
INTERPOLATED = "interpolated"  # placed along a street segment by its house-number range
PROVIDED = "provided"  # coordinates supplied with the record (registry event, import line)
STREET = "street"  # somewhere on the named street
ZIP_CENTROID = "zip_centroid"  # the middle of the ZIP code area
PRECISIONS: tuple[str, ...] = (ADDRESS_POINT, INTERPOLATED, PROVIDED, STREET, ZIP_CENTROID)

# Only these may claim "an offender lives within 500 ft of you". Anything coarser is stored
# and shown as "location approximate", never used for a proximity alert.
PROXIMITY_PRECISIONS: frozenset[str] = frozenset({ADDRESS_POINT, INTERPOLATED, PROVIDED})


def precise_enough(precision: str | None) -> bool:
    """Exact enough to say "within 500 ft" (None: stored before precisions were kept, as
    coordinates supplied with the record were)."""
    return precision is None or precision in PROXIMITY_PRECISIONS


FailureReason = Literal[
    "unparseable",  # the text is not a street address (no house number, PO box, ...)
    "outside_state",  # the address is not in the state this deployment serves
    "unknown_city",  # no such city/ZIP in the gazetteer
    "ambiguous_city",  # the street exists in several places and city/ZIP do not settle it
    "unknown_street",  # no such street in that city/ZIP
    "number_out_of_range",  # the street exists, this house number does not
    "not_found",  # a remote geocoder found nothing usable
]


@dataclass(frozen=True)
class GeocodeQuery:
    street: str
    city: str
    state: str
    zip: str


@dataclass(frozen=True)
class Suggestion:
    """A nearby address that can be mapped, offered instead of a dead end."""

    street: str
    city: str
    state: str
    zip: str
    lat: float
    lon: float
    precision: str

    @property
    def one_line(self) -> str:
        return f"{self.street}, {self.city}, {self.state} {self.zip}"


@dataclass(frozen=True)
class GeocodeResult:
    lat: float
    lon: float
    precision: str  # one of PRECISIONS
    source: str  # "gazetteer", "nominatim", "pelias", "arcgis", "cache:<source>"
    matched: str = ""  # the address the source matched, as it names it

    @property
    def supports_proximity(self) -> bool:
        return self.precision in PROXIMITY_PRECISIONS


@dataclass(frozen=True)
class GeocodeFailure:
    reason: FailureReason
    message: str  # a sentence a person can act on
    suggestions: tuple[Suggestion, ...] = ()


class GeocoderUnavailable(Exception):
    """A temporary failure (timeout, rate limit, server error): try again later, not a verdict."""


class Geocoder(Protocol):
    async def geocode(self, query: GeocodeQuery) -> GeocodeResult | GeocodeFailure: ...
