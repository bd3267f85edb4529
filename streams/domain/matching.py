"""The rules: which registry events count, what moved, and who gets told."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from streams.domain.alert_batch import AlertBatch, batch_of, proximity_batch
from streams.domain.circle_index import CircleIndex
from streams.domain.event_identity import content_digest
from streams.domain.model import (
    ALERTING_TYPES,
    Address,
    AddressChange,
    Alert,
    OffenderState,
    OffenderSummary,
    RegistryEvent,
    SeenEvent,
    WatchChange,
    alert_id_for,
)


@dataclass(frozen=True)
class Outcome:
    # replayed: the latest event again, same content; its effects are derived again from the
    # stored event, the state is unchanged. duplicate: an older event again, same content.
    # conflicting: an id already applied, with other content; never applied (dead-lettered).
    status: Literal["applied", "replayed", "duplicate", "stale", "conflicting"]
    state: OffenderState | None = None
    address_changes: tuple[AddressChange, ...] = ()
    watch_change: WatchChange | None = None
    # The offender is no longer public: every not-yet-sent alert naming them must go.
    purge: bool = False
    # Alerting addresses without a point exact enough for proximity (none, or only street /
    # ZIP level): kept in state and shown as approximate, never a proximity alert.
    unmapped: tuple[Address, ...] = ()
    # The incoming event's content digest (streams.domain.event_identity).
    digest: str = ""
    # conflicting: what the id was applied as.
    conflict: SeenEvent | None = None


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
    old: OffenderState | None, event: RegistryEvent, recent_limit: int, digest: str
) -> OffenderState:
    seen = SeenEvent(event.event_id, digest, event.revision)
    recent = ((old.recent_events if old else ()) + (seen,))[-recent_limit:]
    # Only what a replay needs to derive the latest event's effects again.
    previous = replace(old, previous="unknown", recent_events=()) if old is not None else None
    if event.kind == "remove":
        return OffenderState(
            offender_id=event.offender_id,
            revision=event.revision,
            removed=True,
            profile=old.profile if old else None,
            addresses=(),
            recent_events=recent,
            occurred_at=event.occurred_at,
            previous=previous,
            baseline=event.baseline,
        )
    return OffenderState(
        offender_id=event.offender_id,
        revision=event.revision,
        removed=False,
        profile=event.offender,
        addresses=event.addresses,
        recent_events=recent,
        occurred_at=event.occurred_at,
        previous=previous,
        baseline=event.baseline,
    )


def latest_event(state: OffenderState) -> RegistryEvent:
    """The state's latest event as it was applied: its stored content, the points geocoding
    gave its addresses, its own baseline flag. A replay derives its effects from this, never
    from the message that came again."""
    return RegistryEvent(
        event_id=state.recent_events[-1].event_id,
        offender_id=state.offender_id,
        revision=state.revision,
        occurred_at=state.occurred_at,
        kind="remove" if state.removed else "upsert",
        baseline=bool(state.baseline),
        offender=None if state.removed else state.profile,
        addresses=state.addresses,
    )


def _replayable(old: OffenderState) -> bool:
    return old.previous != "unknown" and old.baseline is not None


def apply_event(
    old: OffenderState | None,
    event: RegistryEvent,
    recent_limit: int = 64,
    *,
    digest: str | None = None,
    known: SeenEvent | None = None,
) -> Outcome:
    """`digest`: the event's content digest, when taken before geocoding changed the event.
    `known`: what the system of record holds for this event id, when the state's recent
    events no longer list it (ids are remembered for good, the state keeps `recent_limit`)."""
    digest = digest or content_digest(event)
    seen = (old.recent_event(event.event_id) if old is not None else None) or known
    if seen is not None:
        if seen.content_digest is not None and seen.content_digest != digest:
            return Outcome("conflicting", digest=digest, conflict=seen)
        latest = old is not None and old.recent_events[-1].event_id == event.event_id
        if seen.content_digest is not None and latest and _replayable(old):  # type: ignore[arg-type]
            # The latest event again: what it caused is derived again from the state before
            # it, and sent again downstream, where every effect is idempotent.
            assert old is not None and old.previous != "unknown"
            again = apply_event(old.previous, latest_event(old), recent_limit, digest=digest)
            return Outcome(
                "replayed",
                None,
                again.address_changes,
                again.watch_change,
                again.purge,
                again.unmapped,
                digest=digest,
            )
        return Outcome("duplicate", digest=digest)
    if old is not None and event.revision <= old.revision:
        return Outcome("stale", digest=digest)

    new = _next_state(old, event, recent_limit, digest)
    unmapped = tuple(a for a in new.addresses if a.type in ALERTING_TYPES and not a.locates)
    purge = not new.is_public
    if event.baseline:
        # A baseline load records the registry as it stands: nothing "moved" for anyone.
        return Outcome("applied", new, purge=purge, unmapped=unmapped, digest=digest)

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
    return Outcome("applied", new, tuple(changes), watch, purge, unmapped, digest=digest)


def _change(
    event: RegistryEvent, direction: Literal["in", "out"], a: Address, who: OffenderSummary
) -> AddressChange:
    return AddressChange(
        event.event_id, event.offender_id, event.occurred_at, direction, a, who, event.revision
    )


def proximity_alerts(change: AddressChange, index: CircleIndex) -> list[Alert]:
    """One `Alert` per circle holding the changed address (what the alerts topic carries, as
    a batch, see `proximity_alert_batch`), in (subscriber, circle) order."""
    batch = proximity_alert_batch(change, index)
    return batch.alerts() if batch is not None else []


def proximity_alert_batch(change: AddressChange, index: CircleIndex) -> AlertBatch | None:
    """The alerts `proximity_alerts` gives, as one batch: no `Alert` or `Circle` per pair."""
    a = change.address
    if a.lat is None or a.lon is None or not a.locates:
        return None
    hits = index.labelled(a.lat, a.lon)
    return proximity_batch(
        event_id=change.event_id,
        offender_id=change.offender_id,
        occurred_at=change.occurred_at,
        revision=change.revision,
        direction=change.direction,
        offender=change.offender.to_dict(),
        address=a.to_dict(),
        identity=a.identity,
        circle_ids=hits.circle_id,
        subscriber_ids=hits.subscriber_id,
        labels=hits.label,
        one_lines=hits.one_line,
        distances_m=hits.distance_m,
    )


def watch_alert_batch(change: WatchChange, subscriber_ids: Iterable[int]) -> AlertBatch | None:
    """The alerts `watch_alerts` gives, as one batch."""
    return batch_of(watch_alerts(change, subscriber_ids))


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
