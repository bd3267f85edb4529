"""The statistics CSV, and the county names and points it is counted by: RFC 4180 rows a spreadsheet cannot run."""

from __future__ import annotations

import csv
import io

import pytest

from streams.adapters import basemap
from streams.adapters.registrant_statistics import CountyNames, missouri_counties
from streams.domain.registrant_counts import CountyCounts, tally
from streams.web.statistics_page import csv_text


def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_text() -> None:
    hostile = ['=HYPERLINK("http://x.test","a")', "+1+1", "-2", "@SUM(A1)", "\tTab", 'Plain "quoted", comma']
    counts = tally([("99001", 1, "compliant")], [(f"9900{i}", n) for i, n in enumerate(hostile, 1)])
    rows = list(csv.reader(io.StringIO(csv_text(list(counts.counties), counts.elsewhere, counts.total))))
    names = [r[1] for r in rows[1 : 1 + len(hostile)]]
    for name, original in zip(names, hostile, strict=True):
        assert not name.startswith(("=", "+", "-", "@", "\t")), name
        assert name.lstrip("'") == f"{original} County"  # the text itself kept whole
    assert names[0] == '\'=HYPERLINK("http://x.test","a") County'
    assert names[-1] == 'Plain "quoted", comma County'  # quoted by the writer, read back whole
    assert rows[1][2:] == ["1", "1", "0", "0", "1", "0", "0", "0"]


@pytest.mark.parametrize(
    ("text", "fips"),
    [
        ("St. Louis City", "29510"),
        ("City of St. Louis", "29510"),
        ("ST LOUIS CITY", "29510"),
        ("St. Louis", "29189"),
        ("Saint Louis County", "29189"),
        ("St. Louis Co.", "29189"),
        ("De Kalb", "29063"),
        ("McDonald County", "29119"),
        ("Sainte Genevieve", "29186"),
        ("St Charles", "29183"),
        ("boone", "29019"),
    ],
)
def test_the_registry_s_spellings_find_the_base_layer_s_county(text: str, fips: str) -> None:
    found = CountyNames(missouri_counties()).find(text)
    assert found is not None and found.id == fips


@pytest.mark.parametrize("text", ["", "  ", None, "Atlantis", "Kansas City", "Wyandotte"])
def test_names_that_are_no_missouri_county_find_none(text: str | None) -> None:
    assert CountyNames(missouri_counties()).find(text) is None


def test_an_unknown_tier_or_status_is_an_error_not_a_dropped_count() -> None:
    with pytest.raises(ValueError):
        tally([(None, 4, "compliant")], [])
    with pytest.raises(ValueError):
        tally([(None, 1, "unknown")], [])
    assert isinstance(tally([], [("29019", "Boone")]).counties[0], CountyCounts)


@pytest.mark.parametrize(
    ("lon", "lat", "fips"),
    [
        (-92.3341, 38.9517, "29019"),  # Columbia: Boone
        (-90.1994, 38.6270, "29510"),  # downtown St. Louis: the city
        (-90.3237, 38.6426, "29189"),  # Clayton: St. Louis County
        (-94.6859, 39.1141, None),  # Kansas City, Kansas: in Wyandotte, not a Missouri county
    ],
)
def test_a_point_is_placed_only_in_a_missouri_county(lon: float, lat: float, fips: str | None) -> None:
    found = basemap.county_at(lon, lat, state="29")
    assert (found.id if found else None) == fips
    anywhere = basemap.county_at(lon, lat)
    assert anywhere is not None and (fips is None or anywhere.id == fips)
