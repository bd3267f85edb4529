"""Offender watches in batches: the watchers a worker holds after the messages are those the
operations leave, in the order they happened."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from streams.domain import watch_batch

SCHEMA = Draft202012Validator(
    json.loads((Path(__file__).resolve().parents[2] / "schemas" / "watch-batch.schema.json").read_text())
)


def read_all(msgs: list[tuple[str, dict[str, Any]]], table: dict[str, list[int]]) -> None:
    """What the agent does with each message."""
    for key, value in msgs:
        change = watch_batch.decode(json.loads(json.dumps(value)))
        assert change.offender_id == key
        after = watch_batch.apply(table.get(key), change)
        if after:
            table[key] = after
        elif after is not None:
            table.pop(key, None)


def test_the_watchers_held_are_what_the_operations_leave_in_order() -> None:
    rnd = random.Random(11)
    ops = [(rnd.randint(1, 40), f"MO-{rnd.randint(1, 6)}", rnd.random() < 0.6) for _ in range(600)]
    expected: dict[str, set[int]] = {}
    for sid, oid, on in ops:  # the oracle: apply one at a time
        (expected.setdefault(oid, set()).add if on else expected.setdefault(oid, set()).discard)(sid)
    msgs = watch_batch.messages(ops)
    for _, value in msgs:
        SCHEMA.validate(value)
    assert len(msgs) <= 6
    table: dict[str, list[int]] = {"MO-1": [99]}  # held before, untouched by the operations
    expected["MO-1"].add(99)
    read_all(msgs, table)
    assert table == {o: sorted(s) for o, s in expected.items() if s}


def test_a_batch_read_twice_changes_nothing_and_many_watchers_are_split() -> None:
    ops = [(s, "MO-7", True) for s in range(1, 12_001)]
    msgs = watch_batch.messages(ops)
    assert [len(v["watch"]) for _, v in msgs] == [5000, 5000, 2000]
    table: dict[str, list[int]] = {}
    read_all(msgs, table)
    assert table["MO-7"] == list(range(1, 12_001))
    for _, value in msgs:
        assert watch_batch.apply(table["MO-7"], watch_batch.decode(value)) is None


def test_the_last_watcher_leaving_removes_the_offender_and_old_single_watches_still_read() -> None:
    table: dict[str, list[int]] = {}
    read_all([("MO-3", {"subscriber_id": 5, "offender_id": "MO-3", "active": True})], table)
    assert table == {"MO-3": [5]}
    read_all(watch_batch.messages([(5, "MO-3", False)]), table)
    assert table == {}


@pytest.mark.parametrize(
    "value, says",
    [
        ("x", "expected a JSON object"),
        ({"schema": "watch-batch/1", "offender_id": "", "watch": [], "unwatch": []}, "non-empty string"),
        (
            {"schema": "watch-batch/2", "offender_id": "MO-1", "watch": [], "unwatch": []},
            "expected 'watch-batch/1'",
        ),
        (
            {"schema": "watch-batch/1", "offender_id": "MO-1", "watch": ["1"], "unwatch": []},
            "subscriber ids (integers)",
        ),
        (
            {"schema": "watch-batch/1", "offender_id": "MO-1", "watch": [1], "unwatch": [1]},
            "both in watch and unwatch",
        ),
        (
            {"schema": "watch-batch/1", "offender_id": "MO-1", "watch": [], "unwatch": [], "x": 1},
            "unknown fields ['x']",
        ),
    ],
)
def test_a_message_that_is_not_a_batch_is_refused_with_the_reason(value: Any, says: str) -> None:
    with pytest.raises(watch_batch.InvalidWatchBatch) as err:
        watch_batch.decode(value)
    assert says in str(err.value)
