"""WGS84 geodesic distances, conservative boxes around circles, and the vectorized within test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar, overload

import numpy as np
from pyproj import Geod

from streams.domain.radii import RADII

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


def distance_within(
    centre_lat: float, centre_lon: float, radius_m: float, lat: float, lon: float
) -> tuple[float, bool]:
    """(geodesic distance from the centre in metres, whether the point is inside the circle).

    One point against one circle, decided as `circles_holding` decides: Geod.inv from the
    centre to the point, inclusive at the radius.
    """
    d = geodesic_distance_m(centre_lat, centre_lon, lat, lon)
    return d, d <= radius_m


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


def bounding_boxes(
    lat: np.ndarray, lon: np.ndarray, radius_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """bounding_box for arrays of circles: (min_lon, min_lat, max_lon, max_lat) arrays."""
    dlat = np.degrees(radius_m / R_MIN) * BOX_MARGIN + BOX_PAD_DEG
    min_lat, max_lat = np.maximum(lat - dlat, -90.0), np.minimum(lat + dlat, 90.0)
    cos_edge = np.cos(np.radians(np.maximum(np.abs(min_lat), np.abs(max_lat))))
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = radius_m / (WGS84_A * cos_edge)
    whole = (cos_edge <= 1e-9) | ~(angle < math.pi)
    dlon = np.where(whole, 0.0, np.degrees(np.where(whole, 0.0, angle)) * BOX_MARGIN + BOX_PAD_DEG)
    min_lon = np.where(whole, -180.0, lon - dlon)
    max_lon = np.where(whole, 180.0, lon + dlon)
    return min_lon, min_lat, max_lon, max_lat


@overload
def ecef(lat: float, lon: float) -> tuple[np.float64, np.float64, np.float64]: ...
@overload
def ecef(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
def ecef(lat: float | np.ndarray, lon: float | np.ndarray) -> tuple[Any, Any, Any]:
    """Earth-centred x, y, z in metres on the WGS84 ellipsoid (height 0); scalars or arrays."""
    phi, lam = np.radians(lat), np.radians(lon)
    sin_phi, cos_phi = np.sin(phi), np.cos(phi)
    n = WGS84_A / np.sqrt(1 - WGS84_E2 * sin_phi**2)
    return n * cos_phi * np.cos(lam), n * cos_phi * np.sin(lam), n * (1 - WGS84_E2) * sin_phi


_Chord = TypeVar("_Chord", np.ndarray, np.float64)


def chord_slack_m(chord_m: _Chord) -> _Chord:
    """How much longer than its chord a geodesic can be (doubled, plus a micrometre)."""
    return 2 * chord_m**3 / (24 * R_MIN**2) + 1e-6


# --- The within test ----------------------------------------------------------------------
#
# The straight chord c through the ellipsoid and the geodesic s satisfy c <= s <= c + slack(c)
# (a curve whose curvature never exceeds 1/R_MIN is at most k^2 s^3 / 24 longer than its
# chord). Give or take CHORD_EPS_M for rounding (ECEF chords and Geod.inv are both good to
# ~5 nm), that bracket decides almost every (point, circle) pair: outside when c is past the
# radius, inside when the bracket is below it. Only a bracket holding the radius asks
# Geod.inv, so the decision is always Geod.inv's.
#
# Distances are reported too (the band an alert names, the digest's order). They come from a
# short-line formula that agrees with Geod.inv to ~1e-8 m and stays inside the bracket; a
# bracket holding one of DISTANCE_EDGES_M asks Geod.inv, so comparing a reported distance with
# any edge always gives the answer Geod.inv's distance would.

# The proximity bands, which include every offered radius.
DISTANCE_EDGES_M = np.array(sorted(m for m, _ in RADII.values()))
CHORD_EPS_M = 1e-6
# Up to this chord the short-line formula is used; past it (no offered radius is that wide)
# Geod.inv gives every distance.
SHORT_LINE_MAX_M = 10_000.0
# One bracket width for every chord up to SHORT_LINE_MAX_M (2.1 mm): a little wider than
# needed for short chords, one array operation less per query.
BRACKET_M = float(chord_slack_m(np.float64(SHORT_LINE_MAX_M)))
_EDGES_BELOW = np.concatenate(([-np.inf], DISTANCE_EDGES_M))
_FOURTH_ROOT_24 = 24.0**0.25


def point_frame(lat: float, lon: float) -> tuple[np.ndarray, np.ndarray]:
    """(ECEF xyz, 3x2 matrix) at a point: chord @ matrix = (de/sqrt(N), dn/sqrt(M)) / 24^(1/4).

    de and dn are the chord's east and north components there, N and M the ellipsoid's radii
    of curvature across and along the meridian (the scaling serves short_line_m).
    """
    phi, lam = math.radians(lat), math.radians(lon)
    sp, cp, sl, cl = math.sin(phi), math.cos(phi), math.sin(lam), math.cos(lam)
    w = 1.0 - WGS84_E2 * sp * sp
    n = WGS84_A / math.sqrt(w)
    xyz = np.array([n * cp * cl, n * cp * sl, n * (1 - WGS84_E2) * sp])
    fe = 1.0 / (math.sqrt(n) * _FOURTH_ROOT_24)
    fn = 1.0 / (math.sqrt(WGS84_A * (1 - WGS84_E2) / (w * math.sqrt(w))) * _FOURTH_ROOT_24)
    frame = np.array([[-sl * fe, -sp * cl * fn], [cl * fe, -sp * sl * fn], [0.0, cp * fn]])
    return xyz, frame


def short_line_m(chord: np.ndarray, scaled_en: np.ndarray) -> np.ndarray:
    """Geodesic length from the chord and `chord @ point_frame(...)[1]`, for chords up to 10 km.

    A geodesic is a space curve whose curvature is the normal curvature
    k = cos^2(a)/M + sin^2(a)/N in its direction a, so its chord is s - k^2 s^3/24 + O(k^4 s^5);
    with k = (dn^2/M + de^2/N) / c^2 that gives s = c + (dn^2/M + de^2/N)^2 / (24 c). Taking k
    at one end rather than the middle, and the azimuth's small turn, cost ~1e-8 m at 10 km.
    The correction is at most c^3 / (24 R_MIN^2): s never leaves the bracket.
    """
    q: np.ndarray = np.einsum("ij,ij->i", scaled_en, scaled_en)
    q *= q
    q /= chord + 1e-300  # a zero chord has a zero correction
    q += chord
    return q


def circles_holding(
    lat: float,
    lon: float,
    centres_xyz: np.ndarray,
    centre_lat: np.ndarray,
    centre_lon: np.ndarray,
    radius_m: np.ndarray,
    rows: np.ndarray | None = None,
    edges: np.ndarray = DISTANCE_EDGES_M,
    max_radius_m: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(positions, geodesic distances in metres) of the circles holding one point.

    The circles are `rows` of the given columns (all rows when None); positions index into
    rows (or the columns). `max_radius_m`, when the caller knows it, bounds the radii and
    saves a pass. The hot path of the geo join: a few array operations per query, in place
    where it can.
    """
    p, frame = point_frame(lat, lon)
    if rows is None:
        d, r = centres_xyz - p, radius_m
    else:
        d, r = centres_xyz.take(rows, axis=0), radius_m.take(rows)
        d -= p
    c2 = np.einsum("ij,ij->i", d, d)
    reach = r + CHORD_EPS_M
    reach *= reach
    pos = np.flatnonzero(c2 <= reach)
    if pos.size == 0:
        return pos, np.zeros(0)
    d = d.take(pos, axis=0)
    c = np.sqrt(c2.take(pos))
    s = short_line_m(c, d @ frame)
    r = r.take(pos)
    if max_radius_m is None:
        max_radius_m = float(r.max())
    exact = _needs_geod(c, r, edges, max_radius_m)
    if exact is not None:
        j = pos[exact] if rows is None else rows[pos[exact]]
        s[exact] = _geod_m(lat, lon, centre_lat[j], centre_lon[j])
        keep = ~exact | (s <= r)
        pos, s = pos[keep], s[keep]
    # Off the bracket's edge cases every circle left is inside: its radius is past c + slack.
    return pos, s


def _needs_geod(
    chord: np.ndarray, radius: np.ndarray, edges: np.ndarray, max_radius_m: float
) -> np.ndarray | None:
    """Mask of the pairs Geod.inv must settle, or None when there are none (the usual case).

    Every chord given is within its radius (plus CHORD_EPS_M).
    """
    hi = chord + BRACKET_M
    exact = radius <= hi
    if edges is DISTANCE_EDGES_M:
        # Whether an edge lies in [chord - eps, hi]: the greatest edge <= hi is >= chord - eps.
        below = _EDGES_BELOW.take(DISTANCE_EDGES_M.searchsorted(hi, side="right"))
        exact |= below >= chord - CHORD_EPS_M
    elif len(edges):
        lo = chord - CHORD_EPS_M
        exact |= np.searchsorted(edges, lo) != np.searchsorted(edges, hi, side="right")
    if max_radius_m + CHORD_EPS_M > SHORT_LINE_MAX_M:
        exact |= chord > SHORT_LINE_MAX_M
    return exact if exact.any() else None


def _geod_m(lat: float, lon: float, centre_lat: np.ndarray, centre_lon: np.ndarray) -> np.ndarray:
    lat_, lon_ = np.full(centre_lat.shape, lat), np.full(centre_lat.shape, lon)
    return np.asarray(GEOD.inv(centre_lon, centre_lat, lon_, lat_)[2], dtype=float)


def within_circles(
    lat: float,
    lon: float,
    centres_xyz: np.ndarray,
    centre_lat: np.ndarray,
    centre_lon: np.ndarray,
    radius_m: np.ndarray,
    rows: np.ndarray | None = None,
    edges: np.ndarray = DISTANCE_EDGES_M,
) -> tuple[np.ndarray, np.ndarray]:
    """(within mask, geodesic distance in metres) of one point against circles.

    circles_holding as a mask over the circles (`rows` of the columns, or all); distances of
    circles not holding the point are +inf.
    """
    n = len(radius_m) if rows is None else len(rows)
    pos, s = circles_holding(lat, lon, centres_xyz, centre_lat, centre_lon, radius_m, rows, edges)
    within, dist = np.zeros(n, dtype=bool), np.full(n, np.inf)
    within[pos], dist[pos] = True, s
    return within, dist


SIDE_OFFSET_M = 8.0  # a house stands back from the street centre line


def point_along(
    line: Sequence[Sequence[float]],
    fraction: float,
    *,
    left: bool | None = None,
    offset_m: float = SIDE_OFFSET_M,
) -> tuple[float, float]:
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
    for lon1, lat1, az, dist in segments:  # noqa: B007 (the segment it stops at is used below)
        if target <= dist:
            break
        target -= dist
    target = min(target, dist)
    lon, lat, back = GEOD.fwd(lon1, lat1, az, target)
    heading = back + 180.0 if target > 0 else az
    if left is not None and offset_m > 0:
        lon, lat, _ = GEOD.fwd(lon, lat, heading - 90.0 if left else heading + 90.0, offset_m)
    return float(lat), float(lon)


CIRCLE_VERTICES = 72  # every 5 degrees: at 5 miles a chord strays under 8 m inside the circle


def geodesic_circle(
    lat: float, lon: float, radius_m: float, vertices: int = CIRCLE_VERTICES
) -> list[tuple[float, float]]:
    """The circle as drawn on a map: (lat, lon) points at exactly radius_m from the centre, closed.

    Walked out along the geodesic at evenly spaced azimuths, the ring is the same circle the
    alerts decide by (`distance_within`), not a flat-earth one.
    """
    azimuths = np.linspace(0.0, 360.0, vertices, endpoint=False)
    lons, lats, _ = GEOD.fwd(
        np.full(vertices, lon), np.full(vertices, lat), azimuths, np.full(vertices, radius_m)
    )
    ring = [(float(a), float(o)) for a, o in zip(lats, lons)]
    return ring + ring[:1]
