"""Every record a topic holds, read straight from the broker (no consumer group)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def _read(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes]]:
    # "earliest": a reset aiokafka starts on assign() must not land after, and undo, the seek to
    # the beginning below (with the default "latest", now and then nothing at all was read).
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        assert partitions, f"no topic {topic!r} on the broker"
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        values: list[tuple[int, bytes | None, bytes]] = []
        while True:
            positions = [await consumer.position(tp) for tp in partitions]
            if all(pos >= end[tp] for pos, tp in zip(positions, partitions)):
                return values
            batch = await consumer.getmany(timeout_ms=1000)
            values += [(m.partition, m.key, m.value) for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()


def read_topic(
    bootstrap: str, topic: str, *, with_partition: bool = False, with_key: bool = False
) -> list[Any]:
    """The values of every record in `topic`, up to its end offsets when called (with
    `with_partition`, (partition, value) pairs; with `with_key`, (key, value) pairs)."""
    records = asyncio.run(_read(bootstrap, topic))
    if with_key:
        return [(key, value) for _, key, value in records]
    return [(p, value) for p, _, value in records] if with_partition else [value for _, _, value in records]
