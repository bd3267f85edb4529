"""Positions and commits: seeks, where a partition starts, and never committing past a hole."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka.consumer.fetcher import Fetcher
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.adapters.faust_fixes.per_object import PerObject
from streams.adapters.faust_fixes.settings import SETTINGS

logger = structlog.get_logger()

_upstream_seek_to_committed = AIOKafkaConsumerThread.seek_to_committed
_upstream_fetcher_seek_to = Fetcher.seek_to
_upstream_request_offset_reset = Fetcher.request_offset_reset
_upstream_new_offset = Consumer._new_offset
_upstream_add_gap = Consumer._add_gap
_upstream_resume_partitions = Consumer.resume_partitions
_upstream_perform_seek = Consumer.perform_seek

Key = tuple[str, int]  # (topic, partition): aiokafka's and faust's TP types both reduce to it


@dataclass
class SeekLog:
    """Position changes (seeks, offset resets) per partition, counted where aiokafka makes them,
    with the offset each one moved to (None for a reset, resolved later by aiokafka).

    One per process, not per object: aiokafka's Fetcher counts on the consumer thread and
    faust's Consumer reads on the main loop, and neither holds the other.
    """

    counts: dict[Key, int] = field(default_factory=dict)
    targets: dict[Key, int | None] = field(default_factory=dict)

    def count(self, tp: Any, target: int | None) -> None:
        key = (tp.topic, tp.partition)
        self.targets[key] = target  # first: a reader that sees the new count sees its target
        self.counts[key] = self.counts.get(key, 0) + 1

    def seeks(self, key: Key) -> int:
        return self.counts.get(key, 0)

    def target(self, key: Key) -> int | None:
        return self.targets.get(key)


SEEK_LOG = SeekLog()


@dataclass
class _CommitHolds:
    """What one faust consumer holds back until a partition is read again from its commit."""

    # (tp, committed offset) already logged as waiting, so each wait is logged once.
    stalled: set[tuple[Any, int]] = field(default_factory=set)
    # Partitions of contiguous topics resumed by faust before their seek.
    resume_after_seek: set[Any] = field(default_factory=set)


_holds_of = PerObject(_CommitHolds)


async def seek_to_committed(self: Any) -> Mapping[Any, int]:
    """Seek to committed offsets, and to the beginning where nothing was committed yet.

    At the end of table recovery Faust seeks every stream partition to its committed offset,
    but aiokafka only seeks when that offset is above zero. A partition that never committed
    keeps the position its fetcher reached while recovery held the stream paused, so the
    records fetched in that window are dropped and never read again (seen here: an event
    published while a worker restarted was skipped for good). "Nothing committed" means
    "from the beginning" under auto_offset_reset=earliest; re-reading is harmless because
    every effect downstream is idempotent.

    Replaces faust/transport/drivers/aiokafka.py AIOKafkaConsumerThread.seek_to_committed in
    faust-streaming 0.15.3, which calls aiokafka/consumer/consumer.py
    AIOKafkaConsumer.seek_to_committed of aiokafka 0.14.0 (`if offset and offset > 0`).
    Upstream: https://github.com/aio-libs/aiokafka/issues/1003 (seek_to_committed does not
    work when the committed offset is 0).
    """
    committed = await _upstream_seek_to_committed(self)
    unset = [tp for tp, offset in committed.items() if not offset]
    if unset:
        await self.call_thread(self._ensure_consumer().seek_to_beginning, *unset)
    return committed


def fetcher_seek_to(self: Any, tp: Any, offset: int) -> Any:
    """Count a seek of `tp` to `offset` (see `SeekLog`), then seek.

    Replaces aiokafka/consumer/fetcher.py Fetcher.seek_to in aiokafka 0.14.0.
    """
    SEEK_LOG.count(tp, offset)
    return _upstream_fetcher_seek_to(self, tp, offset)


def fetcher_request_offset_reset(self: Any, tps: Any, strategy: Any) -> Any:
    """Count an offset reset of each of `tps` (see `SeekLog`), then reset.

    Replaces aiokafka/consumer/fetcher.py Fetcher.request_offset_reset in aiokafka 0.14.0.
    """
    for tp in tps:
        SEEK_LOG.count(tp, None)
    return _upstream_request_offset_reset(self, tps, strategy)


def new_offset(self: Any, tp: Any) -> int | None:
    """Never commit past an offset of a contiguous topic that was not acknowledged.

    Faust commits the first run of acknowledged offsets and checks only that the run starts
    less than two past the last commit: a single record left unacknowledged right after a
    commit (one skipped by its stream at a rebalance, whose acknowledgement `acks.ack`
    withholds) was committed past all the same. Seen here twice in CI, each time exactly one
    registry event missing and the offender's next move compared with a state one revision
    old. Here the run must start at the committed offset; otherwise nothing is committed
    until the partition is read again from there (the next rebalance seeks to it).

    Replaces faust/transport/consumer.py Consumer._new_offset in faust-streaming 0.15.3
    (`min(acked) - committed_offset > 1`). Upstream: the check came with
    https://github.com/faust-streaming/faust/pull/313 for
    https://github.com/faust-streaming/faust/issues/312 (wrong offset committed after a gap
    in acks); https://github.com/faust-streaming/faust/issues/606 (wrong offset commit in
    case of gaps) is still open.
    """
    if tp.topic in SETTINGS.contiguous_topics:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed:
            stalled = _holds_of(self).stalled
            if (tp, committed) not in stalled:
                stalled.add((tp, committed))
                logger.warning(
                    "offset not processed yet: commits wait for it",
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=committed,
                    next_done=min(acked),
                )
            return None
    return _upstream_new_offset(self, tp)


async def add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """A hole in a contiguous topic is a lost record, never compaction: not committable.

    Replaces faust/transport/consumer.py Consumer._add_gap in faust-streaming 0.15.3 (called
    from Consumer._drain_messages for any jump in offsets). Upstream: the gap intervals came
    with https://github.com/faust-streaming/faust/pull/282; counting them as processed is
    what keeps compacted topics committing
    (https://github.com/faust-streaming/faust/issues/378), and is right only for those.
    """
    if tp.topic in SETTINGS.contiguous_topics:
        logger.warning(
            "offsets never reached the stream: not committed past them",
            topic=tp.topic,
            partition=tp.partition,
            first=offset_from,
            last=offset_to - 1,
        )
        return
    await _upstream_add_gap(self, tp, offset_from, offset_to)


def resume_partitions(self: Any, tps: Iterable[Any]) -> None:
    """Resume a contiguous topic's partitions only once they are sought to their committed offset.

    At the end of a rebalance Faust resumes the stream partitions and only then seeks them to
    their committed offsets, with flow already running: in between, a partition this worker
    had before is fetched from where it was, and those records go to the stream. Seen in CI:
    a worker applied 123 registry events from offset 257 while the committed offset was 134,
    compared each with a state one revision old, and then took the 123 it had skipped for stale
    (1,017 alerts missing, 210 for moves that never happened). The partitions of contiguous
    topics wait here for the seek (`perform_seek`); the changelogs Faust reads during
    recovery are not held back.

    Replaces faust/transport/consumer.py Consumer.resume_partitions in faust-streaming 0.15.3;
    the order is in faust/tables/recovery.py Recovery._resume_streams and
    Recovery.on_recovery_completed, both resuming before perform_seek. Upstream: the race of
    resuming before the seek was https://github.com/faust-streaming/faust/issues/216 (apps
    without tables), reordered in https://github.com/faust-streaming/faust/pull/217; the
    partitions themselves are still resumed first.
    """
    tpset = set(tps)
    later = {tp for tp in tpset if tp.topic in SETTINGS.contiguous_topics}
    if later:
        holds = _holds_of(self)
        holds.resume_after_seek = holds.resume_after_seek | later
    _upstream_resume_partitions(self, tpset - later)


async def perform_seek(self: Any) -> None:
    """Seek, then resume the partitions `resume_partitions` held back for the seek.

    Replaces faust/transport/consumer.py Consumer.perform_seek in faust-streaming 0.15.3.
    """
    await _upstream_perform_seek(self)
    holds = _holds_of(self)
    later = holds.resume_after_seek
    if later:
        holds.resume_after_seek = set()
        _upstream_resume_partitions(self, later & set(self.assignment()))


PATCHES = (
    (AIOKafkaConsumerThread, "seek_to_committed", seek_to_committed),
    (Fetcher, "seek_to", fetcher_seek_to),
    (Fetcher, "request_offset_reset", fetcher_request_offset_reset),
    (Consumer, "_new_offset", new_offset),
    (Consumer, "_add_gap", add_gap),
    (Consumer, "resume_partitions", resume_partitions),
    (Consumer, "perform_seek", perform_seek),
)
