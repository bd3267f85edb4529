"""The legacy subscriber file: good lines become subscribers, bad lines say which rule they break."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.adapters.schema_checks import SCHEMA_DIR
from streams.adapters.subscriber_import import (
    ImportedAddress,
    ImportedSubscriber,
    InvalidLine,
    iter_import_file,
    parse_subscriber_line,
)
from streams.domain.radii import RADIUS_CODES

EMAIL = "Jane.Parent@Example.ORG"


def address(**over: Any) -> dict[str, Any]:
    return {
        "label": "Home",
        "street": "1510 East Elm Street",
        "city": "Jefferson City",
        "state": "MO",
        "zip": "65101",
        "radius": "1mi",
        "lat": 38.5713,
        "lon": -92.1636,
    } | over


def subscriber(**over: Any) -> dict[str, Any]:
    return {"email": EMAIL, "confirmed": True, "addresses": [address()], "offenders": ["MO-0042"]} | over


def line(doc: Any) -> str:
    return json.dumps(doc)


def rejected(text: str) -> str:
    with pytest.raises(InvalidLine) as info:
        parse_subscriber_line(text)
    message = str(info.value)
    for piece in ("jane", "example.org", "10.0.0.999", "\u0663org"):
        assert piece not in message.lower()
    return message


def test_good_line_becomes_a_subscriber() -> None:
    sub = parse_subscriber_line(
        line(
            subscriber(
                addresses=[
                    address(),
                    address(
                        label="Emma's school",
                        street="300 E High St",
                        state="mo",
                        zip="65101-1234",
                        radius="500ft",
                        lat=38.5770,
                        lon=-92.1690,
                    ),
                ]
            )
        )
    )

    assert sub == ImportedSubscriber(
        email="jane.parent@example.org",
        confirmed=True,
        addresses=(
            ImportedAddress(
                "Home",
                "1510 East Elm Street",
                "Jefferson City",
                "MO",
                "65101",
                "1mi",
                38.5713,
                -92.1636,
                sub.addresses[0].normalized,
                "provided",
            ),
            ImportedAddress(
                "Emma's school",
                "300 E High St",
                "Jefferson City",
                "MO",
                "65101-1234",
                "500ft",
                38.5770,
                -92.1690,
                sub.addresses[1].normalized,
                "provided",
            ),
        ),
        offenders=("MO-0042",),
    )
    assert sub.addresses[0].normalized.startswith("1510 E ELM ST, JEFFERSON CITY, MO")


def test_an_address_without_coordinates_is_left_for_the_geocoder() -> None:
    doc = subscriber()
    del doc["addresses"][0]["lat"], doc["addresses"][0]["lon"]
    a = parse_subscriber_line(line(doc)).addresses[0]
    assert (a.lat, a.lon, a.precision) == (None, None, None)


def test_unconfirmed_subscriber_without_addresses_or_offenders() -> None:
    sub = parse_subscriber_line(line({"email": "a@example.com", "confirmed": False}))
    assert (sub.confirmed, sub.addresses, sub.offenders) == (False, (), ())


def test_email_domain_and_address_are_lower_cased_for_matching() -> None:
    assert parse_subscriber_line(line(subscriber(email="Parent@Example.org"))).email == "parent@example.org"


def test_repeated_offender_ids_count_once() -> None:
    sub = parse_subscriber_line(line(subscriber(offenders=["A", "B", "A", "C", "D", "E", "B"])))
    assert sub.offenders == ("A", "B", "C", "D", "E")


@pytest.mark.parametrize(
    "bad",
    [
        "jane.parent@@example.org",
        "jane parent@example.org",
        "jane.parent",
        "jane..parent@example.org",
        "jane.parent@example",
        "jane.parent@example.org.",
        "jane@[10.0.0.999]",
        "jane@janeparent.\u0663org",
        "jane@janeparent.xn--abc.org",
    ],
)
def test_invalid_email_is_rejected_without_echoing_it(bad: str) -> None:
    message = rejected(line(subscriber(email=bad)))
    assert message.startswith("email: not a valid address (")


@pytest.mark.parametrize(
    ("value", "says"),
    [(42, "not of type string"), ("j@" + "e" * 250 + ".org", "more than the maximum of 254")],
)
def test_email_schema_errors_do_not_echo_it(value: Any, says: str) -> None:
    message = rejected(line(subscriber(email=value)))
    assert message.startswith("email: invalid (") and says in message
    assert "eeee" not in message


@pytest.mark.parametrize(
    ("mutate", "says"),
    [
        (
            lambda d: d.update(addresses=[address()] * 6),
            "addresses: 6 given, at most 5 addresses per subscriber",
        ),
        (
            lambda d: d.update(offenders=["A", "B", "C", "D", "E", "F"]),
            "offenders: 6 distinct offender ids, at most 5 can be tracked",
        ),
        (
            lambda d: d["addresses"][0].update(radius="10mi"),
            "addresses[0].radius: '10mi' is not offered; choose one of " + ", ".join(RADIUS_CODES),
        ),
        (
            lambda d: d["addresses"][0].pop("lat"),
            "addresses[0]: give both lat and lon, or neither (the address is then geocoded)",
        ),
        (
            lambda d: d["addresses"][0].pop("lon"),
            "addresses[0]: give both lat and lon, or neither (the address is then geocoded)",
        ),
        (
            lambda d: d["addresses"][0].update(lat=138.57),
            "addresses[0].lat: 138.57 is greater than the maximum of 90",
        ),
        (
            lambda d: d["addresses"][0].update(lon=-192.16),
            "addresses[0].lon: -192.16 is less than the minimum of -180",
        ),
        (lambda d: d["addresses"][0].update(label=""), "addresses[0].label: is empty"),
        (
            lambda d: d["addresses"][0].update(label="x" * 61),
            "addresses[0].label: is 61 characters long, more than the maximum of 60",
        ),
        (
            lambda d: d["addresses"][0].update(state="Missouri"),
            "addresses[0].state: 'Missouri' is not a 2-letter state code",
        ),
        (lambda d: d["addresses"][0].update(zip="6510"), "addresses[0].zip: '6510' is not a ZIP code"),
        (
            lambda d: d["addresses"][0].update(zip="65101-12"),
            "addresses[0].zip: '65101-12' is not a ZIP code",
        ),
        (lambda d: d.pop("confirmed"), "confirmed: is missing (required)"),
        (lambda d: d.update(confirmed="yes"), "confirmed: 'yes' is not of type boolean"),
        (lambda d: d.update(phone="555-0100"), "line: unexpected field 'phone'"),
    ],
    ids=[
        "addresses",
        "offenders",
        "radius",
        "lat",
        "lon",
        "lat-range",
        "lon-range",
        "label-empty",
        "label-long",
        "state",
        "zip",
        "zip4",
        "confirmed",
        "confirmed-type",
        "extra-field",
    ],
)
def test_each_rule_has_its_message(mutate: Callable[[dict[str, Any]], Any], says: str) -> None:
    doc = subscriber()
    mutate(doc)
    assert rejected(line(doc)).startswith(says)


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (lambda d: d.update(addresses=[address()] * 5), lambda s: len(s.addresses) == 5),
        (lambda d: d.update(offenders=list("ABCDE")), lambda s: len(s.offenders) == 5),
        (lambda d: d["addresses"][0].update(label="x" * 60), lambda s: len(s.addresses[0].label) == 60),
        (lambda d: d["addresses"][0].update(zip="65101-1234"), lambda s: s.addresses[0].zip == "65101-1234"),
    ],
    ids=["5-addresses", "5-offenders", "60-char-label", "zip4"],
)
def test_limits_are_inclusive(
    mutate: Callable[[dict[str, Any]], Any], check: Callable[[ImportedSubscriber], bool]
) -> None:
    doc = subscriber()
    mutate(doc)
    assert check(parse_subscriber_line(line(doc)))


@pytest.mark.parametrize("radius", RADIUS_CODES)
def test_every_offered_radius_is_accepted(radius: str) -> None:
    assert (
        parse_subscriber_line(line(subscriber(addresses=[address(radius=radius)]))).addresses[0].radius_code
        == radius
    )


def test_schema_radius_list_is_the_offered_one() -> None:
    schema = json.loads((SCHEMA_DIR / "subscriber-import.schema.json").read_text())
    assert tuple(schema["$defs"]["address"]["properties"]["radius"]["enum"]) == RADIUS_CODES


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"email": "jane@example.org", ', "not valid JSON"),
        ('[{"email": "jane@example.org"}]', "got array"),
        ('{"email": "jane@example.org", "email": "other@example.org", "confirmed": true}', "appears twice"),
    ],
)
def test_not_a_json_object(text: str, says: str) -> None:
    assert says in rejected(text)


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "subscribers.jsonl"
    path.write_bytes(data)
    return path


def test_good_lines_among_bad_ones_are_still_parsed(tmp_path: Path) -> None:
    lines = [
        line(subscriber(email="first@example.org")).encode(),  # 1 good
        b"",  # 2 blank
        line(subscriber(email="x@example.org", addresses=[address(radius="10mi")])).encode(),  # 3 bad radius
        "Jos\u00e9".encode("latin-1") + b'@example.org"}',  # 4 not UTF-8
        b"   ",  # 5 blank
        b"{not json",  # 6 bad JSON
        line(subscriber(email="second@example.org", confirmed=False)).encode(),  # 7 good
    ]
    path = write(tmp_path, b"\xef\xbb\xbf" + b"\r\n".join(lines))  # BOM and CRLF from a Windows export

    results = list(iter_import_file(path))

    assert [n for n, _ in results] == [1, 3, 4, 6, 7]
    good = {n: s.email for n, s in results if isinstance(s, ImportedSubscriber)}
    assert good == {1: "first@example.org", 7: "second@example.org"}
    bad = {n: str(e) for n, e in results if isinstance(e, InvalidLine)}
    assert bad[3].startswith("addresses[0].radius: '10mi' is not offered")
    assert bad[4].startswith("line is not UTF-8")
    assert bad[6].startswith("not valid JSON")


def test_an_overlong_line_is_rejected_and_the_next_one_read(tmp_path: Path) -> None:
    huge = line(subscriber(addresses=[address(street="x" * 100_000)])).encode()
    path = write(tmp_path, huge + b"\n" + line(subscriber()).encode() + b"\n")
    results = list(iter_import_file(path))
    assert [n for n, _ in results] == [1, 2]
    assert isinstance(results[0][1], InvalidLine) and "longer than" in str(results[0][1])
    assert isinstance(results[1][1], ImportedSubscriber)


def test_a_line_may_choose_daily_or_weekly_digests() -> None:
    from streams.domain.digest_schedule import DAILY_SCHEDULE, Schedule

    assert parse_subscriber_line(line(subscriber())).schedule is None  # the stored choice stands
    assert parse_subscriber_line(line(subscriber(frequency="daily"))).schedule == DAILY_SCHEDULE
    weekly = parse_subscriber_line(line(subscriber(frequency="weekly", weekday="Thursday")))
    assert weekly.schedule == Schedule("weekly", 3)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"frequency": "hourly"}, "frequency: 'hourly' is not one of 'daily', 'weekly'"),
        ({"frequency": "weekly"}, 'weekday: required with "frequency": "weekly", one of Monday … Sunday'),
        ({"frequency": "weekly", "weekday": "Thu"}, "weekday: 'Thu' is not one of 'Monday', 'Tuesday',"),
        ({"frequency": "weekly", "weekday": 3}, "weekday: 3 is not one of 'Monday', 'Tuesday',"),
        ({"weekday": "Monday"}, 'weekday: only with "frequency": "weekly"'),
        ({"frequency": "daily", "weekday": "Monday"}, 'weekday: only with "frequency": "weekly"'),
    ],
    ids=["hourly", "weekly-no-day", "short-day", "day-number", "day-alone", "daily-with-day"],
)
def test_a_frequency_that_is_not_offered_is_refused_with_its_message(
    fields: dict[str, Any], says: str
) -> None:
    assert rejected(line(subscriber(**fields))).startswith(says)
