"""Why (not) told: distances and reasons against pyproj's WGS84 geodesic, measured here."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pyproj import Geod

from streams.domain.digest_schedule import next_digest_at
from streams.domain.model import Address, OffenderProfile, OffenderState, SeenEvent
from streams.domain.radii import MILE_M
from streams.domain.why import AlertFact, TrackedPlace, explain, placements
from tests.on_radius import point_on_radius

GEOD = Geod(ellps="WGS84")
HOME = (38.9467, -92.3252)  # 1 Hitt St, Columbia
ONE_MILE = 1 * MILE_M
TRACKED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HOUSE_NUMBERS = itertools.count(100)
NEXT = datetime(2026, 12, 8, 6, 0, tzinfo=ZoneInfo("America/Chicago"))


def oracle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return float(GEOD.inv(lon1, lat1, lon2, lat2)[2])


def at(azimuth: float, metres: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(HOME[1], HOME[0], azimuth, metres)
    return lat, lon


def place(radius_m: float = ONE_MILE, precision: str = "address_point", pid: int = 7) -> TrackedPlace:
    return TrackedPlace(pid, "Home", HOME[0], HOME[1], radius_m, "1mi", precision, TRACKED)


def address(
    lat: float | None, lon: float | None, kind: str = "home", precision: str | None = "address_point"
) -> Address:
    street = f"{next(HOUSE_NUMBERS)} Elm St"
    return Address(
        kind,
        street,
        "Columbia",
        "MO",
        "65201",
        "Boone",
        lat,
        lon,
        f"{street.upper()}, COLUMBIA, MO 65201",
        precision,
    )


def state(
    *addresses: Address,
    occurred: str = "2026-12-01T10:00:00Z",
    previous: OffenderState | None = None,
    baseline: bool = False,
) -> OffenderState:
    p = OffenderProfile("Nearby", "Nora", "1971-06-02", 2, "compliant", False)
    return OffenderState(
        "OFF-1", 2, False, p, addresses, (SeenEvent("e2", None),), occurred, previous, baseline
    )


def codes(answer) -> list[str]:
    return [r.code for pa in answer.places for r in pa.reasons]


def test_distances_are_the_wgs84_geodesic_and_inside_is_inclusive() -> None:
    points = [at(az, m) for az, m in ((0, 145.0), (77, 900.0), (200, 1600.0), (300, 1700.0), (45, 4800.0))]
    s = state(*(address(lat, lon) for lat, lon in points))
    got = placements([place()], s)
    for (lat, lon), p in zip(points, got, strict=True):
        want = oracle_m(HOME[0], HOME[1], lat, lon)
        assert p.distance_m == pytest.approx(want, abs=1e-6)
        assert p.inside == (want <= ONE_MILE)
        assert p.unusable is None
    assert [p.inside for p in got] == [True, True, True, False, False]


def test_a_point_exactly_on_the_radius_is_inside_and_a_centimetre_past_is_outside() -> None:
    on = point_on_radius(HOME[0], HOME[1], ONE_MILE)
    assert oracle_m(HOME[0], HOME[1], *on) == ONE_MILE
    az = GEOD.inv(HOME[1], HOME[0], on[1], on[0])[0]
    past = at(az, ONE_MILE + 0.01)
    assert oracle_m(HOME[0], HOME[1], *past) > ONE_MILE
    s = state(address(*on), address(*past))
    answer = explain([place()], s, None, [], NEXT)
    inside, outside = answer.places[0].reasons
    assert inside.code == "not_yet" and inside.distance_m == ONE_MILE
    assert outside.code == "outside"
    assert outside.beyond_m == pytest.approx(oracle_m(HOME[0], HOME[1], *past) - ONE_MILE, abs=1e-6)
    assert outside.beyond_m == pytest.approx(0.01, abs=1e-6)


@pytest.mark.parametrize(
    ("kind", "point", "precision", "place_precision", "code"),
    [
        ("home", True, "street", "address_point", "offender_approximate"),
        ("work", True, "zip_centroid", "address_point", "offender_approximate"),
        ("school", False, None, "address_point", "offender_unmapped"),
        ("temporary", True, "address_point", "address_point", "not_alerting"),
        ("home", True, "address_point", "zip_centroid", "place_approximate"),
        ("home", True, "address_point", "street", "place_approximate"),
    ],
)
def test_an_address_not_exact_enough_or_not_alerting_gets_a_reason_and_no_distance(
    kind: str, point: bool, precision: str | None, place_precision: str, code: str
) -> None:
    # Next door: it would be inside any radius if it counted.
    lat, lon = at(90, 20.0) if point else (None, None)
    s = state(address(lat, lon, kind, precision))
    [p] = placements([place(precision=place_precision)], s)
    assert (p.unusable, p.distance_m, p.inside) == (code, None, False)
    [r] = explain([place(precision=place_precision)], s, None, [], NEXT).places[0].reasons
    assert r.code == code and r.distance_m is None


def test_an_address_listed_before_the_address_was_tracked_says_so() -> None:
    near = address(*at(10, 300.0))
    other = address(*at(190, 8000.0))
    before = state(near, occurred="2026-10-15T09:00:00Z")
    # The latest event (after tracking began) changed something else; `near` was there already.
    s = state(near, other, occurred="2026-11-20T09:00:00Z", previous=before)
    [r, far] = explain([place()], s, None, [], NEXT).places[0].reasons
    assert r.code == "before_tracking"
    assert r.listed_by == datetime(2026, 10, 15, 9, 0, tzinfo=UTC) and r.when == TRACKED
    assert far.code == "outside"
    # The same address arriving with an event after tracking began is no such case.
    late = state(near, other, occurred="2026-11-20T09:00:00Z", previous=state(other))
    assert codes(explain([place()], late, None, [], NEXT)) == ["not_yet", "outside"]
    # Arriving with the first event, before tracking began.
    first = state(near, occurred="2026-10-01T00:00:00Z")
    assert codes(explain([place()], first, None, [], NEXT)) == ["before_tracking"]


def test_an_address_that_came_with_a_full_registry_load_after_tracking_says_no_alert_is_sent() -> None:
    s = state(address(*at(10, 300.0)), occurred="2026-11-20T09:00:00Z", baseline=True)
    assert codes(explain([place()], s, None, [], NEXT)) == ["registry_load"]


def test_a_waiting_alert_is_in_the_next_digest_and_a_sent_one_was_told() -> None:
    near = address(*at(10, 300.0))
    s = state(near, occurred="2026-12-07T09:00:00Z")
    pending = AlertFact("moved_in", 7, near.identity, None)
    [r] = explain([place()], s, None, [pending], NEXT).places[0].reasons
    assert (r.code, r.when) == ("next_digest", NEXT)
    sent_at = datetime(2026, 12, 2, 12, 0, 5, tzinfo=UTC)
    sent = AlertFact("moved_in", 7, near.identity, sent_at)
    [r] = explain([place()], s, None, [sent, pending], NEXT).places[0].reasons
    assert (r.code, r.when) == ("told", sent_at)
    # An alert for another tracked address, or another of the offender's addresses, is not this one.
    others = [AlertFact("moved_in", 8, near.identity, sent_at), AlertFact("moved_in", 7, ("home", "X"), None)]
    assert codes(explain([place()], s, None, others, NEXT)) == ["not_yet"]


def test_the_offender_as_tracked() -> None:
    s = state(address(*at(10, 30_000.0)), occurred="2026-10-01T00:00:00Z")
    assert [r.code for r in explain([place()], s, None, [], NEXT).watch] == ["not_tracking"]
    since = datetime(2026, 11, 5, tzinfo=UTC)
    watch = explain([place()], s, since, [], NEXT).watch
    assert [(r.code, r.when) for r in watch] == [("tracking", since), ("watch_before", since)]
    told = datetime(2026, 12, 1, 12, tzinfo=UTC)
    facts = [AlertFact("watch_changed", sent_at=told), AlertFact("watch_changed")]
    watch = explain([place()], replace(s, occurred_at="2026-11-30T00:00:00Z"), since, facts, NEXT).watch
    assert [(r.code, r.when) for r in watch] == [
        ("tracking", since),
        ("watch_told", told),
        ("watch_next_digest", NEXT),
    ]


def test_a_record_without_addresses_and_a_subscriber_without_places() -> None:
    assert codes(explain([place()], state(), None, [], NEXT)) == ["no_address"]
    assert explain([], state(address(*at(0, 10.0))), None, [], NEXT).places == ()


CHICAGO = ZoneInfo("America/Chicago")


@pytest.mark.parametrize(
    ("now_local", "want_local"),
    [
        (datetime(2026, 12, 7, 5, 59), datetime(2026, 12, 7, 6, 0)),  # before today's run
        (datetime(2026, 12, 7, 6, 0), datetime(2026, 12, 8, 6, 0)),  # today's run has started
        (datetime(2026, 12, 7, 20, 0), datetime(2026, 12, 8, 6, 0)),  # tomorrow's digest
        (datetime(2026, 12, 31, 23, 0), datetime(2027, 1, 1, 6, 0)),
        (datetime(2026, 3, 7, 22, 0), datetime(2026, 3, 8, 6, 0)),  # across the spring change
    ],
)
def test_the_next_digest_goes_out_at_the_digest_time_in_local_time(
    now_local: datetime, want_local: datetime
) -> None:
    now = now_local.replace(tzinfo=CHICAGO).astimezone(UTC)
    got = next_digest_at(now, CHICAGO, (6, 0))
    assert got.astimezone(CHICAGO).replace(tzinfo=None) == want_local
    assert timedelta(0) < got - now <= timedelta(days=1)
