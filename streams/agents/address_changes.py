"""The geo join: an offender address that appeared or went away, against the circles held here."""

from __future__ import annotations

from typing import Any

import structlog

from streams.adapters import metrics
from streams.agents.batching import BATCH, BATCH_WITHIN, deliver, send_alerts, stop_on_failure
from streams.app import StreamGraph
from streams.domain.matching import proximity_alert_batch
from streams.domain.model import AddressChange
from streams.logs import about_message
from streams.runtime import Runtime

logger = structlog.get_logger()


def register(graph: StreamGraph, runtime: Runtime) -> None:
    @graph.app.agent(graph.address_changes, name="match_address_change")
    async def match_address_change(stream: Any) -> None:
        # In batches, like the registry events: the alerts of every change in the batch are
        # produced, then acknowledged by the broker once, before the batch is acked. A change's
        # alerts travel as one alert batch per destination partition, not one message each.
        partitions = runtime.settings.partitions
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN):
            with stop_on_failure("match_address_change"):
                sends, matched = [], []
                for event in events:
                    change = AddressChange.from_dict(event.value)
                    with about_message(
                        event.message, event_id=change.event_id, offender_id=change.offender_id
                    ):
                        with metrics.GEO_JOIN_SECONDS.time():
                            alerts = proximity_alert_batch(change, runtime.circles.index)
                        n = len(alerts) if alerts is not None else 0
                        metrics.ALERTS_PER_ADDRESS_CHANGE.observe(n)
                        sends += await send_alerts(graph, alerts, partitions)
                        matched.append((event, change, alerts, n))
                await deliver(sends)
                for event, change, alerts, n in matched:
                    with about_message(
                        event.message, event_id=change.event_id, offender_id=change.offender_id
                    ):
                        if alerts is not None:
                            metrics.alerts_emitted(alerts.common["kind"], n)
                        logger.info(
                            "address change matched", cell=event.key, direction=change.direction, alerts=n
                        )
