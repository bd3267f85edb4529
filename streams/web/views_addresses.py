"""The notifications page and the tracked addresses on it: add, show, edit, delete."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from streams.adapters import accounts, offender_search, tracking_db
from streams.adapters.gazetteer import display_street
from streams.adapters.subscriber_store import SubscriberChange, circle_of_row
from streams.domain.addresses import normalize_address
from streams.domain.geocoding import (
    STREET,
    GeocodeFailure,
    GeocodeQuery,
    GeocodeResult,
    GeocoderUnavailable,
    Suggestion,
)
from streams.domain.ids import parse_id
from streams.domain.limits import MAX_ADDRESSES, MAX_OFFENDERS
from streams.domain.model import Circle
from streams.domain.radii import radius_m
from streams.web.area_carry import wish_of
from streams.web.confirmations import SettingsChange, finish
from streams.web.display import (
    DEFAULT_RADIUS,
    RADIUS_CHOICES,
    RADIUS_TEXT,
    Nearby,
    address_view,
    clean,
    nearby_rows,
    offender_view,
    precision_text,
    radius_text,
)
from streams.web.frequency import frequency_context
from streams.web.keys import clock_of, db, flash, runtime_of, session_of
from streams.web.paths import paths_of
from streams.web.registry_dates import registry_as_of_text
from streams.web.responses import not_found, redirect, render, require_login
from streams.web.views_account import mail_status

_ZIP = re.compile(r"[0-9]{5}(-?[0-9]{4})?")  # ASCII only: \d takes any script's digits


@dataclass
class AddressForm:
    label: str = ""
    street: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    radius: str = DEFAULT_RADIUS

    @classmethod
    def read(cls, form: Mapping[str, Any], default_state: str) -> AddressForm:
        return cls(
            label=clean(form.get("label"), 100),
            street=clean(form.get("street"), 200),
            city=clean(form.get("city"), 100),
            state=clean(form.get("state"), 20).upper() or default_state,
            zip=clean(form.get("zip"), 10),
            radius=clean(form.get("radius"), 8),
        )

    @classmethod
    def of(cls, row: Any) -> AddressForm:
        return cls(row.label, row.street, row.city, row.state, row.zip, row.radius_code)

    def errors(self) -> dict[str, str]:
        e = {}
        if not self.label:
            e["label"] = "Give this address a name, for example Home or School."
        if not self.street:
            e["street"] = "Enter the house number and street, for example 1510 E Elm St."
        if not self.city:
            e["city"] = "Enter the city."
        if not re.fullmatch(r"[A-Z]{2}", self.state):
            e["state"] = "Enter the two-letter state code, for example MO."
        if self.zip and not _ZIP.fullmatch(self.zip):
            e["zip"] = "Enter a five-digit ZIP code, for example 65101, or leave it empty."
        if self.radius not in RADIUS_TEXT:
            e["radius"] = "Choose one of the distances offered."
        return e

    def same_place(self, row: Any) -> bool:
        return (self.street, self.city, self.state, self.zip) == (row.street, row.city, row.state, row.zip)

    def with_suggestion(self, s: Suggestion) -> dict[str, str]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return values | {"street": s.street, "city": s.city, "state": s.state, "zip": s.zip}


@dataclass
class GeocodeProblem:
    message: str
    suggestions: tuple[Suggestion, ...] = ()
    unavailable: bool = False  # a temporary outage, not a verdict on the address


# --- the notifications page --------------------------------------------------------------


async def _notifications_context(request: web.Request, sid: int) -> dict[str, Any]:
    rows = await db(request, tracking_db.tracked_rows, sid)
    ids = await db(request, tracking_db.watched_ids, sid)
    states = await db(request, tracking_db.public_states, ids)
    sub = await db(request, tracking_db.subscriber, sid)
    acct = await db(request, accounts.account, sid)
    paths = paths_of(request)
    return {
        "mail": mail_status(request, acct) if acct else {},
        "addresses": [address_view(r) for r in rows],
        "offenders": [offender_view(oid, states[oid], paths) for oid in ids],
        "max_addresses": MAX_ADDRESSES,
        "max_offenders": MAX_OFFENDERS,
        "radius_choices": RADIUS_CHOICES,
        "status": sub.status if sub else "active",
        "form": AddressForm(state=runtime_of(request).settings.service_state),
        "errors": {},
        "problem": None,
        "refused": None,
        **frequency_context(request, await db(request, tracking_db.schedule, sid)),
    }


async def notifications_page(request: web.Request, status: int = 200, **overrides: Any) -> web.Response:
    context = await _notifications_context(request, session_of(request).subscriber_id)  # type: ignore[arg-type]
    context.update(overrides)
    return render(request, "web/notifications.html.j2", context, status=status)


@require_login
async def notifications(request: web.Request) -> web.Response:
    wish = wish_of(request)
    if wish is None:
        return await notifications_page(request)
    # From "e-mail me about this area": the address looked up, ready to be named and saved.
    form = AddressForm("", wish.street, wish.city, wish.state, wish.zip, wish.radius)
    return await notifications_page(request, form=form, wish=wish)


# --- placing an address ------------------------------------------------------------------


async def geocode_form(request: web.Request, f: AddressForm) -> GeocodeResult | GeocodeProblem:
    """The form's address placed by the site's geocoder chain, or why it cannot be (the near page too)."""
    runtime = runtime_of(request)
    query = GeocodeQuery(f.street, f.city, f.state, f.zip)
    try:
        answer = await asyncio.wait_for(runtime.geocoder.geocode(query), runtime.settings.geocode_timeout_s)
    except (TimeoutError, GeocoderUnavailable):
        return GeocodeProblem(
            "The mapping service did not answer in time, so the address was not saved. Try again in a minute.",
            unavailable=True,
        )
    if isinstance(answer, GeocodeFailure):
        return GeocodeProblem(answer.message, tuple(_readable(s) for s in answer.suggestions))
    if not answer.supports_proximity:
        where = "somewhere on the street" if answer.precision == STREET else "only to its ZIP code area"
        return GeocodeProblem(
            f"This address could be placed {where}, not at the house. Alerts within a distance need the house "
            "itself; try the address of a neighbouring house or a nearby corner property."
        )
    return answer


def _readable(s: Suggestion) -> Suggestion:
    """ "42 HITT ST, COLUMBIA" as a person writes it; text already in mixed case is left alone."""
    if s.street.isupper():
        s = replace(s, street=display_street(s.street))
    if s.city.isupper():
        s = replace(s, city=" ".join(w.capitalize() for w in s.city.split()))
    return s


def _address_values(f: AddressForm, point: GeocodeResult | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "label": f.label,
        "street": f.street,
        "city": f.city,
        "state": f.state,
        "zip": f.zip,
        "radius_code": f.radius,
        "normalized": normalize_address(f.street, f.city, f.state, f.zip),
    }
    if point is not None:
        values |= {"lat": point.lat, "lon": point.lon, "precision": point.precision}
    return values


async def _nearby(request: web.Request, circle: Circle) -> list[Nearby]:
    found = await db(request, offender_search.offenders_within, circle.lat, circle.lon, circle.radius_m)
    return nearby_rows(found, circle.circle_id, paths_of(request))


def _circle_lines(c: Circle, precision: str | None = None) -> list[tuple[str, str]]:
    lines = [("Name", c.label), ("Address", c.one_line), ("Distance", radius_text(c.radius_code))]
    if precision is not None:
        lines.append(("Map location", precision_text(precision)))
    return lines


# --- tracked addresses -------------------------------------------------------------------


@require_login
async def add_address(request: web.Request) -> web.Response:
    sid: int = session_of(request).subscriber_id  # type: ignore[assignment]
    runtime = runtime_of(request)
    f = AddressForm.read(await request.post(), runtime.settings.service_state)
    rows = await db(request, tracking_db.tracked_rows, sid)
    if len(rows) >= MAX_ADDRESSES:
        return await _too_many_addresses(request)
    errors = f.errors()
    if errors:
        return await notifications_page(request, 400, form=f, errors=errors)
    point = await geocode_form(request, f)
    if isinstance(point, GeocodeProblem):
        return await notifications_page(request, 503 if point.unavailable else 400, form=f, problem=point)
    circle = await db(request, tracking_db.add_address, sid, _address_values(f, point))
    if circle is None:
        return await _too_many_addresses(request)
    nearby = await _nearby(request, circle)
    change = SettingsChange(
        "You started tracking an address",
        _circle_lines(circle, point.precision),
        nearby,
        f"Registered offenders within {radius_text(circle.radius_code)} of {circle.label} today",
    )
    await finish(
        request, sid, SubscriberChange(sid, circles=[circle]), change, f"Now tracking “{circle.label}”."
    )
    raise redirect(paths_of(request).address(circle.circle_id))


async def _too_many_addresses(request: web.Request) -> web.Response:
    return await notifications_page(
        request,
        400,
        refused=f"You already track {MAX_ADDRESSES} addresses, the most allowed. "
        "Delete one of them before adding another.",
    )


async def _owned_address(request: web.Request) -> Any:
    address_id = parse_id(request.match_info["address_id"])
    if address_id is None:
        return None
    return await db(request, tracking_db.tracked_row, session_of(request).subscriber_id, address_id)


def _on_owned_address(view: Callable[[web.Request, int, Any], Awaitable[web.Response]]) -> Handler:
    """A logged-in view of one of the subscriber's own tracked addresses: anyone else's is 404."""

    @require_login
    @functools.wraps(view)
    async def wrapper(request: web.Request) -> web.Response:
        row = await _owned_address(request)
        if row is None:
            return not_found(request)
        return await view(request, session_of(request).subscriber_id, row)  # type: ignore[arg-type]

    return wrapper


async def _address_page(request: web.Request, row: Any, status: int = 200, **overrides: Any) -> web.Response:
    nearby = await _nearby(request, circle_of_row(row))
    context = {
        "address": address_view(row),
        "form": AddressForm.of(row),
        "errors": {},
        "problem": None,
        "radius_choices": RADIUS_CHOICES,
        "nearby": nearby,
        "map": paths_of(request).map(row.id),
        "registry_as_of": await registry_as_of_text(request),
    }
    context.update(overrides)
    return render(request, "web/address.html.j2", context, status=status)


@_on_owned_address
async def show_address(request: web.Request, sid: int, row: Any) -> web.Response:
    return await _address_page(request, row)


@_on_owned_address
async def edit_address(request: web.Request, sid: int, row: Any) -> web.Response:
    f = AddressForm.read(await request.post(), runtime_of(request).settings.service_state)
    errors = f.errors()
    if errors:
        return await _address_page(request, row, 400, form=f, errors=errors)
    point: GeocodeResult | None = None
    if not f.same_place(row):
        answer = await geocode_form(request, f)
        if isinstance(answer, GeocodeProblem):
            return await _address_page(
                request, row, 503 if answer.unavailable else 400, form=f, problem=answer
            )
        point = answer
    if (f.label, f.radius) == (row.label, row.radius_code) and point is None:
        await flash(request, "Nothing changed.")
        raise redirect(paths_of(request).address(row.id))
    values = _address_values(f, point)
    if point is not None or radius_m(f.radius) > radius_m(row.radius_code):
        # Moved or widened: it tracks as it now stands from now on, so what was registered
        # inside it before is what was there before tracking (streams/domain/why.py).
        values["created_at"] = clock_of(request)
    result = await db(request, tracking_db.update_address, sid, row.id, values)
    if result is None:
        return not_found(request)
    old, new = result
    wider = point is not None or new.radius_m > old.radius_m
    nearby = await _nearby(request, new) if wider else None
    lines = [
        ("Before", f"{old.label}: {old.one_line}, within {radius_text(old.radius_code)}"),
        ("Now", f"{new.label}: {new.one_line}, within {radius_text(new.radius_code)}"),
    ]
    change = SettingsChange(
        "You changed a tracked address",
        lines,
        nearby,
        f"Registered offenders within {radius_text(new.radius_code)} of {new.label} today",
    )
    await finish(
        request,
        sid,
        SubscriberChange(sid, circles=[new], removed_circles=[old]),
        change,
        f"Saved your changes to “{new.label}”.",
    )
    raise redirect(paths_of(request).address(new.circle_id))


@_on_owned_address
async def delete_address(request: web.Request, sid: int, row: Any) -> web.Response:
    circle = await db(request, tracking_db.delete_address, sid, row.id)
    if circle is None:
        return not_found(request)
    change = SettingsChange("You stopped tracking an address", _circle_lines(circle))
    await finish(
        request,
        sid,
        SubscriberChange(sid, removed_circles=[circle]),
        change,
        f"No longer tracking “{circle.label}”.",
    )
    raise redirect(paths_of(request).of("notifications"))
