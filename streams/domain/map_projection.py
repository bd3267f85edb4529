"""Drawing outlines flat: an equal-area conic projection and its fit into an SVG picture."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from streams.domain.regions import Outline

EARTH_R_M = 6371008.8  # the mean radius: a picture needs no ellipsoid


@dataclass(frozen=True)
class Albers:
    """Albers equal-area conic on the sphere (Snyder, Map Projections: A Working Manual,
    eq. 14-1 to 14-4): areas keep their proportions, so a larger county looks as large as it is
    and a choropleth does not overstate the north of the map."""

    lat_1: float
    lat_2: float
    lat_0: float
    lon_0: float

    def project(self, lon: float, lat: float) -> tuple[float, float]:
        """Metres east and north of (lon_0, lat_0)."""
        p1, p2, p0 = (math.radians(v) for v in (self.lat_1, self.lat_2, self.lat_0))
        n = (math.sin(p1) + math.sin(p2)) / 2
        c = math.cos(p1) ** 2 + 2 * n * math.sin(p1)
        rho_0 = EARTH_R_M * math.sqrt(c - 2 * n * math.sin(p0)) / n
        rho = EARTH_R_M * math.sqrt(c - 2 * n * math.sin(math.radians(lat))) / n
        theta = n * math.radians(lon - self.lon_0)
        return rho * math.sin(theta), rho_0 - rho * math.cos(theta)


def albers_for(bbox: tuple[float, float, float, float]) -> Albers:
    """Standard parallels a sixth of the way in from the box's edges (Snyder's rule of thumb)."""
    x0, y0, x1, y1 = bbox
    span = y1 - y0
    return Albers(y0 + span / 6, y1 - span / 6, (y0 + y1) / 2, (x0 + x1) / 2)


@dataclass(frozen=True)
class Picture:
    """Projected metres to SVG user units: `width` wide, north up, `pad` units all round."""

    projection: Albers
    scale: float
    min_x: float
    max_y: float
    pad: float
    width: float
    height: float

    def point(self, lon: float, lat: float) -> tuple[float, float]:
        x, y = self.projection.project(lon, lat)
        return (self.pad + (x - self.min_x) * self.scale, self.pad + (self.max_y - y) * self.scale)

    def path(self, outlines: Iterable[Outline]) -> str:
        """SVG path data, one closed subpath per ring (draw with fill-rule evenodd for holes)."""
        parts = []
        for outline in outlines:
            for ring in outline:
                points = [self.point(lon, lat) for lon, lat in ring]
                parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in points) + "Z")
        return "".join(parts)


def fit(outlines: Iterable[Outline], width: float, pad: float = 4.0) -> Picture:
    """The picture of these outlines `width` units wide, in a projection made for them."""
    rings = [ring for outline in outlines for ring in outline]
    lons = [lon for ring in rings for lon, _ in ring]
    lats = [lat for ring in rings for _, lat in ring]
    projection = albers_for((min(lons), min(lats), max(lons), max(lats)))
    xy = [projection.project(lon, lat) for ring in rings for lon, lat in ring]
    min_x, max_x = min(x for x, _ in xy), max(x for x, _ in xy)
    min_y, max_y = min(y for _, y in xy), max(y for _, y in xy)
    scale = (width - 2 * pad) / (max_x - min_x)
    height = (max_y - min_y) * scale + 2 * pad
    return Picture(projection, scale, min_x, max_y, pad, width, height)
