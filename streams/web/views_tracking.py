"""Tracking pages: tracked addresses and offenders, registry search and records, the map, unsubscribe."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Mapping
from urllib.parse import quote, urlencode, urlsplit

import structlog
from aiohttp import web
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine

from streams.adapters import accounts, offender_search
from streams.adapters.db import offender_watches, subscribers, tracked_addresses, utcnow
from streams.adapters.gazetteer import display_street
from streams.adapters.mail import MailError
from streams.adapters.mail_message import build_message
from streams.adapters.rendering import environment as mail_environment
from streams.adapters.repository import SubscriberChange, circle_of_row
from streams.adapters.sql import reading
from streams.domain.limits import MAX_ADDRESSES, MAX_OFFENDERS
from streams.domain import radii
from streams.domain.addresses import normalize_address
from streams.domain.geocoding import (
    ADDRESS_POINT,
    INTERPOLATED,
    PROVIDED,
    PROXIMITY_PRECISIONS,
    STREET,
    ZIP_CENTROID,
    GeocodeFailure,
    GeocodeQuery,
    GeocodeResult,
    GeocoderUnavailable,
    Suggestion,
)
from streams.domain.geometry import distance_within
from streams.domain.ids import parse_id
from streams.domain.model import Address, Circle, OffenderState
from streams.services import links
from streams.web.app import (
    LIMITER,
    client_key,
    db,
    flash,
    now,
    publish,
    redirect,
    render,
    require_login,
    services_of,
    session_of,
)
from streams.web.security import content_security_policy
from streams.web.views_account import mail_status

logger = structlog.get_logger()

routes = web.RouteTableDef()

RADIUS_CHOICES: tuple[tuple[str, str], ...] = (
    ("500ft", "500 feet"), ("1000ft", "1,000 feet"), ("0.25mi", "1/4 mile"), ("0.5mi", "1/2 mile"),
    ("1mi", "1 mile"), ("2mi", "2 miles"), ("3mi", "3 miles"), ("5mi", "5 miles"),
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
    ("home", "Home"), ("work", "Work"), ("school", "School"), ("temporary", "Temporary"),
)
ADDRESS_TYPE_TEXT = dict(ADDRESS_TYPES)
SEARCH_FIELDS = ("last_name", "first_name", "address_type", "street", "city", "county", "zip")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ZIP = re.compile(r"[0-9]{5}(-?[0-9]{4})?")  # ASCII only: \d takes any script's digits
_PHOTO_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?")


def _clean(value: Any, limit: int) -> str:
    return " ".join(_CONTROL.sub(" ", str(value or "")).split())[:limit]


# --- database (plain functions, run off the loop through `db`) -------------------------


def _subscriber(engine: Engine, sid: int) -> Any:
    with reading(engine) as conn:
        return conn.execute(
            select(subscribers.c.id, subscribers.c.email, subscribers.c.confirmed, subscribers.c.status)
            .where(subscribers.c.id == sid)
        ).first()


def _is_active(row: Any) -> bool:
    return row is not None and bool(row.confirmed) and row.status == "active"


def _tracked_rows(engine: Engine, sid: int) -> list[Any]:
    with reading(engine) as conn:
        return list(conn.execute(
            select(tracked_addresses).where(tracked_addresses.c.subscriber_id == sid).order_by(tracked_addresses.c.id)
        ))


def _tracked_row(engine: Engine, sid: int, address_id: int) -> Any:
    with reading(engine) as conn:
        return conn.execute(
            select(tracked_addresses).where(
                tracked_addresses.c.id == address_id, tracked_addresses.c.subscriber_id == sid
            )
        ).first()


def _lock_subscriber(conn: Any, sid: int) -> None:
    """Serialize one subscriber's changes, so two tabs cannot both add a fifth (PostgreSQL;
    SQLite writers are serialized already)."""
    conn.execute(select(subscribers.c.id).where(subscribers.c.id == sid).with_for_update())


def _add_address(engine: Engine, sid: int, values: dict[str, Any]) -> Circle | None:
    """The new circle, or None when the subscriber already tracks the most allowed."""
    with engine.begin() as conn:
        _lock_subscriber(conn, sid)
        count = conn.execute(
            select(func.count()).select_from(tracked_addresses).where(tracked_addresses.c.subscriber_id == sid)
        ).scalar_one()
        if count >= MAX_ADDRESSES:
            return None
        new_id = conn.execute(
            tracked_addresses.insert().values(subscriber_id=sid, created_at=utcnow(), **values)
        ).inserted_primary_key[0]
        return circle_of_row(conn.execute(select(tracked_addresses).where(tracked_addresses.c.id == new_id)).one())


def _update_address(engine: Engine, sid: int, address_id: int,
                    values: dict[str, Any]) -> tuple[Circle, Circle] | None:
    with engine.begin() as conn:
        where = (tracked_addresses.c.id == address_id) & (tracked_addresses.c.subscriber_id == sid)
        old = conn.execute(select(tracked_addresses).where(where)).first()
        if old is None:
            return None
        conn.execute(update(tracked_addresses).where(where).values(**values))
        new = conn.execute(select(tracked_addresses).where(where)).one()
        return circle_of_row(old), circle_of_row(new)


def _delete_address(engine: Engine, sid: int, address_id: int) -> Circle | None:
    with engine.begin() as conn:
        where = (tracked_addresses.c.id == address_id) & (tracked_addresses.c.subscriber_id == sid)
        row = conn.execute(select(tracked_addresses).where(where)).first()
        if row is None:
            return None
        conn.execute(delete(tracked_addresses).where(where))
        return circle_of_row(row)


def _watched_ids(engine: Engine, sid: int) -> list[str]:
    with reading(engine) as conn:
        return list(conn.execute(
            select(offender_watches.c.offender_id)
            .where(offender_watches.c.subscriber_id == sid)
            .order_by(offender_watches.c.created_at, offender_watches.c.offender_id)
        ).scalars())


def _add_watch(engine: Engine, sid: int, offender_id: str) -> str:
    """"added", "already" or "full"."""
    with engine.begin() as conn:
        _lock_subscriber(conn, sid)
        current = set(conn.execute(
            select(offender_watches.c.offender_id).where(offender_watches.c.subscriber_id == sid)
        ).scalars())
        if offender_id in current:
            return "already"
        if len(current) >= MAX_OFFENDERS:
            return "full"
        conn.execute(offender_watches.insert().values(subscriber_id=sid, offender_id=offender_id, created_at=utcnow()))
        return "added"


def _delete_watch(engine: Engine, sid: int, offender_id: str) -> bool:
    with engine.begin() as conn:
        return conn.execute(
            delete(offender_watches).where(
                offender_watches.c.subscriber_id == sid, offender_watches.c.offender_id == offender_id
            )
        ).rowcount == 1


def _unsubscribe(engine: Engine, sid: int, when: datetime) -> SubscriberChange | None:
    """Stop all mail; the tracked rows stay (re-activating restores them) but leave the stream."""
    with engine.begin() as conn:
        row = conn.execute(select(subscribers.c.status).where(subscribers.c.id == sid)).first()
        if row is None:
            return None
        if row.status != "unsubscribed":
            conn.execute(
                update(subscribers).where(subscribers.c.id == sid).values(status="unsubscribed", unsubscribed_at=when)
            )
        circles = [circle_of_row(r) for r in conn.execute(
            select(tracked_addresses).where(tracked_addresses.c.subscriber_id == sid).order_by(tracked_addresses.c.id)
        )]
        watches = list(conn.execute(
            select(offender_watches.c.offender_id).where(offender_watches.c.subscriber_id == sid)
        ).scalars())
    return SubscriberChange(sid, [], circles, [], sorted(watches))


def _public_states(engine: Engine, ids: list[str]) -> dict[str, OffenderState | None]:
    return {oid: offender_search.public_offender(engine, oid) for oid in ids}


# --- what pages and mails show ---------------------------------------------------------


def radius_text(code: str) -> str:
    return RADIUS_TEXT.get(code, code)


def precision_text(precision: str | None) -> str:
    return PRECISION_TEXT.get(precision or PROVIDED, "location approximate")


def distance_text(metres: float) -> str:
    feet = metres / radii.FOOT_M
    if feet < 1000:
        return f"{max(10, round(feet, -1)):.0f} feet"
    return f"{metres / radii.MILE_M:.1f} miles"


def dob_text(value: str) -> str:
    try:
        return date.fromisoformat(value).strftime("%m/%d/%Y")
    except (TypeError, ValueError):
        return value or "not listed"


def listed_name(last: str, first: str, middle: str | None = None, suffix: str | None = None) -> str:
    """"Smith Jr., John Mitchell", the registry's own order."""
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


def record_path(offender_id: str) -> str:
    return f"/offenders/{quote(offender_id, safe='')}"


def map_path(tracked_id: int | None = None, offender_id: str | None = None) -> str:
    q: dict[str, Any] = {}
    if tracked_id is not None:
        q["tracked"] = tracked_id
    if offender_id is not None:
        q["offender"] = offender_id
    return "/map?" + urlencode(q)


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


def nearby_rows(found: list[tuple[OffenderState, Address, float]], tracked_id: int) -> list[Nearby]:
    rows = []
    for state, a, d in found:
        p = state.profile
        assert p is not None
        rows.append(Nearby(
            state.offender_id, p.display_name, ADDRESS_TYPE_TEXT.get(a.type, a.type), address_line(a),
            p.main_offense or "not listed", radii.proximity_band(d), distance_text(d),
            record_path(state.offender_id), map_path(tracked_id, state.offender_id),
        ))
    return rows


def _address_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "label": row.label, "one_line": f"{row.street}, {row.city}, {row.state} {row.zip}".strip(),
        "radius": radius_text(row.radius_code), "precision": precision_text(row.precision),
        "approximate": row.precision not in PROXIMITY_PRECISIONS,
    }


def _offender_view(oid: str, state: OffenderState | None) -> dict[str, Any]:
    delete_path = f"/notifications/offenders/{quote(oid, safe='')}/delete"
    if state is None or state.profile is None:
        # Removed or made non-public since: the subscriber may still drop the watch.
        return {"public": False, "name": "No longer on the public registry", "dob": "", "delete": delete_path}
    p = state.profile
    return {"public": True, "name": p.display_name, "dob": dob_text(p.date_of_birth),
            "record": record_path(oid), "delete": delete_path}


# --- the "your settings changed" e-mail ------------------------------------------------


@dataclass
class SettingsChange:
    """What one request changed, worded for the confirmation e-mail."""

    title: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    nearby: list[Nearby] | None = None  # after adding or widening: who is inside now
    nearby_title: str = ""


def _when_text(t: datetime) -> str:
    return f"{t:%B} {t.day}, {t.year} at {t.hour % 12 or 12}:{t:%M %p %Z}"


def confirmation_message(settings: Any, to_addr: str, subscriber_id: int, change: SettingsChange,
                         when: datetime) -> EmailMessage:
    base = settings.public_url.rstrip("/")
    unsubscribe = links.unsubscribe_url(settings, subscriber_id)
    subject = "Your registry e-mail alert settings changed"
    context = {
        "subject": subject, "change": change, "base": base, "unsubscribe_url": unsubscribe,
        "settings_url": f"{base}/notifications", "login_url": f"{base}/login",
        "when": _when_text(when.astimezone(settings.zone)),
    }
    env = mail_environment()
    return build_message(
        from_addr=settings.mail_from, to_addr=to_addr, subject=subject,
        text=env.get_template("mail/settings_changed.txt.j2").render(context),
        html=env.get_template("mail/settings_changed.html.j2").render(context),
        headers=(
            ("Date", format_datetime(when)),
            ("Message-ID", make_msgid("settings", domain=urlsplit(base).hostname or "localhost")),
            ("List-Unsubscribe", f"<{unsubscribe}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Auto-Submitted", "auto-generated"),
        ),
    )


async def _confirm_by_mail(request: web.Request, sub: Any, change: SettingsChange) -> bool:
    services = services_of(request)
    msg = confirmation_message(services.settings, sub.email, sub.id, change, now())
    try:
        await services.mail.send(msg)
    except (MailError, OSError) as exc:
        logger.warning("settings confirmation not sent", error=type(exc).__name__)
        return False
    return True


async def _finish(request: web.Request, sid: int, published: SubscriberChange, change: SettingsChange,
                  message: str) -> None:
    """Publish (only what an active subscriber may receive), confirm by e-mail, and say so."""
    sub = await db(request, _subscriber, sid)
    if not _is_active(sub):
        published = SubscriberChange(sid, [], published.removed_circles, [], published.removed_watches)
    if published.circles or published.removed_circles or published.watches or published.removed_watches:
        await publish(request, published)
    mailed = sub is not None and await _confirm_by_mail(request, sub, change)
    tail = (" A confirmation e-mail is on its way." if mailed
            else " We could not send the confirmation e-mail just now; your change is saved all the same.")
    await flash(request, message + tail)


# --- the notifications page ------------------------------------------------------------


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
            label=_clean(form.get("label"), 100), street=_clean(form.get("street"), 200),
            city=_clean(form.get("city"), 100), state=_clean(form.get("state"), 20).upper() or default_state,
            zip=_clean(form.get("zip"), 10), radius=_clean(form.get("radius"), 8),
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


async def _notifications_context(request: web.Request, sid: int) -> dict[str, Any]:
    rows = await db(request, _tracked_rows, sid)
    ids = await db(request, _watched_ids, sid)
    states = await db(request, _public_states, ids)
    sub = await db(request, _subscriber, sid)
    acct = await db(request, accounts.account, sid)
    return {
        "mail": mail_status(request, acct) if acct else {},
        "addresses": [_address_view(r) for r in rows],
        "offenders": [_offender_view(oid, states[oid]) for oid in ids],
        "max_addresses": MAX_ADDRESSES, "max_offenders": MAX_OFFENDERS,
        "radius_choices": RADIUS_CHOICES, "status": sub.status if sub else "active",
        "form": AddressForm(state=services_of(request).settings.service_state), "errors": {},
        "problem": None, "refused": None,
    }


async def _notifications_page(request: web.Request, status: int = 200, **overrides: Any) -> web.Response:
    context = await _notifications_context(request, session_of(request).subscriber_id)  # type: ignore[arg-type]
    context.update(overrides)
    return render(request, "web/notifications.html.j2", context, status=status)


@routes.get("/notifications")
@require_login
async def notifications(request: web.Request) -> web.Response:
    return await _notifications_page(request)


async def _geocode(request: web.Request, f: AddressForm) -> GeocodeResult | GeocodeProblem:
    services = services_of(request)
    query = GeocodeQuery(f.street, f.city, f.state, f.zip)
    try:
        answer = await asyncio.wait_for(services.geocoder.geocode(query), services.settings.geocode_timeout_s)
    except (GeocoderUnavailable, asyncio.TimeoutError):
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
    """"42 HITT ST, COLUMBIA" as a person writes it; text already in mixed case is left alone."""
    if s.street.isupper():
        s = replace(s, street=display_street(s.street))
    if s.city.isupper():
        s = replace(s, city=" ".join(w.capitalize() for w in s.city.split()))
    return s


def _address_values(f: AddressForm, point: GeocodeResult | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "label": f.label, "street": f.street, "city": f.city, "state": f.state, "zip": f.zip,
        "radius_code": f.radius, "normalized": normalize_address(f.street, f.city, f.state, f.zip),
    }
    if point is not None:
        values |= {"lat": point.lat, "lon": point.lon, "precision": point.precision}
    return values


def _nearby_change(engine: Engine, circle: Circle) -> list[Nearby]:
    found = offender_search.offenders_within(engine, circle.lat, circle.lon, circle.radius_m)
    return nearby_rows(found, circle.circle_id)


def _circle_lines(c: Circle, precision: str | None = None) -> list[tuple[str, str]]:
    lines = [("Name", c.label), ("Address", c.one_line), ("Distance", radius_text(c.radius_code))]
    if precision is not None:
        lines.append(("Map location", precision_text(precision)))
    return lines


@routes.post("/notifications/addresses")
@require_login
async def add_address(request: web.Request) -> web.Response:
    sid: int = session_of(request).subscriber_id  # type: ignore[assignment]
    services = services_of(request)
    f = AddressForm.read(await request.post(), services.settings.service_state)
    rows = await db(request, _tracked_rows, sid)
    if len(rows) >= MAX_ADDRESSES:
        return await _too_many_addresses(request)
    errors = f.errors()
    if errors:
        return await _notifications_page(request, 400, form=f, errors=errors)
    point = await _geocode(request, f)
    if isinstance(point, GeocodeProblem):
        return await _notifications_page(request, 503 if point.unavailable else 400, form=f, problem=point)
    circle = await db(request, _add_address, sid, _address_values(f, point))
    if circle is None:
        return await _too_many_addresses(request)
    nearby = await db(request, _nearby_change, circle)
    change = SettingsChange(
        "You started tracking an address", _circle_lines(circle, point.precision), nearby,
        f"Registered offenders within {radius_text(circle.radius_code)} of {circle.label} today",
    )
    await _finish(request, sid, SubscriberChange(sid, circles=[circle]), change,
                  f"Now tracking “{circle.label}”.")
    raise redirect(f"/notifications/addresses/{circle.circle_id}")


async def _too_many_addresses(request: web.Request) -> web.Response:
    return await _notifications_page(
        request, 400,
        refused=f"You already track {MAX_ADDRESSES} addresses, the most allowed. "
                "Delete one of them before adding another.",
    )


async def _owned_address(request: web.Request) -> Any:
    address_id = parse_id(request.match_info["address_id"])
    if address_id is None:
        return None
    return await db(request, _tracked_row, session_of(request).subscriber_id, address_id)


async def _address_page(request: web.Request, row: Any, status: int = 200, **overrides: Any) -> web.Response:
    circle = circle_of_row(row)
    nearby = await db(request, _nearby_change, circle)
    context = {
        "address": _address_view(row), "form": AddressForm.of(row), "errors": {}, "problem": None,
        "radius_choices": RADIUS_CHOICES, "nearby": nearby, "map": map_path(row.id),
    }
    context.update(overrides)
    return render(request, "web/address.html.j2", context, status=status)


@routes.get(r"/notifications/addresses/{address_id:\d+}")
@require_login
async def show_address(request: web.Request) -> web.Response:
    row = await _owned_address(request)
    if row is None:
        return _not_found(request)
    return await _address_page(request, row)


@routes.post(r"/notifications/addresses/{address_id:\d+}")
@require_login
async def edit_address(request: web.Request) -> web.Response:
    sid: int = session_of(request).subscriber_id  # type: ignore[assignment]
    row = await _owned_address(request)
    if row is None:
        return _not_found(request)
    f = AddressForm.read(await request.post(), services_of(request).settings.service_state)
    errors = f.errors()
    if errors:
        return await _address_page(request, row, 400, form=f, errors=errors)
    point: GeocodeResult | None = None
    if not f.same_place(row):
        answer = await _geocode(request, f)
        if isinstance(answer, GeocodeProblem):
            return await _address_page(request, row, 503 if answer.unavailable else 400, form=f, problem=answer)
        point = answer
    if (f.label, f.radius) == (row.label, row.radius_code) and point is None:
        await flash(request, "Nothing changed.")
        raise redirect(f"/notifications/addresses/{row.id}")
    result = await db(request, _update_address, sid, row.id, _address_values(f, point))
    if result is None:
        return _not_found(request)
    old, new = result
    wider = point is not None or new.radius_m > old.radius_m
    nearby = await db(request, _nearby_change, new) if wider else None
    lines = [("Before", f"{old.label}: {old.one_line}, within {radius_text(old.radius_code)}"),
             ("Now", f"{new.label}: {new.one_line}, within {radius_text(new.radius_code)}")]
    change = SettingsChange(
        "You changed a tracked address", lines, nearby,
        f"Registered offenders within {radius_text(new.radius_code)} of {new.label} today",
    )
    await _finish(request, sid, SubscriberChange(sid, circles=[new], removed_circles=[old]), change,
                  f"Saved your changes to “{new.label}”.")
    raise redirect(f"/notifications/addresses/{new.circle_id}")


@routes.post(r"/notifications/addresses/{address_id:\d+}/delete")
@require_login
async def delete_address(request: web.Request) -> web.Response:
    sid: int = session_of(request).subscriber_id  # type: ignore[assignment]
    row = await _owned_address(request)
    if row is None:
        return _not_found(request)
    circle = await db(request, _delete_address, sid, row.id)
    if circle is None:
        return _not_found(request)
    change = SettingsChange("You stopped tracking an address", _circle_lines(circle))
    await _finish(request, sid, SubscriberChange(sid, removed_circles=[circle]), change,
                  f"No longer tracking “{circle.label}”.")
    raise redirect("/notifications")


# --- tracked offenders -----------------------------------------------------------------


def _offender_lines(state: OffenderState) -> list[tuple[str, str]]:
    p = state.profile
    assert p is not None
    return [("Name", p.display_name), ("Date of birth", dob_text(p.date_of_birth))]


@routes.post("/notifications/offenders")
@require_login
async def add_watch(request: web.Request) -> web.Response:
    sid: int = session_of(request).subscriber_id  # type: ignore[assignment]
    offender_id = _clean((await request.post()).get("offender_id"), 64)
    state = await db(request, offender_search.public_offender, offender_id) if offender_id else None
    if state is None:
        return _no_record(request)
    outcome = await db(request, _add_watch, sid, offender_id)
    if outcome == "full":
        return await _notifications_page(
            request, 400,
            refused=f"You already track {MAX_OFFENDERS} offenders, the most allowed. "
                    "Remove one of them before tracking another.",
        )
    if outcome == "already":
        await flash(request, f"You already track {state.profile.display_name}.")  # type: ignore[union-attr]
        raise redirect("/notifications")
    change = SettingsChange("You started tracking an offender", _offender_lines(state))
    await _finish(request, sid, SubscriberChange(sid, watches=[offender_id]), change,
                  f"Now tracking {state.profile.display_name}.")  # type: ignore[union-attr]
    raise redirect("/notifications")


@routes.post("/notifications/offenders/{offender_id}/delete")
@require_login
async def delete_watch(request: web.Request) -> web.Response:
    sid: int = session_of(request).subscriber_id  # type: ignore[assignment]
    offender_id = request.match_info["offender_id"]
    state = await db(request, offender_search.public_offender, offender_id)
    if not await db(request, _delete_watch, sid, offender_id):
        return _not_found(request)
    lines = _offender_lines(state) if state else [("Offender", "one no longer on the public registry")]
    change = SettingsChange("You stopped tracking an offender", lines)
    name = state.profile.display_name if state and state.profile else "that offender"
    await _finish(request, sid, SubscriberChange(sid, removed_watches=[offender_id]), change,
                  f"No longer tracking {name}.")
    raise redirect("/notifications")


# --- registry search and records -------------------------------------------------------


def _not_found(request: web.Request) -> web.Response:
    return render(request, "web/error.html.j2", {
        "title": "Page not found", "message": "There is nothing here, or it is not yours to see.",
    }, status=404)


def _no_record(request: web.Request) -> web.Response:
    """One page for unknown, removed and juvenile records: it must not tell them apart."""
    return render(request, "web/error.html.j2", {
        "title": "No public record",
        "message": "There is no public registry record at this address. Search the registry to find a record.",
    }, status=404)


def _photo_origins(states: list[OffenderState]) -> list[str]:
    origins = []
    for s in states:
        url = s.profile.photo_url if s.profile else None
        if url and (m := _PHOTO_ORIGIN.match(url)) and m.group(0) not in origins:
            origins.append(m.group(0))
    return origins


def _allow_photos(request: web.Request, response: web.Response, states: list[OffenderState]) -> web.Response:
    """Registry photos live on the registry's own host: allow exactly those hosts for images."""
    origins = _photo_origins(states)
    tiles = services_of(request).settings.map_tiles_url
    if tiles:
        origins.append("{0.scheme}://{0.netloc}".format(urlsplit(tiles)))
    if origins:
        response.headers["Content-Security-Policy"] = content_security_policy(" ".join(origins))
    return response


def photo_of(state: OffenderState) -> str | None:
    url = state.profile.photo_url if state.profile else None
    return url if url and _PHOTO_ORIGIN.match(url) else None


def _hit_view(hit: offender_search.SearchHit, watched: set[str]) -> dict[str, Any]:
    p = hit.state.profile
    assert p is not None
    return {
        "id": hit.state.offender_id,
        "name": listed_name(p.last_name, p.first_name, p.middle_name, p.suffix),
        "aliases": [listed_name(a.last_name, a.first_name) for a in p.aliases],
        "photo": photo_of(hit.state), "compliance": p.compliance, "tier": p.tier,
        "addresses": [{"type": ADDRESS_TYPE_TEXT.get(a.type, a.type), "line": address_line(a)} for a in hit.addresses],
        "record": record_path(hit.state.offender_id), "watched": hit.state.offender_id in watched,
    }


async def _search_page(request: web.Request, fields_in: Mapping[str, Any], by_identifier: bool) -> web.Response:
    criteria = {k: _clean(fields_in.get(k), 100) for k in SEARCH_FIELDS}
    if criteria["address_type"] not in ADDRESS_TYPE_TEXT:
        criteria["address_type"] = ""
    # Read, used once, never echoed or kept: not in the page, the form or any log.
    identifier = _clean(fields_in.get("online_identifier"), 200) if by_identifier else ""
    s = session_of(request)
    watched = set(await db(request, _watched_ids, s.subscriber_id)) if s.logged_in else set()
    context: dict[str, Any] = {
        "criteria": criteria, "address_types": ADDRESS_TYPES, "searched": False, "hits": [], "more": False,
        "by_identifier": by_identifier, "watched_count": len(watched), "max_offenders": MAX_OFFENDERS,
        "message": None,
    }
    wanted = identifier if by_identifier else any(v for k, v in criteria.items() if k != "address_type")
    if not wanted:
        if by_identifier or any(k in fields_in for k in SEARCH_FIELDS):
            context["message"] = ("Enter the online identifier to look for." if by_identifier
                                  else "Fill in at least one field besides the address type.")
        return render(request, "web/offender_search.html.j2", context, status=400 if context["message"] else 200)
    if not request.app[LIMITER].allow("search:client", client_key(request)):
        context["message"] = "Too many searches from your connection in the last minute. Wait a moment and try again."
        return render(request, "web/offender_search.html.j2", context, status=429)
    if by_identifier:
        result = await db(request, _search_identifier, identifier)
    else:
        result = await db(request, _search_fields, criteria)
    context.update(searched=True, hits=[_hit_view(h, watched) for h in result.hits], more=result.more)
    response = render(request, "web/offender_search.html.j2", context)
    return _allow_photos(request, response, [h.state for h in result.hits])


def _search_fields(engine: Engine, criteria: dict[str, str]) -> offender_search.SearchResult:
    return offender_search.search(engine, **criteria)


def _search_identifier(engine: Engine, identifier: str) -> offender_search.SearchResult:
    return offender_search.search(engine, online_identifier=identifier)


@routes.get("/offenders/search")
async def search_page(request: web.Request) -> web.Response:
    return await _search_page(request, request.query, by_identifier=False)


@routes.post("/offenders/search")
async def search_by_identifier(request: web.Request) -> web.Response:
    # POST, so the identifier stays out of addresses, history and server logs.
    return await _search_page(request, await request.post(), by_identifier=True)


def _record_view(state: OffenderState) -> dict[str, Any]:
    p = state.profile
    assert p is not None
    height = f"{p.height_in // 12} ft {p.height_in % 12} in" if p.height_in else None
    return {
        "id": state.offender_id, "name": p.display_name, "record": record_path(state.offender_id),
        "listed": listed_name(p.last_name, p.first_name, p.middle_name, p.suffix),
        "aliases": [listed_name(a.last_name, a.first_name) for a in p.aliases],
        "dob": dob_text(p.date_of_birth), "sex": p.sex, "race": p.race, "height": height,
        "weight": f"{p.weight_lb} lb" if p.weight_lb else None, "tier": p.tier, "compliance": p.compliance,
        "photo": photo_of(state),
        "offenses": [{"description": o.description, "code": o.code, "convicted_on": dob_text(o.convicted_on)
                      if o.convicted_on else None} for o in p.offenses],
        "addresses": [{"type": ADDRESS_TYPE_TEXT.get(a.type, a.type), "line": address_line(a),
                       "approximate": a.has_point and not a.locates, "unmapped": not a.has_point}
                      for a in state.addresses],
        "mappable": any(a.has_point for a in state.addresses),
        "map": map_path(offender_id=state.offender_id),
    }


@routes.get("/offenders/{offender_id}")
async def offender_record(request: web.Request) -> web.Response:
    state = await db(request, offender_search.public_offender, request.match_info["offender_id"])
    if state is None:
        return _no_record(request)
    s = session_of(request)
    watched = await db(request, _watched_ids, s.subscriber_id) if s.logged_in else []
    response = render(request, "web/offender.html.j2", {
        "r": _record_view(state), "watched": state.offender_id in watched,
        "can_track": len(watched) < MAX_OFFENDERS, "max_offenders": MAX_OFFENDERS,
    })
    return _allow_photos(request, response, [state])


# --- the map ---------------------------------------------------------------------------


def _attribution(tiles: str) -> str:
    if not tiles:
        return ""
    host = urlsplit(tiles).hostname or ""
    if host.endswith("openstreetmap.org"):
        return "© OpenStreetMap contributors"
    return f"Map tiles: {host}"


def _map_place(state: OffenderState, a: Address, circle: Circle | None) -> dict[str, Any]:
    p = state.profile
    assert p is not None and a.lat is not None and a.lon is not None
    place: dict[str, Any] = {
        "name": p.display_name, "type": ADDRESS_TYPE_TEXT.get(a.type, a.type), "address": address_line(a),
        "lat": a.lat, "lon": a.lon, "approximate": not a.locates, "record": record_path(state.offender_id),
    }
    if circle is not None:
        d, inside = distance_within(circle.lat, circle.lon, circle.radius_m, a.lat, a.lon)
        # A coarse point could be far off: no distance that might reassure or alarm wrongly.
        place["distance"] = f"about {distance_text(d)} away" if a.locates else "no distance given"
        place["inside"] = a.locates and inside
    return place


@routes.get("/map")
async def map_page(request: web.Request) -> web.Response:
    s = session_of(request)
    tracked_row = None
    raw_tracked = request.query.get("tracked", "")
    tracked_id = parse_id(raw_tracked)
    if s.logged_in and tracked_id is not None:
        # Someone else's address is simply left off: the link may have been forwarded.
        tracked_row = await db(request, _tracked_row, s.subscriber_id, tracked_id)
    state = None
    if oid := request.query.get("offender", ""):
        state = await db(request, offender_search.public_offender, oid)
        if state is None:
            return _no_record(request)
    if tracked_row is None and state is None:
        return _not_found(request)

    circle = circle_of_row(tracked_row) if tracked_row is not None else None
    tracked = None
    if circle is not None:
        tracked = {"label": circle.label, "address": circle.one_line, "lat": circle.lat, "lon": circle.lon,
                   "radius_m": circle.radius_m, "radius": radius_text(circle.radius_code),
                   "precision": precision_text(tracked_row.precision)}
    if state is not None:
        people = [(state, a) for a in state.addresses if a.has_point]
        unmapped = [a for a in state.addresses if not a.has_point]
    else:
        assert circle is not None
        found = await db(request, offender_search.offenders_within, circle.lat, circle.lon, circle.radius_m)
        people = [(st, a) for st, a, _ in found]
        unmapped = []
    places = [_map_place(st, a, circle) for st, a in people]
    tiles = services_of(request).settings.map_tiles_url
    data = {"tiles": tiles, "attribution": _attribution(tiles), "tracked": tracked, "places": places}
    return render(request, "web/map.html.j2", {
        "tracked": tracked, "places": places, "offender": _record_view(state) if state else None,
        "unmapped": [{"type": ADDRESS_TYPE_TEXT.get(a.type, a.type), "line": address_line(a)} for a in unmapped],
        "data": data,
    })


# --- one-click unsubscribe (RFC 8058) --------------------------------------------------


def _token_subscriber(request: web.Request) -> int | None:
    return links.verify_unsubscribe_token(services_of(request).settings.secret_key, request.match_info["token"])


def _bad_link(request: web.Request) -> web.Response:
    return render(request, "web/error.html.j2", {
        "title": "This link does not work",
        "message": "The unsubscribe link is incomplete or was changed. Use the link from your most recent e-mail, "
                   "or log in and stop the e-mails from My account.",
    }, status=400)


@routes.get("/unsubscribe/{token}")
async def unsubscribe_page(request: web.Request) -> web.Response:
    # Mail programs and scanners fetch links on their own: a GET only asks.
    sid = _token_subscriber(request)
    if sid is None:
        return _bad_link(request)
    sub = await db(request, _subscriber, sid)
    return render(request, "web/unsubscribe.html.j2", {
        "done": False, "already": sub is None or sub.status == "unsubscribed", "action": request.path,
    })


@routes.post("/unsubscribe/{token}")
async def unsubscribe(request: web.Request) -> web.Response:
    sid = _token_subscriber(request)
    if sid is None:
        if "from_page" in await request.post():
            return _bad_link(request)
        return web.Response(status=400, text="This unsubscribe link is not valid.\n")
    change = await db(request, _unsubscribe, sid, now())
    if change is not None and (change.removed_circles or change.removed_watches):
        await publish(request, change)
    if "from_page" in await request.post():
        return render(request, "web/unsubscribe.html.j2", {"done": True, "already": False, "action": request.path})
    # A mail program's one-click POST: a plain answer nobody has to read.
    return web.Response(text="You are unsubscribed: no more registry alert e-mails will be sent.\n")
