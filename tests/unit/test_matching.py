"""Registry events in, address changes and alerts out: the rules a subscriber would notice."""

from __future__ import annotations

import dataclasses

import pytest
from pyproj import Geod

from streams.domain.addresses import make_address
from streams.domain.circle_index import CircleIndex
from streams.domain.matching import apply_event, proximity_alerts, watch_alerts
from streams.domain.model import (
    Address,
    Alert,
    Circle,
    Offense,
    OffenderProfile,
    OffenderState,
    RegistryEvent,
    digest_online_identifier,
)
from streams.domain.radii import RADII

GEOD = Geod(ellps="WGS84")
HOME = (38.627, -90.199)  # the subscriber's tracked address, St. Louis
FAR = (39.0997, -94.5786)  # Kansas City


def near(metres: float, azimuth: float = 45.0) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(HOME[1], HOME[0], azimuth, metres)
    return lat, lon


def addr(street: str, point: tuple[float, float] | None, type_: str = "home") -> Address:
    d = {"type": type_, "street": street, "city": "St. Louis", "state": "MO", "zip": "63101"}
    if point is not None:
        d["lat"], d["lon"] = point
    return make_address(d)


def profile(juvenile: bool = False, **kw) -> OffenderProfile:
    return OffenderProfile(
        last_name="Doe",
        first_name="John",
        date_of_birth="1970-01-01",
        tier=2,
        compliance="compliant",
        juvenile=juvenile,
        offenses=(Offense("Statutory sodomy 2nd degree", "566.064"),),
        online_identifier_digests=(digest_online_identifier("jd@example.com"),),
        **kw,
    )


_counter = iter(range(1, 10_000))


def event(
    *addresses: Address,
    revision: int | None = None,
    event_id: str | None = None,
    kind: str = "upsert",
    baseline: bool = False,
    juvenile: bool = False,
) -> RegistryEvent:
    n = next(_counter)
    return RegistryEvent(
        event_id=event_id or f"ev-{n}",
        offender_id="MO-123",
        revision=revision if revision is not None else n,
        occurred_at="2024-06-11T10:00:00Z",
        kind=kind,  # type: ignore[arg-type]
        baseline=baseline,
        offender=None if kind == "remove" else profile(juvenile),
        addresses=addresses,
    )


def state_after(*events: RegistryEvent) -> OffenderState | None:
    state = None
    for ev in events:
        state = apply_event(state, ev).state or state
    return state


@pytest.fixture
def circles() -> CircleIndex:
    idx = CircleIndex()
    idx.upsert(Circle(11, 1, "Home", "1 Main St, St. Louis", *HOME, RADII["0.5mi"][0], "0.5mi"))
    idx.upsert(Circle(12, 2, "School", "2 Main St, St. Louis", *HOME, RADII["1mi"][0], "1mi"))
    return idx


def all_alerts(outcome, idx: CircleIndex) -> list[Alert]:
    return [a for ch in outcome.address_changes for a in proximity_alerts(ch, idx)]


def kinds(alerts: list[Alert]) -> list[tuple[int, str]]:
    return sorted((a.subscriber_id, a.kind) for a in alerts)


# --- proximity ------------------------------------------------------------------------


def test_first_sight_inside_a_circle_alerts_moved_in(circles):
    out = apply_event(None, event(addr("100 N Tucker Blvd", near(300))))
    assert out.status == "applied" and not out.purge
    alerts = all_alerts(out, circles)
    assert kinds(alerts) == [(1, "moved_in"), (2, "moved_in")]
    a = next(a for a in alerts if a.subscriber_id == 1)
    assert a.tracked_address_id == 11 and a.tracked_label == "Home"
    assert a.tracked_one_line == "1 Main St, St. Louis"
    assert a.distance_m == pytest.approx(300.0, abs=1e-6)
    assert a.band == "within 1000 ft"
    assert a.address["street"] == "100 N Tucker Blvd"
    assert a.offender["name"] == "John Doe" and a.offender["tier"] == 2
    assert a.offender["main_offense"] == "Statutory sodomy 2nd degree"


def test_moved_in_from_far_away(circles):
    old = state_after(event(addr("1 Far Rd", FAR)))
    out = apply_event(old, event(addr("100 N Tucker Blvd", near(1200))))
    assert sorted(c.direction for c in out.address_changes) == ["in", "out"]
    # 1200 m is outside the 1/2 mile circle but inside the 1 mile one.
    alerts = all_alerts(out, circles)
    assert kinds(alerts) == [(2, "moved_in")]
    assert alerts[0].band == "within 1 mi"


def test_moved_out_to_far_away(circles):
    old = state_after(event(addr("100 N Tucker Blvd", near(300))))
    out = apply_event(old, event(addr("1 Far Rd", FAR)))
    alerts = all_alerts(out, circles)
    assert kinds(alerts) == [(1, "moved_out"), (2, "moved_out")]
    # The moved-out alert names the address they left, not the new one.
    assert {a.address["street"] for a in alerts} == {"100 N Tucker Blvd"}


def test_move_within_the_same_circle_gives_one_out_and_one_in(circles):
    old = state_after(event(addr("100 N Tucker Blvd", near(300))))
    out = apply_event(old, event(addr("200 Market St", near(500, azimuth=200))))
    alerts = [a for a in all_alerts(out, circles) if a.subscriber_id == 1]
    assert sorted((a.kind, a.address["street"]) for a in alerts) == [
        ("moved_in", "200 Market St"),
        ("moved_out", "100 N Tucker Blvd"),
    ]


def test_unchanged_re_registration_alerts_nobody(circles):
    old = state_after(event(addr("100 N Tucker Blvd", near(300))))
    out = apply_event(old, event(addr("100 N Tucker Blvd", near(300))))
    assert out.status == "applied"
    assert out.address_changes == () and out.watch_change is None and not out.purge
    assert out.state.revision > old.revision


def test_re_spelled_address_is_not_a_move(circles):
    old = state_after(event(addr("100 North Tucker Boulevard", near(300))))
    out = apply_event(old, event(addr("100 N TUCKER BLVD", near(300))))
    assert out.address_changes == () and out.watch_change is None


def test_re_geocode_moves_the_point_but_alerts_nobody(circles):
    old = state_after(event(addr("100 N Tucker Blvd", near(300))))
    new_point = near(5000)  # a better geocode, now outside every circle
    out = apply_event(old, event(addr("100 N Tucker Blvd", new_point)))
    assert out.address_changes == () and out.watch_change is None
    [stored] = out.state.addresses
    assert (stored.lat, stored.lon) == new_point


def test_work_address_change_leaves_home_alone(circles):
    home = addr("1 Far Rd", FAR)
    old = state_after(event(home, addr("9 Far Ave", FAR, "work")))
    out = apply_event(old, event(home, addr("200 Market St", near(100), "work")))
    assert [(c.direction, c.address.type) for c in out.address_changes] == [
        ("out", "work"),
        ("in", "work"),
    ]
    assert kinds(all_alerts(out, circles)) == [(1, "moved_in"), (2, "moved_in")]


def test_temporary_addresses_never_alert(circles):
    home = addr("1 Far Rd", FAR)
    old = state_after(event(home))
    out = apply_event(old, event(home, addr("100 N Tucker Blvd", near(10), "temporary")))
    assert out.address_changes == () and out.watch_change is None
    assert len(out.state.addresses) == 2  # kept for the record
    first = apply_event(None, event(addr("100 N Tucker Blvd", near(10), "temporary")))
    assert first.address_changes == () and all_alerts(first, circles) == []


def test_addresses_without_coordinates_are_unmapped_not_alerted(circles):
    no_point = addr("PO Box 12", None)
    out = apply_event(None, event(no_point, addr("9 Far Ave", FAR, "work")))
    assert out.unmapped == (no_point,)
    assert [c.address.type for c in out.address_changes] == ["work"]
    assert no_point in out.state.addresses
    # Still part of what a watcher is told.
    assert no_point in out.watch_change.new_addresses
    # A temporary address without a point is nobody's business either.
    assert apply_event(None, event(addr("x", None, "temporary"))).unmapped == ()


def test_alert_never_carries_online_identifiers(circles):
    out = apply_event(None, event(addr("100 N Tucker Blvd", near(300))))
    for a in all_alerts(out, circles) + watch_alerts(out.watch_change, [1]):
        assert "online_identifier_digests" not in a.offender
        assert digest_online_identifier("jd@example.com") not in repr(a.to_dict())


def test_alert_ids_are_deterministic(circles):
    def run() -> tuple[list[str], list[str]]:
        old = state_after(event(addr("1 Far Rd", FAR), event_id="a", revision=1))
        new = event(addr("100 N Tucker Blvd", near(300)), event_id="b", revision=2)
        out = apply_event(old, new)
        return (
            [a.alert_id for a in all_alerts(out, circles)],
            [a.alert_id for a in watch_alerts(out.watch_change, [1, 2])],
        )

    first, second = run(), run()
    assert first == second
    prox, watch = first
    assert len(set(prox)) == 2 and len(set(watch)) == 2 and not set(prox) & set(watch)


# --- idempotence ----------------------------------------------------------------------


def test_an_older_event_delivered_again_is_a_duplicate():
    first = event(addr("100 N Tucker Blvd", near(300)), event_id="e1", revision=1)
    state = state_after(first, event(addr("1 Far Rd", FAR), event_id="e2", revision=2))
    again = apply_event(state, first)
    assert again.status == "duplicate"
    assert again.state is None and again.address_changes == () and again.watch_change is None
    assert not again.purge


def test_the_latest_event_delivered_again_derives_the_same_alerts_again(circles):
    """After a broker lost in-flight messages, re-publishing the day makes the lost alerts again."""
    before = state_after(event(addr("1 Far Rd", FAR), event_id="e1", revision=1))
    moved = event(addr("100 N Tucker Blvd", near(300)), event_id="e2", revision=2)
    applied = apply_event(before, moved)
    # Stored and read back, as the table and the database keep it.
    stored = OffenderState.from_dict(applied.state.to_dict())
    again = apply_event(stored, moved)
    assert again.status == "replayed" and again.state is None  # nothing new to store
    assert [a.alert_id for a in all_alerts(again, circles)] == [a.alert_id for a in all_alerts(applied, circles)]
    assert kinds(all_alerts(again, circles)) == kinds(all_alerts(applied, circles)) != []
    assert again.watch_change == applied.watch_change


def test_a_state_stored_before_replays_existed_treats_the_latest_event_as_a_duplicate():
    ev = event(addr("100 N Tucker Blvd", near(300)))
    old_format = apply_event(None, ev).state.to_dict()
    del old_format["previous"]
    assert apply_event(OffenderState.from_dict(old_format), ev).status == "duplicate"


def test_older_or_equal_revision_is_stale():
    state = state_after(event(addr("100 N Tucker Blvd", near(300)), revision=5))
    for rev in (4, 5):
        out = apply_event(state, event(addr("1 Far Rd", FAR), revision=rev))
        assert out.status == "stale" and out.state is None and out.address_changes == ()


def test_recent_event_ids_are_capped():
    state = None
    for i in range(1, 6):
        state = apply_event(state, event(event_id=f"e{i}", revision=i), recent_limit=3).state
    assert state.recent_event_ids == ("e3", "e4", "e5")


def test_baseline_stores_state_without_alerts(circles):
    out = apply_event(None, event(addr("100 N Tucker Blvd", near(300)), baseline=True))
    assert out.status == "applied"
    assert out.address_changes == () and out.watch_change is None and not out.purge
    assert out.state.addresses[0].street == "100 N Tucker Blvd"
    moved = apply_event(out.state, event(addr("1 Far Rd", FAR), baseline=True))
    assert moved.address_changes == () and moved.watch_change is None
    # A later live event compares against the baseline, not against nothing.
    live = apply_event(out.state, event(addr("100 N Tucker Blvd", near(300))))
    assert live.address_changes == () and live.watch_change is None


def test_baseline_still_purges_a_juvenile():
    old = state_after(event(addr("100 N Tucker Blvd", near(300))))
    ev = event(addr("100 N Tucker Blvd", near(300)), baseline=True, juvenile=True)
    out = apply_event(old, ev)
    assert out.purge and out.watch_change is None and out.address_changes == ()


# --- watches, juveniles, removal ------------------------------------------------------


def test_first_sight_is_a_watch_change_with_no_old_addresses():
    home = addr("100 N Tucker Blvd", near(300))
    out = apply_event(None, event(home))
    w = out.watch_change
    assert w is not None and not w.removed
    assert w.old_addresses == () and w.new_addresses == (home,)
    [alert] = watch_alerts(w, [42])
    assert alert.kind == "watch_changed" and alert.subscriber_id == 42
    assert alert.old_addresses == [] and alert.new_addresses == [home.to_dict()]


def test_address_change_tells_each_watcher_old_and_new():
    old_home, new_home = addr("1 Far Rd", FAR), addr("100 N Tucker Blvd", near(300))
    out = apply_event(state_after(event(old_home)), event(new_home))
    alerts = watch_alerts(out.watch_change, [7, 3, 7])
    assert sorted(a.subscriber_id for a in alerts) == [3, 7]  # listed twice, told once
    for a in alerts:
        assert a.kind == "watch_changed" and a.offender_id == "MO-123"
        assert a.old_addresses == [old_home.to_dict()]
        assert a.new_addresses == [new_home.to_dict()]
    assert watch_alerts(out.watch_change, []) == []


def test_juvenile_is_never_disclosed(circles):
    out = apply_event(None, event(addr("100 N Tucker Blvd", near(300)), juvenile=True))
    assert out.status == "applied" and out.purge
    assert out.address_changes == () and out.watch_change is None
    moved = apply_event(out.state, event(addr("200 Market St", near(100)), juvenile=True))
    assert moved.address_changes == () and moved.watch_change is None and moved.purge


def test_becoming_juvenile_purges_without_alerts(circles):
    old = state_after(event(addr("100 N Tucker Blvd", near(300))))
    out = apply_event(old, event(addr("1 Far Rd", FAR), juvenile=True))
    assert out.purge
    assert out.address_changes == () and out.watch_change is None
    assert out.state.profile.juvenile


def test_removal_tells_watchers_purges_and_sends_no_proximity_alerts(circles):
    home = addr("100 N Tucker Blvd", near(300))
    old = state_after(event(home))
    out = apply_event(old, event(kind="remove"))
    assert out.status == "applied" and out.purge
    assert out.address_changes == () and all_alerts(out, circles) == []
    assert out.state.removed and out.state.addresses == ()
    assert out.state.profile == old.profile  # kept for the record
    w = out.watch_change
    assert w.removed and w.old_addresses == (home,)
    assert w.offender.name == "John Doe"
    alerts = watch_alerts(w, [1, 2])
    assert [(a.subscriber_id, a.kind) for a in alerts] == [
        (1, "watch_removed"),
        (2, "watch_removed"),
    ]


def test_removing_a_juvenile_or_unknown_offender_says_nothing():
    juvenile = state_after(event(addr("100 N Tucker Blvd", near(300)), juvenile=True))
    out = apply_event(juvenile, event(kind="remove"))
    assert out.purge and out.watch_change is None and out.address_changes == ()
    unknown = apply_event(None, event(kind="remove"))
    assert unknown.status == "applied" and unknown.purge and unknown.watch_change is None
    assert unknown.state.removed and unknown.state.profile is None


def test_reappearing_after_removal_is_news_again(circles):
    home = addr("100 N Tucker Blvd", near(300))
    removed = state_after(event(home), event(kind="remove"))
    out = apply_event(removed, event(home))
    assert not out.purge
    assert [c.direction for c in out.address_changes] == ["in"]
    assert kinds(all_alerts(out, circles)) == [(1, "moved_in"), (2, "moved_in")]
    assert out.watch_change is not None and out.watch_change.old_addresses == ()


@pytest.mark.parametrize("precision", ["street", "zip_centroid"])
def test_a_coarse_location_never_claims_proximity(circles: CircleIndex, precision: str) -> None:
    # Placed only at street or ZIP level: it may be 2 miles off, so no "within 500 ft".
    coarse = dataclasses.replace(addr("100 Somewhere St", near(50)), precision=precision)
    out = apply_event(None, event(coarse))
    assert out.address_changes == ()
    assert out.unmapped == (coarse,)
    assert out.state is not None and out.state.addresses[0].lat is not None  # kept for the record
    assert out.watch_change is not None  # watchers still hear of the new address


@pytest.mark.parametrize("precision", ["address_point", "interpolated", "provided"])
def test_point_grade_locations_alert(circles: CircleIndex, precision: str) -> None:
    exact = dataclasses.replace(addr("100 Somewhere St", near(50)), precision=precision)
    out = apply_event(None, event(exact))
    assert [c.direction for c in out.address_changes] == ["in"]
    assert [a.subscriber_id for a in proximity_alerts(out.address_changes[0], circles)] == [1, 2]
