"""States and counties as outlines: the offline base layer's shapes, and which one holds a point."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.prepared import PreparedGeometry, prep

LonLat = tuple[float, float]
Ring = tuple[LonLat, ...]
Outline = tuple[Ring, ...]  # an outer ring, then its holes


@dataclass(frozen=True)
class Region:
    """A state (id = its 2-digit FIPS) or a county (5-digit FIPS, `state` = its state's)."""

    id: str
    name: str
    state: str
    outlines: tuple[Outline, ...]
    bbox: tuple[float, float, float, float]  # min lon, min lat, max lon, max lat

    @cached_property
    def _shape(self) -> PreparedGeometry:
        return prep(MultiPolygon([Polygon(o[0], o[1:]) for o in self.outlines]))

    def contains(self, lon: float, lat: float) -> bool:
        """Inside or on the outline (a point on a county line belongs to both)."""
        x0, y0, x1, y1 = self.bbox
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return False
        return bool(self._shape.covers(Point(lon, lat)))

    def meets_box(self, box: tuple[float, float, float, float]) -> bool:
        x0, y0, x1, y1 = self.bbox
        return not (box[2] < x0 or box[0] > x1 or box[3] < y0 or box[1] > y1)


def bbox_of(outlines: tuple[Outline, ...]) -> tuple[float, float, float, float]:
    xs = [x for o in outlines for ring in o for x, _ in ring]
    ys = [y for o in outlines for ring in o for _, y in ring]
    return (min(xs), min(ys), max(xs), max(ys))
