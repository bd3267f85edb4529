"""The circle index: mutations, and exact agreement with brute-force geodesic matching."""

from __future__ import annotations

import random

import pytest
from pyproj import Geod

from streams.domain.circle_index import CircleIndex
from streams.domain.model import Circle
from streams.domain.radii import FOOT_M, RADII

GEOD = Geod(ellps="WGS84")
ST_LOUIS = (38.627, -90.199)
KANSAS_CITY = (39.0997, -94.5786)


def circle(
    cid: int, lat: float, lon: float, code: str = "1mi", subscriber: int | None = None
) -> Circle:
    sub = cid * 10 if subscriber is None else subscriber
    return Circle(cid, sub, f"place {cid}", f"{cid} Main St", lat, lon, RADII[code][0], code)


def offset(lat: float, lon: float, azimuth: float, metres: float) -> tuple[float, float]:
    lon2, lat2, _ = GEOD.fwd(lon, lat, azimuth, metres)
    return lat2, lon2


def ids(hits) -> list[int]:
    return [c.circle_id for c, _ in hits]


def brute_force(circles: list[Circle], lat: float, lon: float) -> list[tuple[int, float]]:
    hits = []
    for c in circles:
        _, _, d = GEOD.inv(c.lon, c.lat, lon, lat)
        if d <= c.radius_m:
            hits.append((c, d))
    hits.sort(key=lambda h: (h[0].subscriber_id, h[0].circle_id))
    return [(c.circle_id, d) for c, d in hits]


def assert_same(got, expected):
    assert [c.circle_id for c, _ in got] == [cid for cid, _ in expected]
    for (_, d1), (_, d2) in zip(got, expected):
        assert d1 == pytest.approx(d2, abs=1e-6)


def test_upsert_get_contains_len_and_query_distance():
    idx = CircleIndex()
    c = circle(1, *ST_LOUIS, "0.5mi")
    idx.upsert(c)
    assert len(idx) == 1 and 1 in idx and 2 not in idx
    assert idx.get(1) == c and idx.get(2) is None
    p = offset(*ST_LOUIS, 45.0, 300.0)
    [(hit, d)] = idx.query(*p)
    assert hit == c
    assert d == pytest.approx(300.0, abs=1e-6)


def test_moved_circle_matches_at_new_place_only():
    idx = CircleIndex()
    idx.upsert(circle(1, *ST_LOUIS, "1mi"))
    idx.upsert(circle(1, *KANSAS_CITY, "1mi"))
    assert len(idx) == 1
    assert idx.query(*ST_LOUIS) == []
    assert ids(idx.query(*KANSAS_CITY)) == [1]
    assert idx.get(1).lat == KANSAS_CITY[0]


def test_radius_change_takes_effect():
    idx = CircleIndex()
    idx.upsert(circle(1, *ST_LOUIS, "5mi"))
    p = offset(*ST_LOUIS, 10.0, RADII["2mi"][0])
    assert ids(idx.query(*p)) == [1]
    idx.upsert(circle(1, *ST_LOUIS, "1mi"))
    assert idx.query(*p) == []


def test_remove_and_clear():
    idx = CircleIndex()
    idx.upsert(circle(1, *ST_LOUIS))
    idx.upsert(circle(2, *ST_LOUIS))
    assert idx.remove(1) is True
    assert idx.remove(1) is False
    assert ids(idx.query(*ST_LOUIS)) == [2]
    assert 1 not in idx and len(idx) == 1
    idx.clear()
    assert len(idx) == 0 and idx.query(*ST_LOUIS) == [] and list(idx.circles()) == []
    idx.upsert(circle(3, *ST_LOUIS))
    assert ids(idx.query(*ST_LOUIS)) == [3]


def test_results_sorted_by_subscriber_then_circle():
    idx = CircleIndex()
    idx.upsert(circle(5, *ST_LOUIS, subscriber=2))
    idx.upsert(circle(9, *ST_LOUIS, subscriber=1))
    idx.upsert(circle(3, *ST_LOUIS, subscriber=2))
    idx.upsert(circle(7, *ST_LOUIS, subscriber=1))
    assert [(c.subscriber_id, c.circle_id) for c, _ in idx.query(*ST_LOUIS)] == [
        (1, 7), (1, 9), (2, 3), (2, 5),
    ]


def random_circles(rng: random.Random, n: int, start_id: int = 1) -> list[Circle]:
    out = []
    for i in range(n):
        lat, lon = offset(*ST_LOUIS, rng.uniform(0, 360), rng.uniform(0, 12_000))
        code = rng.choice(list(RADII))
        out.append(circle(start_id + i, lat, lon, code, subscriber=rng.randint(1, 60)))
    return out


def probe_points(rng: random.Random, circles: list[Circle], n: int) -> list[tuple[float, float]]:
    pts = [offset(*ST_LOUIS, rng.uniform(0, 360), rng.uniform(0, 18_000)) for _ in range(n)]
    # Points right at some circles' edges, where a sloppy test would disagree.
    for c in rng.sample(circles, min(40, len(circles))):
        edge = c.radius_m + rng.choice([-1, 1]) * 0.01
        pts.append(offset(c.lat, c.lon, rng.uniform(0, 360), edge))
    return pts


def test_many_overlapping_circles_agree_with_brute_force():
    rng = random.Random(20240611)
    circles = random_circles(rng, 500)
    idx = CircleIndex()
    for c in circles:
        idx.upsert(c)
    fan_out = 0
    for lat, lon in probe_points(rng, circles, 200) + [ST_LOUIS]:
        got = idx.query(lat, lon)
        assert_same(got, brute_force(circles, lat, lon))
        fan_out = max(fan_out, len(got))
    assert fan_out > 80  # the city centre really sits inside many circles at once


def test_bulk_load_agrees_with_brute_force_and_later_mutations():
    rng = random.Random(7)
    circles = random_circles(rng, 500)
    idx = CircleIndex()
    idx.bulk_load(circles)
    assert len(idx) == 500
    assert sorted(c.circle_id for c in idx.circles()) == [c.circle_id for c in circles]
    # Remove some, move some, add some: freed slots get reused and must not leak old circles.
    live = {c.circle_id: c for c in circles}
    for c in rng.sample(circles, 150):
        assert idx.remove(c.circle_id)
        del live[c.circle_id]
    for c in rng.sample(list(live.values()), 100):
        lat, lon = offset(*KANSAS_CITY, rng.uniform(0, 360), rng.uniform(0, 5000))
        moved = circle(c.circle_id, lat, lon, c.radius_code, c.subscriber_id)
        idx.upsert(moved)
        live[c.circle_id] = moved
    for c in random_circles(rng, 200, start_id=1000):
        idx.upsert(c)
        live[c.circle_id] = c
    assert len(idx) == len(live)
    everything = list(live.values())
    for lat, lon in probe_points(rng, everything, 100) + [KANSAS_CITY]:
        assert_same(idx.query(lat, lon), brute_force(everything, lat, lon))


def test_bulk_load_into_a_non_empty_index_adds_and_replaces():
    idx = CircleIndex()
    idx.upsert(circle(1, *ST_LOUIS))
    idx.bulk_load([circle(1, *KANSAS_CITY), circle(2, *ST_LOUIS)])
    assert ids(idx.query(*ST_LOUIS)) == [2]
    assert ids(idx.query(*KANSAS_CITY)) == [1]


def test_bulk_load_keeps_the_last_copy_of_an_id():
    idx = CircleIndex()
    idx.bulk_load([circle(1, *ST_LOUIS), circle(1, *KANSAS_CITY)])
    assert len(idx) == 1
    assert idx.query(*ST_LOUIS) == [] and ids(idx.query(*KANSAS_CITY)) == [1]


def test_circle_across_the_antimeridian_is_found_from_both_sides():
    # Adak-to-Attu: the Aleutians run across 180 degrees.
    idx = CircleIndex()
    idx.upsert(circle(1, 51.9, 179.995, "1mi"))
    east = offset(51.9, 179.995, 90.0, RADII["1mi"][0] - FOOT_M)
    assert east[1] < 0  # really on the other side of the line
    assert ids(idx.query(*east)) == [1]
    idx.upsert(circle(2, 51.9, -179.995, "1mi"))
    west = offset(51.9, -179.995, 270.0, RADII["1mi"][0] - FOOT_M)
    assert west[1] > 0
    assert ids(idx.query(*west)) == [1, 2]
