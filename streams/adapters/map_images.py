"""A digest's map picture, drawn with Pillow: county and state lines, the circle, offenders, a legend.

Drawn at the served size (PIXEL_SCALE pixels a CSS pixel) straight in palette indices, so no
colour is reduced afterwards. What does not change from map to map is drawn once a process:
the base layer (land, county and state lines) as tiles of each zoom level's pixel grid
(digest_map.fit puts every picture on that grid), cropped per map; county names, markers and
legends as small anti-aliased pictures snapped to the palette, pasted where a map needs them.
Per map, only the circle (its tint and ring) is drawn, and the PNG encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from PIL import Image, ImageDraw, ImageFont
from shapely.geometry import Polygon, box

from streams.adapters import basemap
from streams.adapters.map_tiles import (
    CENTRE,
    CIRCLE_TINT,
    COUNTY_LINE,
    COUNTY_NAME,
    I_LAND,
    I_RING,
    I_TINT,
    LAND,
    LEGEND_BG,
    LEGEND_EDGE,
    MARKER,
    MARKER_EDGE,
    PALETTE,
    PALETTE_COLOURS,
    RING,
    STATE_LINE,
    TEXT,
    WATER,
    TileCache,
    base_layer,
    encode_png,
    palette_bytes,
    regions_in,
    w,
)
from streams.domain.digest_map import PIXEL_SCALE, MapPoint, MapSpec, Projection, fit, ring_lonlat

__all__ = ["COUNTY_LINE", "LAND", "STATE_LINE", "WATER", "TileCache", "MapCache", "png", "draw"]

# Sizes in CSS pixels.
RING_WIDTH = 2.5
MARKER_R = 6.5
SPRITE_SUPERSAMPLE = 4  # markers and legends are drawn this much larger once, and reduced


@cache
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


@cache
def _palette_image() -> Image.Image:
    image = Image.new("P", (1, 1))
    flat = [c for colour in PALETTE for c in colour]
    image.putpalette(flat + flat[-3:] * (256 - PALETTE_COLOURS))  # padding: the last colour again
    return image


def indices(rgb: Image.Image) -> Image.Image:
    """An RGB picture as an "L" image of palette indices (each pixel the nearest entry)."""
    snapped = rgb.convert("RGB").quantize(palette=_palette_image(), dither=Image.Dither.NONE)
    return Image.frombytes("L", snapped.size, snapped.tobytes())


@dataclass(frozen=True)
class Sprite:
    """A small picture pasted onto maps: palette indices, where it covers, and its anchor."""

    image: Image.Image  # "L", palette indices
    mask: Image.Image  # "L", 0 or 255
    anchor: tuple[float, float]  # the pixel of `image` to put on the map's point

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def at(self, x: float, y: float) -> tuple[int, int]:
        return round(x - self.anchor[0]), round(y - self.anchor[1])


def sprite(rgba: Image.Image, anchor: tuple[float, float], background: tuple[int, int, int]) -> Sprite:
    """`rgba` over `background`, snapped to the palette; it covers where it is at least half opaque."""
    flat = Image.new("RGB", rgba.size, background)
    flat.paste(rgba, mask=rgba)
    mask = rgba.getchannel("A").point(lambda a: 255 if a >= 128 else 0)
    return Sprite(indices(flat), mask, anchor)


# --- what is pasted: names, markers, the legend ----------------------------------------------


@cache
def name_sprite(name: str, halo: int, k: float) -> Sprite:
    """A county's name in capitals with a halo of the colour under it (land or the circle's tint)."""
    font, stroke = _font(w(11, k)), w(2, k)
    left, top, right, bottom = font.getbbox(name, stroke_width=stroke, anchor="mm")
    size = (int(right - left) + 2, int(bottom - top) + 2)
    image = Image.new("RGBA", size, (*PALETTE[halo], 0))
    anchor = (1 - left, 1 - top)
    ImageDraw.Draw(image).text(
        anchor, name, font=font, anchor="mm", fill=COUNTY_NAME, stroke_width=stroke, stroke_fill=PALETTE[halo]
    )
    return sprite(image, anchor, PALETTE[halo])


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


def _centre(draw: ImageDraw.ImageDraw, x: float, y: float, k: float) -> None:
    r = w(4, k)
    draw.ellipse((x - r, y - r, x + r, y + r), fill=CENTRE, outline=MARKER_EDGE, width=w(1.5, k))


@cache
def mark_sprite(kind: str, hollow: bool, k: float) -> Sprite:
    """An offender's marker ("centre": the tracked address), anti-aliased."""
    q = SPRITE_SUPERSAMPLE
    half = round(MARKER_R * k * 1.4) + 2
    big = Image.new("RGBA", (2 * half * q, 2 * half * q), (*(MARKER if hollow else MARKER_EDGE), 0))
    draw = ImageDraw.Draw(big)
    if kind == "centre":
        _centre(draw, half * q, half * q, k * q)
    else:
        marker(draw, kind, half * q, half * q, MARKER_R * k * q, hollow=hollow, edge=w(1.5, k * q))
    return sprite(big.reduce(q), (half, half), MARKER_EDGE)


@cache
def legend_sprite(other: bool, moved_out: bool, k: float) -> Sprite:
    """The key, bottom left: the ring, the tracked address, each marker (other and hollow only
    when the map shows one)."""
    q = SPRITE_SUPERSAMPLE
    kq = k * q
    font = _font(w(11, kq))
    rows: list[tuple[str, str]] = [("ring", "Tracked circle"), ("centre", "Tracked address")]
    rows += [(kind, f"{kind.capitalize()} address") for kind in ("home", "work", "school")]
    if other:
        rows.append(("other", "Other address"))
    if moved_out:
        rows.append(("hollow", "Hollow: moved out"))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h, pad, icon = w(16, kq), w(6, kq), w(16, kq)
    text_w = max(probe.textlength(label, font=font) for _, label in rows)
    width, height = pad * 3 + icon + text_w, pad * 2 + line_h * len(rows)
    size = (int(width) // q * q + q, int(height) // q * q + q)
    big = Image.new("RGBA", size, (*LEGEND_BG, 0))
    draw = ImageDraw.Draw(big)
    draw.rounded_rectangle(
        (0, 0, width, height), radius=w(4, kq), fill=LEGEND_BG, outline=LEGEND_EDGE, width=w(1, kq)
    )
    r = MARKER_R * kq * 0.8
    for n, (kind, label) in enumerate(rows):
        cx, cy = pad + icon / 2, pad + line_h * n + line_h / 2
        if kind == "ring":
            draw.ellipse(
                (cx - r, cy - r, cx + r, cy + r), fill=CIRCLE_TINT, outline=RING, width=w(RING_WIDTH, kq)
            )
        elif kind == "centre":
            _centre(draw, cx, cy, kq)
        elif kind == "hollow":
            marker(draw, "home", cx, cy, r, hollow=True, edge=w(1.5, kq))
        else:
            marker(draw, kind, cx, cy, r, hollow=False, edge=w(1.5, kq))
        draw.text((pad * 2 + icon, cy), label, font=font, anchor="lm", fill=TEXT)
    small = big.reduce(q)
    return sprite(small, (0, small.height), LEGEND_BG)


def paste(canvas: Image.Image, s: Sprite, x: float, y: float) -> None:
    canvas.paste(s.image, s.at(x, y), s.mask)


# --- one map ---------------------------------------------------------------------------------

Box = tuple[float, float, float, float]


def _overlaps(b: Box, taken: Sequence[Box]) -> bool:
    return any(not (b[2] < t[0] or b[0] > t[2] or b[3] < t[1] or b[1] > t[3]) for t in taken)


@cache
def _name_area(state: str, county_id: str) -> Polygon:
    county = next(c for c in basemap.counties_of(state) if c.id == county_id)
    return Polygon(county.outlines[0][0]).buffer(0)


def _county_names(
    canvas: Image.Image, projection: Projection, k: float, marks: Sequence[tuple[float, float]]
) -> None:
    """Each county's name inside its visible part, clear of the map's marks and of each other
    (moved up or down a line or two when it would cover one, left out when it still would)."""
    view = projection.box()
    frame = box(*view)
    pad = MARKER_R * k * 1.3
    taken: list[Box] = [(x - pad, y - pad, x + pad, y + pad) for x, y in marks]
    step = w(18, k)
    for county in regions_in(view)[1]:
        shape = _name_area(county.state, county.id).intersection(frame)
        if shape.is_empty or shape.area < frame.area * 0.02:
            continue  # a sliver at the edge: its name would sit on the frame
        point = shape.representative_point()
        px, py = projection.xy(point.y, point.x)
        name = county.name.upper()
        land = name_sprite(name, I_LAND, k)
        width, height = land.size
        for x, y in ((px, py + dy * step) for dy in (0, 1, -1, 2, -2)):
            left, top = land.at(x, y)
            b = (left, top, left + width, top + height)
            if b[0] < 0 or b[1] < 0 or b[2] > canvas.width or b[3] > canvas.height or _overlaps(b, taken):
                continue
            taken.append(b)
            under = canvas.getpixel((min(round(x), canvas.width - 1), min(round(y), canvas.height - 1)))
            paste(canvas, land if under != I_TINT else name_sprite(name, I_TINT, k), x, y)
            break


_TINT_LUT = [I_TINT if i == I_LAND else i for i in range(256)]


def draw_indices(spec: MapSpec, scale: int = PIXEL_SCALE, tiles: TileCache | None = None) -> Image.Image:
    """The picture as an "L" image of PALETTE indices, `scale` pixels a CSS pixel."""
    projection = fit(spec, scale)
    k = float(scale)
    canvas = base_layer(projection, k, tiles)
    circle = projection.xy_many(ring_lonlat(spec))
    # The tint: land inside the circle; the lines stay over it.
    xs, ys = [p[0] for p in circle], [p[1] for p in circle]
    cut = (
        max(0, int(min(xs)) - 1),
        max(0, int(min(ys)) - 1),
        min(canvas.width, int(max(xs)) + 2),
        min(canvas.height, int(max(ys)) + 2),
    )
    if cut[0] < cut[2] and cut[1] < cut[3]:
        inside = Image.new("L", (cut[2] - cut[0], cut[3] - cut[1]), 0)
        ImageDraw.Draw(inside).polygon([(x - cut[0], y - cut[1]) for x, y in circle], fill=255)
        canvas.paste(canvas.crop(cut).point(_TINT_LUT), cut[:2], inside)
    centre = projection.xy(spec.lat, spec.lon)
    marks = [centre, *(projection.xy(p.lat, p.lon) for p in spec.points)]
    _county_names(canvas, projection, k, marks)
    ImageDraw.Draw(canvas).line(circle, fill=I_RING, width=w(RING_WIDTH, k))
    paste(canvas, mark_sprite("centre", False, k), *centre)
    _points(canvas, spec.points, projection, k)
    legend = legend_sprite(
        any(p.kind == "other" for p in spec.points), any(not p.moved_in for p in spec.points), k
    )
    paste(canvas, legend, w(8, k), canvas.height - w(8, k))
    return canvas


def _points(canvas: Image.Image, points: Sequence[MapPoint], projection: Projection, k: float) -> None:
    # Moved out under moved in, so a new address is never hidden by an old one.
    for p in sorted(points, key=lambda p: p.moved_in):
        paste(canvas, mark_sprite(p.kind, not p.moved_in, k), *projection.xy(p.lat, p.lon))


def draw(spec: MapSpec, scale: int = PIXEL_SCALE) -> Image.Image:
    """The picture as an RGB image, `scale` pixels a CSS pixel."""
    image = draw_indices(spec, scale)
    image.putpalette(palette_bytes())  # "L" indices become a "P" image of PALETTE
    return image.convert("RGB")


def png(spec: MapSpec, scale: int = PIXEL_SCALE, tiles: TileCache | None = None) -> bytes:
    """The picture as a palette PNG of PALETTE's few dozen colours."""
    return encode_png(draw_indices(spec, scale, tiles))


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
