"""Geodesic distances, conservative boxes and the exact within test, at the radius edge."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import Point

from streams.domain.circle_index import CircleIndex
from streams.domain.geometry import (
    bounding_box,
    bounding_boxes,
    distance_within,
    ecef,
    geodesic_distance_m,
    within_circles,
)
from streams.domain.model import Circle
from streams.domain.radii import FOOT_M, RADII, proximity_band
from tests.on_radius import distance_m, point_on_radius

GEOD = Geod(ellps="WGS84")

MISSOURI = {
    "st_louis": (38.627, -90.199),
    "kansas_city": (39.0997, -94.5786),
    "springfield": (37.2090, -93.2923),
    "far_north": (40.5, -92.0),
}
AZIMUTHS = (0.0, 30.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 300.0, 359.0)


def offset(lat: float, lon: float, azimuth: float, metres: float) -> tuple[float, float]:
    lon2, lat2, _ = GEOD.fwd(lon, lat, azimuth, metres)
    return lat2, lon2


def one_circle_index(lat: float, lon: float, code: str) -> CircleIndex:
    idx = CircleIndex()
    idx.upsert(Circle(1, 7, "Home", "1 Main St", lat, lon, RADII[code][0], code))
    return idx


@pytest.mark.parametrize("place", sorted(MISSOURI))
@pytest.mark.parametrize("code", list(RADII))
def test_offender_one_foot_inside_matches_and_one_foot_outside_does_not(place, code):
    lat, lon = MISSOURI[place]
    r = RADII[code][0]
    idx = one_circle_index(lat, lon, code)
    for az in AZIMUTHS:
        inside = offset(lat, lon, az, r - FOOT_M)
        outside = offset(lat, lon, az, r + FOOT_M)
        hits = idx.query(*inside)
        assert [c.circle_id for c, _ in hits] == [1], (az, "inside")
        assert hits[0][1] == pytest.approx(r - FOOT_M, abs=1e-6)
        assert idx.query(*outside) == [], (az, "outside")


def test_east_west_edge_a_degree_buffer_gets_wrong():
    # At 40.5 N a degree of longitude is ~85 km but a degree of latitude ~111 km: a circle
    # drawn in degrees misses an offender due east who is truly inside the radius.
    lat, lon = MISSOURI["far_north"]
    r = RADII["1mi"][0]
    east = offset(lat, lon, 90.0, r - FOOT_M)
    degree_circle = Point(lon, lat).buffer(r / 111_320.0, quad_segs=64)
    assert not degree_circle.contains(Point(east[1], east[0]))
    assert [c.circle_id for c, _ in one_circle_index(lat, lon, "1mi").query(*east)] == [1]
    # A buffer sized by longitude degrees instead wrongly takes in a point north of the radius.
    north = offset(lat, lon, 0.0, r + 100 * FOOT_M)
    lon_degree_circle = Point(lon, lat).buffer(r / (111_320.0 * math.cos(math.radians(lat))))
    assert lon_degree_circle.contains(Point(north[1], north[0]))
    assert one_circle_index(lat, lon, "1mi").query(*north) == []


def test_geodesic_distance_matches_known_values():
    # One degree of latitude at the equator on WGS84 is 110,574.4 m.
    assert geodesic_distance_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(110_574.4, abs=0.1)
    lat, lon = MISSOURI["st_louis"]
    lat2, lon2 = offset(lat, lon, 63.0, 4321.0)
    assert geodesic_distance_m(lat, lon, lat2, lon2) == pytest.approx(4321.0, abs=1e-6)
    assert geodesic_distance_m(lat2, lon2, lat, lon) == pytest.approx(4321.0, abs=1e-6)


US_PLACES = list(MISSOURI.values()) + [
    (71.29, -156.79),  # Utqiagvik, Alaska: longitude degrees are short up here
    (19.6, -155.5),  # Hawaii
    (25.08, -80.45),  # Florida Keys
    (48.99, -122.75),  # the Canadian border
]


@pytest.mark.parametrize("lat,lon", US_PLACES)
@pytest.mark.parametrize("code", ["500ft", "1mi", "5mi"])
def test_bounding_box_holds_the_whole_circle_but_not_much_more(lat, lon, code):
    r = RADII[code][0]
    min_lon, min_lat, max_lon, max_lat = bounding_box(lat, lon, r)
    lons, lats, _ = GEOD.fwd(
        np.full(720, lon),
        np.full(720, lat),
        np.linspace(0, 360, 720, endpoint=False),
        np.full(720, r),
    )
    assert (lons > min_lon).all() and (lons < max_lon).all()
    assert (lats > min_lat).all() and (lats < max_lat).all()
    # Tight enough to be a useful pre-filter.
    assert (max_lon - min_lon) < 1.05 * (lons.max() - lons.min())
    assert (max_lat - min_lat) < 1.05 * (lats.max() - lats.min())


def test_ecef_matches_the_ellipsoid_axes_and_vectorizes():
    x, y, z = ecef(0.0, 0.0)
    assert (x, y, z) == pytest.approx((6_378_137.0, 0.0, 0.0))
    x, y, z = ecef(90.0, 0.0)
    assert z == pytest.approx(6_356_752.314245, abs=1e-3)
    lats = np.array([38.627, 39.0997, -45.0])
    lons = np.array([-90.199, -94.5786, 170.0])
    xs, ys, zs = ecef(lats, lons)
    for i in range(3):
        assert (xs[i], ys[i], zs[i]) == pytest.approx(ecef(float(lats[i]), float(lons[i])))


def test_within_circles_gives_geodesic_distance_for_hits_only():
    lat, lon = MISSOURI["springfield"]
    centres = [offset(lat, lon, az, d) for az, d in [(0, 100.0), (90, 1000.0), (200, 5000.0)]]
    c_lat = np.array([c[0] for c in centres])
    c_lon = np.array([c[1] for c in centres])
    xyz = np.column_stack(ecef(c_lat, c_lon))
    radius = np.array([152.4, 999.0, 8046.72])
    within, dist = within_circles(lat, lon, xyz, c_lat, c_lon, radius)
    assert within.tolist() == [True, False, True]
    assert dist[0] == pytest.approx(100.0, abs=1e-6)
    assert dist[2] == pytest.approx(5000.0, abs=1e-6)


def test_within_circles_with_no_circles():
    none = np.zeros(0)
    within, dist = within_circles(38.0, -90.0, np.zeros((0, 3)), none, none, none)
    assert within.shape == (0,) and dist.shape == (0,)


def test_within_is_decided_by_geodesic_not_chord_in_the_last_millimetre():
    lat, lon = MISSOURI["kansas_city"]
    r = RADII["5mi"][0]
    c_lat, c_lon = np.array([lat, lat]), np.array([lon, lon])
    xyz = np.column_stack(ecef(c_lat, c_lon))
    for az in (0.0, 90.0, 151.0):
        p_in = offset(lat, lon, az, r - 0.0005)
        p_out = offset(lat, lon, az, r + 0.0005)
        assert within_circles(*p_in, xyz, c_lat, c_lon, np.array([r, r]))[0].all()
        assert not within_circles(*p_out, xyz, c_lat, c_lon, np.array([r, r]))[0].any()
    far = offset(lat, lon, 0, 2 * r)
    assert math.isinf(within_circles(*far, xyz, c_lat, c_lon, np.array([r, r]))[1][0])


def circles_around(rng: np.random.Generator, lat: float, lon: float, n: int, max_m: float):
    """n circle centres up to max_m from (lat, lon), in every direction."""
    c_lon, c_lat, _ = GEOD.fwd(
        np.full(n, lon), np.full(n, lat), rng.uniform(0, 360, n), rng.uniform(0, max_m, n)
    )
    return np.asarray(c_lat), np.asarray(c_lon)


def test_short_line_distances_agree_with_geod_inv_worldwide():
    # Points anywhere from the equator to next to a pole, circles up to 10 km away in any
    # direction: the distances reported without calling Geod.inv match it to 0.1 micrometre.
    rng = np.random.default_rng(1)
    worst = 0.0
    for lat, lon in zip(rng.uniform(-89.9, 89.9, 300), rng.uniform(-180, 180, 300)):
        c_lat, c_lon = circles_around(rng, lat, lon, 40, 10_000.0)
        xyz = np.column_stack(ecef(c_lat, c_lon))
        big = np.full(40, 50_000.0)  # far from every band edge: nothing goes to Geod.inv
        within, dist = within_circles(lat, lon, xyz, c_lat, c_lon, big)
        assert within.all()
        expected = np.asarray(GEOD.inv(c_lon, c_lat, np.full(40, lon), np.full(40, lat))[2])
        worst = max(worst, float(np.abs(dist - expected).max()))
    assert worst < 1e-7


def test_within_is_decided_like_geod_inv_right_at_every_radius():
    # Points within half a micrometre of the radius: only Geod.inv can tell, and does.
    rng = np.random.default_rng(2)
    radii = np.array([m for m, _ in RADII.values()])
    inside = 0
    for lat, lon in zip(rng.uniform(-80, 80, 200), rng.uniform(-180, 180, 200)):
        r = rng.choice(radii, 20)
        c_lon, c_lat, _ = GEOD.fwd(
            np.full(20, lon), np.full(20, lat), rng.uniform(0, 360, 20), r + rng.uniform(-5e-7, 5e-7, 20)
        )
        c_lat, c_lon = np.asarray(c_lat), np.asarray(c_lon)
        truth = np.asarray(GEOD.inv(c_lon, c_lat, np.full(20, lon), np.full(20, lat))[2])
        xyz = np.column_stack(ecef(c_lat, c_lon))
        within, dist = within_circles(lat, lon, xyz, c_lat, c_lon, r)
        assert (within == (truth <= r)).all()
        # Right at an edge the distance is Geod.inv's own, to the last bit.
        assert (dist[within] == truth[within]).all()
        inside += int(within.sum())
    assert 1000 < inside < 3000


def test_a_distance_next_to_a_band_edge_is_geod_inv_s_own():
    # 1 mi circle, offender 1/2 mi away give or take a micrometre: the band shown depends on it.
    lat, lon = MISSOURI["springfield"]
    half = RADII["0.5mi"][0]
    c_lat, c_lon = np.array([lat]), np.array([lon])
    xyz = np.column_stack(ecef(c_lat, c_lon))
    for delta in (-5e-7, -1e-9, 0.0, 1e-9, 5e-7):
        p = offset(lat, lon, 33.0, half + delta)
        within, dist = within_circles(*p, xyz, c_lat, c_lon, np.array([RADII["1mi"][0]]))
        assert within[0]
        assert dist[0] == distance_m(lat, lon, *p)
        # Geod.fwd lands a few ulps either side of the edge: pyproj's own distance says which,
        # and on the edge or inside it is the 1/2 mi band, past it by any amount the 1 mi one.
        want = "within 1/2 mi" if distance_m(lat, lon, *p) <= half else "within 1 mi"
        assert proximity_band(dist[0]) == want
        if abs(delta) > 1e-9:
            assert want == ("within 1/2 mi" if delta < 0 else "within 1 mi")
    # Exactly on the 1/2 mi edge (Geod.inv gives 804.672 to the last bit): the 1/2 mi band.
    p = point_on_radius(lat, lon, half)
    within, dist = within_circles(*p, xyz, c_lat, c_lon, np.array([RADII["1mi"][0]]))
    assert within[0] and dist[0] == half
    assert proximity_band(dist[0]) == "within 1/2 mi"
    # Farther from the edge the short-line distance is used; it still names the same band.
    for delta in (-0.01, -1e-5, 1e-5, 0.01):
        p = offset(lat, lon, 33.0, half + delta)
        dist = within_circles(*p, xyz, c_lat, c_lon, np.array([RADII["1mi"][0]]))[1]
        assert dist[0] == pytest.approx(distance_m(lat, lon, *p), abs=1e-7)
        assert proximity_band(dist[0]) == ("within 1/2 mi" if delta < 0 else "within 1 mi")


@pytest.mark.parametrize("code", list(RADII))
def test_an_offender_exactly_on_the_radius_is_within_it_and_one_ulp_past_is_not(code):
    """Inclusive at the radius (README): `<` in place of `<=` loses exactly these offenders."""
    for place in ("st_louis", "far_north"):
        lat, lon = MISSOURI[place]
        r = RADII[code][0]
        p = point_on_radius(lat, lon, r)
        assert distance_m(lat, lon, *p) == r  # on the edge to the last bit, not "about"
        d, inside = distance_within(lat, lon, r, *p)
        assert d == r and inside
        # A circle one ulp smaller leaves the same point out.
        assert not distance_within(lat, lon, float(np.nextafter(r, 0.0)), *p)[1]
        c_lat, c_lon = np.array([lat, lat]), np.array([lon, lon])
        xyz = np.column_stack(ecef(c_lat, c_lon))
        within, dist = within_circles(*p, xyz, c_lat, c_lon, np.array([r, np.nextafter(r, 0.0)]))
        assert within.tolist() == [True, False]
        assert dist[0] == r


def test_circles_whose_radius_is_the_point_s_own_distance_all_hold_it():
    """Radii of any length (not only the offered ones), each exactly the geodesic distance to
    the point: every circle holds it, and none does when each is one ulp shorter."""
    rng = np.random.default_rng(11)
    p_lat, p_lon = MISSOURI["kansas_city"]
    n = 400
    c_lon, c_lat, _ = GEOD.fwd(
        np.full(n, p_lon), np.full(n, p_lat), rng.uniform(0, 360, n), rng.uniform(1.0, 9_000.0, n)
    )
    c_lat, c_lon = np.asarray(c_lat), np.asarray(c_lon)
    exact = np.array([distance_m(a, b, p_lat, p_lon) for a, b in zip(c_lat, c_lon)])
    xyz = np.column_stack(ecef(c_lat, c_lon))
    within, dist = within_circles(p_lat, p_lon, xyz, c_lat, c_lon, exact)
    assert within.all()
    assert (dist == exact).all()
    within, _ = within_circles(p_lat, p_lon, xyz, c_lat, c_lon, np.nextafter(exact, 0.0))
    assert not within.any()
    for a, b, r in zip(c_lat[:50], c_lon[:50], exact[:50]):
        assert distance_within(a, b, r, p_lat, p_lon) == (r, True)


def test_within_circles_on_chosen_rows_matches_all_rows():
    p_lat, p_lon = MISSOURI["kansas_city"]
    lat, lon = circles_around(np.random.default_rng(3), p_lat, p_lon, 300, 9_000.0)
    xyz = np.column_stack(ecef(lat, lon))
    r = np.full(300, RADII["3mi"][0])
    rows = np.array([5, 3, 299, 0, 3])
    w_all, d_all = within_circles(p_lat, p_lon, xyz, lat, lon, r)
    assert 50 < w_all.sum() < 300
    w_rows, d_rows = within_circles(p_lat, p_lon, xyz, lat, lon, r, rows=rows)
    assert (w_rows == w_all[rows]).all()
    assert np.array_equal(d_rows, d_all[rows])
    # A chord far past every radius: Geod.inv decides the rest of the way for long lines too.
    far = within_circles(0.0, 0.0, xyz[:1], lat[:1], lon[:1], np.array([2e7]))
    assert far[0][0] and far[1][0] == pytest.approx(geodesic_distance_m(lat[0], lon[0], 0, 0))


@pytest.mark.parametrize("lat,lon", US_PLACES + [(89.99, 10.0), (-89.0, 179.99), (51.9, -179.995)])
@pytest.mark.parametrize("code", list(RADII))
def test_bounding_boxes_vectorized_match_the_scalar_box(lat, lon, code):
    r = RADII[code][0]
    boxes = bounding_boxes(np.array([lat, lat]), np.array([lon, lon]), np.array([r, r]))
    for got, want in zip(boxes, bounding_box(lat, lon, r)):
        assert got[0] == pytest.approx(want, rel=1e-12, abs=1e-12) and got[1] == got[0]


def test_each_band_runs_to_its_radius_inclusive_and_past_5_miles_says_more_than_5_mi():
    """Worked by hand from the offered radii: 500 ft = 152.4 m, ..., 5 mi = 8046.72 m."""
    edges = [
        (152.4, "500 ft"),
        (304.8, "1000 ft"),
        (402.336, "1/4 mi"),
        (804.672, "1/2 mi"),
        (1609.344, "1 mi"),
        (3218.688, "2 mi"),
        (4828.032, "3 mi"),
        (8046.72, "5 mi"),
    ]
    assert proximity_band(0.0) == "within 500 ft"
    for (metres, label), nxt in zip(edges, edges[1:] + [(None, None)]):
        assert proximity_band(metres) == f"within {label}"
        past = float(np.nextafter(metres, np.inf))
        assert proximity_band(past) == (f"within {nxt[1]}" if nxt[0] else "more than 5 mi")
    assert proximity_band(20_000.0) == "more than 5 mi"


@pytest.mark.parametrize("pole", [90.0, -90.0])
def test_a_circle_around_a_pole_has_a_box_of_every_longitude_that_stops_at_the_pole(pole):
    """A circle holding a pole holds points of every longitude, and no latitude lies past 90."""
    lat = pole - math.copysign(0.01, pole)  # 1.1 km from the pole, a 5 mi circle holds it
    r = RADII["5mi"][0]
    for box in (
        bounding_box(lat, 10.0, r),
        tuple(float(a[0]) for a in bounding_boxes(np.array([lat]), np.array([10.0]), np.array([r]))),
    ):
        min_lon, min_lat, max_lon, max_lat = box
        assert (min_lon, max_lon) == (-180.0, 180.0)
        assert (max_lat if pole > 0 else min_lat) == pole
        # Points across the pole, 180 degrees of longitude away, are within the radius.
        far_lat, far_lon = offset(lat, 10.0, 0.0 if pole > 0 else 180.0, 4_000.0)
        assert distance_m(lat, 10.0, far_lat, far_lon) <= r
        assert min_lon <= far_lon <= max_lon and min_lat <= far_lat <= max_lat


def test_chosen_rows_exactly_at_their_radius_are_decided_on_their_own_centres():
    """Rows picked out of the columns (as the grid's cells pick them), each circle exactly as
    wide as its distance to the point: Geod.inv must measure from each row's own centre."""
    rng = np.random.default_rng(4)
    p_lat, p_lon = MISSOURI["st_louis"]
    n = 60
    c_lon, c_lat, _ = GEOD.fwd(
        np.full(n, p_lon), np.full(n, p_lat), rng.uniform(0, 360, n), rng.uniform(100.0, 8_000.0, n)
    )
    c_lat, c_lon = np.asarray(c_lat), np.asarray(c_lon)
    exact = np.array([distance_m(a, b, p_lat, p_lon) for a, b in zip(c_lat, c_lon)])
    xyz = np.column_stack(ecef(c_lat, c_lon))
    rows = np.arange(n)[::-1][::3].copy()  # every third circle, last first
    within, dist = within_circles(p_lat, p_lon, xyz, c_lat, c_lon, exact, rows=rows)
    assert within.all()
    assert (dist == exact[rows]).all()
    shorter = np.nextafter(exact, 0.0)
    within, _ = within_circles(p_lat, p_lon, xyz, c_lat, c_lon, shorter, rows=rows)
    assert not within.any()


def test_a_radius_code_means_its_distance_in_metres_and_anything_else_is_refused():
    """Worked by hand: 1 ft = 0.3048 m, 1 mi = 1609.344 m (exact, by definition)."""
    from streams.domain.radii import UnknownRadius, radius_label, radius_m

    want = {
        "500ft": 152.4,
        "1000ft": 304.8,
        "0.25mi": 402.336,
        "0.5mi": 804.672,
        "1mi": 1609.344,
        "2mi": 3218.688,
        "3mi": 4828.032,
        "5mi": 8046.72,
    }
    assert {code: radius_m(code) for code in want} == pytest.approx(want, abs=1e-9)
    assert [radius_label(c) for c in ("500ft", "0.25mi", "0.5mi", "5mi")] == [
        "500 ft",
        "1/4 mi",
        "1/2 mi",
        "5 mi",
    ]
    with pytest.raises(UnknownRadius) as refused:
        radius_m("10mi")
    assert str(refused.value) == (
        "radius '10mi' is not offered; choose one of 500ft, 1000ft, 0.25mi, 0.5mi, 1mi, 2mi, 3mi, 5mi"
    )
