"""The statistics map's projection: Albers equal-area as PROJ computes it, and a picture that fits."""

from __future__ import annotations

import pytest
from pyproj import Geod, Transformer
from shapely.geometry import Polygon

from streams.adapters import basemap
from streams.domain.map_projection import EARTH_R_M, Albers, fit

MISSOURI_ALBERS = Albers(lat_1=36.5, lat_2=40.0, lat_0=38.3, lon_0=-92.5)


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(-92.5, 38.3), (-90.1994, 38.627), (-94.5786, 39.0997), (-89.1, 36.0), (-95.77, 40.61), (-120.0, 60.0)],
)
def test_the_projection_is_proj_s_albers_on_the_same_sphere(lon: float, lat: float) -> None:
    p = MISSOURI_ALBERS
    proj = Transformer.from_crs(
        "EPSG:4326",
        f"+proj=aea +lat_1={p.lat_1} +lat_2={p.lat_2} +lat_0={p.lat_0} +lon_0={p.lon_0} +R={EARTH_R_M}",
        always_xy=True,
    )
    want = proj.transform(lon, lat)
    got = p.project(lon, lat)
    assert got == pytest.approx(want, abs=1e-3)  # metres


def test_the_counties_keep_their_areas_in_proportion_on_the_map() -> None:
    """Equal-area: a county's share of the drawing is its share of the ground (WGS84 geodesic
    areas of the same outlines), so no county's colour covers more than its land."""
    counties = basemap.counties_of("29")
    picture = fit([o for c in counties for o in c.outlines], 640)
    geod = Geod(ellps="WGS84")
    ratios = []
    for c in counties:
        ground = drawn = 0.0
        for outline in c.outlines:
            for i, ring in enumerate(outline):
                sign = 1 if i == 0 else -1
                lons, lats = zip(*ring, strict=True)
                ground += sign * abs(geod.polygon_area_perimeter(lons, lats)[0])
                drawn += sign * Polygon([picture.point(lon, lat) for lon, lat in ring]).area
        ratios.append(drawn / ground)
    assert max(ratios) / min(ratios) < 1.01


def test_the_picture_holds_missouri_north_up_inside_its_box() -> None:
    counties = basemap.counties_of("29")
    picture = fit([o for c in counties for o in c.outlines], 640, pad=4)
    points = [picture.point(lon, lat) for c in counties for o in c.outlines for r in o for lon, lat in r]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    assert min(xs) == pytest.approx(4) and max(xs) == pytest.approx(636)
    assert min(ys) >= 3.999 and max(ys) <= picture.height - 3.999
    assert max(ys) == pytest.approx(picture.height - 4)
    # Missouri is wider than tall, and north is up: Worth County (on Iowa) above the Bootheel.
    assert 0.8 * 640 < picture.height < 640
    worth = next(c for c in counties if c.name == "Worth")
    pemiscot = next(c for c in counties if c.name == "Pemiscot")
    assert picture.point(*worth.outlines[0][0][0])[1] < picture.point(*pemiscot.outlines[0][0][0])[1]


def test_a_path_closes_every_ring_and_draws_holes_as_their_own_subpath() -> None:
    square = (((-93.0, 38.0), (-92.0, 38.0), (-92.0, 39.0), (-93.0, 39.0), (-93.0, 38.0)),)
    holed = (square[0], ((-92.6, 38.4), (-92.4, 38.4), (-92.4, 38.6), (-92.6, 38.6), (-92.6, 38.4)))
    picture = fit([holed], 100)
    d = picture.path([holed])
    assert d.count("M") == 2 and d.count("Z") == 2 and d.endswith("Z")
