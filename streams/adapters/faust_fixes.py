"""Corrections to faust-streaming's consumer that at-least-once delivery depends on."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Iterable, Mapping

import structlog
from aiokafka.consumer.fetcher import Fetcher
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from streams.adapters import metrics

logger = structlog.get_logger()

_original_seek_to_committed = AIOKafkaConsumerThread.seek_to_committed
_original_ack = Consumer.ack
_original_getmany = Consumer.getmany
_original_wait_next_records = Consumer._wait_next_records
_original_fetch_records = AIOKafkaConsumerThread._fetch_records
_original_fetcher_seek_to = Fetcher.seek_to
_original_request_offset_reset = Fetcher.request_offset_reset
_original_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer
_original_send_pending = ProducerBuffer._send_pending
_original_new_offset = Consumer._new_offset
_original_resume_partitions = Consumer.resume_partitions
_original_perform_seek = Consumer.perform_seek
_original_add_gap = Consumer._add_gap
_fetch_max_wait_ms: int | None = None
# Topics whose offsets have no holes (delete policy, no transactions): a jump is a lost record.
_contiguous_topics: frozenset[str] = frozenset()
# How often the same hole is read again before it is taken as the broker's own.
_GAP_RETRIES = 3


async def _seek_to_committed(self: Any) -> Mapping[Any, int]:
    """Seek to committed offsets, and to the beginning where nothing was committed yet.

    At the end of table recovery Faust seeks every stream partition to its committed offset,
    but aiokafka only seeks when that offset is above zero. A partition that never committed
    keeps the position its fetcher reached while recovery held the stream paused, so the
    records fetched in that window are dropped and never read again (seen here: an event
    published while a worker restarted was skipped for good). "Nothing committed" means
    "from the beginning" under auto_offset_reset=earliest; re-reading is harmless because
    every effect downstream is idempotent.
    """
    committed = await _original_seek_to_committed(self)
    unset = [tp for tp, offset in committed.items() if not offset]
    if unset:
        await self.call_thread(self._ensure_consumer().seek_to_beginning, *unset)
    return committed


def _ack(self: Any, message: Any) -> bool:
    """Acknowledge a message only if it can have been processed: never one skipped at a rebalance.

    A stream skips a message fetched before a rebalance (an older consumer generation) or
    taken off its queue while flow is suspended for one, and then acknowledges it "so the lag
    does not grow". Acknowledged means committable: the offset is committed with the next
    commit, and whoever owns the partition next starts after a message nobody processed (seen
    here: after SIGKILLs, one address change per partition lost, exactly the first one fetched
    in the short-lived generation). Such a message is marked done for Faust's bookkeeping (so
    a rebalance does not wait for it) but its offset is not offered for commit; after the
    rebalance the partition is read again from its committed offset. A message that really
    was processed during the suspension is then processed again: every effect is idempotent.
    """
    app = self.app
    generation = getattr(message, "generation_id", None)
    stale = generation is not None and generation != app.consumer_generation_id
    with ack_lock:
        if stale or not app.flow_control.is_active():
            if not message.acked:
                message.acked = True
                self._unacked_messages.discard(message)
            notify(self._waiting_for_ack)
            return False
    return _original_ack(self, message)


# Position changes (seeks, offset resets) per partition, counted where aiokafka makes them,
# with the offset each one moved to (None for a reset, resolved later by aiokafka).
_SEEKS: dict[tuple[str, int], int] = {}
_SEEK_TARGET: dict[tuple[str, int], int | None] = {}


def _count_seek(tp: Any, target: int | None) -> None:
    key = (tp.topic, tp.partition)
    _SEEK_TARGET[key] = target  # first: a reader that sees the new count sees its target
    _SEEKS[key] = _SEEKS.get(key, 0) + 1


def _fetcher_seek_to(self: Any, tp: Any, offset: int) -> Any:
    _count_seek(tp, offset)
    return _original_fetcher_seek_to(self, tp, offset)


def _fetcher_request_offset_reset(self: Any, tps: Any, strategy: Any) -> Any:
    for tp in tps:
        _count_seek(tp, None)
    return _original_request_offset_reset(self, tps, strategy)


class _Fetched(dict):  # type: ignore[type-arg]
    """Records of one fetch, with each partition's seek count at the moment they were taken."""

    seeks: dict[tuple[str, int], int]


async def _fetch_records(self: Any, *args: Any, **kwargs: Any) -> Any:
    records = await _original_fetch_records(self, *args, **kwargs)
    fetched = _Fetched(records)
    fetched.seeks = {(tp.topic, tp.partition): _SEEKS.get((tp.topic, tp.partition), 0) for tp in records}
    return fetched


async def _wait_next_records(self: Any, timeout: float) -> Any:
    records, active = await _original_wait_next_records(self, timeout)
    self._sor_fetch_seeks = getattr(records, "seeks", {})
    return records, active


async def _getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
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
    """
    expected: dict[tuple[str, int], tuple[int, int | None]] = self.__dict__.setdefault("_sor_expected", {})
    retried: dict[tuple[tuple[str, int], int], int] = self.__dict__.setdefault("_sor_gap_reads", {})
    async for tp, message in _original_getmany(self, timeout):
        key = (tp.topic, tp.partition)
        marks = getattr(self, "_sor_fetch_seeks", {})
        seeks = _SEEKS.get(key, 0)
        if key in marks and seeks != marks[key]:
            continue
        if key[0] in _contiguous_topics:
            epoch, want = expected.get(key, (-1, None))
            if epoch != seeks:  # moved since the last record: from where it moved to
                want = _SEEK_TARGET.get(key) if seeks else None
            if want is not None and message.offset > want:
                reads = retried.get((key, want), 0) + 1
                retried[(key, want)] = reads
                if reads <= _GAP_RETRIES:
                    logger.warning(
                        "records lost between fetch and stream: partition read again",
                        topic=tp.topic, partition=tp.partition, expected=want, got=message.offset,
                    )
                    metrics.FETCH_GAPS_REPAIRED.labels(topic=tp.topic).inc()
                    await self.seek(tp, want)
                    expected[key] = (_SEEKS.get(key, 0), want)
                    continue
                logger.error(
                    "offsets missing on the broker: going on after them",
                    topic=tp.topic, partition=tp.partition, expected=want, got=message.offset,
                )
            expected[key] = (seeks, message.offset + 1)
        yield tp, message


def _new_offset(self: Any, tp: Any) -> int | None:
    """Never commit past an offset of a contiguous topic that was not acknowledged.

    Faust commits the first run of acknowledged offsets and checks only that the run starts
    less than two past the last commit: a single record left unacknowledged right after a
    commit (one skipped by its stream at a rebalance, whose acknowledgement `_ack` withholds)
    was committed past all the same. Seen here twice in CI, each time exactly one registry
    event missing and the offender's next move compared with a state one revision old. Here
    the run must start at the committed offset; otherwise nothing is committed until the
    partition is read again from there (the next rebalance seeks to it).
    """
    if tp.topic in _contiguous_topics:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed:
            stalled = self.__dict__.setdefault("_sor_stalled", set())
            if (tp, committed) not in stalled:
                stalled.add((tp, committed))
                logger.warning(
                    "offset not processed yet: commits wait for it",
                    topic=tp.topic, partition=tp.partition, offset=committed, next_done=min(acked),
                )
            return None
    return _original_new_offset(self, tp)


async def _add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """A hole in a contiguous topic is a lost record, never compaction: not committable."""
    if tp.topic in _contiguous_topics:
        logger.warning(
            "offsets never reached the stream: not committed past them",
            topic=tp.topic, partition=tp.partition, first=offset_from, last=offset_to - 1,
        )
        return
    await _original_add_gap(self, tp, offset_from, offset_to)


def _resume_partitions(self: Any, tps: Iterable[Any]) -> None:
    """Resume a contiguous topic's partitions only once they are sought to their committed offset.

    At the end of a rebalance Faust resumes the stream partitions and only then seeks them to
    their committed offsets, with flow already running: in between, a partition this worker
    had before is fetched from where it was, and those records go to the stream. Seen in CI:
    a worker applied 123 registry events from offset 257 while the committed offset was 134,
    compared each with a state one revision old, and then took the 123 it had skipped for stale
    (1,017 alerts missing, 210 for moves that never happened). The partitions of contiguous
    topics wait here for the seek (`_perform_seek`); the changelogs Faust reads during
    recovery are not held back.
    """
    tpset = set(tps)
    later = {tp for tp in tpset if tp.topic in _contiguous_topics}
    if later:
        self._sor_resume_after_seek = getattr(self, "_sor_resume_after_seek", set()) | later
    _original_resume_partitions(self, tpset - later)


async def _perform_seek(self: Any) -> None:
    await _original_perform_seek(self)
    later = getattr(self, "_sor_resume_after_seek", set())
    if later:
        self._sor_resume_after_seek = set()
        _original_resume_partitions(self, later & set(self.assignment()))


def _create_worker_consumer(self: Any, transport: Any) -> Any:
    """Faust's consumer, asking for the configured fetch wait instead of its fixed 1500 ms."""
    consumer = _original_create_worker_consumer(self, transport)
    if _fetch_max_wait_ms is not None:
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read when the consumer starts
    return consumer


async def _send_pending(self: Any, fut: Any) -> None:
    # Taken off the queue but not yet handed to aiokafka: counted, so a flush waits for it.
    self._sor_in_flight = getattr(self, "_sor_in_flight", 0) + 1
    try:
        await _original_send_pending(self, fut)
    finally:
        self._sor_in_flight -= 1
        self.message_sent.set()


async def _buffer_flush(self: Any) -> None:
    """Flush the table-write buffer for real: wait until every buffered message has been
    handed to aiokafka, whose own flush Faust awaits next, before it commits offsets.

    Faust gives up when no buffered message was sent within 0.1 s, and counts a message
    being handed over as already gone, so under load it committed an offset while the
    table update of the event behind it still sat in this buffer. A worker taking the
    partition over then restored a table without that update and started after the event
    (seen here: after a rebalance, events compared with an offender's state from one
    revision back, 94 alerts for moves that never happened and 248 missing).
    """
    while self.size or getattr(self, "_sor_in_flight", 0):
        if self.state != "running":
            if self.size:
                raise RuntimeError("Cannot flush: Producer not Running")
            return
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)
        except asyncio.TimeoutError:
            pass


def apply(*, fetch_max_wait_ms: int | None = None, contiguous_topics: Iterable[str] = ()) -> None:
    global _fetch_max_wait_ms, _contiguous_topics
    _fetch_max_wait_ms = fetch_max_wait_ms
    _contiguous_topics = frozenset(contiguous_topics)
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
    AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
    Consumer.ack = _ack  # type: ignore[method-assign]
    Consumer.getmany = _getmany  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
    Consumer.resume_partitions = _resume_partitions  # type: ignore[method-assign]
    Consumer.perform_seek = _perform_seek  # type: ignore[method-assign]
    Consumer._wait_next_records = _wait_next_records  # type: ignore[method-assign]
    AIOKafkaConsumerThread._fetch_records = _fetch_records  # type: ignore[method-assign]
    Fetcher.seek_to = _fetcher_seek_to  # type: ignore[method-assign]
    Fetcher.request_offset_reset = _fetcher_request_offset_reset  # type: ignore[method-assign]
    ProducerBuffer._send_pending = _send_pending  # type: ignore[method-assign]
    ProducerBuffer.flush = _buffer_flush  # type: ignore[method-assign]
