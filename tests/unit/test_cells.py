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
    two = circle(2, 39.1, -94.6).to_dict()
    held.rebuild([two, two])  # two cells' copies of one circle
    assert len(held) == 1 and held.copies == 2
    assert held.index.query(38.6, -90.2) == []
    assert [m[0].circle_id for m in held.index.query(39.1, -94.6)] == [2]
