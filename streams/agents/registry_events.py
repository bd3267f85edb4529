"""Apply registry events to offender state; emit address changes and watch alerts."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import structlog

from streams.adapters import metrics, repository
from streams.adapters.dead_letters import InvalidEvent, dead_letter
from streams.adapters.event_codec import conflicting_duplicate, decode_registry_event
from streams.adapters.table_writes import for_event
from streams.agents.batching import BATCH, BATCH_WITHIN, deliver, send_alerts, stop_on_failure
from streams.app import StreamGraph
from streams.domain.cells import cell_of
from streams.domain.event_identity import content_digest
from streams.domain.geocoding import GeocoderUnavailable
from streams.domain.matching import apply_event, watch_alert_batch
from streams.domain.model import OffenderState, RegistryEvent, SeenEvent
from streams.logs import about_message
from streams.runtime import Runtime
from streams.services.locating import locate_event

logger = structlog.get_logger()

# How many times an event has come back from the geocoding retry topic.
RETRY_HEADER = "sor-geocode-attempt"


class Outcome(NamedTuple):
    """What an event's log line and counter say, once its batch is stored."""

    message: Any
    counter: Any
    log_event: str
    fields: dict[str, Any]


@dataclass
class Batch:
    """What a batch of registry events does once they are all worked out."""

    states: dict[str, OffenderState] = field(default_factory=dict)  # to store, by offender
    sources: dict[str, Any] = field(default_factory=dict)  # the event each state came from
    sends: list[Any] = field(default_factory=list)  # produced messages awaiting acks
    purges: list[str] = field(default_factory=list)  # offenders whose pending alerts go
    done: list[Outcome] = field(default_factory=list)  # counted and logged once stored
    stored: dict[str, OffenderState] = field(default_factory=dict)  # the database's, by offender
    known: dict[str, SeenEvent] = field(default_factory=dict)  # event ids the database holds
    applied: list[repository.AppliedEvent] = field(default_factory=list)  # ids to remember

    def state_of(self, graph: StreamGraph, offender_id: str) -> OffenderState | None:
        """The offender's state as this batch left it so far, else the newer of what the
        table and the database hold."""
        if offender_id in self.states:
            return self.states[offender_id]
        in_table = graph.offender_to_state.get(offender_id)
        table_state = OffenderState.from_dict(in_table) if in_table else None
        stored = self.stored.get(offender_id)
        if stored is None or (table_state is not None and table_state.revision >= stored.revision):
            return table_state
        return stored


Decoded = RegistryEvent | InvalidEvent


def _decode(event: Any) -> Decoded:
    try:
        return decode_registry_event(event.value or b"", event.key)
    except InvalidEvent as err:
        return err


def _read_stored(bind: Any, offender_ids: list[str], event_ids: list[str]) -> tuple[Any, Any]:
    return repository.get_offender_states(bind, offender_ids), repository.known_events(bind, event_ids)


async def _read_stored_states(runtime: Runtime, batch: Batch, events: Any, decoded: list[Decoded]) -> None:
    """The database's states of the batch's offenders, to set beside the table's, and what
    it holds of the batch's event ids (an id is remembered for good, the state lists only
    its offender's recent ones).

    The database is written before the table and only ever moves forward, so it is never
    behind it; the table can be behind the database. After a broker lost everything the
    table is rebuilt from what `resync` sends, and an event read before that must not be
    taken for the offender's first one (it would say "moved in" for addresses they had all
    along). After a rebalance the new owner's table is what the changelog held when it
    took the partition over, which can lack the last state a worker that was leaving the
    group (or had been dropped from it without knowing) stored just before; an event
    compared with that older state gives the wrong moves (seen here: after a broker loss
    and restart, 94 alerts for moves that never happened and 248 missing). One query per
    batch, by primary key.
    """
    ids = set()
    for event in events:
        key = event.key.decode("utf-8", "replace") if isinstance(event.key, bytes) else event.key
        if isinstance(key, str) and key:
            ids.add(key)
    event_ids = sorted({ev.event_id for ev in decoded if isinstance(ev, RegistryEvent)})
    if ids or event_ids:
        batch.stored, batch.known = await runtime.db(_read_stored, sorted(ids), event_ids)


def register(graph: StreamGraph, runtime: Runtime) -> None:
    @graph.app.agent(graph.registry_events, name="apply_registry_event")
    async def apply_registry_event(stream: Any) -> None:
        # take_events acks a batch only once the loop comes back for the next one.
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN):
            with stop_on_failure("apply_registry_event"):
                batch = Batch()
                decoded = [_decode(event) for event in events]
                await _read_stored_states(runtime, batch, events, decoded)
                for event, ev in zip(events, decoded):
                    msg = event.message
                    try:
                        with about_message(msg):
                            logger.debug("registry event received")
                            attempt = int(event.headers.get(RETRY_HEADER, b"0") or 0)
                            await _apply_one(graph, runtime, batch, event, ev, attempt)
                    finally:
                        structlog.contextvars.clear_contextvars()  # and the ids bound once decoded
                await _commit(graph, runtime, batch)

    @graph.app.agent(graph.offender_snapshots, name="restore_offender_snapshot")
    async def restore_offender_snapshot(stream: Any) -> None:
        # resync re-seeds the table from the database after the broker lost its data.
        async for snapshot in stream:
            state = OffenderState.from_dict(snapshot)
            current = graph.offender_to_state.get(state.offender_id)
            if current is None or current["revision"] < state.revision:
                graph.offender_to_state[state.offender_id] = snapshot

    @graph.app.agent(graph.geocode_retries, name="retry_geocoding")
    async def retry_geocoding(stream: Any) -> None:
        # Waiting here holds up only this retry topic, never the registry partitions.
        async for event in stream.events():
            with about_message(event.message, offender_id=event.key):
                wait = event.value["not_before"] - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                sent = await graph.registry_events.send(
                    key=event.key.encode(),
                    value=base64.b64decode(event.value["original_b64"]),
                    headers={RETRY_HEADER: str(event.value["attempt"]).encode()},
                )
                await deliver([sent])
                logger.info("event sent back for geocoding", attempt=event.value["attempt"])


async def _dead_letter(graph: StreamGraph, batch: Batch, event: Any, err: InvalidEvent) -> None:
    raw, key, msg = event.value, event.key, event.message
    logger.warning("registry event dead-lettered", reason=err.reason, detail=err.detail)
    metrics.REGISTRY_EVENTS_DEAD_LETTERED.labels(reason=err.reason).inc()
    record = dead_letter(
        raw or b"", err, topic=msg.topic, partition=msg.partition, offset=msg.offset, key=key
    )
    k = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    batch.sends.append(await graph.dead_letters.send(key=k, value=record))


async def _apply_one(
    graph: StreamGraph, runtime: Runtime, batch: Batch, event: Any, ev: Decoded, attempt: int
) -> None:
    raw, msg = event.value, event.message
    if isinstance(ev, InvalidEvent):
        await _dead_letter(graph, batch, event, ev)
        return

    structlog.contextvars.bind_contextvars(event_id=ev.event_id, offender_id=ev.offender_id)
    old = batch.state_of(graph, ev.offender_id)
    # Of the event as sent: geocoding below adds points, and the same message must give the
    # same digest each time it comes.
    digest = content_digest(ev)
    known = batch.known.get(ev.event_id)
    fresh = known is None and (
        old is None or (ev.event_id not in old.recent_event_ids and ev.revision > old.revision)
    )
    if fresh and any(not a.has_point for a in ev.addresses):
        settings = runtime.settings
        try:
            located = await locate_event(
                ev,
                old,
                runtime.geocoder,
                timeout_s=settings.geocode_timeout_s,
                give_up=attempt >= settings.geocode_max_attempts,
            )
        except GeocoderUnavailable:
            delay = min(settings.geocode_retry_base_s * 2**attempt, 900.0)
            retry = {
                "attempt": attempt + 1,
                "not_before": time.time() + delay,
                "original_b64": base64.b64encode(raw).decode(),
            }
            batch.sends.append(await graph.geocode_retries.send(key=ev.offender_id, value=retry))
            metrics.GEOCODE_RETRIES_QUEUED.inc()
            logger.warning("geocoder unavailable: event queued for retry", attempt=attempt + 1, in_s=delay)
            return
        for address, failure in located.failures:
            logger.warning("address could not be mapped", address_type=address.type, reason=failure.reason)
        ev = located.event
    outcome = apply_event(old, ev, digest=digest, known=known)
    if outcome.status == "conflicting":
        assert outcome.conflict is not None
        await _dead_letter(graph, batch, event, conflicting_duplicate(ev, digest, outcome.conflict))
        return
    if outcome.status in ("duplicate", "stale"):
        logger.info("registry event ignored", why=outcome.status, revision=ev.revision)
        metrics.REGISTRY_EVENTS_IGNORED.labels(reason=outcome.status).inc()
        return
    for address in outcome.unmapped:
        logger.warning(
            "address has no coordinates: kept, but cannot trigger proximity alerts",
            address_type=address.type,
        )

    for change in outcome.address_changes:
        cell = cell_of(change.address.lat, change.address.lon)  # type: ignore[arg-type]
        batch.sends.append(await graph.address_changes.send(key=cell, value=change.to_dict()))
    if outcome.watch_change is not None:
        watchers = graph.offender_to_watchers.get(ev.offender_id) or []
        alerts = watch_alert_batch(outcome.watch_change, watchers)
        batch.sends += await send_alerts(graph, alerts, runtime.settings.partitions)
        if alerts is not None:
            metrics.alerts_emitted(alerts.common["kind"], len(alerts))
    if outcome.purge:
        batch.purges.append(ev.offender_id)
    ids = {"event_id": ev.event_id, "offender_id": ev.offender_id}
    if outcome.status == "replayed":
        # Nothing to store: the state already holds this event. Its alerts are sent again
        # in case the first ones were lost with a broker; recorded ones are not doubled.
        batch.done.append(
            Outcome(
                msg,
                metrics.REGISTRY_EVENTS_REPLAYED,
                "registry event replayed: its alerts derived again",
                ids | {"revision": ev.revision, "address_changes": len(outcome.address_changes)},
            )
        )
        return
    assert outcome.state is not None
    batch.states[ev.offender_id] = outcome.state
    batch.sources[ev.offender_id] = event
    seen = SeenEvent(ev.event_id, digest, ev.revision)
    batch.known[ev.event_id] = seen  # a later message of this batch with the same id sees it
    batch.applied.append(repository.AppliedEvent(ev.event_id, ev.offender_id, ev.revision, digest))
    batch.done.append(
        Outcome(
            msg,
            metrics.REGISTRY_EVENTS_APPLIED,
            "registry event applied",
            ids
            | {
                "revision": ev.revision,
                "address_changes": len(outcome.address_changes),
                "watch_change": outcome.watch_change is not None,
            },
        )
    )


async def _commit(graph: StreamGraph, runtime: Runtime, batch: Batch) -> None:
    """Make a batch's work stick, in the order that loses nothing if the worker dies midway:
    every message acknowledged by the broker, then the states stored, then the table moved on.
    Dying before the end means the batch is read again, and every step is idempotent."""
    await deliver(batch.sends)
    if batch.states:
        await runtime.db(repository.save_offender_states, list(batch.states.values()), batch.applied)
    for offender_id in batch.purges:
        dropped = await runtime.db(repository.purge_offender_alerts, offender_id)
        with structlog.contextvars.bound_contextvars(offender_id=offender_id):
            logger.info("offender no longer public: pending alerts dropped", dropped=dropped)
    for offender_id, state in batch.states.items():
        with for_event(batch.sources[offender_id]):  # the table writes to that event's partition
            graph.offender_to_state[offender_id] = state.to_dict()
    for done in batch.done:
        with about_message(done.message):
            done.counter.inc()
            logger.info(done.log_event, **done.fields)
