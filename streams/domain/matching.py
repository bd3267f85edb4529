"""The rules: which registry events count, what moved, and who gets told."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Literal

from streams.domain.circle_index import CircleIndex
from streams.domain.model import (
    ALERTING_TYPES,
    Address,
    AddressChange,
    Alert,
    OffenderState,
    OffenderSummary,
    RegistryEvent,
    WatchChange,
    alert_id_for,
)
from streams.domain.radii import proximity_band


@dataclass(frozen=True)
class Outcome:
    # replayed: the latest event again; its effects are derived again, the state is unchanged.
    status: Literal["applied", "replayed", "duplicate", "stale"]
    state: OffenderState | None = None
    address_changes: tuple[AddressChange, ...] = ()
    watch_change: WatchChange | None = None
    # The offender is no longer public: every not-yet-sent alert naming them must go.
    purge: bool = False
    # Alerting addresses without a point exact enough for proximity (none, or only street /
    # ZIP level): kept in state and shown as approximate, never a proximity alert.
    unmapped: tuple[Address, ...] = ()


def _public_view(state: OffenderState | None) -> dict[tuple[str, str], Address]:
    """Alerting addresses the public may see, by identity (first copy of an identity wins)."""
    view: dict[tuple[str, str], Address] = {}
    if state is None or not state.is_public:
        return view
    for a in state.addresses:
        if a.type in ALERTING_TYPES:
            view.setdefault(a.identity, a)
    return view


def _next_state(
    old: OffenderState | None, event: RegistryEvent, recent_limit: int
) -> OffenderState:
    recent = ((old.recent_event_ids if old else ()) + (event.event_id,))[-recent_limit:]
    previous = replace(old, previous="unknown") if old is not None else None
    if event.kind == "remove":
        return OffenderState(
            offender_id=event.offender_id,
            revision=event.revision,
            removed=True,
            profile=old.profile if old else None,
            addresses=(),
            recent_event_ids=recent,
            occurred_at=event.occurred_at,
            previous=previous,
        )
    return OffenderState(
        offender_id=event.offender_id,
        revision=event.revision,
        removed=False,
        profile=event.offender,
        addresses=event.addresses,
        recent_event_ids=recent,
        occurred_at=event.occurred_at,
        previous=previous,
    )


def apply_event(
    old: OffenderState | None, event: RegistryEvent, recent_limit: int = 64
) -> Outcome:
    if old is not None and event.event_id in old.recent_event_ids:
        if old.recent_event_ids[-1] == event.event_id and old.previous != "unknown":
            # The latest event again: what it caused is derived again from the state before
            # it, and sent again downstream, where every effect is idempotent.
            # The stored addresses, not the event's: they carry the points geocoding gave them.
            stored = replace(event, addresses=old.addresses) if event.kind == "upsert" else event
            again = apply_event(old.previous, stored, recent_limit)
            return Outcome(
                "replayed", None, again.address_changes, again.watch_change, again.purge, again.unmapped
            )
        return Outcome("duplicate")
    if old is not None and event.revision <= old.revision:
        return Outcome("stale")

    new = _next_state(old, event, recent_limit)
    unmapped = tuple(a for a in new.addresses if a.type in ALERTING_TYPES and not a.locates)
    purge = not new.is_public
    if event.baseline:
        # A baseline load records the registry as it stands: nothing "moved" for anyone.
        return Outcome("applied", new, purge=purge, unmapped=unmapped)

    old_view, new_view = _public_view(old), _public_view(new)
    changes: list[AddressChange] = []
    # An offender leaving the public view (removed, juvenile) produces no "moved out": such
    # an alert would name someone the registry no longer shows, and the purge drops it anyway.
    if new.is_public:
        assert new.profile is not None
        for identity, a in old_view.items():
            if identity not in new_view and a.locates:
                assert old is not None and old.profile is not None  # old_view is empty otherwise
                who = OffenderSummary.of(event.offender_id, old.profile)
                changes.append(_change(event, "out", a, who))
        for identity, a in new_view.items():
            if identity not in old_view and a.locates:
                who = OffenderSummary.of(event.offender_id, new.profile)
                changes.append(_change(event, "in", a, who))

    watch: WatchChange | None = None
    was_public = old is not None and old.is_public
    if new.is_public and (not was_public or old_view.keys() != new_view.keys()):
        assert new.profile is not None
        watch = WatchChange(
            event_id=event.event_id,
            offender_id=event.offender_id,
            occurred_at=event.occurred_at,
            revision=event.revision,
            removed=False,
            offender=OffenderSummary.of(event.offender_id, new.profile),
            old_addresses=tuple(old_view.values()),
            new_addresses=tuple(new_view.values()),
        )
    elif event.kind == "remove" and was_public:
        assert old is not None and old.profile is not None
        watch = WatchChange(
            event_id=event.event_id,
            offender_id=event.offender_id,
            occurred_at=event.occurred_at,
            revision=event.revision,
            removed=True,
            offender=OffenderSummary.of(event.offender_id, old.profile),
            old_addresses=tuple(old_view.values()),
        )
    # Becoming (or staying) juvenile-flagged says nothing to anyone (RSMo 43.650.5).
    return Outcome("applied", new, tuple(changes), watch, purge, unmapped)


def _change(
    event: RegistryEvent, direction: Literal["in", "out"], a: Address, who: OffenderSummary
) -> AddressChange:
    return AddressChange(event.event_id, event.offender_id, event.occurred_at, direction, a, who, event.revision)


def proximity_alerts(change: AddressChange, index: CircleIndex) -> list[Alert]:
    a = change.address
    if a.lat is None or a.lon is None or not a.locates:
        return []
    kind = "moved_in" if change.direction == "in" else "moved_out"
    return [
        Alert(
            alert_id=alert_id_for(change.event_id, circle.circle_id, a.identity, change.direction),
            subscriber_id=circle.subscriber_id,
            offender_id=change.offender_id,
            kind=kind,
            event_id=change.event_id,
            occurred_at=change.occurred_at,
            revision=change.revision,
            offender=change.offender.to_dict(),
            tracked_address_id=circle.circle_id,
            tracked_label=circle.label,
            tracked_one_line=circle.one_line,
            address=a.to_dict(),
            distance_m=d,
            band=proximity_band(d),
        )
        for circle, d in index.query(a.lat, a.lon)
    ]


def watch_alerts(change: WatchChange, subscriber_ids: Iterable[int]) -> list[Alert]:
    kind = "watch_removed" if change.removed else "watch_changed"
    return [
        Alert(
            alert_id=alert_id_for(change.event_id, sid, kind),
            subscriber_id=sid,
            offender_id=change.offender_id,
            kind=kind,
            event_id=change.event_id,
            occurred_at=change.occurred_at,
            revision=change.revision,
            offender=change.offender.to_dict(),
            old_addresses=[a.to_dict() for a in change.old_addresses],
            new_addresses=[a.to_dict() for a in change.new_addresses],
        )
        for sid in dict.fromkeys(subscriber_ids)  # a subscriber listed twice hears once
    ]
