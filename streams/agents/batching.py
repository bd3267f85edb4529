"""What every batch agent shares: batch size, waiting for the broker's acks, stopping on failure."""

from __future__ import annotations

import asyncio
import logging
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from streams.app import StreamGraph
from streams.domain.alert_batch import AlertBatch

logger = structlog.get_logger()

EXIT_AGENT_FAILED = 70  # EX_SOFTWARE


@contextmanager
def stop_on_failure(agent: str) -> Iterator[None]:
    """Around the body of a batch agent's loop.

    faust's `take` and `take_events` acknowledge the batch they handed out when their generator
    is closed, also after the loop body raised; faust then restarts the agent on the next batch.
    The failed batch would count as processed and its offsets be committed: notifications
    quietly missing. Stopping the process at once leaves the batch unacknowledged; the
    supervisor (compose, Kubernetes, systemd) starts the worker again and the batch is read
    again, harmlessly since every effect is idempotent. A bug that fails every time shows as a
    worker that keeps restarting, with this line in its log.

    The line names the exception's type and where it was raised, never its message (it could
    quote a value).
    """
    try:
        yield
    except Exception as exc:
        frames = [
            f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)
        ]
        logger.critical(
            "agent failed: stopping the worker so that its batch is read again",
            agent=agent,
            error=type(exc).__name__,
            frames=frames[-8:],
        )
        logging.shutdown()
        os._exit(EXIT_AGENT_FAILED)


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


async def send_alerts(graph: StreamGraph, alerts: AlertBatch | None, partitions: int) -> list[Any]:
    """Produce a change's alerts, one alert batch per destination partition; the sends to
    await (with `deliver`) before the change counts as done."""
    if alerts is None:
        return []
    return [
        await graph.alerts.send(key=str(part.subscriber_ids[0]), value=part.to_dict(), partition=p)
        for p, part in alerts.by_partition(partitions)
    ]


# Registry events are applied in batches: up to BATCH at a time, or what arrived within
# BATCH_WITHIN seconds. Each event is still applied in order (a later event of the same
# offender sees the earlier one's state), but the batch waits once for the broker's acks of
# all its messages and stores all its states in one transaction: one event at a time, those
# two waits were ~16 ms per event and bounded a worker at ~45 events/s (bench/README.md).
BATCH = 500
BATCH_WITHIN = 0.05
