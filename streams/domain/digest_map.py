"""The map picture of a digest's tracked address: what it shows, its projection and layout, its alt text (pure)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streams.domain.digest import TrackedAddressSection
from streams.domain.geometry import WGS84_A, WGS84_E2, geodesic_circle
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


@dataclass(frozen=True)
class Projection:
    """A local equirectangular projection (east scaled by the ellipsoid's parallel radius at the
    centre), fitted so the circle and every point fit the picture with room around them.
    Pixel (0, 0) is the top left; y grows downwards."""

    lat: float
    lon: float
    px_per_m: float
    width: int
    height: int

    @property
    def _radii(self) -> tuple[float, float]:
        # Meridional (north) and prime-vertical (east) radii of curvature at the centre.
        s = math.sin(math.radians(self.lat))
        w = math.sqrt(1 - WGS84_E2 * s * s)
        return WGS84_A * (1 - WGS84_E2) / w**3, WGS84_A / w

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        m, n = self._radii
        east = math.radians(lon - self.lon) * n * math.cos(math.radians(self.lat))
        north = math.radians(lat - self.lat) * m
        return self.width / 2 + east * self.px_per_m, self.height / 2 - north * self.px_per_m

    def xy_many(self, lonlat: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        """`xy` of many (lon, lat) points at once (a county's outline)."""
        m, n = self._radii
        pts = np.asarray(lonlat, dtype=float).reshape(-1, 2)
        east = np.radians(pts[:, 0] - self.lon) * (n * math.cos(math.radians(self.lat)))
        north = np.radians(pts[:, 1] - self.lat) * m
        xs = self.width / 2 + east * self.px_per_m
        ys = self.height / 2 - north * self.px_per_m
        return list(zip(xs.tolist(), ys.tolist()))

    def lat_lon(self, x: float, y: float) -> tuple[float, float]:
        m, n = self._radii
        east = (x - self.width / 2) / self.px_per_m
        north = (self.height / 2 - y) / self.px_per_m
        return (
            self.lat + math.degrees(north / m),
            self.lon + math.degrees(east / (n * math.cos(math.radians(self.lat)))),
        )

    def box(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) the picture shows."""
        corners = [self.lat_lon(x, y) for x in (0, self.width) for y in (0, self.height)]
        lats, lons = [c[0] for c in corners], [c[1] for c in corners]
        return (min(lons), min(lats), max(lons), max(lats))


def fit(spec: MapSpec, scale: int = PIXEL_SCALE) -> Projection:
    """The projection of `spec` at `scale` pixels a CSS pixel: the circle's radius fills FILL of
    half the height, and a point beyond it (a circle narrowed since) widens the view to show it."""
    width, height = CSS_WIDTH * scale, CSS_HEIGHT * scale
    unit = Projection(spec.lat, spec.lon, 1.0, 0, 0)  # metres from the centre
    reach_y, reach_x = spec.radius_m, 0.0
    for p in spec.points:
        x, y = unit.xy(p.lat, p.lon)
        reach_x, reach_y = max(reach_x, abs(x)), max(reach_y, abs(y))
    px_per_m = min(FILL * height / 2 / reach_y, FILL * width / 2 / reach_x if reach_x else math.inf)
    return Projection(spec.lat, spec.lon, px_per_m, width, height)


def ring(spec: MapSpec) -> list[tuple[float, float]]:
    """The circle as (lat, lon) points at exactly its radius (geometry.geodesic_circle)."""
    return geodesic_circle(spec.lat, spec.lon, spec.radius_m, vertices=144)


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
