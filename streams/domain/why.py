"""Why a subscriber was, or was not, told about an offender: each tracked address against each registered one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from streams.domain.geocoding import precise_enough
from streams.domain.geometry import distance_within
from streams.domain.model import ALERTING_TYPES, Address, OffenderState


@dataclass(frozen=True)
class TrackedPlace:
    """A subscriber's tracked address, with what the answer needs of it."""

    place_id: int  # the tracked address id (the circle id)
    label: str
    lat: float
    lon: float
    radius_m: float
    radius_code: str
    precision: str | None
    tracked_since: datetime  # aware


@dataclass(frozen=True)
class AlertFact:
    """An alert recorded for the subscriber about the offender, sent or still waiting."""

    kind: str  # streams.domain.model.AlertKind
    place_id: int | None = None  # proximity alerts: the tracked address
    identity: tuple[str, str] | None = None  # proximity alerts: Address.identity
    sent_at: datetime | None = None  # when the digest carrying it went out; None: not yet


# Why a registered address is not measured against a tracked one.
Unusable = Literal["not_alerting", "offender_unmapped", "offender_approximate", "place_approximate"]


@dataclass(frozen=True)
class Placement:
    """One tracked address against one registered address: the distance and whether it lies
    inside the circle, or (distance None) why the pair does not count."""

    place: TrackedPlace
    address: Address
    distance_m: float | None
    inside: bool
    unusable: Unusable | None = None


def placement(place: TrackedPlace, address: Address) -> Placement:
    """Counted as the alerts count: home, work or school, both points exact enough
    (Address.locates, precise_enough), inside by distance_within (inclusive, WGS84)."""
    if address.type not in ALERTING_TYPES:
        return Placement(place, address, None, False, "not_alerting")
    if not address.has_point:
        return Placement(place, address, None, False, "offender_unmapped")
    if not address.locates:
        return Placement(place, address, None, False, "offender_approximate")
    if not precise_enough(place.precision):
        return Placement(place, address, None, False, "place_approximate")
    assert address.lat is not None and address.lon is not None  # has_point
    d, inside = distance_within(place.lat, place.lon, place.radius_m, address.lat, address.lon)
    return Placement(place, address, d, inside)


def placements(places: list[TrackedPlace], state: OffenderState) -> list[Placement]:
    """Every tracked address against every registered address, in the order both are held."""
    return [placement(p, a) for p in places for a in state.addresses]


ReasonCode = Literal[
    # per tracked address and registered address
    "not_alerting",  # a temporary address: kept for the record, never an alert
    "offender_unmapped",  # the registered address has no point at all
    "offender_approximate",  # placed to the street or ZIP code only
    "place_approximate",  # the tracked address was placed only roughly
    "outside",  # beyond the radius: distance_m, beyond_m
    "told",  # inside, and a digest sent at `when` said so
    "next_digest",  # inside, the alert waits for the digest at `when`
    "before_tracking",  # inside, on the registry (by `listed_by`) before tracking began (`when`)
    "registry_load",  # inside, arrived with a full registry load, which alerts nobody
    "not_yet",  # inside, after tracking began, and no alert recorded (yet)
    # per tracked address
    "no_address",  # the record lists no address at all
    # the offender as tracked
    "tracking",  # the subscriber tracks them (since `when`): every change is mailed
    "not_tracking",  # the subscriber does not track them
    "watch_told",  # a digest sent at `when` told of a change to their addresses
    "watch_next_digest",  # a change waits for the digest at `when`
    "watch_before",  # their latest change (`listed_by`) came before tracking began (`when`)
]


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    place: TrackedPlace | None = None
    address: Address | None = None
    distance_m: float | None = None
    beyond_m: float | None = None  # outside: how far past the radius
    when: datetime | None = None
    listed_by: datetime | None = None  # the registry had it by then (no later than)


@dataclass(frozen=True)
class PlaceAnswer:
    place: TrackedPlace
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class Answer:
    places: tuple[PlaceAnswer, ...]
    watch: tuple[Reason, ...]


def event_time(text: str) -> datetime | None:
    """A registry event's occurred_at (ISO 8601; naive taken as UTC), None when absent or unreadable."""
    try:
        t = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def listed_by(state: OffenderState, address: Address) -> tuple[datetime | None, bool]:
    """(no later than when the registry listed this address, whether it came with the latest
    event). The state keeps the one before the latest event: an address already there was
    listed by that state's event, one new in the latest event came with it."""
    prev = state.previous
    if prev == "unknown":  # stored before the previous state was kept
        return event_time(state.occurred_at), False
    if prev is not None and any(a.identity == address.identity for a in prev.addresses):
        return event_time(prev.occurred_at), False
    return event_time(state.occurred_at), True


def _inside(p: Placement, state: OffenderState, alerts: list[AlertFact], next_digest: datetime) -> Reason:
    mine = [
        a
        for a in alerts
        if a.kind == "moved_in" and a.place_id == p.place.place_id and a.identity == p.address.identity
    ]

    def reason(code: ReasonCode, when: datetime | None = None, by: datetime | None = None) -> Reason:
        return Reason(code, p.place, p.address, p.distance_m, when=when, listed_by=by)

    sent = [a.sent_at for a in mine if a.sent_at is not None]
    if sent:
        return reason("told", max(sent))
    if mine:
        return reason("next_digest", next_digest)
    by, latest = listed_by(state, p.address)
    if by is not None and by < p.place.tracked_since:
        return reason("before_tracking", p.place.tracked_since, by)
    if latest and state.baseline:
        return reason("registry_load", by=by)
    return reason("not_yet", by=by)


def _pair(p: Placement, state: OffenderState, alerts: list[AlertFact], next_digest: datetime) -> Reason:
    if p.unusable is not None:
        return Reason(p.unusable, p.place, p.address)
    assert p.distance_m is not None
    if not p.inside:
        return Reason("outside", p.place, p.address, p.distance_m, beyond_m=p.distance_m - p.place.radius_m)
    return _inside(p, state, alerts, next_digest)


def _watch(
    state: OffenderState,
    watched_since: datetime | None,
    alerts: list[AlertFact],
    next_digest: datetime,
) -> tuple[Reason, ...]:
    if watched_since is None:
        return (Reason("not_tracking"),)
    reasons = [Reason("tracking", when=watched_since)]
    mine = [a for a in alerts if a.kind in ("watch_changed", "watch_removed")]
    sent = [a.sent_at for a in mine if a.sent_at is not None]
    if sent:
        reasons.append(Reason("watch_told", when=max(sent)))
    if any(a.sent_at is None for a in mine):
        reasons.append(Reason("watch_next_digest", when=next_digest))
    changed = event_time(state.occurred_at)
    if not mine and changed is not None and changed < watched_since:
        reasons.append(Reason("watch_before", when=watched_since, listed_by=changed))
    return tuple(reasons)


def explain(
    places: list[TrackedPlace],
    state: OffenderState,
    watched_since: datetime | None,
    alerts: list[AlertFact],
    next_digest: datetime,
) -> Answer:
    """The reasons, per tracked address (one per registered address) and for the offender as
    tracked. `state` must be public (the caller shows nothing of any other); `alerts` are
    this subscriber's about this offender; `next_digest` is when a waiting alert goes out."""
    answers = []
    for place in places:
        if not state.addresses:
            answers.append(PlaceAnswer(place, (Reason("no_address", place),)))
            continue
        answers.append(
            PlaceAnswer(
                place, tuple(_pair(placement(place, a), state, alerts, next_digest) for a in state.addresses)
            )
        )
    return Answer(tuple(answers), _watch(state, watched_since, alerts, next_digest))
