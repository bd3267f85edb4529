"""Fetching: the fetch wait asked for; records handed out in order, from a fetch still valid."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.adapters import metrics
from streams.adapters.faust_fixes.offsets import SEEK_LOG, Key
from streams.adapters.faust_fixes.per_object import PerObject
from streams.adapters.faust_fixes.settings import SETTINGS

logger = structlog.get_logger()

_upstream_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer
_upstream_fetch_records = AIOKafkaConsumerThread._fetch_records
_upstream_wait_next_records = Consumer._wait_next_records
_upstream_getmany = Consumer.getmany

# How often the same hole is read again before it is taken as the broker's own.
GAP_RETRIES = 3


@dataclass
class _FetchState:
    """What one faust consumer knows about the records it is handing out."""

    # Each partition's seek count when the fetch being handed out was taken.
    fetch_seeks: dict[Key, int] = field(default_factory=dict)
    # Per partition: the seek count when it was last read, and the next offset expected then.
    expected: dict[Key, tuple[int, int | None]] = field(default_factory=dict)
    # How often each (partition, expected offset) hole has been read again.
    gap_reads: dict[tuple[Key, int], int] = field(default_factory=dict)


_state_of = PerObject(_FetchState)


class _Fetched(dict[Any, Any]):  # aiokafka's TopicPartition -> its records (untyped)
    """Records of one fetch, with each partition's seek count at the moment they were taken."""

    seeks: dict[Key, int]


def create_worker_consumer(self: Any, transport: Any) -> Any:
    """Faust's consumer, asking for the configured fetch wait instead of its fixed 1500 ms.

    Replaces faust/transport/drivers/aiokafka.py AIOKafkaConsumerThread._create_worker_consumer
    in faust-streaming 0.15.3 (`fetch_max_wait_ms=1500`, no setting for it). No upstream
    report of it found.
    """
    consumer = _upstream_create_worker_consumer(self, transport)
    if SETTINGS.fetch_max_wait_ms is not None:
        consumer._fetch_max_wait_ms = SETTINGS.fetch_max_wait_ms  # read when the consumer starts
    return consumer


async def fetch_records(self: Any, *args: Any, **kwargs: Any) -> Any:
    """The records of one fetch, marked with each partition's seek count (see `getmany`).

    Replaces faust/transport/drivers/aiokafka.py AIOKafkaConsumerThread._fetch_records in
    faust-streaming 0.15.3; runs on the consumer thread, where aiokafka seeks.
    """
    records = await _upstream_fetch_records(self, *args, **kwargs)
    fetched = _Fetched(records)
    fetched.seeks = {(tp.topic, tp.partition): SEEK_LOG.seeks((tp.topic, tp.partition)) for tp in records}
    return fetched


async def wait_next_records(self: Any, timeout: float) -> Any:
    """The next fetch, its seek marks kept for `getmany`.

    Replaces faust/transport/consumer.py Consumer._wait_next_records in faust-streaming 0.15.3.
    """
    records, active = await _upstream_wait_next_records(self, timeout)
    _state_of(self).fetch_seeks = getattr(records, "seeks", {})
    return records, active


async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    """Hand out the records of one fetch, except those of a partition seeked since the fetch,
    and never past a hole in a partition's offsets.

    Faust's fetch loop keeps handing out a batch fetched before a rebalance's seek and marks
    each record as read; the same offsets fetched again from the committed position are then
    "already read" and dropped for good (seen here: 93 registry events in a row never
    processed by the worker that owned their partition throughout), and handing them out
    first would also process a partition out of order. A seek resets aiokafka's position, so
    whatever is held back here is fetched again.

    A hole: the next record of a topic whose offsets are contiguous comes after the one
    expected. Faust takes such a hole for compaction and commits past it. In CI one registry
    event (offset 186 between 185 and 187, read long after it was published) never reached
    the stream of the worker that read its neighbours in one batch, and the next owner of the
    partition started after it: the offender's next move was compared with a state one
    revision old. Here the partition is sought back to the expected offset and the records
    from there come again; a hole that is still there after a few reads is the broker's.

    Replaces faust/transport/consumer.py Consumer.getmany in faust-streaming 0.15.3 (records
    at or below the read offset are dropped, and jumps become gaps, in
    Consumer._drain_messages). Upstream: https://github.com/faust-streaming/faust/issues/221
    (records prefetched before a rebalance handed out after it); where the lost record of
    the second paragraph goes upstream is not known, and no report of it was found.
    """
    state = _state_of(self)
    expected = state.expected
    retried = state.gap_reads
    async for tp, message in _upstream_getmany(self, timeout):
        key = (tp.topic, tp.partition)
        marks = state.fetch_seeks  # read per record: wait_next_records replaces it per fetch
        seeks = SEEK_LOG.seeks(key)
        if key in marks and seeks != marks[key]:
            continue
        if key[0] in SETTINGS.contiguous_topics:
            epoch, want = expected.get(key, (-1, None))
            if epoch != seeks:  # moved since the last record: from where it moved to
                want = SEEK_LOG.target(key) if seeks else None
            if want is not None and message.offset > want:
                reads = retried.get((key, want), 0) + 1
                retried[(key, want)] = reads
                if reads <= GAP_RETRIES:
                    logger.warning(
                        "records lost between fetch and stream: partition read again",
                        topic=tp.topic,
                        partition=tp.partition,
                        expected=want,
                        got=message.offset,
                    )
                    metrics.FETCH_GAPS_REPAIRED.labels(topic=tp.topic).inc()
                    await self.seek(tp, want)
                    expected[key] = (SEEK_LOG.seeks(key), want)
                    continue
                logger.error(
                    "offsets missing on the broker: going on after them",
                    topic=tp.topic,
                    partition=tp.partition,
                    expected=want,
                    got=message.offset,
                )
            expected[key] = (seeks, message.offset + 1)
        yield tp, message


PATCHES = (
    (AIOKafkaConsumerThread, "_create_worker_consumer", create_worker_consumer),
    (AIOKafkaConsumerThread, "_fetch_records", fetch_records),
    (Consumer, "_wait_next_records", wait_next_records),
    (Consumer, "getmany", getmany),
)
