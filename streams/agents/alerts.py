"""Record alerts into subscribers' pending digests, in batches; duplicates are ignored."""

from __future__ import annotations

from typing import Any

import structlog

from streams.adapters import alert_writer, metrics
from streams.agents.batching import stop_on_failure
from streams.app import StreamGraph
from streams.runtime import Runtime

logger = structlog.get_logger()


def register(graph: StreamGraph, runtime: Runtime) -> None:
    @graph.app.agent(graph.alerts, name="record_alert")
    async def record_alert(stream: Any) -> None:
        # take() acks a batch only once the loop comes back for the next one. It hands over
        # what it holds every `within` seconds: each alert waits up to that long, the largest
        # part of event-to-pending-alert latency once the broker hops are fast (bench/README.md,
        # Pipeline). At 50 ms a quiet stream makes at most 20 small transactions a second.
        # A message is an alert batch (all of one change's alerts for this partition), or one
        # alert as workers before batches sent it; every row of the take is one transaction.
        async for batch in stream.take(1000, within=0.05):
            with stop_on_failure("record_alert"):
                received, new = await runtime.db(alert_writer.record_alert_messages, batch)
                metrics.alerts_recorded(received, new)
                logger.info("alerts recorded", messages=len(batch), received=received, new=new)
