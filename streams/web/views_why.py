"""'Why didn't I hear about …?': a subscriber asks about one offender, by record number or name."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.engine import Engine

from streams.adapters import accounts, offender_search, tracking_db, why_facts
from streams.domain.digest_schedule import next_digest_at
from streams.domain.model import OffenderState
from streams.domain.why import Reason, TrackedPlace, explain, placements
from streams.web.display import address_line, address_type_text, clean, dob_text, precision_text
from streams.web.keys import LIMITER, client_key, clock_of, db, runtime_of, search_index, session_of
from streams.web.paths import paths_of
from streams.web.responses import render, require_login

MOST_CHOICES = 20


def _reason_view(r: Reason) -> dict[str, Any]:
    a = r.address
    return {
        "code": r.code,
        "type": address_type_text(a) if a else "",
        "line": address_line(a) if a else "",
        "distance_m": r.distance_m,
        "beyond_m": r.beyond_m,
        "when": r.when,
        "listed_by": r.listed_by,
    }


def _place_view(p: TrackedPlace) -> dict[str, Any]:
    return {"label": p.label, "radius": p.radius_code, "precision": precision_text(p.precision)}


def distance_rows(places: list[TrackedPlace], state: OffenderState) -> list[dict[str, Any]]:
    """The record page's table: each tracked address against each registered address."""
    return [
        {
            **_place_view(p.place),
            "type": address_type_text(p.address),
            "line": address_line(p.address),
            "distance_m": p.distance_m,
            "inside": p.inside,
            "unusable": p.unusable,
        }
        for p in placements(places, state)
    ]


def _name_tries(text: str) -> list[tuple[str, str]]:
    """What a typed name may mean: "Last, First", "First Last", "Last First" or "Last"."""
    if "," in text:
        last, first = (part.strip() for part in text.split(",", 1))
        return [(last, first.split()[0] if first.split() else "")]
    words = text.split()
    return [(words[0], "")] if len(words) == 1 else [(words[-1], words[0]), (words[0], words[1])]


def _states(engine: Engine, ids: list[str]) -> list[OffenderState]:
    return [s for oid in ids if (s := offender_search.public_offender(engine, oid)) is not None]


async def _name_hits(request: web.Request, text: str) -> list[OffenderState]:
    """Public offenders a typed name may mean."""
    index = await search_index(request)
    found: dict[str, None] = {}
    for last, first in _name_tries(text):
        for hit in index.search(last_name=last, first_name=first, limit=MOST_CHOICES).hits:
            found.setdefault(hit.record.offender_id)
    return await db(request, _states, list(found)[:MOST_CHOICES])


async def _mail_stopped(request: web.Request, sid: int) -> str | None:
    sub = await db(request, tracking_db.subscriber, sid)
    if sub is not None and sub.status != "active":
        return "unsubscribed"
    acct = await db(request, accounts.account, sid)
    return "suspended" if acct is not None and acct.mail_suspended else None


async def _page(request: web.Request, query: str, status: int = 200, **context: Any) -> web.Response:
    values: dict[str, Any] = {
        "query": query,
        "error": None,
        "answer": None,
        "choices": None,
        "no_record": False,
        **context,
    }
    return render(request, "web/why.html.j2", values, status=status)


async def _answer(request: web.Request, state: OffenderState, query: str) -> web.Response:
    sid: int = session_of(request).subscriber_id  # type: ignore[assignment]
    settings = runtime_of(request).settings
    answer = explain(
        await db(request, why_facts.tracked_places, sid),
        state,
        await db(request, why_facts.watched_since, sid, state.offender_id),
        await db(request, why_facts.alert_facts, sid, state.offender_id),
        next_digest_at(
            clock_of(request),
            settings.zone,
            settings.digest_time,
            await db(request, tracking_db.schedule, sid),
        ),
    )
    assert state.profile is not None  # public_offender and search give public records only
    return await _page(
        request,
        query,
        answer={
            "name": state.profile.display_name,
            "record": paths_of(request).record(state.offender_id),
            "places": [
                {**_place_view(pa.place), "reasons": [_reason_view(r) for r in pa.reasons]}
                for pa in answer.places
            ],
            "watch": [_reason_view(r) for r in answer.watch],
            "mail_stopped": await _mail_stopped(request, sid),
        },
    )


async def _look_up(request: web.Request, query: str) -> web.Response:
    if not request.app[LIMITER].allow("search:client", client_key(request)):
        return await _page(
            request,
            query,
            429,
            error="Too many searches from your connection in the last minute. Wait a moment and try again.",
        )
    state = await db(request, offender_search.public_offender, query)
    if state is not None:
        return await _answer(request, state, query)
    hits = await _name_hits(request, query)
    if len(hits) == 1:
        return await _answer(request, hits[0], query)
    if not hits:
        # One answer for unknown, removed and juvenile alike: nothing the registry does not publish.
        return await _page(request, query, no_record=True)
    paths = paths_of(request)
    choices = [
        {
            "name": h.profile.display_name,
            "dob": dob_text(h.profile.date_of_birth),
            "why": paths.why(h.offender_id),
        }
        for h in hits
        if h.profile is not None
    ]
    return await _page(request, query, choices=choices)


@require_login
async def why_page(request: web.Request) -> web.Response:
    """The form, or (?offender=<record number>, as the record page and the choices link) the answer."""
    query = clean(request.query.get("offender"), 100)
    if not query:
        return await _page(request, "")
    return await _look_up(request, query)


@require_login
async def why_lookup(request: web.Request) -> web.Response:
    query = clean((await request.post()).get("q"), 100)
    if not query:
        return await _page(request, "", 400, error="Enter the offender's record number or name.")
    return await _look_up(request, query)
