"""The near page's rows, map places and API items, built once per point; its query's parameters, checked at the edge."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from streams.adapters.near_index import NearFound
from streams.domain import radii
from streams.domain.model import Address, OffenderState
from streams.web.display import ADDRESS_TYPE_TEXT, address_line, address_type_text, distance_text
from streams.web.paths import Paths

# The most a page or an answer lists, nearest first: a 5-mile circle in a city holds hundreds,
# and a page of them all would be slow to send and of no use to read. The count says the rest.
MAX_LISTED = 200


@dataclass(frozen=True)
class NearPoint:
    """One public address, rendered as far as it can be before a query gives its distance."""

    offender_id: str
    kind: str  # home | work | school (the map's symbol)
    row_head: str  # the list's row up to its distance cell, escaped
    place_head: str  # the map's JSON object up to its "distance" value
    item_head: str  # the API's JSON object up to its distance fields


def _json(value: Any) -> str:
    return str(htmlsafe_json_dumps(value))


def describe_with(paths: Callable[[], Paths]) -> Callable[[OffenderState, Address], NearPoint]:
    """The index's Describe for this site (paths read from its router when first needed)."""

    def describe(state: OffenderState, a: Address) -> NearPoint:
        p = state.profile
        assert p is not None and a.lat is not None and a.lon is not None
        record = paths().record(state.offender_id)
        kind = a.type if a.type in ADDRESS_TYPE_TEXT else "other"
        offense = p.main_offense or "not listed"
        line, type_text = address_line(a), address_type_text(a)
        row = str(
            Markup(
                '<tr><th scope="row"><a href="{}">{}</a></th><td>{}</td><td>{}</td><td>{}</td><td>'
            ).format(record, p.display_name, type_text, line, offense)
        )
        place = {
            "name": p.display_name,
            "kind": kind,
            "type": type_text,
            "address": line,
            "lat": a.lat,
            "lon": a.lon,
            "approximate": False,
            "record": record,
        }
        item = {
            "offender_id": state.offender_id,
            "name": p.display_name,
            "address_type": a.type,
            "address": line,
            "lat": a.lat,
            "lon": a.lon,
            "offense": offense,
            "record": record,
        }
        return NearPoint(state.offender_id, kind, row, _json(place)[:-1], _json(item)[:-1])

    return describe


# The proximity bands (radii.proximity_band's rule, `distance <= edge`) as arrays, so a list's
# bands are one searchsorted; their words hold no character JSON or HTML would escape.
_EDGES = np.array([m for m, _ in radii.RADII.values()])
_BANDS = [f"within {label}" for _, label in radii.RADII.values()] + [radii.proximity_band(float("inf"))]


def _bands(distances_m: np.ndarray) -> list[str]:
    return [_BANDS[i] for i in np.searchsorted(_EDGES, distances_m, side="left").tolist()]


@dataclass(frozen=True)
class NearList:
    """One query's answer as the page and the API give it (each builds only its own part)."""

    rows: Markup  # the list's table rows
    places_json: str  # the map's "places" array
    items_json: str  # the API's "offenders" array
    total: int  # addresses within the radius (the parts hold the nearest MAX_LISTED)
    listed: int
    people: int
    kinds: frozenset[str]


def near_list(found: NearFound, *, page: bool = True, api: bool = False, limit: int = MAX_LISTED) -> NearList:
    points = found.views[:limit]
    d = found.distances_m[:limit]
    # distance_text's words are digits, "." and "," and letters: safe in JSON and HTML as they are.
    texts = [distance_text(x) for x in d.tolist()]
    bands = _bands(d)
    rows = places = items = ""
    if page:
        rows = "".join(f"{p.row_head}{b} ({t})</td></tr>" for p, b, t in zip(points, bands, texts))
        places = ",".join(f'{p.place_head}, "distance": "about {t} away"}}' for p, t in zip(points, texts))
    if api:
        items = ",".join(
            f'{p.item_head}, "distance_m": {round(x, 2)}, "distance": "{t}", "band": "{b}"}}'
            for p, x, t, b in zip(points, d.tolist(), texts, bands)
        )
    return NearList(
        Markup(rows),
        f"[{places}]",
        f"[{items}]",
        len(found.views),
        len(points),
        found.people,
        frozenset(p.kind for p in points),
    )


# --- the query's parameters ----------------------------------------------------------------


@dataclass(frozen=True)
class NearQuery:
    lat: float
    lon: float
    radius: str  # one of radii.RADIUS_CODES

    @property
    def radius_m(self) -> float:
        return radii.radius_m(self.radius)


class BadParameter(ValueError):
    """A parameter a person (or a program) must correct; the message says how."""


def _coordinate(q: Mapping[str, str], name: str, limit: float, example: str) -> float:
    raw = q.get(name, "").strip()
    if not raw:
        raise BadParameter(f"{name} is missing: give it in decimal degrees, for example {name}={example}.")
    try:
        value = float(raw[:40])
    except ValueError:
        raise BadParameter(
            f"{name} must be a number in decimal degrees, for example {name}={example}."
        ) from None
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise BadParameter(f"{name} must be between -{limit:g} and {limit:g}.")
    return value


def radius_code(q: Mapping[str, str]) -> str:
    raw = q.get("radius", "").strip()
    if raw not in radii.RADII:
        what = "is missing" if not raw else "is not one of the distances offered"
        raise BadParameter(f"radius {what}: choose one of {', '.join(radii.RADIUS_CODES)}.")
    return raw


def near_query(q: Mapping[str, str]) -> NearQuery:
    """lat, lon and radius as the page's location button and the API send them; BadParameter
    names the first one wrong."""
    return NearQuery(
        _coordinate(q, "lat", 90.0, "38.9467"), _coordinate(q, "lon", 180.0, "-92.3252"), radius_code(q)
    )


def api_error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)
