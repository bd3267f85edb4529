"""The worker's operations pages on Faust's web server: /metrics, /healthz and /readyz."""

from __future__ import annotations

from typing import Any

import faust

from streams.adapters import metrics
from streams.app import StreamGraph
from streams.domain import circle_batch
from streams.runtime import Runtime


class ConsumedSensor(faust.Sensor):
    """Counts every message handed to a stream, in one place instead of in every agent."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        metrics.EVENTS_CONSUMED.labels(topic=tp.topic).inc()


def register(graph: StreamGraph, runtime: Runtime) -> None:
    graph.app.sensors.add(ConsumedSensor())
    broker_url = ",".join(f"{url.host}:{url.port}" for url in graph.app.conf.broker)

    @graph.app.page("/metrics")
    async def metrics_page(self: Any, request: Any) -> Any:
        refresh_gauges(graph, runtime)
        return self.bytes(metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})

    @graph.app.page("/healthz")
    async def healthz(self: Any, request: Any) -> Any:
        return self.json({"alive": True})

    @graph.app.page("/readyz")
    async def readyz(self: Any, request: Any) -> Any:
        ok, body = await metrics.readiness(
            {
                "broker": metrics.broker_answers(broker_url),
                "database": metrics.database_answers(runtime.engine),
            }
        )
        return self.json(body, status=200 if ok else 503)


def refresh_gauges(graph: StreamGraph, runtime: Runtime) -> None:
    """Index sizes and consumer lag, read at scrape time so they are never older than the scrape."""
    metrics.CIRCLES_HELD.set(len(runtime.circles))
    metrics.CIRCLE_COPIES_HELD.set(runtime.circles.copies)
    metrics.OFFENDERS_HELD.set(len(graph.offender_to_state))
    # The table keeps a revoked partition's rows; count only what the index holds, as its rebuild does.
    owned = _owned_partitions(graph, graph.tracked_circles.get_topic_name())
    cells = {
        circle_batch.cell_of_key(key)
        for key, v in graph.cell_bucket_to_circles.items()
        if v["partition"] in owned
    }
    metrics.CELLS_HELD.set(len(cells))
    _refresh_lag(graph)


def _owned_partitions(graph: StreamGraph, topic: str) -> set[int]:
    try:
        return {tp.partition for tp in graph.app.assignor.assigned_actives() if tp.topic == topic}
    except Exception:  # noqa: BLE001 - no assignment yet
        return set()


def _refresh_lag(graph: StreamGraph) -> None:
    # Lag only for the topics agents read: changelogs are read during recovery, never committed.
    read = {agent.channel.get_topic_name() for agent in graph.app.agents.values()}
    consumer = graph.app.consumer
    metrics.CONSUMER_LAG.clear()  # partitions moved to another worker drop out
    try:
        assigned = [tp for tp in consumer.assignment() if tp.topic in read]
    except Exception:  # noqa: BLE001 - not started, or mid-rebalance: no lag this scrape
        return
    for tp in assigned:
        try:
            # The end offset the last fetch reported: no broker round trip per scrape.
            end = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - revoked since assignment() was read
            continue
        if end is None:  # not fetched yet
            continue
        # Committed offsets name the next message to read; none yet means reading from the start.
        # faust's Consumer keeps it; its ConsumerT protocol does not declare it.
        committed = consumer._committed_offset.get(tp) or 0  # type: ignore[attr-defined]
        metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, end - committed))
