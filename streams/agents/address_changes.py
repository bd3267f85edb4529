"""The geo join: an offender address that appeared or went away, against the circles held here."""

from __future__ import annotations

from typing import Any

import structlog

from streams.adapters import metrics
from streams.agents.registry_events import deliver
from streams.app import StreamGraph
from streams.bootstrap import Services
from streams.domain.matching import proximity_alerts
from streams.domain.model import AddressChange
from streams.logs import about_message

logger = structlog.get_logger()


def register(g: StreamGraph, services: Services) -> None:
    @g.app.agent(g.address_changes, name="match_address_change")
    async def match_address_change(stream: Any) -> None:
        async for event in stream.events():
            change = AddressChange.from_dict(event.value)
            with about_message(event.message, event_id=change.event_id, offender_id=change.offender_id):
                with metrics.GEO_JOIN_SECONDS.time():
                    alerts = proximity_alerts(change, services.circles.index)
                metrics.ALERTS_PER_ADDRESS_CHANGE.observe(len(alerts))
                sends = [
                    await g.alerts.send(key=str(a.subscriber_id), value=a.to_dict()) for a in alerts
                ]
                await deliver(sends)
                metrics.alerts_emitted(alerts)
                logger.info(
                    "address change matched", cell=event.key, direction=change.direction, alerts=len(alerts)
                )
