"""What the broker does, found out at start: does it count a multi-record batch's offsets right?

Tansu 0.6 (the embedded broker, and any Tansu an operator points us at) reports the end
offset of a partition written in batches of several records too low: five records in batches
of 3 and 2 give end offset 4, not 5. Faust's table recovery then fails after a rebalance
(ConsistencyError) and `status` under-reports lag. The cure is one record per produced
batch. Whether it is needed is a fact about the broker, not about who started it, so each
process asks the broker once: two records in one batch to a scratch topic, then the end
offset it reports.
"""

from __future__ import annotations

import asyncio
import random

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from streams import topics
from streams.adapters.broker import ensure_topics

logger = structlog.get_logger()

PROBE_PARTITIONS = 8  # a partition drawn at random: processes starting together rarely share one
TRIES = 3

# Per process and broker address: the answer does not change while the process runs.
_answers: dict[str, bool] = {}


async def batch_end_offset_moves(broker_url: str, replication: int = 1) -> tuple[int, int]:
    """(records written in one batch, how far the reported end offset moved past them)."""
    spec = topics.BROKER_PROBE
    await ensure_topics(broker_url, [(spec.name, topics.delete_policy(spec))], PROBE_PARTITIONS, replication)
    producer = AIOKafkaProducer(
        bootstrap_servers=broker_url, acks="all", linger_ms=200, enable_idempotence=False
    )
    consumer = AIOKafkaConsumer(bootstrap_servers=broker_url, group_id=None, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        for _ in range(TRIES):
            tp = TopicPartition(spec.name, random.randrange(PROBE_PARTITIONS))
            # Both sent before either is awaited: the linger puts them in one batch.
            sent = [await producer.send(spec.name, value=b"probe", partition=tp.partition) for _ in range(2)]
            offsets = sorted(m.offset for m in await asyncio.gather(*sent))
            end = (await consumer.end_offsets([tp]))[tp]
            if end > offsets[-1] + 1:
                continue  # another process wrote there meanwhile: the answer would be muddled
            return len(offsets), end - offsets[0]
        return 2, 2  # always crowded: nothing seen amiss
    finally:
        await producer.stop()
        await consumer.stop()


async def needs_single_record_batches(broker_url: str, forced: bool | None, replication: int = 1) -> bool:
    """Whether producers must send one record per batch: `forced` (SOR_SINGLE_RECORD_BATCHES)
    when set, else what the broker showed."""
    if forced is not None:
        return forced
    if broker_url not in _answers:
        written, moved = await batch_end_offset_moves(broker_url, replication)
        _answers[broker_url] = moved != written
        if moved != written:
            logger.warning(
                "the broker misreports end offsets of multi-record batches: producing one record per batch",
                broker=broker_url,
                records_in_batch=written,
                end_offset_moved_by=moved,
                override="SOR_SINGLE_RECORD_BATCHES",
            )
        else:
            logger.info("the broker counts multi-record batches right: producers batch", broker=broker_url)
    return _answers[broker_url]
