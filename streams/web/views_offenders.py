"""Registry search, offender records, and the offenders a subscriber tracks (watches)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web
from markupsafe import Markup

from streams.adapters import offender_search, tracking_db, why_facts
from streams.adapters.search_index import Hit
from streams.adapters.subscriber_store import SubscriberChange
from streams.domain.limits import MAX_OFFENDERS
from streams.domain.model import OffenderState
from streams.web.confirmations import SettingsChange, finish
from streams.web.display import (
    ADDRESS_TYPE_TEXT,
    ADDRESS_TYPES,
    PHOTO_ORIGIN,
    address_line,
    address_type_text,
    clean,
    dob_text,
    listed_name,
    photo_of,
    record_view,
)
from streams.web.keys import LIMITER, client_key, db, flash, runtime_of, search_index, session_of
from streams.web.paths import Paths, paths_of
from streams.web.registry_dates import registry_as_of_text
from streams.web.responses import no_record, not_found, redirect, render, require_login
from streams.web.security import content_security_policy
from streams.web.views_addresses import notifications_page
from streams.web.views_why import distance_rows

SEARCH_FIELDS = ("last_name", "first_name", "address_type", "street", "city", "county", "zip")


# --- tracked offenders -------------------------------------------------------------------


def _offender_lines(state: OffenderState) -> list[tuple[str, str]]:
    p = state.profile
    assert p is not None
    return [("Name", p.display_name), ("Date of birth", dob_text(p.date_of_birth))]


@require_login
async def add_watch(request: web.Request) -> web.Response:
    sid: int = session_of(request).subscriber_id  # type: ignore[assignment]
    offender_id = clean((await request.post()).get("offender_id"), 64)
    state = await db(request, offender_search.public_offender, offender_id) if offender_id else None
    if state is None:
        return no_record(request)
    outcome = await db(request, tracking_db.add_watch, sid, offender_id)
    if outcome == tracking_db.FULL:
        return await notifications_page(
            request,
            400,
            refused=f"You already track {MAX_OFFENDERS} offenders, the most allowed. "
            "Remove one of them before tracking another.",
        )
    if outcome == tracking_db.ALREADY:
        await flash(request, f"You already track {state.profile.display_name}.")
        raise redirect(paths_of(request).of("notifications"))
    change = SettingsChange("You started tracking an offender", _offender_lines(state))
    await finish(
        request,
        sid,
        SubscriberChange(sid, watches=[offender_id]),
        change,
        f"Now tracking {state.profile.display_name}.",
    )
    raise redirect(paths_of(request).of("notifications"))


@require_login
async def delete_watch(request: web.Request) -> web.Response:
    sid: int = session_of(request).subscriber_id  # type: ignore[assignment]
    offender_id = request.match_info["offender_id"]
    state = await db(request, offender_search.public_offender, offender_id)
    if not await db(request, tracking_db.delete_watch, sid, offender_id):
        return not_found(request)
    lines = _offender_lines(state) if state else [("Offender", "one no longer on the public registry")]
    change = SettingsChange("You stopped tracking an offender", lines)
    name = state.profile.display_name if state and state.profile else "that offender"
    await finish(
        request,
        sid,
        SubscriberChange(sid, removed_watches=[offender_id]),
        change,
        f"No longer tracking {name}.",
    )
    raise redirect(paths_of(request).of("notifications"))


# --- photos ------------------------------------------------------------------------------


def photo_origins(states: list[OffenderState]) -> list[str]:
    origins: list[str] = []
    for s in states:
        url = s.profile.photo_url if s.profile else None
        if url and (m := PHOTO_ORIGIN.match(url)) and m.group(0) not in origins:
            origins.append(m.group(0))
    return origins


def allow_photos(request: web.Request, response: web.Response, origins: list[str]) -> web.Response:
    """Registry photos live on the registry's own host: allow exactly those hosts for images."""
    origins = list(origins)
    tiles = runtime_of(request).settings.map_tiles_url
    if tiles:
        origins.append("{0.scheme}://{0.netloc}".format(urlsplit(tiles)))
    if origins:
        response.headers["Content-Security-Policy"] = content_security_policy(" ".join(origins))
    return response


# --- registry search ---------------------------------------------------------------------


@dataclass(frozen=True)
class SearchRow:
    """What a result row shows of a record, rendered when the index loads it: a search then
    only picks the matching addresses and joins strings."""

    cells: Markup  # the photo and the name (with aliases, compliance)
    addresses: tuple[str, ...]  # one list item's HTML per registered address, in the record's order
    all_addresses: Markup  # all of them, as a search without address fields lists them
    name: str
    record: str
    photo_origin: str | None


def search_row(env: jinja2.Environment, paths: Paths) -> Callable[[OffenderState], SearchRow]:
    macros = env.get_template("web/_search_row.html.j2").module

    def row(state: OffenderState) -> SearchRow:
        p = state.profile
        assert p is not None
        name = listed_name(p.last_name, p.first_name, p.middle_name, p.suffix)
        photo = photo_of(state)
        record = paths.record(state.offender_id)
        cells = macros.cells(  # type: ignore[attr-defined]
            name, record, photo, [listed_name(a.last_name, a.first_name) for a in p.aliases], p.compliance
        )
        addresses = tuple(
            macros.address(address_type_text(a), address_line(a))  # type: ignore[attr-defined]
            for a in state.addresses
        )
        return SearchRow(
            Markup(cells),
            tuple(map(str, addresses)),
            Markup("".join(addresses)),
            name,
            record,
            photo_origins([state])[0] if photo else None,
        )

    return row


def _hit(hit: Hit, watched: set[str]) -> tuple[Markup, Markup, str, str, bool]:
    row: SearchRow = hit.record.view
    oid = hit.record.offender_id
    if hit.addresses == hit.record.all_positions:
        addresses = row.all_addresses
    else:  # items rendered (and escaped) when the record was loaded
        addresses = Markup("".join([row.addresses[i] for i in hit.addresses]))
    return row.cells, addresses, oid, row.name, oid in watched


async def _search_page(
    request: web.Request, fields_in: Mapping[str, Any], by_identifier: bool
) -> web.Response:
    criteria = {k: clean(fields_in.get(k), 100) for k in SEARCH_FIELDS}
    if criteria["address_type"] not in ADDRESS_TYPE_TEXT:
        criteria["address_type"] = ""
    # Read, used once, never echoed or kept: not in the page, the form or any log.
    identifier = clean(fields_in.get("online_identifier"), 200) if by_identifier else ""
    s = session_of(request)
    watched = set(await db(request, tracking_db.watched_ids, s.subscriber_id)) if s.logged_in else set()
    context: dict[str, Any] = {
        "criteria": criteria,
        "address_types": ADDRESS_TYPES,
        "searched": False,
        "hits": [],
        "more": False,
        "by_identifier": by_identifier,
        "watched_count": len(watched),
        "max_offenders": MAX_OFFENDERS,
        "message": None,
    }
    wanted = identifier if by_identifier else any(v for k, v in criteria.items() if k != "address_type")
    if not wanted:
        if by_identifier or any(k in fields_in for k in SEARCH_FIELDS):
            context["message"] = (
                "Enter the online identifier to look for."
                if by_identifier
                else "Fill in at least one field besides the address type."
            )
        return render(
            request, "web/offender_search.html.j2", context, status=400 if context["message"] else 200
        )
    if not request.app[LIMITER].allow("search:client", client_key(request)):
        context["message"] = (
            "Too many searches from your connection in the last minute. Wait a moment and try again."
        )
        return render(request, "web/offender_search.html.j2", context, status=429)
    index = await search_index(request)
    # SEARCH_FIELDS are the search's text fields: `limit`, its one int, is never among them.
    found = (
        index.search(online_identifier=identifier) if by_identifier else index.search(**criteria)  # type: ignore[arg-type]
    )
    context.update(
        searched=True,
        hits=[_hit(h, watched) for h in found.hits],
        more=found.more,
        registry_as_of=await registry_as_of_text(request),
    )
    response = render(request, "web/offender_search.html.j2", context)
    origins = list(dict.fromkeys(o for h in found.hits if (o := h.record.view.photo_origin)))
    return allow_photos(request, response, origins)


async def search_page(request: web.Request) -> web.Response:
    return await _search_page(request, request.query, by_identifier=False)


async def search_by_identifier(request: web.Request) -> web.Response:
    # POST, so the identifier stays out of addresses, history and server logs.
    return await _search_page(request, await request.post(), by_identifier=True)


# --- records -----------------------------------------------------------------------------


async def offender_record(request: web.Request) -> web.Response:
    state = await db(request, offender_search.public_offender, request.match_info["offender_id"])
    if state is None:
        return no_record(request)
    s = session_of(request)
    watched = await db(request, tracking_db.watched_ids, s.subscriber_id) if s.logged_in else []
    # Only a signed-in subscriber's own tracked addresses, measured as the alerts measure.
    places = await db(request, why_facts.tracked_places, s.subscriber_id) if s.logged_in else []
    response = render(
        request,
        "web/offender.html.j2",
        {
            "r": record_view(state, paths_of(request)),
            "watched": state.offender_id in watched,
            "can_track": len(watched) < MAX_OFFENDERS,
            "max_offenders": MAX_OFFENDERS,
            "distances": distance_rows(places, state),
            "why": paths_of(request).why(state.offender_id),
            "registry_as_of": await registry_as_of_text(request),
        },
    )
    return allow_photos(request, response, photo_origins([state]))
