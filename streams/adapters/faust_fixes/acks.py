"""Acknowledgements: a message skipped at a rebalance is never offered for commit."""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

_upstream_ack = Consumer.ack


def ack(self: Any, message: Any) -> bool:
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

    Replaces faust/transport/consumer.py Consumer.ack in faust-streaming 0.15.3 (the skip and
    its acknowledgement are in faust/streams.py Stream._py_aiter). Upstream:
    https://github.com/faust-streaming/faust/issues/221 (events prefetched before a rebalance
    reach the stream) and https://github.com/faust-streaming/faust/pull/223, which added the
    generation check that skips them; neither withholds the skipped message's offset.
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
    return _upstream_ack(self, message)


PATCHES = ((Consumer, "ack", ack),)
