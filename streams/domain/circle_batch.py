"""Tracked circles in batches: many circles per message, and per table entry.

A circle is held once per grid cell its box touches (the geo join meets an event in the
cell of its point). Those copies used to travel one Kafka message and one table entry each:
~2 per circle, so a state's 1M circles were millions of records to write and read at every
start. Now:

- on `tracked-circles`, one message per cell carries up to `MAX_CIRCLES` upserts and
  deletes for that cell (`circle-batch/1`, schemas/circle-batch.schema.json);
- in the worker's table, one entry per cell and bucket (`circle_id % BUCKETS`) holds the
  bucket's circles (as one JSON text of rows), so an entry stays far below a broker's 1 MB message limit (the densest
  cell at 1M circles holds ~12,500 copies: ~1,600 per bucket, ~320 KB) while the changelog
  has at most cells x `BUCKETS` records.

Pure: no I/O. The agent applies a decoded batch to its table entries with `apply`.
"""

from __future__ import annotations

import json
import operator
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.domain.cells import cells_overlapping
from streams.domain.geometry import bounding_box
from streams.domain.model import Circle

SCHEMA = "circle-batch/1"
# Circles per message at most: ~200 bytes each, ~100 KB a message.
MAX_CIRCLES = 500
# Table entries per cell. Changing it re-keys the table: entries carry the count they were
# written with, and an entry of another count is ignored (stale) until `resync` rewrites it.
BUCKETS = 8

# A circle as a row: its fields in `Circle`'s order (what `Circle(*row)` takes).
ROW_FIELDS: tuple[str, ...] = tuple(Circle.__dataclass_fields__)
_CIRCLE_FIELDS = frozenset(ROW_FIELDS)
_row_of = operator.itemgetter(*ROW_FIELDS)


class InvalidCircleBatch(ValueError):
    """A message on tracked-circles that is neither a batch nor a legacy single change."""


@dataclass
class CellChange:
    """What one message says about one cell: circles to hold (as stored dicts) and ids to drop."""

    upserts: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[int] = field(default_factory=list)


def cells_of(circle: Circle) -> list[str]:
    """The grid cells a circle is held in: every cell its conservative box touches."""
    return cells_overlapping(bounding_box(circle.lat, circle.lon, circle.radius_m))


def bucket_key(cell: str, circle_id: int) -> str:
    """The table key of the entry holding this cell's copy of the circle."""
    return f"{cell}/{circle_id % BUCKETS}"


def cell_of_key(key: str) -> str:
    """The grid cell a table key (`bucket_key`) belongs to: what the entry is partitioned by."""
    return key.partition("/")[0]


def _bucket_keys(cell: str) -> list[str]:
    """Every bucket key of a cell, by bucket: `bucket_key(cell, cid)` is `[cid % BUCKETS]`."""
    return [bucket_key(cell, b) for b in range(BUCKETS)]


def messages(
    ops: Iterable[tuple[str, Circle]],
    *,
    max_circles: int = MAX_CIRCLES,
    cells: Callable[[Circle], list[str]] = cells_of,
) -> list[tuple[str, dict[str, Any]]]:
    """(cell, circle-batch value) messages, at most `max_circles` circles each, for the
    ("upsert" | "delete", circle) operations in the order they happened.

    What counts per cell is each circle's last operation there: a circle moved (its old
    copy deleted, then the new one upserted) leaves only the cells it no longer touches,
    and a circle upserted by one change and deleted by a later one is deleted. So a
    message never names one circle twice, and the order within it does not matter.
    `cells` gives a circle's cells (`cells_of`, or what a caller already worked out with it).
    """
    last: dict[str, dict[int, dict[str, Any] | None]] = {}  # cell -> circle id -> circle or None
    for op, c in ops:
        if op not in ("upsert", "delete"):
            raise ValueError(f"op {op!r}: expected upsert or delete")
        d = c.to_dict() if op == "upsert" else None
        for cell in cells(c):
            last.setdefault(cell, {})[c.circle_id] = d
    out: list[tuple[str, dict[str, Any]]] = []
    for cell, held in last.items():
        # By bucket, so that a message rewrites as few table entries as it can.
        items = sorted(held.items(), key=lambda item: item[0] % BUCKETS)
        for start in range(0, len(items), max_circles):
            part = items[start : start + max_circles]
            out.append(
                (
                    cell,
                    {
                        "schema": SCHEMA,
                        "upsert": [d for _, d in part if d is not None],
                        "delete": [cid for cid, d in part if d is None],
                    },
                )
            )
    return out


def change_ops(removed: Iterable[Circle], upserted: Iterable[Circle]) -> list[tuple[str, Circle]]:
    """One change's operations in order: what it withdrew goes first, then what it holds."""
    return [("delete", c) for c in removed] + [("upsert", c) for c in upserted]


def decode(value: Any) -> CellChange:
    """A tracked-circles message value, checked: a batch, or the single change of before."""
    if not isinstance(value, dict):
        raise InvalidCircleBatch(f"expected a JSON object, got {type(value).__name__}")
    if "op" in value:  # tracked-circles before circle batches: one copy per message
        op, circle = value.get("op"), _check_circle(value.get("circle"))
        if op == "upsert":
            return CellChange(upserts=[circle])
        if op == "delete":
            return CellChange(deletes=[circle["circle_id"]])
        raise InvalidCircleBatch(f"op {op!r}: expected upsert or delete")
    if value.get("schema") != SCHEMA:
        raise InvalidCircleBatch(f"schema {value.get('schema')!r}: expected {SCHEMA!r}")
    extra = set(value) - {"schema", "upsert", "delete"}
    if extra:
        raise InvalidCircleBatch(f"unknown fields {sorted(extra)}")
    ups, dels = value.get("upsert", []), value.get("delete", [])
    if not isinstance(ups, list) or not isinstance(dels, list):
        raise InvalidCircleBatch("upsert and delete must be lists")
    for d in ups:
        _check_circle(d)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in dels):
        raise InvalidCircleBatch("delete must list circle ids (integers)")
    return CellChange(upserts=ups, deletes=dels)


def _check_circle(d: Any) -> dict[str, Any]:
    """`d` itself once it is a circle's fields."""
    if not isinstance(d, dict) or d.keys() != _CIRCLE_FIELDS:
        got = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise InvalidCircleBatch(f"a circle needs exactly the fields {sorted(_CIRCLE_FIELDS)}, got {got}")
    if not isinstance(d["circle_id"], int) or isinstance(d["circle_id"], bool):
        raise InvalidCircleBatch("circle_id must be an integer")
    return d


def entry_rows(entry: Mapping[str, Any] | None) -> list[list[Any]]:
    """The circles a table entry holds, as rows (`ROW_FIELDS`), none for a stale entry.

    An entry keeps its circles as one JSON text of rows, not as a dict per circle: a worker
    holds every copy of its cells (2.1 per circle), and at 1M circles dicts took ~1.4 GB of
    the worker's memory; rows parse 2.4 times faster than objects and take half the text
    (bench/README.md, start). It is parsed when a message changes it and on a rebuild."""
    if not entry or entry.get("buckets") != BUCKETS:
        return []
    rows: list[list[Any]] = json.loads(entry["circles"])
    return rows


def entry_circles(entry: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The circles a table entry holds, by circle id as text, as `Circle.to_dict` gives them."""
    return {str(row[0]): dict(zip(ROW_FIELDS, row)) for row in entry_rows(entry)}


def _entry(partition: int, rows_json: str) -> dict[str, Any]:
    return {"partition": partition, "buckets": BUCKETS, "circles": rows_json}


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def keys_of(cell: str, change: CellChange) -> set[str]:
    """The table entries of this cell that `change` reads and may write."""
    keys = _bucket_keys(cell)
    return {keys[d["circle_id"] % BUCKETS] for d in change.upserts} | {
        keys[cid % BUCKETS] for cid in change.deletes
    }


class EntryReader:
    """Table entries parsed once and kept for the messages that follow.

    A message names up to `MAX_CIRCLES` circles of one cell, and messages come cell by cell
    and, within a cell, bucket by bucket (`messages`), so the next message mostly reads the
    entries the last one read. Parsing a crowded entry (~1,600 circles at 1M) for each of
    them was most of what a worker spent on resync's no-op republication
    (bench/circle_backlog.py). A kept parse is used only while the entry still holds the
    text it was parsed from, so an entry rewritten elsewhere (a changelog restore after a
    rebalance, a failed write) is parsed again. At most `size` entries are kept.
    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._held: OrderedDict[str, tuple[str, dict[int, list[Any]]]] = OrderedDict()

    def rows(self, key: str, entry: Mapping[str, Any] | None) -> dict[int, list[Any]]:
        """The entry's circles as rows by circle id. Shared: the caller must not change it."""
        if not entry or entry.get("buckets") != BUCKETS:
            return {}
        text = entry["circles"]
        kept = self._held.get(key)
        if kept is not None and kept[0] == text:
            self._held.move_to_end(key)
            return kept[1]
        rows = {row[0]: row for row in json.loads(text)}
        self.keep(key, text, rows)
        return rows

    def keep(self, key: str, text: str, rows: dict[int, list[Any]]) -> None:
        self._held[key] = (text, rows)
        self._held.move_to_end(key)
        while len(self._held) > self._size:
            self._held.popitem(last=False)

    def forget(self, key: str) -> None:
        self._held.pop(key, None)


@dataclass
class Applied:
    """The result of one cell's change: entries to write (None: delete the key) and what the
    index must do: circles whose copy is new or changed, ids whose copy went."""

    entries: dict[str, dict[str, Any] | None]
    upserted: list[tuple[dict[str, Any], bool]]  # (circle, new copy?)
    dropped: list[int]


def apply(
    cell: str,
    change: CellChange,
    entries: Mapping[str, Mapping[str, Any] | None],
    partition: int,
    *,
    reader: EntryReader | None = None,
) -> Applied:
    """Apply `change` to this cell's table entries (`entries`: key -> entry, as held now).

    Deletes first, then upserts (`messages` never names a circle in both). A copy already held
    with the same content changes nothing (a batch read twice, or resync's republication to a
    running worker, writes nothing).
    `reader` keeps parsed entries between calls (the agent's); without one, each call parses
    what it reads.
    """
    reader = reader if reader is not None else EntryReader()
    held_at: dict[str, dict[int, list[Any]]] = {}  # key -> rows, shared with the reader
    changed: dict[str, dict[int, list[Any]]] = {}  # key -> this call's own copy of the rows

    def rows_at(key: str) -> dict[int, list[Any]]:
        if key in changed:
            return changed[key]
        if key not in held_at:
            held_at[key] = reader.rows(key, entries.get(key))
        return held_at[key]

    def writable(key: str) -> dict[int, list[Any]]:
        if key not in changed:
            changed[key] = dict(rows_at(key))
        return changed[key]

    keys = _bucket_keys(cell)
    dropped: list[int] = []
    for cid in change.deletes:
        key = keys[cid % BUCKETS]
        if cid in rows_at(key):
            del writable(key)[cid]
            dropped.append(cid)
    upserted: list[tuple[dict[str, Any], bool]] = []
    for d in change.upserts:
        cid = d["circle_id"]
        key = keys[cid % BUCKETS]
        row = list(_row_of(d))
        before = rows_at(key).get(cid)
        if before == row:
            continue
        writable(key)[cid] = row
        upserted.append((d, before is None))
    out: dict[str, dict[str, Any] | None] = {}
    for key, rows in changed.items():
        if rows:
            text = _text(list(rows.values()))
            out[key] = _entry(partition, text)
            reader.keep(key, text, rows)
        else:
            out[key] = None
            reader.forget(key)
    return Applied(out, upserted, dropped)


def table_entries(
    circles: Iterable[Circle], partition_of: Any, cells: Callable[[Circle], list[str]] = cells_of
) -> dict[str, dict[str, Any]]:
    """Every table entry for these circles, as `resync` writes them to the changelog;
    `partition_of(cell)` is the partition the cell's messages go to, `cells` as for
    `messages`. Each circle's JSON is written once and shared by its copies."""
    parts: dict[str, list[str]] = {}
    partitions: dict[str, int] = {}
    for c in circles:
        text = _text([getattr(c, f) for f in ROW_FIELDS])
        for cell in cells(c):
            key = bucket_key(cell, c.circle_id)
            held = parts.get(key)
            if held is None:
                held = parts[key] = []
                partitions[key] = partition_of(cell)
            held.append(text)
    return {key: _entry(partitions[key], "[" + ",".join(held) + "]") for key, held in parts.items()}
