"""The local gazetteer on a real database: OpenAddresses and TIGER files in, houses or reasons out."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import shapefile
from pyproj import Geod
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from streams.adapters.gazetteer import LocalGazetteer
from streams.adapters.gazetteer_db import address_points, street_ranges
from streams.adapters.gazetteer_files import detect_format
from streams.adapters.gazetteer_import import ImportReport, import_gazetteer
from streams.domain.geocoding import (
    ADDRESS_POINT,
    INTERPOLATED,
    GeocodeFailure,
    GeocodeQuery,
    GeocodeResult,
)

GEOD = Geod(ellps="WGS84")
JC = ("Jefferson City", "MO", "65101")

OA_HEADER = ["LON", "LAT", "NUMBER", "STREET", "UNIT", "CITY", "DISTRICT", "REGION", "POSTCODE", "ID", "HASH"]
# (lon, lat, number, street, unit, city, region, postcode)
GOOD_POINTS = [
    (-92.17000, 38.57010, "1510", "E ELM ST", "", "JEFFERSON CITY", "MO", "65101"),
    (-92.16980, 38.57010, "1512", "East Elm Street", "", "Jefferson City", "MO", "65101"),
    (-92.17040, 38.57010, "1506", "E Elm St", "", "Jefferson City", "MO", "65101"),
    (-92.17000, 38.56990, "1501", "E ELM ST", "", "JEFFERSON CITY", "", "65101"),  # no REGION: MO
    (-92.17002, 38.57014, "1510", "E ELM ST", "APT 2", "JEFFERSON CITY", "MO", "65101"),
    (-92.17300, 38.57500, "200", "Main St", "", "Jefferson City", "MO", "65101"),
    (-92.07000, 38.50700, "200", "Main St", "", "Taos", "MO", "65101"),  # same ZIP, other town
    (-93.29000, 37.21000, "300", "S Boonville Ave", "", "Springfield", "MO", "65802"),
    (-92.20000, 38.55000, "400", "Dunklin St", "", "Jefferson City", "MO", "65109"),
]
BAD_POINTS = [  # written after the good rows: CSV lines 11.. (the header is line 1)
    ((-92.17100, "abc", "1520", "E ELM ST", "", "JEFFERSON CITY", "MO", "65101"), "LAT is not a number"),
    ((-92.17100, 38.57010, "", "E ELM ST", "", "JEFFERSON CITY", "MO", "65101"), "no house number"),
    (
        (-97.33000, 37.69000, "100", "N Main St", "", "Wichita", "", "67202"),
        "coordinates are outside the service area",
    ),
    (
        (-92.17100, 38.57010, "1" * 40, "E ELM ST", "", "JEFFERSON CITY", "MO", "65101"),
        "house number is too long",
    ),
    (
        (-92.17000, 38.57010, "1510", "E Elm Street", "", "Jefferson City", "MO", "65101"),
        "the same address appears earlier in the file",
    ),
]

OAK = [[-92.2000, 38.5800], [-92.1900, 38.5800]]  # runs east: left is north
PINE = [[-92.1800, 38.5900], [-92.1800, 38.6000]]  # runs north: left is west
CEDAR = [[-92.2000, 38.6100], [-92.1900, 38.6100], [-92.1900, 38.6200]]  # east, then north
ELM = [[-92.1710, 38.5700], [-92.1690, 38.5700]]
# (FULLNAME, LFROMHN, LTOHN, RFROMHN, RTOHN, ZIPL, ZIPR, TLID, line)
GOOD_RANGES = [
    ("Oak Ave", "101", "201", "100", "200", "65101", "65101", "1001", OAK),
    ("Pine Rd", "298", "200", "299", "201", "65101", "65101", "1002", PINE),  # high to low
    ("Cedar Ln", "1", "99", "2", "98", "65101", "65101", "1003", CEDAR),
    ("E Elm St", "1501", "1599", "1500", "1598", "65101", "65101", "1004", ELM),
]
BAD_RANGES = [
    (("Birch St", "", "", "", "", "65101", "65101", "1005", OAK), "no house-number range on either side"),
    (
        ("Sunflower Ave", "1", "99", "2", "98", "67202", "67202", "1006", [[-97.34, 37.69], [-97.33, 37.69]]),
        "line lies outside the service area",
    ),
]


# --- fixture files, in the formats as published ----------------------------------------------


def write_oa_csv(path: Path, points: list[tuple[Any, ...]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(OA_HEADER)
        for i, (lon, lat, number, street, unit, city, region, postcode) in enumerate(points):
            w.writerow(
                [lon, lat, number, street, unit, city, "COLE", region, postcode, f"id{i}", f"h{i:04x}"]
            )
    return path


def oa_feature(
    lon: Any, lat: Any, number: str, street: str, unit: str, city: str, region: str, postcode: str
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {
            "hash": "",
            "number": number,
            "street": street,
            "unit": unit,
            "city": city,
            "district": "COLE",
            "region": region,
            "postcode": postcode,
            "id": "",
        },
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
    }


def write_oa_geojson_lines(path: Path, points: list[tuple[Any, ...]]) -> Path:
    path.write_text("".join(json.dumps(oa_feature(*p)) + "\n" for p in points), encoding="utf-8")
    return path


def tiger_feature(
    name: str, lf: str, lt: str, rf: str, rt: str, zl: str, zr: str, tlid: str, line: list[list[float]]
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {
            "TLID": tlid,
            "FULLNAME": name,
            "LFROMHN": lf,
            "LTOHN": lt,
            "RFROMHN": rf,
            "RTOHN": rt,
            "ZIPL": zl,
            "ZIPR": zr,
        },
        "geometry": {"type": "LineString", "coordinates": line},
    }


def write_tiger_geojson(path: Path, ranges: list[tuple[Any, ...]], extra: list[dict[str, Any]] = ()) -> Path:
    collection = {
        "type": "FeatureCollection",
        "name": "tl_2024_29051_addrfeat",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4269"}},
        "features": [tiger_feature(*r) for r in ranges] + list(extra),
    }
    path.write_text(json.dumps(collection, indent=1), encoding="utf-8")  # pretty: not one per line
    return path


def write_tiger_shapefile(base: Path, ranges: list[tuple[Any, ...]]) -> Path:
    with shapefile.Writer(str(base), shapeType=shapefile.POLYLINE) as w:
        w.field("TLID", "N", 10, 0)
        w.field("FULLNAME", "C", 100)
        for name in ("LFROMHN", "LTOHN", "RFROMHN", "RTOHN"):
            w.field(name, "C", 12)
        w.field("ZIPL", "C", 5)
        w.field("ZIPR", "C", 5)
        for name, lf, lt, rf, rt, zl, zr, tlid, line in ranges:
            w.line([[tuple(p) for p in line]])
            w.record(int(tlid), name, lf, lt, rf, rt, zl, zr)
    base.with_suffix(".prj").write_text(
        'GEOGCS["GCS_North_American_1983",DATUM["D_North_American_1983",SPHEROID["GRS_1980",6378137,'
        '298.257222101]],PRIMEM["Greenwich",0],UNIT["Degree",0.017453292519943295]]'
    )
    return base.with_suffix(".shp")


def load(engine: Engine, path: Path, **kw: Any) -> ImportReport:
    return import_gazetteer(engine, path, progress=False, **kw)


@pytest.fixture
def gazetteer(engine: Engine, tmp_path: Path) -> LocalGazetteer:
    load(engine, write_oa_csv(tmp_path / "mo_statewide.csv", GOOD_POINTS))
    load(engine, write_tiger_geojson(tmp_path / "addrfeat.geojson", GOOD_RANGES))
    return LocalGazetteer(engine, state="MO")


def geocode(
    gaz: LocalGazetteer, street: str, city: str = JC[0], state: str = JC[1], zip_: str = JC[2]
) -> GeocodeResult | GeocodeFailure:
    return gaz.geocode_sync(GeocodeQuery(street, city, state, zip_))


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


def side(line: list[list[float]], lat: float, lon: float) -> str:
    """Which side of the line's first segment a point lies on, walking from its start."""
    (x1, y1), (x2, y2) = line[0], line[1]
    cross = (x2 - x1) * (lat - y1) - (y2 - y1) * (lon - x1)
    return "left" if cross > 0 else "right"


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def counts(report: ImportReport) -> tuple[int, int, int]:
    return report.inserted, report.updated, report.unchanged


# --- importing --------------------------------------------------------------------------------


def test_csv_import_keeps_good_rows_and_says_why_others_were_rejected(engine: Engine, tmp_path: Path) -> None:
    path = write_oa_csv(tmp_path / "mo.csv", GOOD_POINTS + [row for row, _ in BAD_POINTS])

    report = load(engine, path)

    assert counts(report) == (len(GOOD_POINTS), 0, 0)
    first_bad_line = len(GOOD_POINTS) + 2
    assert report.rejected == [(first_bad_line + i, reason) for i, (_, reason) in enumerate(BAD_POINTS)]
    assert report.by_reason["LAT is not a number"] == 1
    assert count(engine, address_points) == len(GOOD_POINTS)


def test_rows_outside_the_configured_bounds_are_rejected(engine: Engine, tmp_path: Path) -> None:
    path = write_oa_csv(tmp_path / "mo.csv", GOOD_POINTS)
    around_jefferson_city = (-92.5, 38.3, -91.9, 38.8)

    report = load(engine, path, bounds=around_jefferson_city)

    assert report.rejected == [(9, "coordinates are outside the service area")]  # Springfield
    assert report.inserted == len(GOOD_POINTS) - 1


def test_reimport_changes_nothing_and_a_moved_point_is_updated_in_place(
    engine: Engine, tmp_path: Path
) -> None:
    rows = GOOD_POINTS + [row for row, _ in BAD_POINTS]
    first = load(engine, write_oa_csv(tmp_path / "mo.csv", rows))

    again = load(engine, write_oa_csv(tmp_path / "mo.csv", rows))

    assert counts(again) == (0, 0, len(GOOD_POINTS))
    assert again.rejected == first.rejected
    assert count(engine, address_points) == len(GOOD_POINTS)

    moved = [(-92.16990, 38.57030, *GOOD_POINTS[0][2:])] + GOOD_POINTS[1:]
    report = load(engine, write_oa_csv(tmp_path / "mo-2025.csv", moved))

    assert counts(report) == (0, 1, len(GOOD_POINTS) - 1)
    assert count(engine, address_points) == len(GOOD_POINTS)
    hit = geocode(LocalGazetteer(engine), "1510 E Elm St")
    assert isinstance(hit, GeocodeResult)
    assert (hit.lat, hit.lon) == (38.57030, -92.16990)


def test_an_address_listed_twice_keeps_its_first_listing_even_batches_apart(
    engine: Engine, tmp_path: Path
) -> None:
    twice = GOOD_POINTS + [(-92.16000, 38.56000, *GOOD_POINTS[0][2:])]
    path = write_oa_csv(tmp_path / "mo.csv", twice)

    first = load(engine, path, batch_rows=3)
    again = load(engine, path, batch_rows=3)

    duplicate = (len(twice) + 1, "the same address appears earlier in the file")
    assert (counts(first), first.rejected) == ((len(GOOD_POINTS), 0, 0), [duplicate])
    assert (counts(again), again.rejected) == ((0, 0, len(GOOD_POINTS)), [duplicate])
    hit = geocode(LocalGazetteer(engine), "1510 E Elm St")
    assert isinstance(hit, GeocodeResult) and (hit.lat, hit.lon) == (38.57010, -92.17000)


def test_geojson_lines_and_csv_hold_the_same_addresses(engine: Engine, tmp_path: Path) -> None:
    geojson = write_oa_geojson_lines(tmp_path / "mo-addresses-city.geojson", GOOD_POINTS)
    assert detect_format(geojson) == "oa-geojson"

    report = load(engine, geojson)
    assert counts(report) == (len(GOOD_POINTS), 0, 0)
    hit = geocode(LocalGazetteer(engine), "1512 E Elm St")
    assert isinstance(hit, GeocodeResult) and (hit.lat, hit.lon) == (38.57010, -92.16980)

    # The same addresses from the CSV download: nothing new, nothing moved.
    again = load(engine, write_oa_csv(tmp_path / "mo.csv", GOOD_POINTS))
    assert counts(again) == (0, 0, len(GOOD_POINTS))


def test_an_oa_feature_collection_is_read_too(engine: Engine, tmp_path: Path) -> None:
    bad = oa_feature(-92.171, 38.5701, "1530", "E ELM ST", "", "JEFFERSON CITY", "MO", "65101")
    bad["geometry"] = {"type": "LineString", "coordinates": [[-92.171, 38.5701], [-92.17, 38.57]]}
    collection = {"type": "FeatureCollection", "features": [oa_feature(*p) for p in GOOD_POINTS] + [bad]}
    path = tmp_path / "points.json"
    path.write_text(json.dumps(collection), encoding="utf-8")

    report = load(engine, path)

    assert report.fmt == "oa-geojson"
    assert report.inserted == len(GOOD_POINTS)
    assert report.rejected == [(len(GOOD_POINTS) + 1, "geometry is not a point")]


def test_tiger_ranges_from_geojson_and_shapefile_are_the_same_rows(engine: Engine, tmp_path: Path) -> None:
    shp = write_tiger_shapefile(tmp_path / "tl_2024_29051_addrfeat", GOOD_RANGES + [r for r, _ in BAD_RANGES])
    assert detect_format(shp) == "tiger"

    from_shp = load(engine, shp)

    assert counts(from_shp) == (len(GOOD_RANGES), 0, 0)
    assert from_shp.rejected == [
        (len(GOOD_RANGES) + 1 + i, reason) for i, (_, reason) in enumerate(BAD_RANGES)
    ]
    hit = geocode(LocalGazetteer(engine), "150 Oak Ave")
    assert isinstance(hit, GeocodeResult) and hit.precision == INTERPOLATED

    point = {
        "type": "Feature",
        "properties": {"FULLNAME": "Ash St", "LFROMHN": "1", "LTOHN": "9", "ZIPL": "65101"},
        "geometry": {"type": "Point", "coordinates": [-92.17, 38.57]},
    }
    geojson = write_tiger_geojson(
        tmp_path / "addrfeat.geojson", GOOD_RANGES + [r for r, _ in BAD_RANGES], [point]
    )
    assert detect_format(geojson) == "tiger"
    from_geojson = load(engine, geojson)

    assert counts(from_geojson) == (0, 0, len(GOOD_RANGES))
    assert from_geojson.by_reason["geometry is not a line"] == 1
    assert count(engine, street_ranges) == len(GOOD_RANGES)


def test_a_redrawn_street_segment_is_updated_not_duplicated(engine: Engine, tmp_path: Path) -> None:
    load(engine, write_tiger_geojson(tmp_path / "a.geojson", GOOD_RANGES))
    shifted = [
        r if r[0] != "Oak Ave" else (*r[:8], [[-92.2000, 38.5810], [-92.1900, 38.5810]]) for r in GOOD_RANGES
    ]

    report = load(engine, write_tiger_geojson(tmp_path / "b.geojson", shifted))

    assert counts(report) == (0, 1, len(GOOD_RANGES) - 1)
    assert count(engine, street_ranges) == len(GOOD_RANGES)
    hit = geocode(LocalGazetteer(engine), "151 Oak Ave")
    assert isinstance(hit, GeocodeResult) and hit.lat > 38.5810


# --- finding houses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "street, city, zip_",
    [
        ("1510 East Elm Street", "Jefferson City", "65101"),
        ("1510 E. Elm St.", "JEFFERSON CITY", "65101-2213"),
        ("1510 e elm st", "jefferson city", "65101"),
        ("1510 East Elm Street", "", "65101"),
    ],
)
def test_spellings_of_one_address_find_its_point(
    gazetteer: LocalGazetteer, street: str, city: str, zip_: str
) -> None:
    hit = geocode(gazetteer, street, city, "MO", zip_)

    assert isinstance(hit, GeocodeResult)
    assert (hit.lat, hit.lon) == (38.57010, -92.17000)
    assert hit.precision == ADDRESS_POINT and hit.source == "gazetteer"
    assert hit.supports_proximity
    assert hit.matched == "1510 E ELM ST, JEFFERSON CITY, MO 65101"


def test_the_city_alone_is_enough_when_it_settles_the_place(gazetteer: LocalGazetteer) -> None:
    hit = geocode(gazetteer, "1506 East Elm St", "Jefferson City", "Missouri", "")

    assert isinstance(hit, GeocodeResult) and (hit.lat, hit.lon) == (38.57010, -92.17040)


def test_an_apartment_finds_its_own_point_and_the_building_without_one(gazetteer: LocalGazetteer) -> None:
    apt = geocode(gazetteer, "1510 E Elm St Apt 2")
    building = geocode(gazetteer, "1510 E Elm St")

    assert isinstance(apt, GeocodeResult) and (apt.lat, apt.lon) == (38.57014, -92.17002)
    assert isinstance(building, GeocodeResult) and (building.lat, building.lon) == (38.57010, -92.17000)


async def test_the_async_geocoder_answers_the_same(gazetteer: LocalGazetteer) -> None:
    hit = await gazetteer.geocode(GeocodeQuery("1512 E Elm St", *JC))

    assert isinstance(hit, GeocodeResult) and hit.precision == ADDRESS_POINT


def test_a_number_halfway_along_a_range_is_at_the_middle_on_its_side(gazetteer: LocalGazetteer) -> None:
    even = geocode(gazetteer, "150 Oak Ave")
    odd = geocode(gazetteer, "151 Oak Ave")

    assert isinstance(even, GeocodeResult) and isinstance(odd, GeocodeResult)
    assert even.precision == odd.precision == INTERPOLATED
    assert even.supports_proximity
    middle = (38.5800, -92.1950)
    for hit in (even, odd):
        assert 6.0 < distance_m(hit.lat, hit.lon, *middle) < 10.0  # just off the centreline
    assert side(OAK, even.lat, even.lon) == "right" and even.lat < 38.58  # evens: south side
    assert side(OAK, odd.lat, odd.lon) == "left" and odd.lat > 38.58  # odds: north side


def test_ranges_running_high_to_low_put_low_numbers_at_the_far_end(gazetteer: LocalGazetteer) -> None:
    start, mid, end = (geocode(gazetteer, f"{n} Pine Rd") for n in (298, 250, 202))
    odd = geocode(gazetteer, "251 Pine Rd")

    assert all(isinstance(h, GeocodeResult) for h in (start, mid, end, odd))
    assert start.lat < mid.lat < end.lat  # 298 at the line's first point (south), 200 at the north end
    expected_mid_lat = 38.5900 + 0.0100 * (250 - 298) / (200 - 298)
    assert distance_m(mid.lat, mid.lon, expected_mid_lat, -92.1800) < 10.0
    assert side(PINE, mid.lat, mid.lon) == "left" and mid.lon < -92.18  # evens: west
    assert side(PINE, odd.lat, odd.lon) == "right" and odd.lon > -92.18  # odds: east


def test_interpolation_measures_along_the_street_not_by_vertex(gazetteer: LocalGazetteer) -> None:
    hit = geocode(gazetteer, "50 Cedar Ln")  # (50 - 2) / (98 - 2): half the street's length

    (lon0, lat0), (lon1, lat1), (lon2, lat2) = CEDAR
    leg1 = GEOD.inv(lon0, lat0, lon1, lat1)[2]
    leg2 = GEOD.inv(lon1, lat1, lon2, lat2)[2]
    lon, lat, _ = GEOD.fwd(lon1, lat1, 0.0, (leg1 + leg2) / 2 - leg1)  # on the northbound leg
    assert isinstance(hit, GeocodeResult) and hit.precision == INTERPOLATED
    assert 6.0 < distance_m(hit.lat, hit.lon, lat, lon) < 10.0
    assert hit.lon > -92.19  # evens on the right: east of the northbound leg


def test_a_surveyed_point_wins_over_the_range_and_the_range_fills_the_gaps(gazetteer: LocalGazetteer) -> None:
    point = geocode(gazetteer, "1512 E Elm St")
    between = geocode(gazetteer, "1540 E Elm St")

    assert isinstance(point, GeocodeResult) and point.precision == ADDRESS_POINT
    assert isinstance(between, GeocodeResult) and between.precision == INTERPOLATED


# --- failing, with something to do about it ---------------------------------------------------


@pytest.mark.parametrize(
    "street, words",
    [
        ("PO Box 12", "box"),
        ("RR 2 Box 10", "box"),
        ("E Elm St", "house number"),
        ("", "empty"),
    ],
)
def test_text_that_is_not_a_street_address_is_unparseable(
    gazetteer: LocalGazetteer, street: str, words: str
) -> None:
    failure = geocode(gazetteer, street)

    assert isinstance(failure, GeocodeFailure) and failure.reason == "unparseable"
    assert words in failure.message and failure.suggestions == ()


@pytest.mark.parametrize("state", ["KS", "Kansas"])
def test_another_state_is_outside_the_service(gazetteer: LocalGazetteer, state: str) -> None:
    failure = geocode(gazetteer, "1510 E Elm St", "Overland Park", state, "66210")

    assert isinstance(failure, GeocodeFailure) and failure.reason == "outside_state"
    assert "MO addresses only" in failure.message


@pytest.mark.parametrize("city, zip_", [("Nowhere", "65999"), ("Nowhere", ""), ("", "65999"), ("", "")])
def test_a_place_the_gazetteer_does_not_know(gazetteer: LocalGazetteer, city: str, zip_: str) -> None:
    failure = geocode(gazetteer, "1510 E Elm St", city, "MO", zip_)

    assert isinstance(failure, GeocodeFailure) and failure.reason == "unknown_city"
    assert "city and ZIP code" in failure.message


def test_a_street_not_in_that_zip_suggests_similar_names(gazetteer: LocalGazetteer) -> None:
    typo = geocode(gazetteer, "1510 E Elms St")
    nothing_like_it = geocode(gazetteer, "12 Nonesuch Blvd")

    assert isinstance(typo, GeocodeFailure) and typo.reason == "unknown_street"
    assert typo.message.startswith("There is no E Elms St in Jefferson City 65101")
    assert [(s.street, s.lat, s.lon, s.precision) for s in typo.suggestions] == [
        ("1510 E ELM ST", 38.57010, -92.17000, ADDRESS_POINT)
    ]
    assert isinstance(nothing_like_it, GeocodeFailure) and nothing_like_it.reason == "unknown_street"
    assert nothing_like_it.suggestions == ()


def test_a_number_beyond_the_street_says_which_numbers_exist(gazetteer: LocalGazetteer) -> None:
    failure = geocode(gazetteer, "9999 E Elm St")

    assert isinstance(failure, GeocodeFailure) and failure.reason == "number_out_of_range"
    assert failure.message == (
        "There is no 9999 E Elm St in Jefferson City 65101; the street's mapped numbers run from 1500 to 1599."
    )
    assert [s.street for s in failure.suggestions] == [
        "1599 E ELM ST",
        "1598 E ELM ST",
        "1512 E ELM ST",
        "1510 E ELM ST",
        "1506 E ELM ST",
    ]
    assert [s.precision for s in failure.suggestions[:3]] == [INTERPOLATED, INTERPOLATED, ADDRESS_POINT]


def test_suggested_addresses_can_be_mapped_where_they_were_shown(gazetteer: LocalGazetteer) -> None:
    failure = geocode(gazetteer, "300 Oak Ave")

    assert isinstance(failure, GeocodeFailure) and failure.reason == "number_out_of_range"
    assert "run from 100 to 201" in failure.message
    assert [s.street for s in failure.suggestions] == [
        "201 OAK AVE",
        "200 OAK AVE",
        "101 OAK AVE",
        "100 OAK AVE",
    ]
    for s in failure.suggestions:
        again = geocode(gazetteer, s.street, s.city, s.state, s.zip)
        assert isinstance(again, GeocodeResult)
        assert distance_m(again.lat, again.lon, s.lat, s.lon) < 0.01


def test_a_street_in_two_towns_of_one_zip_needs_the_city(gazetteer: LocalGazetteer) -> None:
    failure = geocode(gazetteer, "200 Main St", "", "MO", "65101")

    assert isinstance(failure, GeocodeFailure) and failure.reason == "ambiguous_city"
    assert "Jefferson City and Taos" in failure.message
    assert sorted((s.city, s.lat, s.lon) for s in failure.suggestions) == [
        ("JEFFERSON CITY", 38.575, -92.173),
        ("TAOS", 38.507, -92.07),
    ]
    taos = geocode(gazetteer, "200 Main St", "Taos", "MO", "65101")
    assert isinstance(taos, GeocodeResult) and (taos.lat, taos.lon) == (38.507, -92.07)


def test_a_city_and_zip_that_disagree_are_not_settled_by_guessing(gazetteer: LocalGazetteer) -> None:
    failure = geocode(gazetteer, "1510 E Elm St", "Springfield", "MO", "65101")

    assert isinstance(failure, GeocodeFailure) and failure.reason == "ambiguous_city"
    assert "Springfield and ZIP 65101 do not go together" in failure.message
    assert [(s.one_line, s.precision) for s in failure.suggestions] == [
        ("1510 E ELM ST, JEFFERSON CITY, MO 65101", ADDRESS_POINT)
    ]


def test_a_street_in_another_zip_of_the_city_is_offered_not_assumed(gazetteer: LocalGazetteer) -> None:
    failure = geocode(gazetteer, "1510 E Elm St", "Jefferson City", "MO", "65109")

    assert isinstance(failure, GeocodeFailure) and failure.reason == "ambiguous_city"
    assert failure.message == (
        "There is no E Elm St in ZIP 65109, but Jefferson City has one in ZIP 65101; check the ZIP code."
    )
    assert [(s.street, s.zip, s.lat, s.lon) for s in failure.suggestions] == [
        ("1510 E ELM ST", "65101", 38.57010, -92.17000)
    ]
