"""A worker never commits past a registry event it did not finish (faust_fixes)."""

from __future__ import annotations

import faust
from faust.types import TP

from streams.adapters import faust_fixes

EVENTS = TP("registry-events", 4)
SNAPSHOTS = TP("offender-snapshots", 4)  # compacted: holes there are normal


def _consumer():
    faust_fixes.apply(contiguous_topics=["registry-events"])
    app = faust.App("commit-rule", broker="kafka://127.0.0.1:9", web_enabled=False)
    return app.consumer


def test_one_unfinished_event_right_after_the_last_commit_holds_the_commit_back() -> None:
    consumer = _consumer()
    consumer._committed_offset[EVENTS] = 134  # next to read: 134
    consumer._acked[EVENTS] = [135, 136, 137]  # 134 skipped at a rebalance, never finished
    assert consumer._new_offset(EVENTS) is None
    consumer._acked[EVENTS] = [134, 135, 136, 137]  # read again and finished
    assert consumer._new_offset(EVENTS) == 138


def test_a_hole_in_a_compacted_topic_is_still_committed_past() -> None:
    consumer = _consumer()
    consumer._committed_offset[SNAPSHOTS] = 134
    consumer._acked[SNAPSHOTS] = [135, 136]
    assert consumer._new_offset(SNAPSHOTS) == 137


async def test_offsets_that_never_reached_the_stream_are_not_committable() -> None:
    consumer = _consumer()
    consumer._committed_offset[EVENTS] = 120
    consumer._acked[EVENTS] = [120, 121, 122]
    await consumer._add_gap(EVENTS, 123, 124)  # 123 never delivered, 124 arrived
    consumer._acked[EVENTS].append(124)
    assert consumer._new_offset(EVENTS) == 123  # up to 122, not past the hole
