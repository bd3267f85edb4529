"""One change's alerts as one batch: the same alerts as one message each, in far fewer bytes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from pyproj import Geod

from streams.domain.addresses import make_address
from streams.domain.alert_batch import AlertBatch, InvalidAlertBatch, alert_rows, batch_of, stored_alerts
from streams.domain.circle_index import CircleIndex
from streams.domain.matching import (
    apply_event,
    proximity_alert_batch,
    proximity_alerts,
    watch_alert_batch,
    watch_alerts,
)
from streams.domain.model import Alert, Circle, alert_id_for
from tests.reference_model import Place, Places, radius_metres
from tests.unit.test_matching import FAR, HOME, event, near, state_after

GEOD = Geod(ellps="WGS84")
SCHEMA = Draft202012Validator(
    json.loads((Path(__file__).resolve().parents[2] / "schemas" / "alert-batch.schema.json").read_text())
)


def crowded() -> CircleIndex:
    """Forty circles of 1 mile around points 0-1,500 m from HOME (held), five in Kansas City."""
    idx = CircleIndex()
    for i in range(40):
        lat, lon = near(i * 37.5, azimuth=i * 9.0)
        idx.upsert(
            Circle(100 + i, 1 + i % 13, f"Place {i}", f"{i} Main St, St. Louis", lat, lon, 1609.344, "1mi")
        )
    for i in range(5):
        idx.upsert(Circle(900 + i, 50 + i, "KC", "1 Grand Blvd, Kansas City", *FAR, 1609.344, "1mi"))
    return idx


def moved_in():
    home = make_address(
        {
            "type": "home",
            "street": "100 N Tucker Blvd",
            "city": "St. Louis",
            "state": "MO",
            "zip": "63101",
            "lat": HOME[0],
            "lon": HOME[1],
        }
    )
    return apply_event(None, event(home)).address_changes[0]


def test_a_change_inside_forty_circles_is_one_batch_of_forty_alerts() -> None:
    change = moved_in()
    batch = proximity_alert_batch(change, crowded())
    assert batch is not None and len(batch) == 40
    # What is the same for all is said once; what differs is a column.
    assert batch.common["kind"] == "moved_in" and batch.common["event_id"] == change.event_id
    assert batch.common["address"] == change.address.to_dict()
    assert set(batch.columns) == {
        "alert_id",
        "subscriber_id",
        "tracked_address_id",
        "tracked_label",
        "tracked_one_line",
        "distance_m",
        "band",
    }
    for alert in batch.alerts():
        i = alert.tracked_address_id - 100
        lat, lon = near(i * 37.5, azimuth=i * 9.0)
        _, _, metres = GEOD.inv(lon, lat, HOME[1], HOME[0])
        assert alert.subscriber_id == 1 + i % 13 and alert.tracked_label == f"Place {i}"
        assert alert.tracked_one_line == f"{i} Main St, St. Louis"
        assert alert.distance_m == pytest.approx(metres, abs=0.01)
        # The id a one-alert message carried: a batch read after an upgrade stores nothing twice.
        assert alert.alert_id == alert_id_for(
            change.event_id, alert.tracked_address_id, change.address.identity, "in"
        )
    # One alert per circle the reference model says holds the new home, in (subscriber,
    # circle) order, each naming the smallest offered distance the home lies within.
    idx = crowded()
    places = Places(
        Place(c.circle_id, c.subscriber_id, c.label, c.lat, c.lon, c.radius_m) for c in idx.circles()
    )
    held = sorted(places.holding_at(*HOME), key=lambda h: (h[0].subscriber_id, h[0].circle_id))
    alerts = proximity_alerts(change, idx)
    assert len(held) == 40
    assert [(a.subscriber_id, a.tracked_address_id) for a in alerts] == [
        (p.subscriber_id, p.circle_id) for p, _ in held
    ]
    bands = [
        ("500ft", "500 ft"),
        ("1000ft", "1000 ft"),
        ("0.25mi", "1/4 mi"),
        ("0.5mi", "1/2 mi"),
        ("1mi", "1 mi"),
    ]
    for a, (p, metres) in zip(alerts, held):
        assert a.kind == "moved_in" and a.tracked_label == p.label
        assert a.distance_m == pytest.approx(metres, abs=1e-6)
        assert a.band == "within " + next(label for code, label in bands if metres <= radius_metres(code))


def test_nothing_inside_no_circle_is_no_batch() -> None:
    far = make_address(
        {
            "type": "home",
            "street": "1 Far Rd",
            "city": "Joplin",
            "state": "MO",
            "zip": "64801",
            "lat": 37.08,
            "lon": -94.51,
        }
    )
    change = apply_event(None, event(far)).address_changes[0]
    assert proximity_alert_batch(change, crowded()) is None


@pytest.mark.parametrize(("partitions", "max_rows"), [(1, 1000), (4, 1000), (12, 1000), (4, 3), (1, 7)])
def test_split_by_partition_every_alert_goes_once_to_its_subscribers_partition(partitions, max_rows) -> None:
    batch = proximity_alert_batch(moved_in(), crowded())
    assert batch is not None
    parts = batch.by_partition(partitions, max_rows=max_rows)
    seen: Counter = Counter()
    for p, part in parts:
        assert 0 < len(part) <= max_rows
        assert {sid % partitions for sid in part.subscriber_ids} == {p}
        assert part.common == batch.common
        seen.update(a.alert_id for a in part.alerts())
    assert seen == Counter(a.alert_id for a in batch.alerts())  # none lost, none twice
    whole = {a.alert_id: a for a in batch.alerts()}
    assert all(whole[a.alert_id] == a for _, part in parts for a in part.alerts())


def test_a_batch_crosses_the_wire_as_its_schema_says_and_reads_back_the_same() -> None:
    batch = proximity_alert_batch(moved_in(), crowded())
    assert batch is not None
    wire = json.dumps(batch.to_dict())
    SCHEMA.validate(json.loads(wire))
    again = AlertBatch.from_dict(json.loads(wire))
    assert again.alerts() == batch.alerts()
    assert list(alert_rows(json.loads(wire))) == [a.to_dict() for a in batch.alerts()]
    # Far smaller than forty one-alert messages: the offender and address are written once.
    singles = sum(len(json.dumps(a.to_dict())) for a in batch.alerts())
    assert len(wire) < singles / 3


def stored_as_expected(message) -> list[tuple]:
    """The oracle: each alert's filter columns, and its fields read back from its JSON text."""
    return [
        (a.alert_id, a.subscriber_id, a.offender_id, a.kind, a.to_dict())
        for a in map(Alert.from_dict, alert_rows(message))
    ]


def read_back(stored) -> list[tuple]:
    return [(a, s, o, k, json.loads(text)) for a, s, o, k, text in stored]


def test_the_stored_form_of_a_batch_is_each_alert_as_its_own_json_says() -> None:
    batch = proximity_alert_batch(moved_in(), crowded())
    assert batch is not None
    # What could break a text spliced together: a "%", quotes, backslashes, other scripts, None.
    common = batch.common | {
        "offender": batch.common["offender"] | {"main_offense": 'Statutory "rape" 50% \\ Ñandú 漢字'}
    }
    columns = batch.columns | {
        "tracked_label": ["%s %d" if i % 2 else None for i in range(len(batch))],
        "distance_m": [d + 0.1 for d in batch.columns["distance_m"]],
    }
    # A column of one type but for one value (a whole float, an int id sent as text).
    mixed = columns | {
        "distance_m": [1e22, *columns["distance_m"][1:-1], 3],
        "tracked_address_id": ["7", *columns["tracked_address_id"][1:]],
    }
    for b in (batch, AlertBatch(common, columns), AlertBatch(common, mixed)):
        message = json.loads(json.dumps(b.to_dict()))
        got = read_back(stored_alerts(message))
        assert got == stored_as_expected(message)
        assert len(got) == 40


def moved_home():
    """An offender moving from Kansas City to St. Louis: the new home, and the watch change."""
    old_home = make_address(
        {
            "type": "home",
            "street": "1 Far Rd",
            "city": "Kansas City",
            "state": "MO",
            "zip": "64106",
            "lat": FAR[0],
            "lon": FAR[1],
        }
    )
    new_home = make_address(
        {
            "type": "home",
            "street": "100 N Tucker Blvd",
            "city": "St. Louis",
            "state": "MO",
            "zip": "63101",
            "lat": HOME[0],
            "lon": HOME[1],
        }
    )
    return new_home, apply_event(state_after(event(old_home)), event(new_home)).watch_change


def test_the_stored_form_of_watch_alerts_and_of_a_one_alert_message() -> None:
    _, change = moved_home()
    watches = json.loads(json.dumps(watch_alert_batch(change, [7, 3, 12]).to_dict()))
    assert read_back(stored_alerts(watches)) == stored_as_expected(watches)
    [alert] = proximity_alerts(moved_in(), crowded())[:1]
    single = json.loads(json.dumps(alert.to_dict()))
    assert read_back(stored_alerts(single)) == [
        (alert.alert_id, alert.subscriber_id, alert.offender_id, alert.kind, alert.to_dict())
    ]


def test_a_one_alert_message_from_before_batches_is_still_read() -> None:
    [alert] = proximity_alerts(moved_in(), crowded())[:1]
    assert list(alert_rows(json.loads(json.dumps(alert.to_dict())))) == [alert.to_dict()]
    legacy = {k: v for k, v in alert.to_dict().items() if k not in ("revision", "band", "old_addresses")}
    [row] = alert_rows(legacy)
    assert Alert(**row) == Alert(**legacy)  # absent fields take their defaults


def test_watch_alerts_travel_as_one_batch() -> None:
    new_home, change = moved_home()
    batch = watch_alert_batch(change, [7, 3, 7, 12])
    assert batch is not None
    assert batch.alerts() == watch_alerts(change, [7, 3, 7, 12])
    assert batch.subscriber_ids == [7, 3, 12]
    assert batch.common["new_addresses"] == [new_home.to_dict()]  # once, not once per watcher
    assert set(batch.columns) == {"alert_id", "subscriber_id"}
    assert watch_alert_batch(change, []) is None
    assert batch_of([]) is None


GOOD = {
    "schema": "alert-batch/1",
    "common": {
        "offender_id": "MO-1",
        "kind": "moved_in",
        "event_id": "e1",
        "occurred_at": "2026-12-04T10:00:00Z",
        "offender": {"offender_id": "MO-1"},
    },
    "columns": {"alert_id": ["a" * 32, "b" * 32], "subscriber_id": [1, 2]},
}


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ([1, 2], "neither an alert nor an alert batch"),
        ("text", "neither an alert nor an alert batch"),
        ({"alert_id": "x"}, "neither an alert nor an alert batch"),
        (GOOD | {"schema": "alert-batch/9"}, "not an alert-batch/1 message"),
        (GOOD | {"columns": [1]}, "a common object and a columns object"),
        (GOOD | {"columns": {"alert_id": "ab", "subscriber_id": [1]}}, "every column is a list"),
        (
            GOOD | {"columns": {"alert_id": ["a" * 32], "subscriber_id": [1, 2]}},
            "columns of different lengths [1, 2]",
        ),
        (GOOD | {"columns": {"alert_id": ["a" * 32]}}, "needs alert_id and subscriber_id columns"),
        (GOOD | {"common": GOOD["common"] | {"email": "x@y"}}, "unknown alert fields ['email']"),
        (
            GOOD | {"common": GOOD["common"] | {"subscriber_id": 3}},
            "both common and per alert: ['subscriber_id']",
        ),
        (
            GOOD | {"common": {k: v for k, v in GOOD["common"].items() if k != "kind"}},
            "missing alert fields ['kind']",
        ),
    ],
)
def test_a_malformed_alerts_message_is_refused_with_a_reason(message, says) -> None:
    with pytest.raises(InvalidAlertBatch) as err:
        list(alert_rows(message))
    assert says in str(err.value)


def test_the_well_formed_example_above_is_read() -> None:
    assert [r["alert_id"] for r in alert_rows(GOOD)] == ["a" * 32, "b" * 32]
    SCHEMA.validate(GOOD)


def test_any_alerts_come_back_from_their_batch_as_they_were() -> None:
    """One alert alone, or alerts differing in one field: each comes back whole, ids and
    subscribers always per alert, and the message is what the schema allows."""
    a = Alert(
        alert_id="a" * 32,
        subscriber_id=4,
        offender_id="MO-1",
        kind="moved_in",
        event_id="e1",
        occurred_at="2026-12-04T10:00:00Z",
        offender={"offender_id": "MO-1", "name": "Ray Abbott"},
        tracked_address_id=9,
        tracked_label="Home",
        tracked_one_line="1 Main St",
        distance_m=120.0,
        band="within 500 ft",
    )
    b = Alert(
        **{
            **a.to_dict(),
            "alert_id": "b" * 32,
            "subscriber_id": 5,
            "distance_m": 250.0,
            "band": "within 1000 ft",
        }
    )
    for alerts in ([a], [a, b]):
        batch = batch_of(alerts)
        assert batch is not None and batch.alerts() == alerts
        assert {"alert_id", "subscriber_id"} <= set(batch.columns)
        SCHEMA.validate(json.loads(json.dumps(batch.to_dict())))
    assert batch_of([a, b]).common.get("distance_m") is None  # differs: a column, not common
