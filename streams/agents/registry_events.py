"""Apply registry events to offender state; emit address changes and watch alerts."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from streams.adapters import repository
from streams.adapters.event_codec import InvalidEvent, dead_letter, decode_registry_event
from streams.app import StreamGraph
from streams.bootstrap import Services
from streams.domain.cells import cell_of
from streams.domain.matching import apply_event, watch_alerts
from streams.domain.model import OffenderState

logger = structlog.get_logger()


async def deliver(sends: list[Any]) -> None:
    """Wait until the broker has every message: only then may state move on."""
    if sends:
        await asyncio.gather(*sends)


def register(g: StreamGraph, services: Services) -> None:
    @g.app.agent(g.registry_events, name="apply_registry_event")
    async def apply_registry_event(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            structlog.contextvars.bind_contextvars(
                topic=msg.topic, partition=msg.partition, offset=msg.offset
            )
            try:
                await _apply_one(g, services, event.value, event.key, msg)
            finally:
                structlog.contextvars.clear_contextvars()

    @g.app.agent(g.offender_snapshots, name="restore_offender_snapshot")
    async def restore_offender_snapshot(stream: Any) -> None:
        # resync re-seeds the table from the database after the broker lost its data.
        async for snapshot in stream:
            state = OffenderState.from_dict(snapshot)
            current = g.offender_to_state.get(state.offender_id)
            if current is None or current["revision"] < state.revision:
                g.offender_to_state[state.offender_id] = snapshot


async def _apply_one(g: StreamGraph, services: Services, raw: bytes, key: Any, msg: Any) -> None:
    try:
        ev = decode_registry_event(raw or b"", key)
    except InvalidEvent as err:
        logger.warning("registry event dead-lettered", reason=err.reason, detail=err.detail)
        record = dead_letter(
            raw or b"", err, topic=msg.topic, partition=msg.partition, offset=msg.offset, key=key
        )
        k = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        await deliver([await g.dead_letters.send(key=k, value=record)])
        return

    structlog.contextvars.bind_contextvars(event_id=ev.event_id, offender_id=ev.offender_id)
    stored = g.offender_to_state.get(ev.offender_id)
    old = OffenderState.from_dict(stored) if stored else None
    outcome = apply_event(old, ev)
    if outcome.status != "applied":
        logger.info("registry event ignored", why=outcome.status, revision=ev.revision)
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
    await deliver(sends)

    assert outcome.state is not None
    await services.db(repository.save_offender_state, outcome.state)
    if outcome.purge:
        dropped = await services.db(repository.purge_offender_alerts, ev.offender_id)
        logger.info("offender no longer public: pending alerts dropped", dropped=dropped)
    g.offender_to_state[ev.offender_id] = outcome.state.to_dict()
    logger.info(
        "registry event applied",
        revision=ev.revision,
        address_changes=len(outcome.address_changes),
        watch_change=outcome.watch_change is not None,
    )
