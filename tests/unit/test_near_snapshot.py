"""The near index's query against brute force: every point, WGS84 geodesic from the centre, inclusive."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod

from streams.adapters.near_index import NearSnapshot, RegistryVersion
from streams.domain import radii
from streams.web.near_rows import _bands
from tests.on_radius import point_on_radius

GEOD = Geod(ellps="WGS84")


def snapshot(lat: np.ndarray, lon: np.ndarray) -> NearSnapshot:
    n = len(lat)
    views = [f"p{i}" for i in range(n)]
    return NearSnapshot(
        RegistryVersion(None, None), lat, lon, np.arange(n), np.zeros(n, dtype=np.int64), views
    )


@pytest.mark.parametrize(
    ("centre", "radius"),
    [
        ((38.9467, -92.3252), "5mi"),
        ((38.63, -90.19), "500ft"),
        ((51.9, 179.99), "3mi"),
        ((-33.9, -180.0), "1mi"),
    ],
)
def test_within_is_exactly_the_points_the_geodesic_puts_inside_nearest_first(centre, radius) -> None:
    radius_m = radii.radius_m(radius)
    rng = np.random.default_rng(11)
    n = 4000
    lon, lat, _ = GEOD.fwd(
        np.full(n, centre[1]),
        np.full(n, centre[0]),
        rng.uniform(0, 360, n),
        rng.uniform(0, 2.5 * radius_m, n),
    )
    edge = [point_on_radius(centre[0], centre[1], radius_m, seed=s) for s in (0, 1)]
    lat = np.concatenate([lat, [p[0] for p in edge]])
    lon = np.concatenate([lon, [p[1] for p in edge]])
    lon = (lon + 180.0) % 360.0 - 180.0  # as the registry writes them: -180 to 180
    found = snapshot(lat, lon).within(centre[0], centre[1], radius_m)

    d = np.asarray(GEOD.inv(np.full(len(lat), centre[1]), np.full(len(lat), centre[0]), lon, lat)[2])
    inside = np.flatnonzero(d <= radius_m)
    expected = [f"p{i}" for i in inside[np.argsort(d[inside], kind="stable")]]
    assert found.views == expected
    assert f"p{n}" in found.views and f"p{n + 1}" in found.views  # exactly on the radius
    assert np.array_equal(found.distances_m, np.sort(d[inside]))


def test_the_lists_bands_are_the_alerts_bands_at_every_edge() -> None:
    edges = np.array([m for m, _ in radii.RADII.values()])
    probes = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, 0), [0.0, 1.0, 9000.0]])
    assert _bands(probes) == [radii.proximity_band(float(x)) for x in probes]
