"""The geo join: an offender address that appeared or went away, against the circles held here."""

from __future__ import annotations

from typing import Any

import structlog

from streams.adapters import metrics
from streams.agents.failure import stop_on_failure
from streams.agents.registry_events import BATCH, BATCH_WITHIN, deliver
from streams.app import StreamGraph
from streams.bootstrap import Services
from streams.domain.matching import proximity_alerts
from streams.domain.model import AddressChange
from streams.logs import about_message

logger = structlog.get_logger()


def register(g: StreamGraph, services: Services) -> None:
    @g.app.agent(g.address_changes, name="match_address_change")
    async def match_address_change(stream: Any) -> None:
        # In batches, like the registry events: the alerts of every change in the batch are
        # produced, then acknowledged by the broker once, before the batch is acked.
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN):
            with stop_on_failure("match_address_change"):
                sends, matched = [], []
                for event in events:
                    change = AddressChange.from_dict(event.value)
                    with about_message(event.message, event_id=change.event_id, offender_id=change.offender_id):
                        with metrics.GEO_JOIN_SECONDS.time():
                            alerts = proximity_alerts(change, services.circles.index)
                        metrics.ALERTS_PER_ADDRESS_CHANGE.observe(len(alerts))
                        for a in alerts:
                            sends.append(await g.alerts.send(key=str(a.subscriber_id), value=a.to_dict()))
                        matched.append((event, change, alerts))
                await deliver(sends)
                for event, change, alerts in matched:
                    with about_message(event.message, event_id=change.event_id, offender_id=change.offender_id):
                        metrics.alerts_emitted(alerts)
                        logger.info(
                            "address change matched", cell=event.key, direction=change.direction, alerts=len(alerts)
                        )
