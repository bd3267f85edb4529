"""Every event meets every circle that could contain it, through the grid cells."""

from __future__ import annotations

import random

from pyproj import Geod

from streams.domain.cell_circles import CellCircles
from streams.domain.cells import cell_of, cells_overlapping
from streams.domain.geometry import bounding_box
from streams.domain.model import Circle
from streams.domain.radii import RADII

GEOD = Geod(ellps="WGS84")


def circle(cid: int, lat: float, lon: float, code: str = "1mi") -> Circle:
    return Circle(cid, cid, f"c{cid}", "x", lat, lon, RADII[code][0], code)


def test_a_point_inside_a_circle_lies_in_one_of_its_cells() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        lat, lon = rng.uniform(36.0, 40.6), rng.uniform(-95.7, -89.1)
        code = rng.choice(list(RADII))
        r = RADII[code][0]
        plon, plat, _ = GEOD.fwd(lon, lat, rng.uniform(0, 360), rng.uniform(0, r))
        assert cell_of(plat, plon) in cells_overlapping(bounding_box(lat, lon, r))


def test_circles_held_in_several_cells_match_once_and_leave_with_the_last_cell() -> None:
    held = CellCircles()
    c = circle(1, 38.6270, -90.1994, "5mi")
    cells = cells_overlapping(bounding_box(c.lat, c.lon, c.radius_m))
    assert len(cells) > 1
    for _cell in cells:
        held.upsert(c, new_copy=True)
    held.upsert(c, new_copy=False)  # one cell's copy again (a redelivery): still one copy there
    assert held.copies == len(cells)
    assert [m[0].circle_id for m in held.index.query(38.63, -90.20)] == [1]
    for _cell in cells[:-1]:
        held.remove(1, held_copy=True)
    held.remove(1, held_copy=False)  # a removal redelivered: that cell's copy is gone already
    assert len(held) == 1 and held.copies == 1
    held.remove(1, held_copy=True)
    assert len(held) == 0 and held.copies == 0 and held.index.query(38.63, -90.20) == []


def test_rebuild_replaces_everything() -> None:
    held = CellCircles()
    held.upsert(circle(1, 38.6, -90.2), new_copy=True)
    two = list(circle(2, 39.1, -94.6).to_dict().values())  # a row: the fields in order
    held.rebuild([two, two])  # two cells' copies of one circle
    assert len(held) == 1 and held.copies == 2
    assert held.index.query(38.6, -90.2) == []
    assert [m[0].circle_id for m in held.index.query(39.1, -94.6)] == [2]


def test_upsert_many_counts_copies_and_indexes_each_circle_once() -> None:
    holder = CellCircles()
    a, b = circle(1, 38.6, -90.2), circle(2, 38.7, -90.3)
    holder.upsert_many([(a, True), (b, True)])
    holder.upsert_many([(a, True)])  # a's copy for a second cell: same circle, one more copy
    assert len(holder) == 2 and holder.copies == 3
    moved = circle(1, 39.0, -94.5)
    holder.upsert_many([(moved, False)])  # a changed copy: no new copy, the index follows
    assert holder.copies == 3 and holder.index.get(1) == moved
    holder.remove(1, held_copy=True)
    assert 1 in holder.index  # one copy left
    holder.remove(1, held_copy=True)
    assert 1 not in holder.index and len(holder) == 1
