"""Offenders near any address, for anyone: the page (a typed address or the browser's location) and GET /api/near."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import numpy as np
from aiohttp import web
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from streams.adapters.near_index import NearSnapshot
from streams.domain.geocoding import GeocodeResult
from streams.domain.geometry import geodesic_circle
from streams.web.area_carry import AreaWish
from streams.web.display import (
    ADDRESS_TYPES,
    DEFAULT_RADIUS,
    RADIUS_CHOICES,
    RADIUS_TEXT,
    clean,
    precision_text,
)
from streams.web.keys import LIMITER, NEAR, client_key, runtime_of, session_of
from streams.web.near_rows import BadParameter, NearQuery, api_error, near_list, near_query
from streams.web.registry_dates import registry_as_of_text
from streams.web.responses import render
from streams.web.views_addresses import AddressForm, GeocodeProblem, geocode_form
from streams.web.views_map import tiles_attribution

RULE = "near:client"  # one budget for the page and the API
TOO_MANY = "Too many look-ups from your connection in the last minute. Wait a moment and try again."
RING_DECIMALS = 7


async def _snapshot(request: web.Request) -> NearSnapshot:
    return await request.app[NEAR].snapshot(runtime_of(request).db_once)


def _limited(request: web.Request) -> bool:
    return not request.app[LIMITER].allow(RULE, client_key(request))


# --- the API -------------------------------------------------------------------------------


async def near_api(request: web.Request) -> web.Response:
    try:
        q = near_query(request.query)
    except BadParameter as exc:
        return api_error(str(exc))
    if _limited(request):
        response = api_error(TOO_MANY, 429)
        response.headers["Retry-After"] = str(request.app[LIMITER].retry_after(RULE, client_key(request)))
        return response
    snap = await _snapshot(request)
    found = near_list(snap.within(q.lat, q.lon, q.radius_m), page=False, api=True)
    as_of = snap.version.as_of
    head = {
        "lat": q.lat,
        "lon": q.lon,
        "radius": q.radius,
        "radius_m": q.radius_m,
        "registry_as_of": as_of.isoformat().replace("+00:00", "Z") if as_of else None,
        "count": found.total,
        "people": found.people,
        "listed": found.listed,
    }
    body = str(htmlsafe_json_dumps(head))[:-1] + f', "offenders": {found.items_json}}}'
    return web.Response(text=body, content_type="application/json")


# --- the page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """The centre of a look-up, as the page names it."""

    lat: float
    lon: float
    text: str
    precision: str
    wish: AreaWish | None = None  # what "e-mail me about this area" carries


def _form(request: web.Request) -> AddressForm:
    q = request.query
    radius = clean(q.get("radius"), 8)
    return AddressForm(
        street=clean(q.get("street"), 200),
        city=clean(q.get("city"), 100),
        state=clean(q.get("state"), 20).upper() or runtime_of(request).settings.service_state,
        zip=clean(q.get("zip"), 10),
        radius=radius if radius in RADIUS_TEXT else DEFAULT_RADIUS,
    )


def _suggestion_links(problem: GeocodeProblem, radius: str) -> list[dict[str, str]]:
    return [
        {
            "text": s.one_line,
            "href": "/near?"
            + urlencode(
                {"street": s.street, "city": s.city, "state": s.state, "zip": s.zip, "radius": radius}
            ),
        }
        for s in problem.suggestions
    ]


async def _where(request: web.Request, form: AddressForm) -> Where | GeocodeProblem | str | None:
    """The centre asked for; a problem with the typed address; a message about the location
    sent; None when nothing was asked yet."""
    q = request.query
    if "lat" in q or "lon" in q:
        try:
            point = near_query({**q, "radius": form.radius})
        except BadParameter as exc:
            return f"Your browser's location could not be used: {exc}"
        return Where(point.lat, point.lon, "your location", "location from your browser")
    if not (form.street or form.city):
        return None
    errors = form.errors()
    errors.pop("label", None)
    if errors:
        return " ".join(errors.values())
    answer = await geocode_form(request, form)
    if isinstance(answer, GeocodeProblem):
        return answer
    assert isinstance(answer, GeocodeResult)
    wish = AreaWish(form.street, form.city, form.state, form.zip, form.radius)
    return Where(answer.lat, answer.lon, wish.one_line, precision_text(answer.precision), wish)


@functools.lru_cache(maxsize=1024)  # the same street looked up again draws the same ring
def _ring_json(lat: float, lon: float, radius_m: float) -> str:
    """The circle as the map draws it: geometry.geodesic_circle's ring, [lat, lon] to 7 decimals
    (about a centimetre), as JSON (numbers only: nothing to escape)."""
    ring = np.round(np.array(geodesic_circle(lat, lon, radius_m)), RING_DECIMALS)
    return json.dumps(ring.tolist())


def _map_json(request: web.Request, where: Where, q: NearQuery, places_json: str) -> Markup:
    tiles = runtime_of(request).settings.map_tiles_url
    centre = {
        "name": "The address you looked up",
        "label": "Looked up",
        "address": where.text,
        "lat": where.lat,
        "lon": where.lon,
    }
    head = {"tiles": tiles, "attribution": tiles_attribution(tiles), "tracked": centre}
    text = str(htmlsafe_json_dumps(head))[:-2]  # open again after the centre's last value
    ring = _ring_json(where.lat, where.lon, q.radius_m)
    return Markup(f'{text}, "ring": {ring}}}, "places": {places_json}}}')


def _legend(radius: str, kinds: frozenset[str]) -> list[dict[str, str]]:
    items = [
        {"symbol": "tracked", "text": "The address you looked up"},
        {"symbol": "circle", "text": f"The distance you chose: {RADIUS_TEXT[radius]} around it"},
    ]
    return items + [{"symbol": k, "text": f"{text} address"} for k, text in ADDRESS_TYPES if k in kinds]


def _alerts_link(request: web.Request, wish: AreaWish | None) -> str:
    """Where "e-mail me about this area" goes: enrollment (or, signed in, the form) with the address."""
    target = "/notifications" if session_of(request).logged_in else "/enroll"
    # A location from the browser has no street address to carry: the form is then left to fill in.
    return f"{target}?{wish.query()}" if wish else target


async def near_page(request: web.Request) -> web.Response:
    form = _form(request)
    context: dict[str, Any] = {
        "form": form,
        "radius_choices": RADIUS_CHOICES,
        "message": None,
        "problem": None,
        "suggestions": [],
        "where": None,
    }
    asked = "lat" in request.query or "lon" in request.query or form.street or form.city
    if asked and _limited(request):
        context["message"] = TOO_MANY
        return render(request, "web/near.html.j2", context, status=429)
    where = await _where(request, form)
    if isinstance(where, str):
        context["message"] = where
        return render(request, "web/near.html.j2", context, status=400)
    if isinstance(where, GeocodeProblem):
        context.update(problem=where, suggestions=_suggestion_links(where, form.radius))
        return render(request, "web/near.html.j2", context, status=503 if where.unavailable else 400)
    if where is None:
        return render(request, "web/near.html.j2", context)
    q = NearQuery(where.lat, where.lon, form.radius)
    found = near_list((await _snapshot(request)).within(q.lat, q.lon, q.radius_m))
    context.update(
        where=where,
        radius=RADIUS_TEXT[form.radius],
        found=found,
        map_json=_map_json(request, where, q, found.places_json),
        legend=_legend(form.radius, found.kinds),
        alerts_link=_alerts_link(request, where.wish),
        registry_as_of=await registry_as_of_text(request),
    )
    return render(request, "web/near.html.j2", context)
