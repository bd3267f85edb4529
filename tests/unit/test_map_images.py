"""A digest's map picture shows the circle, the offenders and the county lines where a reader expects them.

Positions are worked out here apart from the code: pyproj's azimuthal equidistant projection
around the tracked address (a geodesic circle is a true circle in it, at its radius in metres)
and pyproj.Geod for the ring; only the picture's scale (pixels a metre) is the layout's. The
picture's centre is within half a pixel of its middle (the layout snaps it to its zoom level's
pixel grid), inside the tolerance of every check here.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image
from pyproj import Geod, Proj

from streams.adapters import basemap, map_images
from streams.domain.digest_map import (
    CSS_HEIGHT,
    CSS_WIDTH,
    FILL,
    PIXEL_SCALE,
    ZOOM_STEPS,
    MapPoint,
    MapSpec,
    alt_text,
    fit,
)
from streams.domain.radii import radius_m

JEFFERSON_CITY = (38.5767, -92.1735)  # on the Missouri River: Cole and Callaway counties meet here
GEOD = Geod(ellps="WGS84")


def decoded(spec: MapSpec) -> Image.Image:
    image = Image.open(io.BytesIO(map_images.png(spec)))
    assert image.format == "PNG"
    return image.convert("RGB")


def pixel_of(spec: MapSpec, lat: float, lon: float) -> tuple[float, float]:
    """Where a place must appear: aeqd metres from the centre, at the layout's scale."""
    aeqd = Proj(proj="aeqd", lat_0=spec.lat, lon_0=spec.lon, ellps="WGS84")
    east, north = aeqd(lon, lat)
    k = fit(spec).px_per_m
    w, h = CSS_WIDTH * PIXEL_SCALE, CSS_HEIGHT * PIXEL_SCALE
    return w / 2 + east * k, h / 2 - north * k


def near(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def colour_within(
    image: Image.Image, x: float, y: float, colour: tuple[int, int, int], reach: int = 2
) -> bool:
    return any(
        near(image.getpixel((round(x) + dx, round(y) + dy)), colour)
        for dx in range(-reach, reach + 1)
        for dy in range(-reach, reach + 1)
    )


@pytest.fixture(scope="module")
def spec() -> MapSpec:
    lat, lon = JEFFERSON_CITY
    points = []
    for az, dist, kind, moved_in in (
        (20, 1800, "home", True),
        (100, 2600, "work", True),
        (160, 1200, "school", False),
    ):
        plon, plat, _ = GEOD.fwd(lon, lat, az, dist)
        points.append(MapPoint(plat, plon, kind, moved_in))
    return MapSpec(lat, lon, radius_m("2mi"), tuple(points))


@pytest.fixture(scope="module")
def image(spec: MapSpec) -> Image.Image:
    return decoded(spec)


def test_the_picture_is_480_by_320_css_pixels_served_twice_as_dense(image: Image.Image) -> None:
    assert image.size == (960, 640)


def test_the_ring_lies_at_the_radius_in_the_circles_colour(spec: MapSpec, image: Image.Image) -> None:
    # Every 30 degrees, except those the legend (bottom left) or a marker could hide.
    for az in (0, 30, 60, 90, 120, 150, 180, 300, 330):
        lon, lat, _ = GEOD.fwd(spec.lon, spec.lat, az, spec.radius_m)
        x, y = pixel_of(spec, lat, lon)
        assert colour_within(image, x, y, map_images.RING), f"no ring at azimuth {az}"
    # Well inside and well outside the ring, no ring colour.
    for factor in (0.9, 1.1):
        lon, lat, _ = GEOD.fwd(spec.lon, spec.lat, 0, spec.radius_m * factor)
        assert not colour_within(image, *pixel_of(spec, lat, lon), map_images.RING)


def test_each_offender_is_marked_where_they_are_by_a_shape_of_their_address_type(
    spec: MapSpec, image: Image.Image
) -> None:
    r = map_images.MARKER_R * PIXEL_SCALE
    home, work, school = spec.points
    hx, hy = pixel_of(spec, home.lat, home.lon)
    wx, wy = pixel_of(spec, work.lat, work.lon)
    assert near(image.getpixel((round(hx), round(hy))), map_images.MARKER)
    assert near(image.getpixel((round(wx), round(wy))), map_images.MARKER)

    # A square reaches into its corners, a circle does not: the type is told by shape, not
    # colour alone (the corner is on the square's white edge, outside the circle).
    def drawn(x: float, y: float) -> bool:
        at = image.getpixel((round(x + 0.8 * r), round(y + 0.8 * r)))
        return near(at, map_images.MARKER) or near(at, map_images.MARKER_EDGE, tolerance=8)

    assert drawn(wx, wy) and not drawn(hx, hy)
    # Moved out: hollow, its outline in the marker colour around a white middle.
    sx, sy = pixel_of(spec, school.lat, school.lon)
    assert near(image.getpixel((round(sx), round(sy))), map_images.MARKER_EDGE)
    assert colour_within(image, sx, sy + 0.8 * r, map_images.MARKER, reach=3)


def test_county_lines_are_drawn_where_the_base_layer_has_them(spec: MapSpec, image: Image.Image) -> None:
    projection = fit(spec)
    legend = (0, image.height - 220, 320, image.height)  # generous: the legend's corner
    checked = hits = 0
    for county in basemap.counties_in(projection.box()):
        outline = county.outlines[0][0]
        # Along each edge of the outline (the layer's vertices are far apart at 1:10,000,000).
        along = [
            (a[0] + (b[0] - a[0]) * t / 8, a[1] + (b[1] - a[1]) * t / 8)
            for a, b in zip(outline, outline[1:])
            for t in range(8)
        ]
        for lon, lat in along:
            x, y = pixel_of(spec, lat, lon)
            if not (10 <= x < image.width - 10 and 10 <= y < image.height - 10):
                continue
            if legend[0] <= x <= legend[2] and legend[1] <= y <= legend[3]:
                continue
            checked += 1
            hits += colour_within(image, x, y, map_images.COUNTY_LINE) or colour_within(
                image, x, y, map_images.STATE_LINE
            )
    assert checked >= 20
    assert hits >= 0.8 * checked  # a county name's halo may cover a few


def test_the_alt_text_says_what_the_picture_shows(spec: MapSpec) -> None:
    assert alt_text("Home", "2mi", spec) == (
        "Map of the 2-mile circle around Home with 3 offenders' addresses"
        " (moved in: 1 home, 1 work; moved out: 1 school), over state and county lines"
    )
    one = MapSpec(spec.lat, spec.lon, radius_m("500ft"), spec.points[:1])
    assert alt_text("Grandma's", "500ft", one).startswith(
        "Map of the 500-foot circle around Grandma's with 1 offender's address (moved in: 1 home)"
    )


def test_a_run_draws_each_distinct_map_once(spec: MapSpec) -> None:
    cache = map_images.MapCache()
    first = cache.png(spec)
    same = MapSpec(spec.lat, spec.lon, spec.radius_m, tuple(spec.points))
    assert cache.png(same) is first and cache.renders == 1
    other = MapSpec(spec.lat, spec.lon, spec.radius_m, spec.points[:2])
    assert cache.png(other) != first and cache.renders == 2


def test_a_point_beyond_the_circle_widens_the_view_to_show_it(spec: MapSpec) -> None:
    lon, lat, _ = GEOD.fwd(spec.lon, spec.lat, 90, spec.radius_m * 3)
    wide = MapSpec(spec.lat, spec.lon, spec.radius_m, (MapPoint(lat, lon, "home", True),))
    x, y = pixel_of(wide, lat, lon)
    assert 0 < x < CSS_WIDTH * PIXEL_SCALE and 0 < y < CSS_HEIGHT * PIXEL_SCALE
    assert near(decoded(wide).getpixel((round(x), round(y))), map_images.MARKER)
    # The point sits at most FILL of half the width from the centre, and not much nearer.
    reach = fit(wide).px_per_m * spec.radius_m * 3 / (CSS_WIDTH * PIXEL_SCALE / 2)
    assert FILL / 2 ** (1 / ZOOM_STEPS) - 0.01 <= reach <= FILL


def ring_radii(image: Image.Image, cx: float, cy: float) -> tuple[float, float]:
    """The ring's half-width and half-height in pixels, read off the picture alone: the
    outermost ring-coloured pixels on the row and the column through the centre."""
    row = [x for x in range(image.width) if near(image.getpixel((x, round(cy))), map_images.RING)]
    col = [y for y in range(image.height) if near(image.getpixel((round(cx), y)), map_images.RING)]
    return (row[-1] - row[0]) / 2, (col[-1] - col[0]) / 2


@pytest.mark.parametrize("code", ["500ft", "0.25mi", "1mi", "5mi"])
def test_the_circle_is_round_and_fills_most_of_the_picture_at_every_radius(code: str) -> None:
    lat, lon = 38.95, -92.33  # Columbia, inside Boone county
    circle = MapSpec(lat, lon, radius_m(code), (MapPoint(lat, lon + 0.0001, "home", True),))
    image = decoded(circle)
    across, down = ring_radii(image, image.width / 2, image.height / 2)
    ring_px = 2.5 * PIXEL_SCALE  # the ring's width: its outer edge is this much over half beyond
    expected = radius_m(code) * fit(circle).px_per_m + ring_px / 2
    assert abs(across - expected) <= 1.5 and abs(down - expected) <= 1.5  # round, at its radius
    # The radius fills between FILL / 2^(1/4) and FILL of half the picture's height.
    fill = (across - ring_px / 2) / (CSS_HEIGHT * PIXEL_SCALE / 2)
    assert FILL / 2 ** (1 / ZOOM_STEPS) - 0.01 <= fill <= FILL + 0.01


def test_a_picture_is_the_same_drawn_from_new_tiles_or_kept_ones(spec: MapSpec) -> None:
    kept = map_images.png(spec)  # the process's tiles, drawn by earlier tests
    assert map_images.png(spec, tiles=map_images.TileCache()) == kept


ST_LOUIS = MapSpec(38.627, -90.199, radius_m("5mi"), (MapPoint(38.64, -90.25, "work", True),))


def test_the_state_line_and_the_river_side_of_st_louis_are_drawn() -> None:
    """Downtown St. Louis: the Mississippi is the state line, drawn in the state line's colour
    where the layer has it, with Illinois' land beyond it (no water: the layer has none there)."""
    image = decoded(ST_LOUIS)
    projection = fit(ST_LOUIS)
    [missouri] = [s for s in basemap.states_in(projection.box()) if s.id == "29"]
    checked = hits = 0
    for outline in missouri.outlines:
        for a, b in zip(outline[0], outline[0][1:]):
            for t in range(8):
                lon, lat = a[0] + (b[0] - a[0]) * t / 8, a[1] + (b[1] - a[1]) * t / 8
                x, y = pixel_of(ST_LOUIS, lat, lon)
                if not (10 <= x < image.width - 10 and 10 <= y < image.height - 230):
                    continue
                checked += 1
                hits += colour_within(image, x, y, map_images.STATE_LINE)
    assert checked >= 10 and hits >= 0.8 * checked
    assert not any(near(image.getpixel((x, 10)), map_images.WATER, tolerance=2) for x in range(0, 960, 8))
