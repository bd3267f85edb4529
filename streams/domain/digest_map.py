"""The map picture of a digest's tracked address: what it shows, its projection and layout, its alt text (pure)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streams.domain.digest import TrackedAddressSection
from streams.domain.geometry import GEOD, WGS84_A, WGS84_E2, geodesic_circle
from streams.domain.radii import RADII

# The picture's size in CSS pixels; PIXEL_SCALE pixels a CSS pixel are drawn, for sharp screens.
CSS_WIDTH, CSS_HEIGHT = 480, 320
PIXEL_SCALE = 2
# Room around the circle: the circle's radius is this fraction of half the picture's height.
FILL = 0.8

MARKER_KINDS = ("home", "work", "school")  # anything else is drawn as "other"


@dataclass(frozen=True)
class MapPoint:
    """One offender address drawn on the map."""

    lat: float
    lon: float
    kind: str  # home | work | school | other
    moved_in: bool  # False: an address no longer registered there (moved out)


@dataclass(frozen=True)
class MapSpec:
    """Everything a map picture shows: equal specs give the same picture (the run's cache key)."""

    lat: float
    lon: float
    radius_m: float
    points: tuple[MapPoint, ...]

    @property
    def content_id(self) -> str:
        """The picture's Content-ID (without angle brackets), the same for the same picture."""
        digest = hashlib.sha256(repr(self).encode("utf-8")).hexdigest()[:24]
        return f"map-{digest}@sor-notify"


@dataclass(frozen=True)
class Circle:
    """A tracked address's circle as the digest run reads it: centre and radius code."""

    lat: float
    lon: float
    radius_code: str


# The picture's scales form a fixed ladder (ZOOM_STEPS a doubling), so every picture of one zoom
# level lies in one pixel grid: its base layer is cropped from tiles drawn once (map_images).
ZOOM_STEPS = 4
TILE = 256  # a tile's side in pixels
_E = math.sqrt(WGS84_E2)


def mercator(lat: float, lon: float) -> tuple[float, float]:
    """Ellipsoidal Mercator (conformal on WGS84: a small geodesic circle stays a circle), metres."""
    phi = math.radians(lat)
    s = _E * math.sin(phi)
    y = WGS84_A * math.log(math.tan(math.pi / 4 + phi / 2) * ((1 - s) / (1 + s)) ** (_E / 2))
    return WGS84_A * math.radians(lon), y


def mercator_many(lonlat: Sequence[tuple[float, float]] | np.ndarray) -> np.ndarray:
    """`mercator` of many (lon, lat) points: an (n, 2) array of (x, y) metres."""
    pts = np.asarray(lonlat, dtype=float).reshape(-1, 2)
    phi = np.radians(pts[:, 1])
    s = _E * np.sin(phi)
    y = WGS84_A * np.log(np.tan(np.pi / 4 + phi / 2) * ((1 - s) / (1 + s)) ** (_E / 2))
    return np.column_stack((WGS84_A * np.radians(pts[:, 0]), y))


def inverse_mercator(x: float, y: float) -> tuple[float, float]:
    """(lat, lon) of a Mercator point (the latitude by fixed-point iteration, to 1e-12 rad)."""
    t = math.exp(-y / WGS84_A)
    phi = math.pi / 2 - 2 * math.atan(t)
    for _ in range(20):
        s = _E * math.sin(phi)
        nxt = math.pi / 2 - 2 * math.atan(t * ((1 - s) / (1 + s)) ** (_E / 2))
        done = abs(nxt - phi) < 1e-12
        phi = nxt
        if done:
            break
    return math.degrees(phi), math.degrees(x / WGS84_A)


def mercator_scale(lat: float) -> float:
    """True length on the ground of one Mercator metre at `lat`, inverted: Mercator metres a metre."""
    phi = math.radians(lat)
    return math.sqrt(1 - WGS84_E2 * math.sin(phi) ** 2) / math.cos(phi)


def zoom_scale(zoom: int) -> float:
    """Pixels a Mercator metre at a zoom level."""
    return float(2.0 ** (zoom / ZOOM_STEPS))


@dataclass(frozen=True)
class Projection:
    """A picture's window on the pixel grid of its zoom level: pixel (x0, y0) of the grid is the
    picture's top left; y grows downwards. The same place is the same grid pixel in every
    picture of the level, so pictures share the base layer's tiles."""

    lat: float  # the picture's centre (the tracked address)
    lon: float
    zoom: int
    x0: int
    y0: int
    width: int
    height: int

    @property
    def scale(self) -> float:
        return zoom_scale(self.zoom)

    @property
    def px_per_m(self) -> float:
        """Pixels a metre on the ground at the centre, in any direction (conformal)."""
        return self.scale * mercator_scale(self.lat)

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        x, y = mercator(lat, lon)
        return x * self.scale - self.x0, -y * self.scale - self.y0

    def xy_many(self, lonlat: Sequence[tuple[float, float]] | np.ndarray) -> list[tuple[float, float]]:
        """`xy` of many (lon, lat) points at once (a ring)."""
        m = mercator_many(lonlat) * self.scale
        xs, ys = m[:, 0] - self.x0, -m[:, 1] - self.y0
        return list(zip(xs.tolist(), ys.tolist()))

    def lat_lon(self, x: float, y: float) -> tuple[float, float]:
        return inverse_mercator((x + self.x0) / self.scale, -(y + self.y0) / self.scale)

    def box(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) the picture shows."""
        return grid_box(self.zoom, self.x0, self.y0, self.x0 + self.width, self.y0 + self.height)

    def tiles(self) -> list[tuple[int, int]]:
        """The (column, row) of every tile of the grid the picture overlaps."""
        cols = range(self.x0 // TILE, (self.x0 + self.width - 1) // TILE + 1)
        rows = range(self.y0 // TILE, (self.y0 + self.height - 1) // TILE + 1)
        return [(c, r) for r in rows for c in cols]


def grid_box(zoom: int, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    """(min lon, min lat, max lon, max lat) of a rectangle of a zoom level's pixel grid."""
    s = zoom_scale(zoom)
    lat_top, lon_left = inverse_mercator(x0 / s, -y0 / s)
    lat_bottom, lon_right = inverse_mercator(x1 / s, -y1 / s)
    return (lon_left, lat_bottom, lon_right, lat_top)


def fit(spec: MapSpec, scale: int = PIXEL_SCALE) -> Projection:
    """The projection of `spec` at `scale` pixels a CSS pixel: the zoom level nearest below the
    scale at which the circle's radius fills FILL of half the height (so it fills between
    FILL / 2^(1/ZOOM_STEPS) and FILL), and a point beyond it (a circle narrowed since) widens
    the view to show it. The centre is within half a pixel of the picture's middle."""
    width, height = CSS_WIDTH * scale, CSS_HEIGHT * scale
    reach_y, reach_x = spec.radius_m, 0.0
    m, n = _radii(spec.lat)
    for p in spec.points:  # metres from the centre, east and north
        reach_x = max(reach_x, abs(math.radians(p.lon - spec.lon) * n * math.cos(math.radians(spec.lat))))
        reach_y = max(reach_y, abs(math.radians(p.lat - spec.lat) * m))
    need = min(FILL * height / 2 / reach_y, FILL * width / 2 / reach_x if reach_x else math.inf)
    zoom = math.floor(ZOOM_STEPS * math.log2(need / mercator_scale(spec.lat)) + 1e-9)
    s = zoom_scale(zoom)
    cx, cy = mercator(spec.lat, spec.lon)
    x0, y0 = round(cx * s - width / 2), round(-cy * s - height / 2)
    return Projection(spec.lat, spec.lon, zoom, x0, y0, width, height)


def _radii(lat: float) -> tuple[float, float]:
    """Meridional (north) and prime-vertical (east) radii of curvature at `lat`."""
    s = math.sin(math.radians(lat))
    w = math.sqrt(1 - WGS84_E2 * s * s)
    return WGS84_A * (1 - WGS84_E2) / w**3, WGS84_A / w


RING_VERTICES = 144


def ring(spec: MapSpec) -> list[tuple[float, float]]:
    """The circle as (lat, lon) points at exactly its radius (geometry.geodesic_circle)."""
    return geodesic_circle(spec.lat, spec.lon, spec.radius_m, vertices=RING_VERTICES)


def ring_lonlat(spec: MapSpec) -> np.ndarray:
    """`ring` as an (n + 1, 2) array of (lon, lat), closed: the same geodesic walk, without the
    tuples (a picture projects it at once)."""
    n = RING_VERTICES
    lons, lats, _ = GEOD.fwd(
        np.full(n, spec.lon),
        np.full(n, spec.lat),
        np.linspace(0.0, 360.0, n, endpoint=False),
        np.full(n, spec.radius_m),
    )
    out = np.column_stack((lons, lats))
    return np.vstack((out, out[:1]))


def _kind(address_type: str) -> str:
    kind = address_type.lower()
    return kind if kind in MARKER_KINDS else "other"


def map_spec(section: TrackedAddressSection, circle: Circle) -> MapSpec | None:
    """The map of one tracked address's changes, or None when no change has a point to draw."""
    drawn = [
        MapPoint(line.lat, line.lon, _kind(line.address_type), line.moved_in)
        for line in section.lines
        if line.lat is not None and line.lon is not None
    ]
    if not drawn or circle.radius_code not in RADII:
        return None
    # Sorted: the same points in another order are the same picture.
    unique = tuple(sorted(set(drawn), key=lambda p: (p.lat, p.lon, p.kind, p.moved_in)))
    return MapSpec(circle.lat, circle.lon, RADII[circle.radius_code][0], unique)


def radius_words(radius_code: str) -> str:
    """'1-mile', '1/4-mile', '500-foot': the radius as an adjective."""
    number, unit = RADII[radius_code][1].split(" ")
    return f"{number}-{'mile' if unit == 'mi' else 'foot'}"


def _counted(points: Sequence[MapPoint]) -> str:
    counts = [(k, sum(p.kind == k for p in points)) for k in (*MARKER_KINDS, "other")]
    return ", ".join(f"{n} {k}" for k, n in counts if n)


def alt_text(label: str, radius_code: str, spec: MapSpec) -> str:
    """What the picture shows, for a reader who cannot see it."""
    n = len(spec.points)
    what = "1 offender's address" if n == 1 else f"{n} offenders' addresses"
    moved_in = [p for p in spec.points if p.moved_in]
    moved_out = [p for p in spec.points if not p.moved_in]
    parts = []
    if moved_in:
        parts.append(f"moved in: {_counted(moved_in)}")
    if moved_out:
        parts.append(f"moved out: {_counted(moved_out)}")
    return (
        f"Map of the {radius_words(radius_code)} circle around {label} with {what}"
        f" ({'; '.join(parts)}), over state and county lines"
    )
