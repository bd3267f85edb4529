"""Apply registry events to offender state; emit address changes and watch alerts."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import structlog

from streams.adapters import metrics, repository
from streams.adapters.event_codec import (
    InvalidEvent,
    dead_letter,
    decode_registry_event,
)
from streams.app import StreamGraph
from streams.bootstrap import Services
from streams.domain.cells import cell_of
from streams.domain.geocoding import GeocoderUnavailable
from streams.domain.matching import apply_event, watch_alerts
from streams.domain.model import OffenderState
from streams.logs import about_message
from streams.services.locating import locate_event

logger = structlog.get_logger()

# How many times an event has come back from the geocoding retry topic.
RETRY_HEADER = "sor-geocode-attempt"


async def deliver(sends: list[Any]) -> None:
    """Wait until the broker has every message: only then may state move on."""
    if not sends:
        return
    pending = asyncio.ensure_future(asyncio.gather(*sends))
    while True:
        done, _ = await asyncio.wait({pending}, timeout=10.0)
        if done:
            pending.result()
            return
        logger.warning("still waiting for the broker to acknowledge messages", messages=len(sends))


def register(g: StreamGraph, services: Services) -> None:
    @g.app.agent(g.registry_events, name="apply_registry_event")
    async def apply_registry_event(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                with about_message(msg):
                    logger.debug("registry event received")
                    attempt = int(event.headers.get(RETRY_HEADER, b"0") or 0)
                    await _apply_one(g, services, event.value, event.key, msg, attempt)
            finally:
                structlog.contextvars.clear_contextvars()  # and the ids bound once decoded

    @g.app.agent(g.offender_snapshots, name="restore_offender_snapshot")
    async def restore_offender_snapshot(stream: Any) -> None:
        # resync re-seeds the table from the database after the broker lost its data.
        async for snapshot in stream:
            state = OffenderState.from_dict(snapshot)
            current = g.offender_to_state.get(state.offender_id)
            if current is None or current["revision"] < state.revision:
                g.offender_to_state[state.offender_id] = snapshot

    @g.app.agent(g.geocode_retries, name="retry_geocoding")
    async def retry_geocoding(stream: Any) -> None:
        # Waiting here holds up only this retry topic, never the registry partitions.
        async for event in stream.events():
            with about_message(event.message, offender_id=event.key):
                wait = event.value["not_before"] - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                sent = await g.registry_events.send(
                    key=event.key.encode(),
                    value=base64.b64decode(event.value["original_b64"]),
                    headers={RETRY_HEADER: str(event.value["attempt"]).encode()},
                )
                await deliver([sent])
                logger.info("event sent back for geocoding", attempt=event.value["attempt"])


async def _apply_one(
    g: StreamGraph, services: Services, raw: bytes, key: Any, msg: Any, attempt: int
) -> None:
    try:
        ev = decode_registry_event(raw or b"", key)
    except InvalidEvent as err:
        logger.warning("registry event dead-lettered", reason=err.reason, detail=err.detail)
        metrics.REGISTRY_EVENTS_DEAD_LETTERED.labels(reason=err.reason).inc()
        record = dead_letter(
            raw or b"", err, topic=msg.topic, partition=msg.partition, offset=msg.offset, key=key
        )
        k = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        await deliver([await g.dead_letters.send(key=k, value=record)])
        return

    structlog.contextvars.bind_contextvars(event_id=ev.event_id, offender_id=ev.offender_id)
    stored = g.offender_to_state.get(ev.offender_id)
    old = OffenderState.from_dict(stored) if stored else None
    fresh = old is None or (ev.event_id not in old.recent_event_ids and ev.revision > old.revision)
    if fresh and any(not a.has_point for a in ev.addresses):
        settings = services.settings
        try:
            located = await locate_event(
                ev, old, services.geocoder,
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
            await deliver([await g.geocode_retries.send(key=ev.offender_id, value=retry)])
            metrics.GEOCODE_RETRIES_QUEUED.inc()
            logger.warning("geocoder unavailable: event queued for retry", attempt=attempt + 1, in_s=delay)
            return
        for address, failure in located.failures:
            logger.warning("address could not be mapped", address_type=address.type, reason=failure.reason)
        ev = located.event
    outcome = apply_event(old, ev)
    if outcome.status in ("duplicate", "stale"):
        logger.info("registry event ignored", why=outcome.status, revision=ev.revision)
        metrics.REGISTRY_EVENTS_IGNORED.labels(reason=outcome.status).inc()
        return
    for address in outcome.unmapped:
        logger.warning(
            "address has no coordinates: kept, but cannot trigger proximity alerts",
            address_type=address.type,
        )

    sends = []
    for change in outcome.address_changes:
        cell = cell_of(change.address.lat, change.address.lon)  # type: ignore[arg-type]
        sends.append(await g.address_changes.send(key=cell, value=change.to_dict()))
    if outcome.watch_change is not None:
        watchers = g.offender_to_watchers.get(ev.offender_id) or []
        for alert in watch_alerts(outcome.watch_change, watchers):
            sends.append(await g.alerts.send(key=str(alert.subscriber_id), value=alert.to_dict()))
            metrics.ALERTS_EMITTED.labels(kind=alert.kind).inc()
    await deliver(sends)
    if outcome.status == "replayed":
        # Nothing to store: the state already holds this event. Its alerts were sent again
        # in case the first ones were lost with a broker; recorded ones are not doubled.
        if outcome.purge:
            await services.db(repository.purge_offender_alerts, ev.offender_id)
        metrics.REGISTRY_EVENTS_REPLAYED.inc()
        logger.info(
            "registry event replayed: its alerts derived again",
            revision=ev.revision,
            address_changes=len(outcome.address_changes),
        )
        return

    assert outcome.state is not None
    await services.db(repository.save_offender_state, outcome.state)
    if outcome.purge:
        dropped = await services.db(repository.purge_offender_alerts, ev.offender_id)
        logger.info("offender no longer public: pending alerts dropped", dropped=dropped)
    g.offender_to_state[ev.offender_id] = outcome.state.to_dict()
    metrics.REGISTRY_EVENTS_APPLIED.inc()
    logger.info(
        "registry event applied",
        revision=ev.revision,
        address_changes=len(outcome.address_changes),
        watch_change=outcome.watch_change is not None,
    )
