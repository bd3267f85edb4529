"""Offender watches in batches: one message per offender for every subscriber starting or
stopping to track them (`watch-batch/1`, schemas/watch-batch.schema.json), where each watch
was a message of its own (10,530 at 100k circles: the largest part of a start, bench/README.md).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SCHEMA = "watch-batch/1"
# Subscribers per message at most (~8 bytes each).
MAX_SUBSCRIBERS = 5000


class InvalidWatchBatch(ValueError):
    """A message on offender-watches that is neither a batch nor a legacy single watch."""


@dataclass(frozen=True)
class WatchChange:
    offender_id: str
    watch: frozenset[int]
    unwatch: frozenset[int]


def messages(
    ops: Iterable[tuple[int, str, bool]], *, max_subscribers: int = MAX_SUBSCRIBERS
) -> list[tuple[str, dict[str, Any]]]:
    """(offender id, watch-batch value) for the (subscriber id, offender id, watching?)
    operations in the order they happened: each pair's last one counts."""
    last: dict[str, dict[int, bool]] = {}
    for subscriber_id, offender_id, active in ops:
        last.setdefault(offender_id, {})[int(subscriber_id)] = bool(active)
    out: list[tuple[str, dict[str, Any]]] = []
    for offender_id, held in last.items():
        items = sorted(held.items())
        for start in range(0, len(items), max_subscribers):
            part = items[start : start + max_subscribers]
            out.append(
                (
                    offender_id,
                    {
                        "schema": SCHEMA,
                        "offender_id": offender_id,
                        "watch": [s for s, on in part if on],
                        "unwatch": [s for s, on in part if not on],
                    },
                )
            )
    return out


def _ids(value: Any, name: str) -> frozenset[int]:
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise InvalidWatchBatch(f"{name} must list subscriber ids (integers)")
    return frozenset(value)


def decode(value: Any) -> WatchChange:
    """An offender-watches message value, checked: a batch, or the single watch of before."""
    if not isinstance(value, dict):
        raise InvalidWatchBatch(f"expected a JSON object, got {type(value).__name__}")
    offender_id = value.get("offender_id")
    if not isinstance(offender_id, str) or not offender_id:
        raise InvalidWatchBatch("offender_id must be a non-empty string")
    if "active" in value:  # offender-watches before watch batches: one watch per message
        sid = _ids([value.get("subscriber_id")], "subscriber_id")
        return WatchChange(
            offender_id, sid if value["active"] else frozenset(), frozenset() if value["active"] else sid
        )
    if value.get("schema") != SCHEMA:
        raise InvalidWatchBatch(f"schema {value.get('schema')!r}: expected {SCHEMA!r}")
    extra = set(value) - {"schema", "offender_id", "watch", "unwatch"}
    if extra:
        raise InvalidWatchBatch(f"unknown fields {sorted(extra)}")
    watch, unwatch = _ids(value.get("watch", []), "watch"), _ids(value.get("unwatch", []), "unwatch")
    if watch & unwatch:
        raise InvalidWatchBatch("a subscriber both in watch and unwatch")
    return WatchChange(offender_id, watch, unwatch)


def apply(held: Iterable[int] | None, change: WatchChange) -> list[int] | None:
    """The offender's watchers after the change (sorted), or None when unchanged."""
    before = set(held or ())
    after = (before - change.unwatch) | change.watch
    return None if after == before else sorted(after)
