"""A correction to faust-streaming's consumer that at-least-once delivery depends on."""

from __future__ import annotations

from typing import Any, Mapping

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_original = AIOKafkaConsumerThread.seek_to_committed


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
    committed = await _original(self)
    unset = [tp for tp, offset in committed.items() if not offset]
    if unset:
        await self.call_thread(self._ensure_consumer().seek_to_beginning, *unset)
    return committed


def apply() -> None:
    AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
