"""Tracked circles in batches: what the worker's table holds after the messages is every copy
the circles need, whether it came by messages (site, import) or straight from resync."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pyproj import Geod

from streams.domain import circle_batch
from streams.domain.cell_circles import CellCircles
from streams.domain.model import Circle

GEOD = Geod(ellps="WGS84")
SCHEMA = Draft202012Validator(
    json.loads((Path(__file__).resolve().parents[2] / "schemas" / "circle-batch.schema.json").read_text())
)
RADII = {"500ft": 152.4, "1mi": 1609.344, "5mi": 8046.72}


def circle(cid: int, lat: float, lon: float, code: str = "1mi", label: str = "Home") -> Circle:
    return Circle(cid, 1000 + cid // 5, label, f"{cid} Main St, St. Louis, MO", lat, lon, RADII[code], code)


def ups(circles: list[Circle]) -> list[tuple[str, Circle]]:
    return [("upsert", c) for c in circles]


def random_circles(n: int, seed: int) -> list[Circle]:
    rnd = random.Random(seed)
    return [
        circle(i, 38.6 + rnd.uniform(-0.3, 0.3), -90.2 + rnd.uniform(-0.3, 0.3), rnd.choice(list(RADII)))
        for i in range(1, n + 1)
    ]


class Worker:
    """What the agent does with each message: the table entries and the index it feeds, and
    parsed entries kept between messages as the agent keeps them (few, so that they are
    dropped and parsed again within a test)."""

    def __init__(self, table: dict[str, Any] | None = None) -> None:
        self.table: dict[str, Any] = dict(table or {})
        self.reader = circle_batch.EntryReader(size=3)
        self.index = CellCircles()
        if table:
            self.index.rebuild(row for v in self.table.values() for row in circle_batch.entry_rows(v))

    def read(self, cell: str, value: Any, partition: int = 0) -> circle_batch.Applied:
        change = circle_batch.decode(json.loads(json.dumps(value)))  # as it crosses the wire
        keys = circle_batch.keys_of(cell, change)
        applied = circle_batch.apply(
            cell, change, {k: self.table.get(k) for k in keys}, partition, reader=self.reader
        )
        for key, entry in applied.entries.items():
            if entry is None:
                self.table.pop(key, None)
            else:
                self.table[key] = entry
        for cid in applied.dropped:
            self.index.remove(cid, held_copy=True)
        for d, new in applied.upserted:
            self.index.upsert(Circle.from_dict(d), new_copy=new)
        return applied

    def copies(self) -> set[tuple[str, int]]:
        return {
            (key.split("/")[0], int(cid))
            for key, v in self.table.items()
            for cid in circle_batch.entry_circles(v)
        }


def cell_of(lat: float, lon: float) -> str:
    """The grid cell of a point, written out apart from the code under test."""
    return f"{math.floor(lat * 10)}:{math.floor(lon * 10)}"


def points_inside(c: Circle, n: int = 48) -> list[tuple[float, float]]:
    """Points on and just inside the circle's edge, all around it, and its centre."""
    out = [(c.lat, c.lon)]
    for k in range(n):
        lon, lat, _ = GEOD.fwd(c.lon, c.lat, k * 360.0 / n, c.radius_m * 0.999)
        out.append((lat, lon))
    return out


def test_every_point_inside_a_circle_finds_it_in_its_cell_after_the_messages() -> None:
    circles = random_circles(300, seed=3)
    w = Worker()
    for cell, value in circle_batch.messages(ups(circles)):
        SCHEMA.validate(value)
        w.read(cell, value)
    held = w.copies()
    for c in circles:
        for lat, lon in points_inside(c):
            assert (cell_of(lat, lon), c.circle_id) in held, (c, lat, lon)
    assert len(w.index) == 300
    assert w.index.copies == len(held)


def test_resync_writes_the_same_table_as_the_messages_build() -> None:
    circles = random_circles(200, seed=5)
    w = Worker()
    for cell, value in circle_batch.messages(ups(circles)):
        w.read(cell, value, partition=hash(cell) % 4)
    direct = circle_batch.table_entries(circles, lambda cell: hash(cell) % 4)

    def content(table: dict[str, Any]) -> dict[str, Any]:
        return {k: (v["partition"], circle_batch.entry_circles(v)) for k, v in table.items()}

    assert content(w.table) == content(direct)
    # A worker restored from resync's entries holds the same circles as one fed the messages.
    restored = Worker(direct)
    assert restored.copies() == w.copies() and len(restored.index) == len(w.index) == 200
    assert restored.index.copies == w.index.copies


def test_messages_read_twice_change_nothing() -> None:
    circles = random_circles(50, seed=7)
    w = Worker()
    msgs = circle_batch.messages(ups(circles))
    for cell, value in msgs:
        w.read(cell, value)
    table, copies = json.dumps(w.table, sort_keys=True), w.index.copies
    for cell, value in msgs:
        applied = w.read(cell, value)
        assert applied.entries == {} and applied.upserted == [] and applied.dropped == []
    assert json.dumps(w.table, sort_keys=True) == table and w.index.copies == copies


def test_a_parse_kept_from_an_entry_rewritten_since_is_not_trusted() -> None:
    """A changelog restore after a rebalance rewrites entries under the agent's kept parses:
    what the table holds now decides, not what the agent read before."""
    circles = random_circles(40, seed=11)
    w = Worker()
    w.reader = circle_batch.EntryReader(size=10_000)  # every entry kept
    msgs = circle_batch.messages(ups(circles))
    for cell, value in msgs:
        w.read(cell, value)
    relabelled = [dataclasses.replace(c, label="Work") for c in circles]
    w.table = circle_batch.table_entries(relabelled, lambda cell: 0)  # restored from elsewhere
    changed = sum(len(w.read(cell, value).upserted) for cell, value in msgs)
    assert changed == sum(len(v["upsert"]) for _, v in msgs)  # every copy differed: rewritten
    expected = circle_batch.table_entries(circles, lambda cell: 0)
    assert {k: circle_batch.entry_circles(v) for k, v in w.table.items()} == {
        k: circle_batch.entry_circles(v) for k, v in expected.items()
    }


def test_a_moved_circle_leaves_the_cells_it_no_longer_touches_and_stays_in_the_others() -> None:
    old = circle(7, 38.6270, -90.1994, "5mi")
    new = circle(7, 38.6270, -90.0500, "5mi", label="New home")  # ~13 km east: some cells shared
    w = Worker()
    for cell, value in circle_batch.messages(ups([old, circle(8, 38.63, -90.2)])):
        w.read(cell, value)
    for cell, value in circle_batch.messages(circle_batch.change_ops([old], [new])):
        w.read(cell, value)
    expected = Worker(circle_batch.table_entries([new, circle(8, 38.63, -90.2)], lambda cell: 0))
    assert w.copies() == expected.copies()
    assert w.index.index.get(7) == new and w.index.copies == expected.index.copies
    shared = {cell for cell, cid in w.copies() if cid == 7} & set(circle_batch.cells_of(old))
    assert shared, "the test needs a move that keeps some cells"


def test_of_several_changes_the_later_wins_in_every_cell() -> None:
    """An import file naming one subscriber twice: added by the first line, moved then
    dropped by the next ones; another circle dropped, then added back."""
    first, moved = circle(5, 38.63, -90.20, "5mi"), circle(5, 38.63, -90.05, "5mi")
    back = circle(6, 38.60, -90.30)
    ops = [
        ("upsert", first),
        *circle_batch.change_ops([first], [moved]),
        ("delete", moved),
        ("delete", back),
        ("upsert", back),
    ]
    w = Worker()
    for cell, value in circle_batch.messages(ops):
        assert not {d["circle_id"] for d in value["upsert"]} & set(value["delete"])
        w.read(cell, value)
    assert w.copies() == {(cell, 6) for cell in circle_batch.cells_of(back)}
    assert 5 not in w.index.index and len(w.index) == 1


def test_dropping_every_circle_of_a_bucket_deletes_its_entry_and_the_index_forgets_them() -> None:
    a, b = circle(16, 38.63, -90.2), circle(24, 38.63, -90.2)  # same cell, same bucket (8 buckets)
    assert circle_batch.bucket_key("386:-903", 16) == circle_batch.bucket_key("386:-903", 24)
    w = Worker()
    for cell, value in circle_batch.messages(ups([a, b])):
        w.read(cell, value)
    for cell, value in circle_batch.messages([("delete", a)]):
        w.read(cell, value)
    assert {cid for _, cid in w.copies()} == {24} and 16 not in w.index.index
    entries = []
    for cell, value in circle_batch.messages([("delete", b)]):
        entries += w.read(cell, value).entries.values()
    assert entries and all(e is None for e in entries)  # the keys go from the table
    assert w.table == {} and len(w.index) == 0 and w.index.copies == 0


def test_a_crowded_cell_is_split_into_messages_of_at_most_500_circles() -> None:
    crowd = [circle(i, 38.65, -90.25, "500ft") for i in range(1, 1201)]  # one cell
    msgs = circle_batch.messages(ups(crowd))
    assert [len(v["upsert"]) for _, v in msgs] == [500, 500, 200]
    assert {cell for cell, _ in msgs} == {cell_of(38.65, -90.25)}
    w = Worker()
    for cell, value in msgs:
        SCHEMA.validate(value)
        w.read(cell, value)
    assert len(w.index) == 1200
    sizes = [len(json.dumps(v)) for v in w.table.values()]
    assert len(sizes) == circle_batch.BUCKETS and max(sizes) < 1200 / circle_batch.BUCKETS * 400


def test_an_entry_written_with_another_bucket_count_is_ignored() -> None:
    c = circle(3, 38.65, -90.25, "500ft")  # one cell
    ((key, entry),) = circle_batch.table_entries([c], lambda cell: 0).items()
    assert circle_batch.entry_circles(entry) == {"3": c.to_dict()}
    assert circle_batch.entry_circles({**entry, "buckets": circle_batch.BUCKETS * 2}) == {}


def test_the_single_changes_of_before_still_read() -> None:
    c = circle(9, 38.63, -90.2)
    w = Worker()
    w.read(cell_of(38.63, -90.2), {"op": "upsert", "circle": c.to_dict()})
    assert w.copies() == {(cell_of(38.63, -90.2), 9)}
    w.read(cell_of(38.63, -90.2), {"op": "delete", "circle": c.to_dict()})
    assert w.copies() == set() and len(w.index) == 0


@pytest.mark.parametrize(
    "value, says",
    [
        ([1, 2], "expected a JSON object"),
        ({"schema": "circle-batch/9", "upsert": [], "delete": []}, "expected 'circle-batch/1'"),
        ({"schema": "circle-batch/1", "upsert": {}, "delete": []}, "must be lists"),
        (
            {"schema": "circle-batch/1", "upsert": [{"circle_id": 1}], "delete": []},
            "a circle needs exactly the fields",
        ),
        ({"schema": "circle-batch/1", "upsert": [], "delete": ["7"]}, "circle ids (integers)"),
        ({"schema": "circle-batch/1", "upsert": [], "delete": [], "extra": 1}, "unknown fields ['extra']"),
        ({"op": "move", "circle": circle(1, 38.6, -90.2).to_dict()}, "expected upsert or delete"),
    ],
)
def test_a_message_that_is_not_a_batch_is_refused_with_the_reason(value: Any, says: str) -> None:
    with pytest.raises(circle_batch.InvalidCircleBatch) as err:
        circle_batch.decode(value)
    assert says in str(err.value)
