"""Record alerts into subscribers' pending digests, in batches; duplicates are ignored."""

from __future__ import annotations

from typing import Any

import structlog

from streams.adapters import metrics, repository
from streams.app import StreamGraph
from streams.bootstrap import Services
from streams.domain.model import Alert

logger = structlog.get_logger()


def register(g: StreamGraph, services: Services) -> None:
    @g.app.agent(g.alerts, name="record_alert")
    async def record_alert(stream: Any) -> None:
        # take() acks a batch only once the loop comes back for the next one.
        async for batch in stream.take(1000, within=0.2):
            alerts = [Alert.from_dict(v) for v in batch]
            new = await services.db(repository.record_alerts, alerts)
            metrics.alerts_recorded(len(alerts), new)
            logger.info("alerts recorded", received=len(alerts), new=new)
