"""The circle drawn on maps is the geodesic circle the alerts decide by."""

from __future__ import annotations

import math

import pytest
from pyproj import Geod

from streams.domain.geometry import geodesic_circle

ORACLE = Geod(ellps="WGS84")


@pytest.mark.parametrize(
    ("lat", "lon", "radius_m"), [(38.95, -92.33, 152.4), (39.1, -94.58, 8046.72), (64.8, -147.7, 8046.72)]
)
def test_every_vertex_lies_at_the_radius_and_the_ring_closes(lat: float, lon: float, radius_m: float) -> None:
    ring = geodesic_circle(lat, lon, radius_m)
    assert ring[0] == ring[-1]
    assert len(ring) == 73
    for v_lat, v_lon in ring:
        assert ORACLE.inv(lon, lat, v_lon, v_lat)[2] == pytest.approx(radius_m, abs=0.01)


def test_far_north_the_circle_is_wider_in_degrees_of_longitude_than_of_latitude() -> None:
    ring = geodesic_circle(64.8, -147.7, 8046.72)
    lats = [p[0] for p in ring]
    lons = [p[1] for p in ring]
    span_lat, span_lon = max(lats) - min(lats), max(lons) - min(lons)
    # A round circle on the ground: the longitude span grows as 1/cos(latitude).
    assert span_lon / span_lat == pytest.approx(1 / math.cos(math.radians(64.8)), rel=0.02)
