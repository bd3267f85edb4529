"""The map: a tracked address with the offenders inside its circle, or one offender's addresses."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from streams.adapters import offender_search, tracking_db
from streams.adapters.subscriber_store import circle_of_row
from streams.domain.geometry import distance_within, geodesic_circle
from streams.domain.ids import parse_id
from streams.domain.model import Address, Circle, OffenderState
from streams.web.display import (
    ADDRESS_TYPE_TEXT,
    ADDRESS_TYPES,
    address_line,
    address_type_text,
    distance_text,
    precision_text,
    radius_text,
    record_view,
)
from streams.web.keys import db, runtime_of, session_of
from streams.web.paths import Paths, paths_of
from streams.web.registry_dates import registry_as_of_text
from streams.web.responses import no_record, not_found, render


def tiles_attribution(tiles: str) -> str:
    if not tiles:
        return ""
    host = urlsplit(tiles).hostname or ""
    if host.endswith("openstreetmap.org"):
        return "© OpenStreetMap contributors"
    return f"Map tiles: {host}"


# Seven decimals of a degree: about a centimetre, so the drawn ring is the computed one.
RING_DECIMALS = 7


def _ring(circle: Circle) -> list[list[float]]:
    """The tracked circle as the map draws it: [lat, lon] vertices on the WGS84 geodesic circle."""
    return [
        [round(lat, RING_DECIMALS), round(lon, RING_DECIMALS)]
        for lat, lon in geodesic_circle(circle.lat, circle.lon, circle.radius_m)
    ]


def map_legend(tracked: dict[str, Any] | None, places: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The key to the map's symbols, for what is on this map, in the order a reader looks for it."""
    items = []
    if tracked is not None:
        items.append({"symbol": "tracked", "text": "Your tracked address"})
        items.append({"symbol": "circle", "text": f"Your circle: {tracked['radius']} around it"})
    kinds = {p["kind"] for p in places}
    items += [{"symbol": k, "text": f"{text} address"} for k, text in ADDRESS_TYPES if k in kinds]
    if "other" in kinds:
        items.append({"symbol": "other", "text": "Other address"})
    if any(p["approximate"] for p in places):
        items.append({"symbol": "approximate", "text": "Location approximate (pale, dashed outline)"})
    return items


def _map_place(state: OffenderState, a: Address, circle: Circle | None, paths: Paths) -> dict[str, Any]:
    p = state.profile
    assert p is not None and a.lat is not None and a.lon is not None
    place: dict[str, Any] = {
        "name": p.display_name,
        # The marker's symbol (static/map-symbols.svg); `type` is its words.
        "kind": a.type if a.type in ADDRESS_TYPE_TEXT else "other",
        "type": address_type_text(a),
        "address": address_line(a),
        "lat": a.lat,
        "lon": a.lon,
        "approximate": not a.locates,
        "record": paths.record(state.offender_id),
    }
    if circle is not None:
        d, inside = distance_within(circle.lat, circle.lon, circle.radius_m, a.lat, a.lon)
        # A coarse point could be far off: no distance that might reassure or alarm wrongly.
        place["distance"] = f"about {distance_text(d)} away" if a.locates else "no distance given"
        place["inside"] = a.locates and inside
    return place


async def map_page(request: web.Request) -> web.Response:
    s = session_of(request)
    tracked_row = None
    raw_tracked = request.query.get("tracked", "")
    tracked_id = parse_id(raw_tracked)
    if s.logged_in and tracked_id is not None:
        # Someone else's address is simply left off: the link may have been forwarded.
        tracked_row = await db(request, tracking_db.tracked_row, s.subscriber_id, tracked_id)
    state = None
    if oid := request.query.get("offender", ""):
        state = await db(request, offender_search.public_offender, oid)
        if state is None:
            return no_record(request)
    if tracked_row is None and state is None:
        return not_found(request)

    circle: Circle | None = None
    tracked = None
    if tracked_row is not None:
        circle = circle_of_row(tracked_row)
        tracked = {
            "label": circle.label,
            "address": circle.one_line,
            "lat": circle.lat,
            "lon": circle.lon,
            "radius_m": circle.radius_m,
            "radius": radius_text(circle.radius_code),
            "precision": precision_text(tracked_row.precision),
            "ring": _ring(circle),
        }
    if state is not None:
        people = [(state, a) for a in state.addresses if a.has_point]
        unmapped = [a for a in state.addresses if not a.has_point]
    else:
        assert circle is not None
        found = await db(request, offender_search.offenders_within, circle.lat, circle.lon, circle.radius_m)
        people = [(st, a) for st, a, _ in found]
        unmapped = []
    paths = paths_of(request)
    places = [_map_place(st, a, circle, paths) for st, a in people]
    tiles = runtime_of(request).settings.map_tiles_url
    data = {"tiles": tiles, "attribution": tiles_attribution(tiles), "tracked": tracked, "places": places}
    return render(
        request,
        "web/map.html.j2",
        {
            "tracked": tracked,
            "places": places,
            "offender": record_view(state, paths) if state else None,
            "unmapped": [{"type": address_type_text(a), "line": address_line(a)} for a in unmapped],
            "data": data,
            "legend": map_legend(tracked, places),
            "registry_as_of": await registry_as_of_text(request),
        },
    )
