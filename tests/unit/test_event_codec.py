"""registry-event/1 at the edge: what is applied, what is dead-lettered and what the operator reads."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from streams.adapters.dead_letters import REASONS, InvalidEvent, dead_letter
from streams.adapters.event_codec import decode_registry_event, encode_registry_event
from streams.adapters.schema_checks import SCHEMA_DIR, format_checker
from streams.domain.model import Alias, Offense, digest_online_identifier

IDENTIFIERS = ["R.Doe1980@Example.com", "rdoe_stl"]


def full_event() -> dict[str, Any]:
    """A realistic upsert with every optional field filled."""
    return {
        "schema": "registry-event/1",
        "event_id": "mshp-2026-000123",
        "offender_id": "MO-0042",
        "revision": 7,
        "occurred_at": "2026-01-05T09:00:00-06:00",
        "kind": "upsert",
        "offender": {
            "last_name": "Doe",
            "first_name": "Richard",
            "middle_name": "Allen",
            "suffix": "Jr.",
            "aliases": [{"last_name": "Dough", "first_name": "Rick"}],
            "date_of_birth": "1980-04-02",
            "sex": "M",
            "race": "W",
            "height_in": 70,
            "weight_lb": 185,
            "tier": 3,
            "compliance": "noncompliant",
            "juvenile": False,
            "offenses": [
                {"code": "566.030", "description": "Rape in the first degree", "convicted_on": "2004-06-11"},
                {"description": "Failure to register"},
            ],
            "photo_url": "https://www.mshp.dps.missouri.gov/photos/MO-0042.jpg",
            "online_identifiers": list(IDENTIFIERS),
        },
        "addresses": [
            {
                "type": "home",
                "street": "1510 East Elm Street",
                "city": "Jefferson City",
                "state": "mo",
                "zip": "65101-1234",
                "county": "Cole",
                "lat": 38.5713,
                "lon": -92.1636,
            },
            {
                "type": "work",
                "street": "300 E High St",
                "city": "Jefferson City",
                "state": "MO",
                "zip": "65101",
            },
        ],
    }


def remove_event() -> dict[str, Any]:
    return {
        "schema": "registry-event/1",
        "event_id": "mshp-2026-000124",
        "offender_id": "MO-0042",
        "revision": 8,
        "occurred_at": "2026-01-06T15:00:00Z",
        "kind": "remove",
    }


def to_bytes(doc: Any) -> bytes:
    return json.dumps(doc).encode("utf-8")


def changed(mutate: Callable[[dict[str, Any]], Any]) -> bytes:
    doc = full_event()
    mutate(doc)
    return to_bytes(doc)


def rejected(raw: bytes, key: bytes | str | None = None) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        decode_registry_event(raw, key)
    return info.value


# --- a good event lands in the domain object --------------------------------------------------


def test_full_event_lands_in_the_domain_object() -> None:
    ev = decode_registry_event(to_bytes(full_event()), b"MO-0042")

    assert (ev.event_id, ev.offender_id, ev.revision, ev.kind) == ("mshp-2026-000123", "MO-0042", 7, "upsert")
    assert ev.occurred_at == "2026-01-05T09:00:00-06:00"
    p = ev.offender
    assert p is not None
    assert p.display_name == "Richard Allen Doe Jr."
    assert (p.date_of_birth, p.sex, p.race, p.height_in, p.weight_lb) == ("1980-04-02", "M", "W", 70, 185)
    assert (p.tier, p.compliance, p.juvenile) == (3, "noncompliant", False)
    assert p.aliases == (Alias(last_name="Dough", first_name="Rick"),)
    assert p.offenses == (
        Offense(description="Rape in the first degree", code="566.030", convicted_on="2004-06-11"),
        Offense(description="Failure to register"),
    )
    assert p.main_offense == "Rape in the first degree"
    assert p.photo_url == "https://www.mshp.dps.missouri.gov/photos/MO-0042.jpg"

    home, work = ev.addresses
    assert (home.type, home.state, home.zip, home.county, home.lat, home.lon) == (
        "home",
        "MO",
        "65101-1234",
        "Cole",
        38.5713,
        -92.1636,
    )
    assert home.normalized.startswith("1510 E ELM ST, JEFFERSON CITY, MO")
    assert work.type == "work" and not work.has_point and work.normalized


def test_online_identifiers_travel_only_as_digests() -> None:
    ev = decode_registry_event(to_bytes(full_event()))

    assert ev.offender is not None
    assert ev.offender.online_identifier_digests == tuple(digest_online_identifier(i) for i in IDENTIFIERS)
    # exact-match search is case-insensitive
    assert digest_online_identifier("r.doe1980@example.com") in ev.offender.online_identifier_digests
    for identifier in IDENTIFIERS:
        assert identifier.lower() not in repr(ev).lower()


def test_the_same_identifier_twice_is_one_digest() -> None:
    raw = changed(lambda d: d["offender"].update(online_identifiers=["rdoe_stl", "RDOE_STL"]))
    ev = decode_registry_event(raw)
    assert ev.offender is not None
    assert ev.offender.online_identifier_digests == (digest_online_identifier("rdoe_stl"),)


@pytest.mark.parametrize("key", [None, b"MO-0042", "MO-0042"])
def test_a_key_equal_to_the_offender_id_or_no_key_is_accepted(key: bytes | str | None) -> None:
    assert decode_registry_event(to_bytes(full_event()), key).offender_id == "MO-0042"


def test_baseline_defaults_to_false_and_can_be_set() -> None:
    assert decode_registry_event(to_bytes(full_event())).baseline is False
    assert decode_registry_event(changed(lambda d: d.update(baseline=True))).baseline is True


def test_remove_needs_no_offender_or_addresses() -> None:
    ev = decode_registry_event(to_bytes(remove_event()), b"MO-0042")
    assert (ev.kind, ev.offender, ev.addresses, ev.revision) == ("remove", None, (), 8)


def test_remove_ignores_an_offender_and_addresses_sent_along() -> None:
    doc = remove_event() | {"offender": full_event()["offender"], "addresses": full_event()["addresses"]}
    ev = decode_registry_event(to_bytes(doc))
    assert (ev.kind, ev.offender, ev.addresses) == ("remove", None, ())


def test_empty_address_set_is_a_valid_upsert() -> None:
    # An incarcerated registrant may have no address: the set is complete, and empty.
    assert decode_registry_event(changed(lambda d: d.update(addresses=[]))).addresses == ()


def test_optional_fields_may_be_null() -> None:
    def nulls(d: dict[str, Any]) -> None:
        d["offender"].update(middle_name=None, suffix=None, sex=None, height_in=None, photo_url=None)
        d["addresses"][0]["county"] = None

    ev = decode_registry_event(changed(nulls))
    assert ev.offender is not None and ev.offender.display_name == "Richard Doe"
    assert ev.addresses[0].county is None


# --- every dead-letter reason, from a realistic bad event -----------------------------------


def test_bad_encoding_latin1_export() -> None:
    text = json.dumps(remove_event() | {"event_id": "Sainte-Geneviève-1"}, ensure_ascii=False)
    err = rejected(text.encode("latin-1"))
    assert err.reason == "bad_encoding"
    assert "UTF-8" in err.detail and "0xe8" in err.detail


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (to_bytes(full_event())[:80], "not valid JSON"),  # cut off mid-message
        (b"", "not valid JSON"),
        (changed(lambda d: d["addresses"][0].update(lat=float("nan"))), "NaN"),
        (
            to_bytes(full_event()).replace(b'"juvenile": false', b'"juvenile": true, "juvenile": false'),
            "'juvenile' appears twice",
        ),
    ],
    ids=["truncated", "empty", "nan", "repeated-key"],
)
def test_bad_json(raw: bytes, says: str) -> None:
    err = rejected(raw)
    assert err.reason == "bad_json"
    assert says in err.detail


@pytest.mark.parametrize("doc", [[full_event(), remove_event()], "registry-event/1", 42, None])
def test_not_an_object(doc: Any) -> None:
    err = rejected(to_bytes(doc))
    assert err.reason == "not_an_object"
    assert "JSON object" in err.detail


def test_unknown_schema_version_names_the_understood_ones() -> None:
    err = rejected(changed(lambda d: d.update(schema="registry-event/2")))
    assert err.reason == "unknown_schema"
    assert "registry-event/2" in err.detail and "registry-event/1" in err.detail


def test_missing_schema_is_unknown_schema() -> None:
    err = rejected(changed(lambda d: d.pop("schema")))
    assert err.reason == "unknown_schema"
    assert err.detail.startswith("schema: missing") and "registry-event/1" in err.detail


@pytest.mark.parametrize(
    ("mutate", "says"),
    [
        (lambda d: d["offender"].update(tier=4), "offender.tier: 4 is not one of 1, 2, 3"),
        (lambda d: d["offender"].pop("juvenile"), "offender.juvenile: is missing"),
        (lambda d: d.pop("addresses"), "addresses: is missing"),
        (lambda d: d.pop("offender"), "offender: is missing"),
        (lambda d: d.update(kind="update"), "kind: 'update' is not one of 'upsert', 'remove'"),
        (lambda d: d.update(revision=0), "revision: 0 is less than the minimum of 1"),
        (lambda d: d.update(revision="7"), "revision: '7' is not of type integer"),
        (lambda d: d["offender"].update(ssn="123-45-6789"), "offender: unexpected field 'ssn'"),
        (lambda d: d["addresses"][0].update(type="mailing"), "addresses[0].type: 'mailing' is not one of"),
        (lambda d: d["addresses"][1].update(zip="6510"), "addresses[1].zip: '6510' is not a ZIP code"),
        (
            lambda d: d["addresses"][1].update(state="Mo."),
            "addresses[1].state: 'Mo.' is not a 2-letter state",
        ),
        (lambda d: d["offender"].update(photo_url="javascript:alert(1)"), "offender.photo_url:"),
        (
            lambda d: d["offender"]["offenses"][1].pop("description"),
            "offender.offenses[1].description: is missing",
        ),
        (lambda d: d["addresses"][0].update(lat="38.57"), "addresses[0].lat: '38.57' is not of type number"),
    ],
    ids=[
        "tier",
        "juvenile",
        "addresses",
        "offender",
        "kind",
        "revision",
        "revision-type",
        "extra-field",
        "address-type",
        "zip",
        "state",
        "photo-url",
        "offense-description",
        "lat-type",
    ],
)
def test_schema_violation_names_the_field(mutate: Callable[[dict[str, Any]], Any], says: str) -> None:
    err = rejected(changed(mutate))
    assert err.reason == "schema_violation"
    assert says in err.detail


def test_coordinates_out_of_range() -> None:
    err = rejected(changed(lambda d: d["addresses"][0].update(lat=123.4)))
    assert err.reason == "coordinates_out_of_range"
    assert err.detail == "addresses[0].lat: 123.4 is greater than the maximum of 90"


def test_swapped_lat_lon_is_coordinates_out_of_range() -> None:
    err = rejected(changed(lambda d: d["addresses"][0].update(lat=-92.1636, lon=38.5713)))
    assert err.reason == "coordinates_out_of_range"
    assert err.detail == "addresses[0].lat: -92.1636 is less than the minimum of -90"


def test_longitude_out_of_range() -> None:
    err = rejected(changed(lambda d: d["addresses"][0].update(lon=-192.16)))
    assert err.reason == "coordinates_out_of_range"
    assert err.detail.startswith("addresses[0].lon: -192.16 is less than the minimum of -180")


def test_coordinates_out_of_range_wins_over_other_violations() -> None:
    def two_faults(d: dict[str, Any]) -> None:
        d["addresses"][0]["lat"] = 123.4
        d["offender"].pop("tier")

    err = rejected(changed(two_faults))
    assert err.reason == "coordinates_out_of_range"
    assert err.detail.startswith("addresses[0].lat:") and "1 more problem" in err.detail


@pytest.mark.parametrize(("drop", "kept"), [("lon", "lat"), ("lat", "lon")])
def test_half_coordinates(drop: str, kept: str) -> None:
    err = rejected(changed(lambda d: d["addresses"][0].pop(drop)))
    assert err.reason == "half_coordinates"
    assert err.detail.startswith(f"addresses[0]: {kept} is given without {drop}")


def test_key_mismatch() -> None:
    err = rejected(to_bytes(full_event()), b"MO-0043")
    assert err.reason == "key_mismatch"
    assert "'MO-0042'" in err.detail and "'MO-0043'" in err.detail


def test_key_that_is_not_utf8_is_a_mismatch() -> None:
    assert rejected(to_bytes(full_event()), b"\xffMO-0042").reason == "key_mismatch"


def test_every_reason_code_is_covered() -> None:
    seen = {
        rejected(b"\xff").reason,
        rejected(b"{").reason,
        rejected(b"[]").reason,
        rejected(b"{}").reason,
        rejected(changed(lambda d: d.pop("event_id"))).reason,
        rejected(changed(lambda d: d["addresses"][0].update(lon=200))).reason,
        rejected(changed(lambda d: d["addresses"][0].pop("lat"))).reason,
        rejected(to_bytes(full_event()), "other").reason,
    }
    # The one reason no single message shows: it needs the stream's memory of event ids
    # (tests/unit/test_event_identity.py, tests/e2e/test_repeated_event_id.py).
    assert seen == set(REASONS) - {"conflicting_duplicate"}


def test_a_conflicting_duplicate_names_the_stored_entry_and_nothing_private() -> None:
    from streams.adapters.event_codec import conflicting_duplicate
    from streams.domain.event_identity import content_digest
    from streams.domain.model import SeenEvent

    event = decode_registry_event(to_bytes(full_event()))
    err = conflicting_duplicate(event, content_digest(event), SeenEvent(event.event_id, "ab" * 16, 3))
    assert err.reason == "conflicting_duplicate"
    assert "revision 3" in err.detail and "ab" * 16 in err.detail
    assert content_digest(event) in err.detail and f"revision {event.revision}" in err.detail
    assert "new event_id" in err.detail and not err.detail.endswith("…")
    for secret in full_event()["offender"]["online_identifiers"]:
        assert secret not in err.detail


# --- formats are enforced ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-05",
        "2026-01-05T15:00:00",
        "2026-01-05 15:00:00Z",
        "2026-02-30T15:00:00Z",
        "2026-01-05T25:00:00Z",
        "2026-01-05T15:00:00+5:00",
        "yesterday",
        "1736089200",
    ],
)
def test_occurred_at_must_be_rfc3339(value: str) -> None:
    err = rejected(changed(lambda d: d.update(occurred_at=value)))
    assert err.reason == "schema_violation"
    assert err.detail.startswith("occurred_at:") and "RFC 3339" in err.detail


@pytest.mark.parametrize(
    "value",
    ["2026-01-05T15:00:00Z", "2026-01-05T15:00:00.250Z", "2026-01-05T09:00:00-06:00", "2016-12-31T23:59:60Z"],
)
def test_rfc3339_timestamps_are_accepted(value: str) -> None:
    assert decode_registry_event(changed(lambda d: d.update(occurred_at=value))).occurred_at == value


@pytest.mark.parametrize("value", ["04/02/1980", "1980-02-30", "1980-4-2", "1980-04-02T00:00:00Z", ""])
def test_date_of_birth_must_be_a_date(value: str) -> None:
    err = rejected(changed(lambda d: d["offender"].update(date_of_birth=value)))
    assert err.reason == "schema_violation"
    assert err.detail.startswith("offender.date_of_birth:")


def test_convicted_on_must_be_a_date() -> None:
    err = rejected(changed(lambda d: d["offender"]["offenses"][0].update(convicted_on="June 2004")))
    assert err.detail.startswith("offender.offenses[0].convicted_on: 'June 2004' is not a valid date")


# --- length and count limits --------------------------------------------------------------------


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        target = d
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("path", "limit", "name"),
    [
        (["event_id"], 200, "event_id"),
        (["offender_id"], 100, "offender_id"),
        (["offender", "last_name"], 100, "offender.last_name"),
        (["offender", "middle_name"], 100, "offender.middle_name"),
        (["offender", "aliases", 0, "first_name"], 100, "offender.aliases[0].first_name"),
        (["offender", "offenses", 0, "description"], 500, "offender.offenses[0].description"),
        (["offender", "offenses", 0, "code"], 50, "offender.offenses[0].code"),
        (["offender", "photo_url"], 2000, "offender.photo_url"),
        (["addresses", 0, "street"], 200, "addresses[0].street"),
        (["addresses", 0, "city"], 100, "addresses[0].city"),
        (["addresses", 0, "county"], 100, "addresses[0].county"),
    ],
)
def test_string_length_limits(path: list[Any], limit: int, name: str) -> None:
    def text(n: int) -> str:
        return "https://x.gov/" + "a" * (n - 14) if name.endswith("photo_url") else "A" * n

    if path[0] == "offender_id":
        at_limit = to_bytes(full_event() | {"offender_id": text(limit)})
    else:
        at_limit = changed(_set(path, text(limit)))
    decode_registry_event(at_limit)

    err = rejected(changed(_set(path, text(limit + 1))))
    assert err.reason == "schema_violation"
    assert err.detail.startswith(f"{name}: is {limit + 1} characters long, more than the maximum of {limit}")


@pytest.mark.parametrize(
    ("path", "limit", "item"),
    [
        (["addresses"], 20, full_event()["addresses"][1]),
        (["offender", "offenses"], 50, {"description": "Failure to register"}),
        (["offender", "aliases"], 50, {"last_name": "Dough", "first_name": "Rick"}),
        (["offender", "online_identifiers"], 50, "handle"),
    ],
)
def test_list_count_limits(path: list[Any], limit: int, item: Any) -> None:
    decode_registry_event(changed(_set(path, [item] * limit)))
    err = rejected(changed(_set(path, [item] * (limit + 1))))
    assert err.reason == "schema_violation"
    assert err.detail.startswith(".".join(path) + ":")
    assert f"has {limit + 1} items, more than the maximum of {limit}" in err.detail


def test_detail_stays_short_whatever_the_input() -> None:
    def junk(d: dict[str, Any]) -> None:
        d["offender"].update({f"field_{i}_" + "x" * 500: i for i in range(50)})

    err = rejected(changed(junk))
    assert err.reason == "schema_violation"
    assert err.detail.startswith("offender: unexpected fields")
    assert len(err.detail) <= 300


# --- nothing private in an error ------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "why"),
    [
        ("", "is empty"),
        ("x" * 190 + "@example.com", "202 characters long, more than the maximum of 200"),
        (12345, "not of type string"),
    ],
)
def test_identifier_errors_never_echo_the_value(identifier: Any, why: str) -> None:
    err = rejected(changed(lambda d: d["offender"]["online_identifiers"].append(identifier)))
    assert err.reason == "schema_violation"
    assert err.detail.startswith("offender.online_identifiers[2]: invalid (")
    assert why in err.detail
    for text in (err.detail, str(err)):
        assert "example" not in text.lower() and "12345" not in text
        assert all(i.lower() not in text.lower() for i in IDENTIFIERS)


def test_identifiers_given_as_text_are_not_echoed() -> None:
    err = rejected(changed(lambda d: d["offender"].update(online_identifiers="R.Doe1980@Example.com")))
    assert err.detail == "offender.online_identifiers: invalid (is not of type array (got string))"


def test_an_email_typed_into_any_field_is_not_echoed() -> None:
    err = rejected(changed(lambda d: d["addresses"][1].update(zip="rdoe@example.com")))
    assert err.detail.startswith("addresses[1].zip:")
    assert "rdoe" not in str(err) and "example.com" not in str(err)


# --- dead letters and publishing ------------------------------------------------------------------


def test_dead_letter_keeps_the_original_bytes_and_where_they_came_from() -> None:
    raw = changed(lambda d: d["addresses"][0].update(lat=123.4))
    err = rejected(raw, b"MO-0042")
    record = dead_letter(raw, err, topic="registry-events", partition=3, offset=1207, key=b"MO-0042")

    assert record["schema"] == "dead-letter/1"
    assert record["reason"] == "coordinates_out_of_range"
    assert record["detail"] == err.detail
    assert record["source"] == {"topic": "registry-events", "partition": 3, "offset": 1207, "key": "MO-0042"}
    assert base64.b64decode(record["original_b64"]) == raw
    at = datetime.fromisoformat(record["dead_lettered_at"])
    assert at.utcoffset() is not None and at.utcoffset().total_seconds() == 0
    json.dumps(record)  # goes on a JSON topic as is

    schema = json.loads((SCHEMA_DIR / "dead-letter.schema.json").read_text())
    assert list(Draft202012Validator(schema, format_checker=format_checker()).iter_errors(record)) == []


def test_dead_letter_of_undecodable_bytes_and_no_key() -> None:
    raw = b"\xff\xfe garbage"
    record = dead_letter(raw, rejected(raw), topic="registry-events", partition=0, offset=0, key=None)
    assert record["reason"] == "bad_encoding"
    assert record["source"]["key"] is None
    assert base64.b64decode(record["original_b64"]) == raw


def test_fixed_dead_letter_replays() -> None:
    raw = changed(lambda d: d["addresses"][0].update(lat=123.4))
    record = dead_letter(raw, rejected(raw), topic="registry-events", partition=0, offset=5, key="MO-0042")
    doc = json.loads(base64.b64decode(record["original_b64"]))
    doc["addresses"][0]["lat"] = 38.5713
    assert decode_registry_event(to_bytes(doc), record["source"]["key"]).addresses[0].lat == 38.5713


def test_encode_is_compact_utf8_and_decodes_back() -> None:
    doc = full_event()
    doc["addresses"][0]["city"] = "Ste. Geneviève"
    raw = encode_registry_event(doc)
    assert b", " not in raw and b": " not in raw
    assert "Geneviève".encode() in raw
    assert decode_registry_event(raw).addresses[0].city == "Ste. Geneviève"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d["addresses"][0].update(lat=float("nan")), "bad_json"),
        (lambda d: d["offender"].update(tier=7), "schema_violation"),
        (lambda d: d["addresses"][0].update(lat=91.0), "coordinates_out_of_range"),
    ],
)
def test_encode_refuses_what_consumers_would_dead_letter(
    mutate: Callable[[dict[str, Any]], Any], reason: str
) -> None:
    doc = full_event()
    mutate(doc)
    with pytest.raises(InvalidEvent) as info:
        encode_registry_event(doc)
    assert info.value.reason == reason


@pytest.mark.parametrize("name", ["registry-event", "subscriber-import", "dead-letter"])
def test_schemas_are_valid_2020_12_with_their_ids(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://sor-notify.example/schemas/{name}.schema.json"


def test_dead_letter_schema_lists_every_reason() -> None:
    schema = json.loads((SCHEMA_DIR / "dead-letter.schema.json").read_text())
    assert tuple(schema["properties"]["reason"]["enum"]) == REASONS
