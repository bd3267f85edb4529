"""Points exactly on a circle's edge: Geod.inv from the centre gives the radius to the last bit.

Geod.fwd at the radius lands a few ulps to one side of the edge or the other (of 360 azimuths
from St. Louis at each offered radius, none came back exact), and Geod.inv's distances near a
point step in clumps, so no one direction is sure to hold a point exactly on the edge. Over
many azimuths, with the doubles a few ulps around each fwd point, some do: about one in 300k
at 500 ft, one in 5k at 5 mi. Only pyproj, as tests/reference_model.py measures.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from pyproj import Geod

GEOD = Geod(ellps="WGS84")
_NEAR = [(di, dj) for di in range(-3, 4) for dj in range(-3, 4)]


def distance_m(centre_lat: float, centre_lon: float, lat: float, lon: float) -> float:
    """Geod.inv from the centre to the point, as the reference model measures."""
    return float(GEOD.inv(centre_lon, centre_lat, lon, lat)[2])


@cache  # a search takes up to half a second; its answer never changes
def point_on_radius(
    centre_lat: float, centre_lon: float, radius_m: float, seed: int = 0, tries: int = 40
) -> tuple[float, float]:
    """(lat, lon) whose geodesic distance from the centre is exactly radius_m (a float equal to
    it, not within a tolerance), found among `tries` batches of 20k azimuths from `seed`."""
    rng = np.random.default_rng(seed)
    n = 20_000
    c_lat, c_lon = np.full(n, centre_lat), np.full(n, centre_lon)
    for _ in range(tries):
        lon0, lat0, _ = GEOD.fwd(c_lon, c_lat, rng.uniform(0.0, 360.0, n), np.full(n, radius_m))
        lat0, lon0 = np.asarray(lat0), np.asarray(lon0)
        for di, dj in _NEAR:
            lat = lat0 + di * np.spacing(np.abs(lat0))
            lon = lon0 + dj * np.spacing(np.abs(lon0))
            hit = np.flatnonzero(np.asarray(GEOD.inv(c_lon, c_lat, lon, lat)[2]) == radius_m)
            if hit.size:
                p = float(lat[hit[0]]), float(lon[hit[0]])
                assert distance_m(centre_lat, centre_lon, *p) == radius_m
                return p
    raise AssertionError(f"no point found exactly {radius_m} m from ({centre_lat}, {centre_lon})")
