"""What Nominatim, Pelias and ArcGIS answer, read into one shape of candidate (point, precision, postcode, towns)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from geopy.geocoders import ArcGIS

from streams.domain.addresses import zip5
from streams.domain.geocoding import (
    ADDRESS_POINT,
    INTERPOLATED,
    STREET,
    ZIP_CENTROID,
)

US_STATES: dict[str, str] = {
    "AL": "Alabama",
    "AK": "Alaska",
    "AZ": "Arizona",
    "AR": "Arkansas",
    "CA": "California",
    "CO": "Colorado",
    "CT": "Connecticut",
    "DE": "Delaware",
    "DC": "District of Columbia",
    "FL": "Florida",
    "GA": "Georgia",
    "HI": "Hawaii",
    "ID": "Idaho",
    "IL": "Illinois",
    "IN": "Indiana",
    "IA": "Iowa",
    "KS": "Kansas",
    "KY": "Kentucky",
    "LA": "Louisiana",
    "ME": "Maine",
    "MD": "Maryland",
    "MA": "Massachusetts",
    "MI": "Michigan",
    "MN": "Minnesota",
    "MS": "Mississippi",
    "MO": "Missouri",
    "MT": "Montana",
    "NE": "Nebraska",
    "NV": "Nevada",
    "NH": "New Hampshire",
    "NJ": "New Jersey",
    "NM": "New Mexico",
    "NY": "New York",
    "NC": "North Carolina",
    "ND": "North Dakota",
    "OH": "Ohio",
    "OK": "Oklahoma",
    "OR": "Oregon",
    "PA": "Pennsylvania",
    "RI": "Rhode Island",
    "SC": "South Carolina",
    "SD": "South Dakota",
    "TN": "Tennessee",
    "TX": "Texas",
    "UT": "Utah",
    "VT": "Vermont",
    "VA": "Virginia",
    "WA": "Washington",
    "WV": "West Virginia",
    "WI": "Wisconsin",
    "WY": "Wyoming",
}
_STATE_BY_NAME = {name.upper(): code for code, name in US_STATES.items()}
_FOREIGN = "--"  # a result outside the United States

ARCGIS_OUT_FIELDS = "Addr_type,Score,AddNum,City,Region,RegionAbbr,Postal,Country,Match_addr"
_ARCGIS_MIN_SCORE = 80.0


def town(value: Any) -> str:
    text = " ".join(re.sub(r"[.'\-]", " ", str(value or "")).upper().split())
    return re.sub(r"^SAINT ", "ST ", re.sub(r"^SAINTE ", "STE ", text))


def _number(value: Any) -> str:
    return re.sub(r"[\s-]", "", str(value or "")).upper()


_HOUSE_NUMBER = re.compile(r"^\s*(\d+(?:\s*-\s*\d+)?[A-Za-z]?)\b")


def query_number(street: str) -> str:
    m = _HOUSE_NUMBER.match(street)
    return _number(m.group(1)) if m else ""


def _state_code(*, code: Any = None, name: Any = None, iso: Any = None, country: Any = None) -> str | None:
    """The two-letter state of a result, _FOREIGN outside the US, None when the service did not say."""
    c = str(country or "").strip().upper()
    if c and c not in {"US", "USA", "UNITED STATES"}:
        return _FOREIGN
    iso_text = str(iso or "").strip().upper()
    if iso_text.startswith("US-") and len(iso_text) == 5:
        return iso_text[3:]
    code_text = str(code or "").strip().upper()
    if code_text in US_STATES:
        return code_text
    return _STATE_BY_NAME.get(str(name or "").strip().upper())


@dataclass(frozen=True)
class Candidate:
    """One answer of a service, reduced to what the choice needs."""

    lat: float
    lon: float
    precision: str | None  # None: coarser than a ZIP code (city, county, ...)
    state: str | None
    postcode: str
    towns: tuple[str, ...]
    matched: str


def _house_grade(query_number: str, result_numbers: Iterable[Any], precision: str) -> str:
    """A house-level answer for another house number only tells us the street."""
    numbers = {_number(n) for raw in result_numbers for n in re.split(r"[;,]", str(raw or "")) if n.strip()}
    return precision if query_number and query_number in numbers else STREET


def nominatim_candidate(raw: dict[str, Any], query_number: str) -> Candidate:
    addr = raw.get("address") or {}
    cls = raw.get("category") or raw.get("class") or ""
    typ = raw.get("type") or ""
    addresstype = raw.get("addresstype") or ""
    try:
        rank = int(raw.get("place_rank") or 0)
    except (TypeError, ValueError):
        rank = 0
    precision: str | None
    if (
        cls == "building"
        or (cls == "place" and typ == "house")
        or addresstype in {"house", "building"}
        or rank >= 30
    ):
        # An address node or a building carrying the number is a surveyed point; a place=house
        # from a way is an OSM interpolation line or TIGER range, placed by arithmetic.
        interpolated = cls == "place" and typ == "house" and raw.get("osm_type") in {"way", "W"}
        precision = _house_grade(
            query_number, [addr.get("house_number")], INTERPOLATED if interpolated else ADDRESS_POINT
        )
    elif cls == "highway" or addresstype in {"road", "street"} or 26 <= rank <= 27:
        precision = STREET
    elif addresstype == "postcode" or typ in {"postcode", "postal_code"}:
        precision = ZIP_CENTROID
    else:
        precision = None
    towns = tuple(
        str(addr[k]) for k in ("city", "town", "village", "hamlet", "municipality", "suburb") if addr.get(k)
    )
    return Candidate(
        lat=float(raw["lat"]),
        lon=float(raw["lon"]),
        precision=precision,
        state=_state_code(
            name=addr.get("state"), iso=addr.get("ISO3166-2-lvl4"), country=addr.get("country_code")
        ),
        postcode=zip5(addr.get("postcode")),
        towns=towns,
        matched=str(raw.get("display_name") or ""),
    )


def pelias_candidate(feature: dict[str, Any], query_number: str) -> Candidate:
    props = feature.get("properties") or {}
    lon, lat = feature["geometry"]["coordinates"][:2]
    layer = props.get("layer")
    precision: str | None
    if layer == "address":
        interpolated = props.get("match_type") == "interpolated" or props.get("accuracy") == "centroid"
        precision = _house_grade(
            query_number, [props.get("housenumber")], INTERPOLATED if interpolated else ADDRESS_POINT
        )
    elif layer == "street":
        precision = STREET
    elif layer == "postalcode":
        precision = ZIP_CENTROID
    else:
        precision = None
    return Candidate(
        lat=float(lat),
        lon=float(lon),
        precision=precision,
        state=_state_code(
            code=props.get("region_a"), name=props.get("region"), country=props.get("country_a")
        ),
        postcode=zip5(props.get("postalcode")),
        towns=tuple(props[k] for k in ("locality", "localadmin") if props.get(k)),
        matched=str(props.get("label") or props.get("name") or ""),
    )


_ARCGIS_TYPES = {
    "PointAddress": ADDRESS_POINT,
    "Subaddress": ADDRESS_POINT,
    "StreetAddress": INTERPOLATED,
    # An intersection or a number beyond the known range is not where the house stands.
    "StreetInt": STREET,
    "StreetAddressExt": STREET,
    "StreetName": STREET,
    "StreetMidBlock": STREET,
    "Postal": ZIP_CENTROID,
    "PostalExt": ZIP_CENTROID,
    "PostalLoc": ZIP_CENTROID,
}


def arcgis_candidate(cand: dict[str, Any], query_number: str) -> Candidate | None:
    attrs = cand.get("attributes") or {}
    score = cand.get("score", attrs.get("Score"))
    if score is None:
        return None
    try:
        if float(score) < _ARCGIS_MIN_SCORE:
            return None
    except (TypeError, ValueError):
        return None
    precision = _ARCGIS_TYPES.get(str(attrs.get("Addr_type") or ""))
    if precision in {ADDRESS_POINT, INTERPOLATED}:
        precision = _house_grade(query_number, [attrs.get("AddNum")], precision)
    return Candidate(
        lat=float(cand["location"]["y"]),
        lon=float(cand["location"]["x"]),
        precision=precision,
        state=_state_code(
            code=attrs.get("RegionAbbr"), name=attrs.get("Region"), country=attrs.get("Country")
        ),
        postcode=zip5(attrs.get("Postal")),
        towns=tuple(t for t in (attrs.get("City"),) if t),
        matched=str(cand.get("address") or attrs.get("Match_addr") or ""),
    )


class ArcGISClient(ArcGIS):
    """geopy's ArcGIS signs in with username/password; location-service API keys go as `token`."""

    def __init__(self, *, api_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Esri's terms forbid keeping results unless the request says so; we keep them.
        self._extra = urlencode({"token": api_key, "forStorage": "true"}) if api_key else ""

    def _call_geocoder(self, url: str, callback: Any, **kwargs: Any) -> Any:
        return super()._call_geocoder(f"{url}&{self._extra}" if self._extra else url, callback, **kwargs)
