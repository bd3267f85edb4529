"""Loaded by a worker started with this directory on PYTHONPATH (tests only): one fetched
record disappears before the stream sees it, once, the way one did in CI.

SOR_TEST_DROP_RECORD="topic:partition:offset" names it. The worker's own code is unchanged;
this stands in for the upstream loss that `faust_fixes` must notice and repair.
"""

import os

_spec = os.environ.get("SOR_TEST_DROP_RECORD")
if _spec:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    _topic, _partition, _offset = _spec.rsplit(":", 2)
    _fetch = AIOKafkaConsumerThread._fetch_records
    _dropped = []

    async def _lossy_fetch(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        records = await _fetch(self, *args, **kwargs)
        for tp, batch in records.items():
            if _dropped or tp.topic != _topic or tp.partition != int(_partition):
                continue
            kept = [r for r in batch if r.offset != int(_offset)]
            if len(kept) < len(batch):
                batch[:] = kept
                _dropped.append(True)
        return records

    AIOKafkaConsumerThread._fetch_records = _lossy_fetch
