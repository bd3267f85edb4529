"""The offline base layer: made from the vendored Census data by the script kept beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.adapters import basemap
from streams.adapters.basemap_build import BASEMAP_DIR, build


def test_the_committed_files_are_what_the_script_makes_from_the_vendored_data(tmp_path: Path) -> None:
    written = build(out=tmp_path)
    names = sorted(p.name for p in written)
    committed = sorted(p.name for p in BASEMAP_DIR.glob("*.json"))
    assert names == committed
    for name in names:
        assert (tmp_path / name).read_bytes() == (BASEMAP_DIR / name).read_bytes(), name


def test_missouri_has_its_114_counties_and_the_city_of_st_louis() -> None:
    counties = basemap.counties_of("29")
    assert len(counties) == 115
    names = {c.name for c in counties}
    assert {"Boone", "Jackson", "St. Louis", "Cole", "Greene"} <= names
    assert all(c.id.startswith("29") and len(c.id) == 5 for c in counties)


@pytest.mark.parametrize(
    ("lon", "lat", "fips", "name"),
    [
        (-92.3341, 38.9517, "29019", "Boone"),  # Columbia
        (-94.5786, 39.0997, "29095", "Jackson"),  # Kansas City
        (-92.1735, 38.5767, "29051", "Cole"),  # Jefferson City
        (-90.1994, 38.6270, "29510", "St. Louis"),  # the city, not the county
        (-93.2923, 37.2090, "29077", "Greene"),  # Springfield
        (-94.6859, 39.1141, "20209", "Wyandotte"),  # Kansas City, Kansas: across the state line
        # Denver's outline had a hole collapsed to one point at this scale, which no geometry
        # library takes for a ring: asking about a point there failed.
        (-104.9903, 39.7392, "08031", "Denver"),
        (-105.0867, 39.9205, "08014", "Broomfield"),
    ],
)
def test_a_point_lies_in_its_county(lon: float, lat: float, fips: str, name: str) -> None:
    county = basemap.county_at(lon, lat)
    assert county is not None
    assert (county.id, county.name) == (fips, name)


def test_a_point_out_at_sea_lies_in_no_county() -> None:
    assert basemap.county_at(-70.0, 30.0) is None


def test_a_map_of_missouri_loads_its_neighbours_states_and_not_the_far_ones() -> None:
    box = (-95.8, 35.9, -89.1, 40.6)
    names = {s.name for s in basemap.states_in(box)}
    assert {"Missouri", "Kansas", "Illinois", "Arkansas", "Iowa", "Nebraska", "Oklahoma"} <= names
    assert "California" not in names and "Alaska" not in names


def test_the_index_names_every_state_file() -> None:
    index = json.loads((BASEMAP_DIR / "index.json").read_text())
    for state in index["states"]:
        assert (BASEMAP_DIR / f"counties-{state['id']}.json").exists(), state["name"]


def _inside(lon: float, lat: float, polygons: list) -> bool:
    """Even-odd ray casting over every ring: the test's own point-in-outline rule."""
    inside = False
    for polygon in polygons:
        for ring in polygon:
            for (x0, y0), (x1, y1) in zip(ring, ring[1:]):
                if (y0 > lat) != (y1 > lat) and lon < x0 + (lat - y0) * (x1 - x0) / (y1 - y0):
                    inside = not inside
    return inside


def _layer_files() -> list[Path]:
    return [BASEMAP_DIR / "states.json", *sorted(BASEMAP_DIR.glob("counties-*.json"))]


def test_every_name_is_written_inside_its_own_state_or_county() -> None:
    for path in _layer_files():
        for feature in json.loads(path.read_text())["features"]:
            lon, lat = feature["properties"]["label"]
            assert _inside(lon, lat, feature["geometry"]["coordinates"]), (path.name, feature["id"])


def test_every_ring_encloses_something() -> None:
    for path in _layer_files():
        for feature in json.loads(path.read_text())["features"]:
            for polygon in feature["geometry"]["coordinates"]:
                for ring in polygon:
                    assert len({tuple(p) for p in ring}) >= 3 and ring[0] == ring[-1], (
                        path.name,
                        feature["id"],
                    )
