"""Address normalization: re-spellings of one place share an identity, different places do not."""

from __future__ import annotations

import pytest

from streams.domain.addresses import make_address, normalize_address


@pytest.mark.parametrize(
    "street",
    ["1510 East Elm Street", "1510 E ELM ST", "1510 e. elm st.", "  1510   East  Elm   St "],
)
def test_spellings_of_one_street_normalize_alike(street):
    assert normalize_address(street, "Jefferson City", "MO", "65101") == normalize_address(
        "1510 E Elm St", "Jefferson City", "MO", "65101"
    )


def test_normalized_text_is_usps_one_line():
    assert (
        normalize_address("1510 East Elm Street", "Jefferson City", "mo", "65101-1234")
        == "1510 E ELM ST, JEFFERSON CITY, MO 65101"
    )


@pytest.mark.parametrize("zip_code", ["65101", "65101-1234", "651011234", " 65101 "])
def test_zip_is_five_digits(zip_code):
    assert normalize_address("1 Main St", "Jefferson City", "MO", zip_code).endswith(" 65101")


@pytest.mark.parametrize("city", ["St. Louis", "St Louis", "ST LOUIS", "st.  louis"])
def test_city_spellings_normalize_alike(city):
    assert normalize_address("100 N Tucker Blvd", city, "MO", "63101") == normalize_address(
        "100 North Tucker Boulevard", "ST LOUIS", "MO", "63101"
    )


def test_state_name_and_code_normalize_alike():
    assert normalize_address("1 Main St", "Rolla", "Missouri", "65401") == normalize_address(
        "1 Main St", "Rolla", "MO", "65401"
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1510 E Elm St", "1512 E Elm St"),
        ("1510 E Elm St", "1510 W Elm St"),
        ("1510 E Elm St", "1510 E Elm Ave"),
        ("100 Main St Apt 4", "100 Main St Apt 5"),
        ("100 Main St Apt 4", "100 Main St"),
    ],
)
def test_different_places_stay_different(a, b):
    place = ("Rolla", "MO", "65401")
    assert normalize_address(a, *place) != normalize_address(b, *place)


def test_unparseable_text_falls_back_to_plain_upper_case():
    # scourgify cannot parse PO boxes; the fallback still gives a stable identity.
    box = normalize_address("P.O. Box 12", "Jefferson  City", "mo", "65101-0012")
    assert box == "PO BOX 12, JEFFERSON CITY, MO 65101"
    assert normalize_address("PO Box 12", "Jefferson City", "MO", "65101") == box
    assert normalize_address("PO Box 13", "Jefferson City", "MO", "65101") != box


def test_garbage_and_missing_parts_do_not_raise():
    assert normalize_address("garbage!!", "Rolla", "mo", "65401") == "GARBAGE, ROLLA, MO 65401"
    assert normalize_address("c/o John, 1 Main St", "X", "MO", "65101").startswith("C/O JOHN")
    assert normalize_address("1 Main St", "", "MO", "").startswith("1 MAIN ST")


def test_make_address_fills_normalized_and_coordinates():
    a = make_address(
        {
            "type": "home",
            "street": "1510 East Elm Street",
            "city": "Jefferson City",
            "state": "MO",
            "zip": "65101",
            "county": "Cole",
            "lat": "38.57",
            "lon": -92.17,
        }
    )
    assert a.normalized == "1510 E ELM ST, JEFFERSON CITY, MO 65101"
    assert (a.lat, a.lon) == (38.57, -92.17)
    assert a.county == "Cole"
    assert a.street == "1510 East Elm Street"  # the registry's own text is kept for display
    assert a.has_point


def test_make_address_without_coordinates_has_no_point():
    a = make_address({"type": "work", "street": "1 Main St", "city": "Rolla", "state": "MO", "zip": "65401"})
    assert a.lat is None and a.lon is None and a.county is None
    assert not a.has_point


def test_same_place_re_spelled_has_same_identity_per_type():
    base = {"city": "Jefferson City", "state": "MO", "zip": "65101"}
    home = make_address({"type": "home", "street": "1510 East Elm Street", **base})
    home2 = make_address({"type": "home", "street": "1510 E ELM ST", **base, "lat": 1, "lon": 2})
    work = make_address({"type": "work", "street": "1510 E ELM ST", **base})
    assert home.identity == home2.identity
    assert home.identity != work.identity
