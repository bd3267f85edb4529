"""A digest's map picture, drawn with Pillow: county and state lines, the circle, offenders, a legend.

Drawn SUPERSAMPLE times larger than served and reduced (a box filter): Pillow's shapes have no
anti-aliasing of their own. Served at PIXEL_SCALE pixels a CSS pixel, as a palette PNG.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from PIL import Image, ImageDraw, ImageFont
from shapely.geometry import Polygon, box

from streams.adapters import basemap
from streams.domain.digest_map import PIXEL_SCALE, MapPoint, MapSpec, Projection, fit, ring
from streams.domain.regions import Region

SUPERSAMPLE = 2
PALETTE_COLOURS = 64

# Colours (RGB): muted land and lines under a strong circle and strong markers.
WATER = (221, 230, 236)
LAND = (246, 243, 235)
COUNTY_LINE = (176, 168, 152)
STATE_LINE = (110, 102, 90)
COUNTY_NAME = (112, 104, 92)
RING = (31, 90, 180)
CIRCLE_TINT = (222, 230, 240)  # inside the circle: opaque (a blend over the whole circle cost 20 ms)
CENTRE = (20, 20, 20)
MARKER = (196, 40, 40)
MARKER_EDGE = (255, 255, 255)
LEGEND_BG = (255, 255, 255, 225)
LEGEND_EDGE = (150, 150, 150)
TEXT = (30, 30, 30)

# Sizes in CSS pixels.
RING_WIDTH = 2.5
COUNTY_WIDTH = 1.0
STATE_WIDTH = 2.0
MARKER_R = 6.5


@cache
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


class _Canvas:
    """Drawing in CSS pixels on an image `k` device pixels a CSS pixel."""

    def __init__(self, projection: Projection, k: float) -> None:
        self.projection = projection
        self.k = k
        self.image = Image.new("RGB", (projection.width, projection.height), WATER)
        self.draw = ImageDraw.Draw(self.image)  # opaque: a blending draw cost 2 ms a fill
        self.blend = ImageDraw.Draw(self.image, "RGBA")  # for the legend's translucent box only

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        return self.projection.xy(lat, lon)

    def ring_xy(self, ring_lonlat: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        return self.projection.xy_many(ring_lonlat)

    def w(self, css: float) -> int:
        return max(1, round(css * self.k))


Rings = list[list[tuple[float, float]]]  # an outer ring, then its holes, in (lon, lat)


def clipped(regions: Sequence[Region], view: tuple[float, float, float, float]) -> list[Rings]:
    """The regions' polygons cut to a little more than the view: Pillow fills a polygon scanline
    by scanline over all its edges, and a county drawn whole cost ~3 ms of its edges off the map."""
    x0, y0, x1, y1 = view
    dx, dy = (x1 - x0) * 0.02, (y1 - y0) * 0.02
    frame = box(x0 - dx, y0 - dy, x1 + dx, y1 + dy)
    out: list[Rings] = []
    for region in regions:
        for outline in region.outlines:
            shape = Polygon(outline[0], outline[1:])
            if not shape.is_valid:
                shape = shape.buffer(0)
            cut = shape.intersection(frame)
            for part in getattr(cut, "geoms", [cut]):
                if isinstance(part, Polygon) and not part.is_empty:
                    out.append([list(part.exterior.coords), *(list(h.coords) for h in part.interiors)])
    return out


def _fill(c: _Canvas, polygons: Sequence[Rings]) -> None:
    for polygon in polygons:
        c.draw.polygon(c.ring_xy(polygon[0]), fill=LAND)
        for hole in polygon[1:]:
            c.draw.polygon(c.ring_xy(hole), fill=WATER)


def _lines(c: _Canvas, polygons: Sequence[Rings], colour: tuple[int, int, int], width: float) -> None:
    for polygon in polygons:
        for r in polygon:
            c.draw.line(c.ring_xy(r), fill=colour, width=c.w(width))


Box = tuple[float, float, float, float]


def _overlaps(b: Box, taken: Sequence[Box]) -> bool:
    return any(not (b[2] < t[0] or b[0] > t[2] or b[3] < t[1] or b[1] > t[3]) for t in taken)


def _county_names(
    c: _Canvas, counties: Sequence[Region], view: Box, marks: Sequence[tuple[float, float]]
) -> None:
    """Each county's name inside its visible part, clear of the map's marks and of each other
    (moved up or down a line or two when it would cover one, left out when it still would)."""
    font = _font(c.w(11))
    frame = box(*view)
    pad = MARKER_R * c.k * 1.3
    taken: list[Box] = [(x - pad, y - pad, x + pad, y + pad) for x, y in marks]
    for county in counties:
        shape = Polygon(county.outlines[0][0]).buffer(0).intersection(frame)
        if shape.is_empty or shape.area < frame.area * 0.02:
            continue  # a sliver at the edge: its name would sit on the frame
        point = shape.representative_point()
        px, py = c.xy(point.y, point.x)
        name = county.name.upper()
        step = c.w(18)
        for x, y in ((px, py + dy * step) for dy in (0, 1, -1, 2, -2)):
            b = c.draw.textbbox((x, y), name, font=font, anchor="mm")
            if b[0] < 0 or b[1] < 0 or b[2] > c.image.width or b[3] > c.image.height or _overlaps(b, taken):
                continue
            taken.append(b)
            c.draw.text(
                (x, y),
                name,
                font=font,
                anchor="mm",
                fill=COUNTY_NAME,
                stroke_width=c.w(2),
                stroke_fill=c.image.getpixel((round(x), round(y))),
            )
            break


def marker(
    draw: ImageDraw.ImageDraw, kind: str, x: float, y: float, r: float, *, hollow: bool, edge: int
) -> None:
    """Home a circle, work a square, school a triangle, other a diamond: told apart by shape,
    not colour. An address moved out is hollow."""
    fill = MARKER_EDGE if hollow else MARKER
    line = MARKER if hollow else MARKER_EDGE
    if kind == "home":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline=line, width=edge)
    elif kind == "work":
        s = r * 0.88
        draw.rectangle((x - s, y - s, x + s, y + s), fill=fill, outline=line, width=edge)
    elif kind == "school":
        draw.polygon(
            [(x, y - r * 1.2), (x + r * 1.1, y + r * 0.8), (x - r * 1.1, y + r * 0.8)],
            fill=fill,
            outline=line,
            width=edge,
        )
    else:
        draw.polygon(
            [(x, y - r * 1.2), (x + r, y), (x, y + r * 1.2), (x - r, y)], fill=fill, outline=line, width=edge
        )


def _points(c: _Canvas, points: Sequence[MapPoint]) -> None:
    r, edge = MARKER_R * c.k, c.w(1.5)
    # Moved out under moved in, so a new address is never hidden by an old one.
    for p in sorted(points, key=lambda p: p.moved_in):
        x, y = c.xy(p.lat, p.lon)
        marker(c.draw, p.kind, x, y, r, hollow=not p.moved_in, edge=edge)


def _legend(c: _Canvas, points: Sequence[MapPoint]) -> None:
    font = _font(c.w(11))
    rows: list[tuple[str, str]] = [("ring", "Tracked circle"), ("centre", "Tracked address")]
    rows += [(k, f"{k.capitalize()} address") for k in ("home", "work", "school")]
    if any(p.kind == "other" for p in points):
        rows.append(("other", "Other address"))
    if any(not p.moved_in for p in points):
        rows.append(("hollow", "Hollow: moved out"))
    line_h, pad, icon = c.w(16), c.w(6), c.w(16)
    text_w = max(c.draw.textlength(label, font=font) for _, label in rows)
    w, h = pad * 3 + icon + text_w, pad * 2 + line_h * len(rows)
    x0, y0 = c.w(8), c.image.height - c.w(8) - h
    c.draw.rounded_rectangle(
        (x0, y0, x0 + w, y0 + h), radius=c.w(4), fill=LEGEND_BG, outline=LEGEND_EDGE, width=c.w(1)
    )
    r = MARKER_R * c.k * 0.8
    for n, (kind, label) in enumerate(rows):
        cx, cy = x0 + pad + icon / 2, y0 + pad + line_h * n + line_h / 2
        if kind == "ring":
            c.draw.ellipse(
                (cx - r, cy - r, cx + r, cy + r), fill=CIRCLE_TINT, outline=RING, width=c.w(RING_WIDTH)
            )
        elif kind == "centre":
            _centre(c, cx, cy)
        elif kind == "hollow":
            marker(c.draw, "home", cx, cy, r, hollow=True, edge=c.w(1.5))
        else:
            marker(c.draw, kind, cx, cy, r, hollow=False, edge=c.w(1.5))
        c.draw.text((x0 + pad * 2 + icon, cy), label, font=font, anchor="lm", fill=TEXT)


def _centre(c: _Canvas, x: float, y: float) -> None:
    r = c.w(4)
    c.draw.ellipse((x - r, y - r, x + r, y + r), fill=CENTRE, outline=MARKER_EDGE, width=c.w(1.5))


def draw(spec: MapSpec, scale: int = PIXEL_SCALE, supersample: int = SUPERSAMPLE) -> Image.Image:
    """The picture as an RGB image, `scale` pixels a CSS pixel."""
    projection = fit(spec, scale * supersample)
    c = _Canvas(projection, scale * supersample)
    view = projection.box()
    states, counties = basemap.states_in(view), basemap.counties_in(view)
    county_shapes = clipped(counties, view)
    _fill(c, county_shapes)
    circle = c.ring_xy([(lon, lat) for lat, lon in ring(spec)])
    c.draw.polygon(circle, fill=CIRCLE_TINT)
    _lines(c, county_shapes, COUNTY_LINE, COUNTY_WIDTH)
    _lines(c, clipped(states, view), STATE_LINE, STATE_WIDTH)
    marks = [c.xy(spec.lat, spec.lon), *(c.xy(p.lat, p.lon) for p in spec.points)]
    _county_names(c, counties, view, marks)
    c.draw.line(circle, fill=RING, width=c.w(RING_WIDTH), joint="curve")
    _centre(c, *c.xy(spec.lat, spec.lon))
    _points(c, spec.points)
    _legend(c, spec.points)
    return c.image.reduce(supersample) if supersample > 1 else c.image


def png(spec: MapSpec, scale: int = PIXEL_SCALE) -> bytes:
    """The picture as a palette PNG (a few dozen colours: a third of the bytes of RGB)."""
    image = draw(spec, scale).quantize(colors=PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    # zlib's level 6: 5 ms; optimize=True saved a tenth of the bytes for 25 ms more.
    image.save(out, format="PNG", compress_level=6)
    return out.getvalue()


@dataclass
class MapCache:
    """The pictures of one digest run: each distinct map drawn once, whoever's digest shows it."""

    scale: int = PIXEL_SCALE
    renders: int = 0
    _pngs: dict[MapSpec, bytes] = field(default_factory=dict)

    def png(self, spec: MapSpec) -> bytes:
        data = self._pngs.get(spec)
        if data is None:
            data = self._pngs[spec] = png(spec, self.scale)
            self.renders += 1
        return data
