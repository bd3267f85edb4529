"""What an operator reads from the broker: topic partitions, a group's offsets, records by offset."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streams.adapters.broker import BROKER_FAILURES, BrokerError, broker_failure, wait_for_broker

# An operator waits this long for a broker that is not there, not the workers' 30 s.
BROKER_WAIT_S = 5.0


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    begin: int
    end: int
    committed: int | None  # None: the group has committed nothing here


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    value: bytes
    timestamp: int


@dataclass(frozen=True)
class LatestRecords:
    records: list[Record]  # in the order read, not sorted
    total: int  # how many the partitions hold


@dataclass(frozen=True)
class RecordAt:
    begin: int
    end: int
    record: Record | None  # None when the offset is outside begin..end-1 or could not be read


async def _accepts_connections(broker_url: str) -> bool:
    for server in broker_url.split(","):
        host, _, port = server.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2.0)
        except (OSError, ValueError, TimeoutError):
            continue
        writer.close()
        return True
    return False


@asynccontextmanager
async def _admin(broker_url: str) -> AsyncIterator[AIOKafkaAdminClient]:
    # A broker that is simply not running is said so at once, without a client's retry log.
    if not await _accepts_connections(broker_url):
        raise BrokerError(f"broker {broker_url} unreachable: nothing accepts connections there")
    await wait_for_broker(broker_url, timeout=BROKER_WAIT_S)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker_url, request_timeout_ms=10000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def _reader(broker_url: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer of no group: it reads, it never commits, it moves nobody's offsets."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker_url,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10000,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _partitions(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, list[int]]:
    """Partitions of the topics that exist (a missing topic is not asked about: some
    brokers create a topic they are asked about, with the wrong partition count)."""
    existing = set(await admin.list_topics())
    wanted = [n for n in names if n in existing]
    if not wanted:
        return {}
    described = await admin.describe_topics(wanted)
    return {d["topic"]: sorted(p["partition"] for p in d.get("partitions", [])) for d in described}


async def topic_partitions(broker_url: str, names: list[str]) -> dict[str, list[int]]:
    """The partitions of each of `names` that exists; a missing topic is left out."""
    try:
        async with _admin(broker_url) as admin:
            return await _partitions(admin, names)
    except BROKER_FAILURES as exc:
        raise broker_failure(broker_url, exc) from exc


async def group_offsets(broker_url: str, group_id: str, names: list[str]) -> list[PartitionOffsets]:
    """Every partition of `names`: where it begins and ends, and what `group_id` committed."""
    try:
        async with _admin(broker_url) as admin:
            parts = await _partitions(admin, names)
            tps = [TopicPartition(t, p) for t in names for p in parts.get(t, [])]
            if not tps:
                return []
            committed = await admin.list_consumer_group_offsets(group_id, partitions=tps)
        async with _reader(broker_url) as consumer:
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
    except BROKER_FAILURES as exc:
        raise broker_failure(broker_url, exc) from exc
    out = []
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else None
        out.append(PartitionOffsets(tp.topic, tp.partition, begins[tp], ends[tp], done))
    return out


async def latest_records(
    broker_url: str, topic: str, partitions: list[int], limit: int, *, timeout_s: float, label: str
) -> LatestRecords:
    """The `limit` newest records of each partition (so the newest `limit` overall are among
    them); `label` names the topic in the error when reading takes over `timeout_s`."""
    tps = [TopicPartition(topic, p) for p in partitions]
    found: list[Record] = []
    try:
        async with _reader(broker_url) as consumer:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
            total = sum(ends[tp] - begins[tp] for tp in tps)
            for tp in tps:
                consumer.seek(tp, max(begins[tp], ends[tp] - limit))
            waiting = {tp for tp in tps if ends[tp] > begins[tp]}
            deadline = asyncio.get_running_loop().time() + timeout_s
            while waiting:
                if asyncio.get_running_loop().time() > deadline:
                    raise BrokerError(f"broker {broker_url}: reading {label} timed out; try again")
                batch = await consumer.getmany(*waiting, timeout_ms=1000)
                for tp, records in batch.items():
                    for r in records:
                        # Records written after the end offsets were taken are not counted in total.
                        if r.offset < ends[tp]:
                            found.append(Record(tp.partition, r.offset, r.value or b"", r.timestamp))
                    if await consumer.position(tp) >= ends[tp]:
                        waiting.discard(tp)
    except BROKER_FAILURES as exc:
        raise broker_failure(broker_url, exc) from exc
    return LatestRecords(found, total)


async def record_at(
    broker_url: str, topic: str, partition: int, offset: int, *, timeout_s: float
) -> RecordAt:
    """The partition's bounds, and the record at `offset` if it lies within them."""
    tp = TopicPartition(topic, partition)
    try:
        async with _reader(broker_url) as consumer:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            begin = (await consumer.beginning_offsets([tp]))[tp]
            if not begin <= offset < end:
                return RecordAt(begin, end, None)
            consumer.seek(tp, offset)
            for _ in range(int(timeout_s)):
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
                if batch.get(tp):
                    r = batch[tp][0]
                    found = Record(partition, r.offset, r.value or b"", r.timestamp)
                    return RecordAt(begin, end, found if r.offset == offset else None)
            return RecordAt(begin, end, None)
    except BROKER_FAILURES as exc:
        raise broker_failure(broker_url, exc) from exc
