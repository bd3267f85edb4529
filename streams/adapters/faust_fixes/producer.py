"""The producer buffer: a flush before a commit waits for every buffered table write."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from faust.transport.producer import ProducerBuffer

_upstream_send_pending = ProducerBuffer._send_pending

# Per buffer: messages taken off its queue but not yet handed to aiokafka.
_in_flight: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


async def send_pending(self: Any, fut: Any) -> None:
    """Count a message while it is handed to aiokafka, so a flush waits for it.

    Replaces faust/transport/producer.py ProducerBuffer._send_pending in faust-streaming
    0.15.3; see `buffer_flush`.
    """
    _in_flight[self] = _in_flight.get(self, 0) + 1
    try:
        await _upstream_send_pending(self, fut)
    finally:
        _in_flight[self] -= 1
        self.message_sent.set()


async def buffer_flush(self: Any) -> None:
    """Flush the table-write buffer for real: wait until every buffered message has been
    handed to aiokafka, whose own flush Faust awaits next, before it commits offsets.

    Faust gives up when no buffered message was sent within 0.1 s, and counts a message
    being handed over as already gone, so under load it committed an offset while the
    table update of the event behind it still sat in this buffer. A worker taking the
    partition over then restored a table without that update and started after the event
    (seen here: after a rebalance, events compared with an offender's state from one
    revision back, 94 alerts for moves that never happened and 248 missing).

    Replaces faust/transport/producer.py ProducerBuffer.flush (which calls flush_atmost) in
    faust-streaming 0.15.3; the state checked is mode-streaming's Service.state. Upstream:
    https://github.com/faust-streaming/faust/pull/273 added the flush before a commit, this
    makes that flush complete. tests/integration/test_table_write_flush.py shows faust alone
    still returning with updates unsent.
    """
    while self.size or _in_flight.get(self, 0):
        if self.state != "running":
            if self.size:
                raise RuntimeError("Cannot flush: Producer not Running")
            return
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)
        except TimeoutError:
            pass


PATCHES = (
    (ProducerBuffer, "_send_pending", send_pending),
    (ProducerBuffer, "flush", buffer_flush),
)
