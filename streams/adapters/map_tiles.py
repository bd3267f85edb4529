"""The digest maps' palette and their base layer (land, county and state lines) in tiles.

digest_map.fit puts every picture on its zoom level's pixel grid, so a tile of that grid is
drawn once a process (TileCache) and cropped into every picture that overlaps it. Tiles and
pictures are "L" images of PALETTE indices, saved as palette PNGs by encode_png.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import shapely
from isal import isal_zlib
from PIL import Image, ImageDraw
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.prepared import PreparedGeometry, prep

from streams.adapters import basemap
from streams.domain.digest_map import TILE, Projection, grid_box, mercator_many, zoom_scale
from streams.domain.regions import Region

Box = tuple[float, float, float, float]

# Colours (RGB): muted land and lines under a strong circle and strong markers.
WATER = (221, 230, 236)
LAND = (246, 243, 235)
COUNTY_LINE = (176, 168, 152)
STATE_LINE = (110, 102, 90)
COUNTY_NAME = (112, 104, 92)
RING = (31, 90, 180)
CIRCLE_TINT = (222, 230, 240)  # inside the circle
CENTRE = (20, 20, 20)
MARKER = (196, 40, 40)
MARKER_EDGE = (255, 255, 255)
LEGEND_BG = (255, 255, 255)  # opaque: the legend is pasted, not blended
LEGEND_EDGE = (150, 150, 150)
TEXT = (30, 30, 30)

# The palette: the colours above, then three steps between each pair an anti-aliased edge of a
# name, marker or legend runs between (a pixel of a pasted picture takes the nearest entry).
RGB = tuple[int, int, int]
COLOURS: tuple[RGB, ...] = (WATER, LAND, CIRCLE_TINT, COUNTY_LINE, STATE_LINE, COUNTY_NAME, RING, CENTRE)
COLOURS += (MARKER, MARKER_EDGE, LEGEND_EDGE, TEXT)
I_WATER, I_LAND, I_TINT, I_COUNTY, I_STATE, I_NAME, I_RING = range(7)
_BLENDS = (
    (COUNTY_NAME, LAND),
    (COUNTY_NAME, CIRCLE_TINT),
    (TEXT, LEGEND_BG),
    (MARKER, MARKER_EDGE),
    (RING, LEGEND_BG),
    (RING, CIRCLE_TINT),
    (CENTRE, MARKER_EDGE),
    (LEGEND_EDGE, LEGEND_BG),
)
PALETTE: tuple[tuple[int, int, int], ...] = COLOURS + tuple(
    tuple(round(a * t + b * (1 - t)) for a, b in zip(fg, bg))  # type: ignore[misc]
    for fg, bg in _BLENDS
    for t in (0.25, 0.5, 0.75)
)
PALETTE_COLOURS = len(PALETTE)
PNG_LEVEL = 1  # ISA-L's deflate level (0-3): see bench/README.md (size against time)
# Sizes in CSS pixels.
COUNTY_WIDTH = 1.0
STATE_WIDTH = 2.0
TILE_MARGIN = 8  # pixels of geometry drawn beyond a tile's edge, so a line crossing it is whole
TILES_KEPT = 50_000  # tiles kept a process (compressed: a tile with lines is a few hundred bytes)


def w(css: float, k: float) -> int:
    return max(1, round(css * k))


# --- the base layer, in tiles ----------------------------------------------------------------


@dataclass(frozen=True)
class _Shapes:
    """A region's outline in Mercator metres: its area and its lines."""

    area: PreparedGeometry
    polygons: MultiPolygon
    lines: shapely.Geometry


_shapes_lock = threading.Lock()
_shapes: dict[tuple[str, str], _Shapes] = {}


def _shapes_of(region: Region) -> _Shapes:
    key = (region.state, region.id)
    found = _shapes.get(key)
    if found is None:
        polygons = []
        for outline in region.outlines:
            rings = [mercator_many(r) for r in outline]
            shape = Polygon(rings[0], rings[1:])
            polygons.append(shape if shape.is_valid else shape.buffer(0))
        merged = shapely.union_all(polygons)
        multi = merged if isinstance(merged, MultiPolygon) else MultiPolygon([merged])
        found = _Shapes(prep(multi), multi, shapely.boundary(multi))
        with _shapes_lock:
            _shapes[key] = found
    return found


@cache
def _boxes(state: str | None) -> tuple[tuple[Region, ...], np.ndarray]:
    """The states (None) or one state's counties, with their boxes as one array."""
    regions = basemap.states() if state is None else basemap.counties_of(state)
    return regions, np.array([r.bbox for r in regions], dtype=float).reshape(-1, 4)


def _meeting(regions: tuple[Region, ...], boxes: np.ndarray, view: Box) -> list[Region]:
    hit = (
        (boxes[:, 0] <= view[2])
        & (boxes[:, 2] >= view[0])
        & (boxes[:, 1] <= view[3])
        & (boxes[:, 3] >= view[1])
    )
    return [regions[i] for i in np.flatnonzero(hit)]


def regions_in(view: Box) -> tuple[list[Region], list[Region]]:
    """The states and the counties whose boxes meet `view` (basemap.states_in and counties_in,
    a box test over arrays: a tile asks thousands of times a run)."""
    states = _meeting(*_boxes(None), view)
    return states, [c for st in states for c in _meeting(*_boxes(st.id), view)]


def _pixels(coords: Sequence[tuple[float, float]], s: float, px0: int, py0: int) -> list[tuple[float, float]]:
    return [(x * s - px0, -y * s - py0) for x, y in coords]


def _parts(geometry: shapely.Geometry) -> list[shapely.Geometry]:
    return [g for g in shapely.get_parts(geometry) if not g.is_empty]


def draw_tile(k: float, zoom: int, col: int, row: int) -> Image.Image | int:
    """One tile of the base layer: land, county lines, state lines; a palette index when the
    tile is that one colour throughout (most tiles of a close zoom level lie inside one county)."""
    s = zoom_scale(zoom)
    px0, py0 = col * TILE, row * TILE
    m = TILE_MARGIN
    view = grid_box(zoom, px0 - m, py0 - m, px0 + TILE + m, py0 + TILE + m)
    # The same rectangle in Mercator metres (y up).
    x0, x1 = (px0 - m) / s, (px0 + TILE + m) / s
    y0, y1 = -(py0 + TILE + m) / s, -(py0 - m) / s
    rect = box(x0, y0, x1, y1)
    state_regions, county_regions = regions_in(view)
    states = [_shapes_of(r) for r in state_regions]
    counties = [_shapes_of(r) for r in county_regions]
    county_lines = [g for c in counties for g in _parts(shapely.clip_by_rect(c.lines, x0, y0, x1, y1))]
    state_lines = [g for st in states for g in _parts(shapely.clip_by_rect(st.lines, x0, y0, x1, y1))]
    inside = any(st.area.contains(rect) for st in states)
    if (
        not county_lines
        and not state_lines
        and (inside or not any(st.area.intersects(rect) for st in states))
    ):
        return I_LAND if inside else I_WATER
    image = Image.new("L", (TILE, TILE), I_LAND if inside else I_WATER)
    draw = ImageDraw.Draw(image)
    if not inside:
        for st in states:
            for polygon in _parts(shapely.clip_by_rect(st.polygons, x0, y0, x1, y1)):
                for part in getattr(polygon, "geoms", [polygon]):
                    if not isinstance(part, Polygon):
                        continue
                    draw.polygon(_pixels(part.exterior.coords, s, px0, py0), fill=I_LAND)
                    for hole in part.interiors:
                        draw.polygon(_pixels(hole.coords, s, px0, py0), fill=I_WATER)
    for lines, colour, width in ((county_lines, I_COUNTY, COUNTY_WIDTH), (state_lines, I_STATE, STATE_WIDTH)):
        for line in lines:
            for part in getattr(line, "geoms", [line]):
                draw.line(_pixels(part.coords, s, px0, py0), fill=colour, width=w(width, k))
    return image


class TileCache:
    """The base layer's tiles a process has drawn (the digest runs of one process share them),
    kept zlib-compressed, the least recently used dropped beyond `kept`."""

    def __init__(self, kept: int = TILES_KEPT) -> None:
        self.kept = kept
        self.drawn = 0
        self._tiles: OrderedDict[tuple[float, int, int, int], bytes | int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, k: float, zoom: int, col: int, row: int) -> Image.Image | int:
        key = (k, zoom, col, row)
        with self._lock:
            found = self._tiles.get(key)
            if found is not None:
                self._tiles.move_to_end(key)
        if found is None:
            tile = draw_tile(k, zoom, col, row)
            found = tile if isinstance(tile, int) else isal_zlib.compress(tile.tobytes(), 1)
            with self._lock:
                self.drawn += 1
                self._tiles[key] = found
                while len(self._tiles) > self.kept:
                    self._tiles.popitem(last=False)
            return tile
        if isinstance(found, int):
            return found
        return Image.frombytes("L", (TILE, TILE), isal_zlib.decompress(found))


TILES = TileCache()


def base_layer(projection: Projection, k: float, tiles: TileCache | None = None) -> Image.Image:
    """The picture's base layer, palette indices, cut from the tiles it overlaps."""
    tiles = tiles or TILES
    canvas = Image.new("L", (projection.width, projection.height), I_LAND)
    for col, row in projection.tiles():
        at = (col * TILE - projection.x0, row * TILE - projection.y0)
        tile = tiles.get(k, projection.zoom, col, row)
        if isinstance(tile, int):
            if tile != I_LAND:
                canvas.paste(tile, (*at, at[0] + TILE, at[1] + TILE))
        else:
            canvas.paste(tile, at)
    return canvas


@cache
def palette_bytes() -> bytes:
    return bytes(c for colour in PALETTE for c in colour)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: Image.Image) -> bytes:
    """An "L" image of PALETTE indices as an 8-bit palette PNG (RFC 2083), each row unfiltered
    (the filter libpng advises for palette images), deflated by ISA-L: a seventh of zlib's time
    at its fastest level for smaller output (bench/README.md)."""
    width, height = image.size
    rows = Image.new("L", (width + 1, height), 0)  # a 0 before each row: filter type None
    rows.paste(image, (1, 0))
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)  # 8 bits, palette, deflate
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"PLTE", palette_bytes()),
            _chunk(b"IDAT", isal_zlib.compress(rows.tobytes(), PNG_LEVEL)),
            _chunk(b"IEND", b""),
        )
    )
