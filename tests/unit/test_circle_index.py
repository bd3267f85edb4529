"""The circle index: mutations, and exact agreement with brute-force geodesic matching."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pyproj import Geod

from streams.domain.circle_index import CircleIndex
from streams.domain.model import Circle
from streams.domain.radii import FOOT_M, RADII
from tests.on_radius import distance_m, point_on_radius
from tests.reference_model import Place, Places

GEOD = Geod(ellps="WGS84")
ST_LOUIS = (38.627, -90.199)
KANSAS_CITY = (39.0997, -94.5786)


def circle(cid: int, lat: float, lon: float, code: str = "1mi", subscriber: int | None = None) -> Circle:
    sub = cid * 10 if subscriber is None else subscriber
    return Circle(cid, sub, f"place {cid}", f"{cid} Main St", lat, lon, RADII[code][0], code)


def offset(lat: float, lon: float, azimuth: float, metres: float) -> tuple[float, float]:
    lon2, lat2, _ = GEOD.fwd(lon, lat, azimuth, metres)
    return lat2, lon2


def ids(hits) -> list[int]:
    return [c.circle_id for c, _ in hits]


def brute_force(circles: list[Circle], lat: float, lon: float) -> list[tuple[int, float]]:
    """tests/reference_model.py's answer: every circle by geodesic distance, inclusive."""
    places = Places(Place(c.circle_id, c.subscriber_id, c.label, c.lat, c.lon, c.radius_m) for c in circles)
    hits = sorted(places.holding_at(lat, lon), key=lambda h: (h[0].subscriber_id, h[0].circle_id))
    return [(p.circle_id, d) for p, d in hits]


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


@pytest.mark.parametrize("code", list(RADII))
def test_an_offender_exactly_on_the_radius_is_found_and_one_ulp_past_it_is_not(code):
    """The grid and the boxes only pre-filter: a point exactly on a circle's edge (Geod.inv
    gives the radius to the last bit) is held by it, and not by a circle one ulp smaller."""
    r = RADII[code][0]
    for centre in (ST_LOUIS, KANSAS_CITY):
        p = point_on_radius(*centre, r)
        assert distance_m(*centre, *p) == r
        smaller = float(np.nextafter(r, 0.0))
        for load in ("upsert", "bulk_load"):
            idx = CircleIndex()
            circles = [
                circle(1, *centre, code),
                Circle(2, 20, "place 2", "2 Main St", *centre, smaller, code),
            ]
            if load == "upsert":
                for c in circles:
                    idx.upsert(c)
            else:
                idx.bulk_load(circles)
            assert [(c.circle_id, d) for c, d in idx.query(*p)] == [(1, r)], load
            assert idx.match(*p).circle_id.tolist() == [1]
            assert idx.labelled(*p).distance_m == [r]


def test_circles_each_exactly_as_wide_as_their_distance_to_a_point_all_hold_it():
    rng = random.Random(5)
    point = offset(*ST_LOUIS, 77.0, 1234.5)
    circles, shorter = [], []
    for i in range(300):
        lat, lon = offset(*point, rng.uniform(0, 360), rng.uniform(1.0, 8_000.0))
        r = distance_m(lat, lon, *point)
        for out, radius in ((circles, r), (shorter, float(np.nextafter(r, 0.0)))):
            out.append(Circle(i + 1, i % 7, f"place {i}", f"{i} Main St", lat, lon, radius, "5mi"))
    idx = CircleIndex()
    idx.bulk_load(circles)
    got = idx.query(*point)
    assert sorted(c.circle_id for c, _ in got) == list(range(1, 301))
    assert all(d == c.radius_m for c, d in got)
    assert_same(got, brute_force(circles, *point))
    idx.upsert_many(shorter)
    assert idx.query(*point) == [] == brute_force(shorter, *point)


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
        (1, 7),
        (1, 9),
        (2, 3),
        (2, 5),
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


def test_match_finds_what_query_finds():
    rng = random.Random(11)
    circles = random_circles(rng, 400)
    idx = CircleIndex()
    idx.bulk_load(circles[:300])
    for c in circles[300:]:
        idx.upsert(c)
    for c in rng.sample(circles, 60):
        idx.remove(c.circle_id)
    total = 0
    for lat, lon in probe_points(rng, circles, 120) + [ST_LOUIS, KANSAS_CITY]:
        hits = idx.query(lat, lon)
        one = idx.match(lat, lon)
        assert one.circle_id.tolist() == ids(hits)
        assert one.subscriber_id.tolist() == [c.subscriber_id for c, _ in hits]
        assert one.distance_m.tolist() == [d for _, d in hits]
        total += len(hits)
    assert total > 1000
    assert len(CircleIndex().match(38.6, -90.2).circle_id) == 0


def test_a_circle_at_the_pole_is_found_and_removed():
    # Its box spans every longitude, too many cells to file: it is checked on every query.
    idx = CircleIndex()
    idx.upsert(circle(1, 89.999, 0.0, "5mi"))
    idx.upsert(circle(2, *ST_LOUIS))
    across = offset(89.999, 0.0, 180.0, RADII["5mi"][0] - 1.0)  # over the pole and down
    assert ids(idx.query(*across)) == [1]
    assert ids(idx.query(*ST_LOUIS)) == [2]
    assert ids(idx.query(90.0, 123.0)) == [1]
    assert idx.remove(1)
    assert idx.query(*across) == [] and ids(idx.query(*ST_LOUIS)) == [2]
    idx.bulk_load([circle(3, -89.9999, 45.0, "1mi")])
    assert ids(idx.query(-90.0, -100.0)) == [3]


def test_churn_keeps_ids_slots_and_answers_consistent():
    # Thousands of adds, moves and removals, past the point where ids placed since the last
    # bulk load are folded into the sorted id map, with freed slots reused by other ids.
    rng = random.Random(5)
    idx = CircleIndex()
    base = random_circles(rng, 2000)
    idx.bulk_load(base)
    live = {c.circle_id: c for c in base}
    next_id = 10_000
    for step in range(12_000):
        roll = rng.random()
        if roll < 0.35 and live:
            cid = rng.choice(list(live)) if step % 50 == 0 else next(iter(live))
            assert idx.remove(cid)
            del live[cid]
        elif roll < 0.55 and live:
            old = live[rng.choice(list(live))] if step % 50 == 0 else next(reversed(live.values()))
            moved = circle(
                old.circle_id, *offset(*ST_LOUIS, rng.uniform(0, 360), rng.uniform(0, 9000)), "0.5mi", 3
            )
            idx.upsert(moved)
            live[old.circle_id] = moved
        else:
            # Sometimes an id seen before comes back.
            cid = rng.choice([next_id, rng.randint(1, 2000)])
            next_id += 1
            c = circle(
                cid,
                *offset(*ST_LOUIS, rng.uniform(0, 360), rng.uniform(0, 9000)),
                rng.choice(list(RADII)),
                rng.randint(1, 40),
            )
            idx.upsert(c)
            live[cid] = c
    assert len(idx) == len(live)
    for cid in list(live)[:300] + [next_id + 5, 1, 2, 3]:
        assert (cid in idx) == (cid in live)
        assert idx.get(cid) == live.get(cid)
    assert sorted(c.circle_id for c in idx.circles()) == sorted(live)
    everything = list(live.values())
    for lat, lon in probe_points(rng, everything, 60) + [ST_LOUIS]:
        assert_same(idx.query(lat, lon), brute_force(everything, lat, lon))


def test_labels_addresses_and_codes_come_back_as_given():
    idx = CircleIndex()
    c = Circle(
        1, 2, "Grand-mère’s 🏠", "12 Rue Élysée, Ste. Geneviève, MO 63670", 37.98, -90.04, 500.0, "custom"
    )
    idx.upsert(c)
    assert idx.get(1) == c
    [(hit, _)] = idx.query(37.98, -90.04)
    assert hit == c and hit.label == c.label and hit.radius_code == "custom"
    relabelled = Circle(1, 2, "", "", 37.98, -90.04, 500.0, "custom")
    idx.upsert(relabelled)
    assert idx.get(1) == relabelled
    assert 1 in idx and "1" not in idx and 2 not in idx


def test_upsert_many_agrees_with_brute_force_as_one_upsert_at_a_time_does():
    rng = random.Random(5)
    held = random_circles(rng, 300)
    idx = CircleIndex()
    idx.bulk_load(held[:200])
    # New circles, circles moved and resized, a pole circle and one across the antimeridian,
    # and one id twice (the last wins), all in one call.
    moved = [
        circle(c.circle_id, *offset(c.lat, c.lon, 45.0, 3_000), "2mi", c.subscriber_id)
        for c in rng.sample(held[:200], 40)
    ]
    extra = [circle(900, 89.999, 0.0, "5mi"), circle(901, 51.9, 179.995, "1mi")]
    twice = [circle(902, *ST_LOUIS, "1mi"), circle(902, *KANSAS_CITY, "0.5mi")]
    idx.upsert_many(held[200:] + moved + extra + twice)
    now = {c.circle_id: c for c in held + moved + extra + twice}
    assert len(idx) == len(now)
    for lat, lon in probe_points(rng, list(now.values()), 150) + [
        ST_LOUIS,
        KANSAS_CITY,
        (90.0, 10.0),
        offset(51.9, 179.995, 90.0, 1_000),
    ]:
        assert_same(idx.query(lat, lon), brute_force(list(now.values()), lat, lon))
    assert all(idx.holds(c) for c in now.values())
    c = held[200]
    assert not idx.holds(
        Circle(c.circle_id, c.subscriber_id, "other", c.one_line, c.lat, c.lon, c.radius_m, c.radius_code)
    )
    for cid in (900, 901, 902):
        assert idx.remove(cid)
    assert idx.query(90.0, 10.0) == [] and 902 not in ids(idx.query(*KANSAS_CITY))
