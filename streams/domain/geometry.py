"""WGS84 geodesic distances, conservative boxes around circles, and the vectorized within test."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from pyproj import Geod

GEOD = Geod(ellps="WGS84")

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)
# The meridional radius of curvature at the equator, a(1 - e^2): the smallest radius of
# curvature anywhere on the ellipsoid, so no geodesic bends more sharply than 1/R_MIN.
R_MIN = WGS84_A * (1 - WGS84_E2)
# Boxes only pre-filter, so a generous margin costs a few extra exact tests, never a miss.
BOX_MARGIN = 1.01
BOX_PAD_DEG = 1e-6


def geodesic_distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return float(GEOD.inv(lon1, lat1, lon2, lat2)[2])


def bounding_box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) surely holding every point within radius_m.

    Along any path ds >= M dlat >= R_MIN dlat and ds >= N cos(lat) dlon >= a cos(lat) dlon,
    and the geodesic from the centre to a point inside never leaves the circle, so these
    bounds hold for the whole circle. Longitudes are not wrapped: near the antimeridian
    (the Aleutians) the box may run past +/-180 and callers must query both sides.
    """
    dlat = math.degrees(radius_m / R_MIN) * BOX_MARGIN + BOX_PAD_DEG
    min_lat, max_lat = max(lat - dlat, -90.0), min(lat + dlat, 90.0)
    cos_edge = math.cos(math.radians(max(abs(min_lat), abs(max_lat))))
    if cos_edge <= 1e-9 or radius_m / (WGS84_A * cos_edge) >= math.pi:
        return (-180.0, min_lat, 180.0, max_lat)
    dlon = math.degrees(radius_m / (WGS84_A * cos_edge)) * BOX_MARGIN + BOX_PAD_DEG
    return (lon - dlon, min_lat, lon + dlon, max_lat)


def ecef(lat, lon):  # type: ignore[no-untyped-def]
    """Earth-centred x, y, z in metres on the WGS84 ellipsoid (height 0); scalars or arrays."""
    phi, lam = np.radians(lat), np.radians(lon)
    sin_phi, cos_phi = np.sin(phi), np.cos(phi)
    n = WGS84_A / np.sqrt(1 - WGS84_E2 * sin_phi**2)
    return n * cos_phi * np.cos(lam), n * cos_phi * np.sin(lam), n * (1 - WGS84_E2) * sin_phi


def chord_slack_m(chord_m: np.ndarray) -> np.ndarray:
    """How much longer than its chord a geodesic can be (doubled, plus a micrometre)."""
    return 2 * chord_m**3 / (24 * R_MIN**2) + 1e-6


def within_circles(
    lat: float,
    lon: float,
    centres_xyz: np.ndarray,
    centre_lat: np.ndarray,
    centre_lon: np.ndarray,
    radius_m: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(within mask, geodesic distance in metres) of one point against n circles.

    The geodesic is never shorter than the straight chord, so a chord past the radius is
    outside without calling Geod; only the rest get a real distance, in one array call.
    Distances of circles rejected by the chord are +inf.
    """
    n = len(radius_m)
    dist = np.full(n, np.inf)
    if n == 0:
        return np.zeros(0, dtype=bool), dist
    px, py, pz = ecef(lat, lon)
    chord = np.linalg.norm(centres_xyz - np.array([px, py, pz]), axis=1)
    near = chord <= radius_m
    idx = np.flatnonzero(near)
    if idx.size == 0:
        return near, dist
    point_lon, point_lat = np.full(idx.size, float(lon)), np.full(idx.size, float(lat))
    _, _, s = GEOD.inv(centre_lon[idx], centre_lat[idx], point_lon, point_lat)
    s = np.asarray(s, dtype=float)
    r = radius_m[idx]
    # Inside by the chord bound whatever Geod's last bits say; in the thin band left, Geod
    # decides. Clamping keeps a reported distance from naming a wider band than the circle.
    sure = chord[idx] <= r - chord_slack_m(chord[idx])
    dist[idx] = np.where(sure, np.minimum(s, r), s)
    within = np.zeros(n, dtype=bool)
    within[idx] = sure | (s <= r)
    return within, dist


SIDE_OFFSET_M = 8.0  # a house stands back from the street centre line


def point_along(line: Sequence[Sequence[float]], fraction: float, *, left: bool | None = None,
                offset_m: float = SIDE_OFFSET_M) -> tuple[float, float]:
    """(lat, lon) at `fraction` of the line's geodesic length, `offset_m` to its left or right.

    The line is [[lon, lat], ...]; left and right are as seen walking from its first point.
    """
    segments = []
    for (lon1, lat1), (lon2, lat2) in zip(line, line[1:]):
        az, _back, dist = GEOD.inv(lon1, lat1, lon2, lat2)
        if dist > 0:
            segments.append((lon1, lat1, az, dist))
    if not segments:
        return float(line[0][1]), float(line[0][0])
    target = min(max(fraction, 0.0), 1.0) * sum(s[3] for s in segments)
    for lon1, lat1, az, dist in segments:
        if target <= dist:
            break
        target -= dist
    target = min(target, dist)
    lon, lat, back = GEOD.fwd(lon1, lat1, az, target)
    heading = back + 180.0 if target > 0 else az
    if left is not None and offset_m > 0:
        lon, lat, _ = GEOD.fwd(lon, lat, heading - 90.0 if left else heading + 90.0, offset_m)
    return float(lat), float(lon)
