"""Registry events in, address changes and alerts out: the rules a subscriber would notice.

Which alerts an event makes is asked of the reference model (tests/reference_model.py,
written apart from streams.domain's matching and geometry) and compared alert by alert with
what production makes: subscriber, kind, event, tracked address, street, a watch alert's old
and new streets, and whether the offender's pending news goes.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from pyproj import Geod

from streams.domain.addresses import make_address
from streams.domain.circle_index import CircleIndex
from streams.domain.matching import apply_event, proximity_alert_batch, proximity_alerts, watch_alerts
from streams.domain.model import (
    Address,
    AddressChange,
    Alert,
    Circle,
    OffenderProfile,
    OffenderState,
    Offense,
    RegistryEvent,
    digest_online_identifier,
)
from streams.domain.radii import RADII
from tests.reference_model import Place, Reference, Step, radius_metres

GEOD = Geod(ellps="WGS84")
HOME = (38.627, -90.199)  # the subscriber's tracked address, St. Louis
FAR = (39.0997, -94.5786)  # Kansas City
# The two circles of the `circles` fixture, as the reference model takes them (its own radii).
PLACES = (
    Place(11, 1, "Home", *HOME, radius_metres("0.5mi")),
    Place(12, 2, "School", *HOME, radius_metres("1mi")),
)
WATCHER = 3  # tracks MO-123 where a test names no watchers of its own


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


# --- the reference model's answer, and production's compared with it --------------------


def as_doc(ev: RegistryEvent) -> dict[str, Any]:
    """The event as the reference model reads it (registry-event/1; a geocoded address with
    its precision)."""
    doc: dict[str, Any] = {
        "event_id": ev.event_id,
        "offender_id": ev.offender_id,
        "revision": ev.revision,
        "occurred_at": ev.occurred_at,
        "kind": ev.kind,
    }
    if ev.baseline:
        doc["baseline"] = True
    if ev.kind == "upsert":
        p = ev.offender
        doc["offender"] = {"first_name": p.first_name, "last_name": p.last_name, "juvenile": p.juvenile}
        doc["addresses"] = [
            {
                "type": a.type,
                "street": a.street,
                "city": a.city,
                "state": a.state,
                "zip": a.zip,
                "lat": a.lat,
                "lon": a.lon,
                "precision": a.precision,
            }
            for a in ev.addresses
        ]
    return doc


def reference_step(history: Sequence[RegistryEvent], ev: RegistryEvent, watchers: Sequence[int]) -> Step:
    ref = Reference(PLACES, {"MO-123": set(watchers)})
    for h in history:
        ref.publish(as_doc(h))
    return ref.step(as_doc(ev))


def made(outcome, idx: CircleIndex, watchers: Sequence[int]) -> list[Alert]:
    """Every alert production makes of an outcome: proximity, then watch."""
    alerts = all_alerts(outcome, idx)
    if outcome.watch_change is not None:
        alerts += watch_alerts(outcome.watch_change, list(watchers))
    return alerts


def _streets(addresses: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(sorted(a["street"] for a in addresses))


def alert_key(a: Alert) -> tuple[Any, ...]:
    """A production alert in the reference model's terms (Pending.key, Pending.watch_streets)."""
    tracked = a.tracked_address_id is not None
    return (
        a.subscriber_id,
        a.offender_id,
        a.kind,
        a.event_id,
        a.tracked_address_id,
        a.address["street"] if tracked else None,
        None if tracked else (_streets(a.old_addresses), _streets(a.new_addresses)),
    )


def checked(
    history: Sequence[RegistryEvent],
    ev: RegistryEvent,
    idx: CircleIndex,
    watchers: Sequence[int] = (WATCHER,),
):
    """`ev` applied by production after `history`; its alerts, its status and its purge checked
    against the reference model's answer. Returns (outcome, production's alerts, that answer)."""
    outcome = apply_event(state_after(*history), ev)
    want = reference_step(history, ev, watchers)
    alerts = made(outcome, idx, watchers)
    assert Counter(alert_key(a) for a in alerts) == Counter(
        p.key() + (p.watch_streets(),) for p in want.alerts
    )
    # The reference has no replay: the latest event again is a duplicate that makes nothing new.
    assert {"replayed": "duplicate"}.get(outcome.status, outcome.status) == want.outcome
    assert outcome.purge == want.forgets
    return outcome, alerts, want


def proximity(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.tracked_address_id is not None]


# --- proximity ------------------------------------------------------------------------


def test_first_sight_inside_a_circle_alerts_moved_in(circles):
    out, alerts, _ = checked([], event(addr("100 N Tucker Blvd", near(300))), circles)
    assert out.status == "applied" and not out.purge
    a = next(a for a in alerts if a.subscriber_id == 1)
    assert a.kind == "moved_in"
    assert a.tracked_address_id == 11 and a.tracked_label == "Home"
    assert a.tracked_one_line == "1 Main St, St. Louis"
    assert a.distance_m == pytest.approx(300.0, abs=1e-6)
    assert a.band == "within 1000 ft"
    assert a.address["street"] == "100 N Tucker Blvd"
    assert a.offender["name"] == "John Doe" and a.offender["tier"] == 2
    assert a.offender["main_offense"] == "Statutory sodomy 2nd degree"


def test_moved_in_from_far_away(circles):
    far = event(addr("1 Far Rd", FAR))
    out, alerts, _ = checked([far], event(addr("100 N Tucker Blvd", near(1200))), circles)
    assert sorted(c.direction for c in out.address_changes) == ["in", "out"]
    # 1200 m is outside the 1/2 mile circle but inside the 1 mile one.
    assert {a.band for a in proximity(alerts)} == {"within 1 mi"}
    # A centimetre inside or outside either radius, or right on it: a circle holds its edge.
    for radius in (radius_metres("0.5mi"), radius_metres("1mi")):
        for metres in (radius - 0.01, radius, radius + 0.01):
            checked([far], event(addr("100 N Tucker Blvd", near(metres, azimuth=metres % 360))), circles)


def test_moved_out_to_far_away(circles):
    # The moved-out alert names the address they left, not the new one.
    near_by = event(addr("100 N Tucker Blvd", near(300)))
    _, alerts, _ = checked([near_by], event(addr("1 Far Rd", FAR)), circles)
    assert proximity(alerts)


def test_move_within_the_same_circle_gives_one_out_and_one_in(circles):
    first = event(addr("100 N Tucker Blvd", near(300)))
    _, alerts, _ = checked([first], event(addr("200 Market St", near(500, azimuth=200))), circles)
    assert proximity(alerts)


def test_unchanged_re_registration_alerts_nobody(circles):
    first = event(addr("100 N Tucker Blvd", near(300)))
    out, _, _ = checked([first], event(addr("100 N Tucker Blvd", near(300))), circles)
    assert out.status == "applied"
    assert out.address_changes == () and out.watch_change is None and not out.purge
    assert out.state.revision > first.revision


def test_re_spelled_address_is_not_a_move(circles):
    first = event(addr("100 North Tucker Boulevard", near(300)))
    out, _, _ = checked([first], event(addr("100 N TUCKER BLVD", near(300))), circles)
    assert out.address_changes == () and out.watch_change is None


def test_re_geocode_moves_the_point_but_alerts_nobody(circles):
    first = event(addr("100 N Tucker Blvd", near(300)))
    new_point = near(5000)  # a better geocode, now outside every circle
    out, _, _ = checked([first], event(addr("100 N Tucker Blvd", new_point)), circles)
    assert out.address_changes == () and out.watch_change is None
    [stored] = out.state.addresses
    assert (stored.lat, stored.lon) == new_point


def test_work_address_change_leaves_home_alone(circles):
    # A work address, and a school address the same way.
    for type_ in ("work", "school"):
        home = addr("1 Far Rd", FAR)
        first = event(home, addr("9 Far Ave", FAR, type_))
        out, alerts, _ = checked([first], event(home, addr("200 Market St", near(100), type_)), circles)
        assert [(c.direction, c.address.type) for c in out.address_changes] == [
            ("out", type_),
            ("in", type_),
        ]
        assert proximity(alerts)


def test_temporary_addresses_never_alert(circles):
    home = addr("1 Far Rd", FAR)
    first = event(home)
    out, _, _ = checked([first], event(home, addr("100 N Tucker Blvd", near(10), "temporary")), circles)
    assert out.address_changes == () and out.watch_change is None
    assert len(out.state.addresses) == 2  # kept for the record
    only, _, _ = checked([], event(addr("100 N Tucker Blvd", near(10), "temporary")), circles)
    assert only.address_changes == ()


def test_addresses_without_coordinates_are_unmapped_not_alerted(circles):
    no_point = addr("PO Box 12", None)
    out, _, _ = checked([], event(no_point, addr("9 Far Ave", FAR, "work")), circles)
    assert out.unmapped == (no_point,)
    assert [c.address.type for c in out.address_changes] == ["work"]
    assert no_point in out.state.addresses
    # Still part of what a watcher is told.
    assert no_point in out.watch_change.new_addresses
    # A temporary address without a point is nobody's business either.
    assert apply_event(None, event(addr("x", None, "temporary"))).unmapped == ()


def test_alert_never_carries_online_identifiers(circles):
    _, alerts, _ = checked([], event(addr("100 N Tucker Blvd", near(300))), circles, watchers=[1])
    assert proximity(alerts) and len(alerts) > len(proximity(alerts))
    for a in alerts:
        assert "online_identifier_digests" not in a.offender
        assert digest_online_identifier("jd@example.com") not in repr(a.to_dict())


def test_alert_ids_are_deterministic(circles):
    def run() -> tuple[list[str], list[str], Step]:
        far = event(addr("1 Far Rd", FAR), event_id="a", revision=1)
        new = event(addr("100 N Tucker Blvd", near(300)), event_id="b", revision=2)
        _, alerts, want = checked([far], new, circles, watchers=[1, 2])
        prox = proximity(alerts)
        return [a.alert_id for a in prox], [a.alert_id for a in alerts if a not in prox], want

    first, second = run(), run()
    assert first[:2] == second[:2]
    prox, watch, want = first
    # One id per alert the reference model expects, and no id shared between kinds.
    assert len(set(prox)) == sum(p.circle_id is not None for p in want.alerts) > 0
    assert len(set(watch)) == sum(p.circle_id is None for p in want.alerts) > 0
    assert not set(prox) & set(watch)


# --- idempotence ----------------------------------------------------------------------


def test_an_older_event_delivered_again_is_a_duplicate(circles):
    first = event(addr("100 N Tucker Blvd", near(300)), event_id="e1", revision=1)
    second = event(addr("1 Far Rd", FAR), event_id="e2", revision=2)
    again, _, _ = checked([first, second], first, circles)
    assert again.status == "duplicate"
    assert again.state is None and again.address_changes == () and again.watch_change is None
    assert not again.purge


def test_the_latest_event_delivered_again_derives_the_same_alerts_again(circles):
    """After a broker lost in-flight messages, re-publishing the day makes the lost alerts again."""
    far = event(addr("1 Far Rd", FAR), event_id="e1", revision=1)
    moved = event(addr("100 N Tucker Blvd", near(300)), event_id="e2", revision=2)
    applied, first_time, _ = checked([far], moved, circles)
    # Stored and read back, as the table and the database keep it.
    stored = OffenderState.from_dict(applied.state.to_dict())
    again = apply_event(stored, moved)
    assert again.status == "replayed" and again.state is None  # nothing new to store
    # The same alerts as the first time (those the reference model expects), the same ids.
    assert [a.alert_id for a in made(again, circles, [WATCHER])] == [a.alert_id for a in first_time]
    assert [alert_key(a) for a in made(again, circles, [WATCHER])] == [alert_key(a) for a in first_time] != []
    assert again.watch_change == applied.watch_change


def test_a_state_stored_before_replays_existed_treats_the_latest_event_as_a_duplicate():
    ev = event(addr("100 N Tucker Blvd", near(300)))
    old_format = apply_event(None, ev).state.to_dict()
    del old_format["previous"]
    assert apply_event(OffenderState.from_dict(old_format), ev).status == "duplicate"


def test_older_or_equal_revision_is_stale(circles):
    first = event(addr("100 N Tucker Blvd", near(300)), revision=5)
    for rev in (4, 5):
        out, _, _ = checked([first], event(addr("1 Far Rd", FAR), revision=rev), circles)
        assert out.status == "stale" and out.state is None and out.address_changes == ()


def test_recent_event_ids_are_capped():
    state = None
    for i in range(1, 6):
        state = apply_event(state, event(event_id=f"e{i}", revision=i), recent_limit=3).state
    assert state.recent_event_ids == ("e3", "e4", "e5")


def test_baseline_stores_state_without_alerts(circles):
    base = event(addr("100 N Tucker Blvd", near(300)), baseline=True)
    out, _, _ = checked([], base, circles)
    assert out.status == "applied"
    assert out.address_changes == () and out.watch_change is None and not out.purge
    assert out.state.addresses[0].street == "100 N Tucker Blvd"
    moved, _, _ = checked([base], event(addr("1 Far Rd", FAR), baseline=True), circles)
    assert moved.address_changes == () and moved.watch_change is None
    # A later live event compares against the baseline, not against nothing.
    live, _, _ = checked([base], event(addr("100 N Tucker Blvd", near(300))), circles)
    assert live.address_changes == () and live.watch_change is None


def test_baseline_still_purges_a_juvenile(circles):
    first = event(addr("100 N Tucker Blvd", near(300)))
    ev = event(addr("100 N Tucker Blvd", near(300)), baseline=True, juvenile=True)
    out, _, _ = checked([first], ev, circles)
    assert out.purge and out.watch_change is None and out.address_changes == ()


# --- watches, juveniles, removal ------------------------------------------------------


def test_first_sight_is_a_watch_change_with_no_old_addresses(circles):
    home = addr("100 N Tucker Blvd", near(300))
    out, alerts, _ = checked([], event(home), circles, watchers=[42])
    w = out.watch_change
    assert w is not None and not w.removed
    assert w.old_addresses == () and w.new_addresses == (home,)
    [alert] = [a for a in alerts if a.subscriber_id == 42]
    assert alert.kind == "watch_changed"
    assert alert.old_addresses == [] and alert.new_addresses == [home.to_dict()]


def test_address_change_tells_each_watcher_old_and_new(circles):
    old_home, new_home = addr("1 Far Rd", FAR), addr("100 N Tucker Blvd", near(300))
    first = event(old_home)
    # Listed twice, told once: the reference model's watchers are a set.
    out, alerts, _ = checked([first], event(new_home), circles, watchers=[7, 3, 7])
    watchers_told = [a for a in alerts if a.tracked_address_id is None]
    assert watchers_told
    for a in watchers_told:
        assert a.offender_id == "MO-123"
        assert a.old_addresses == [old_home.to_dict()]
        assert a.new_addresses == [new_home.to_dict()]
    assert watch_alerts(out.watch_change, []) == []


def test_juvenile_is_never_disclosed(circles):
    first = event(addr("100 N Tucker Blvd", near(300)), juvenile=True)
    out, _, _ = checked([], first, circles)
    assert out.status == "applied" and out.purge
    assert out.address_changes == () and out.watch_change is None
    moved, _, _ = checked([first], event(addr("200 Market St", near(100)), juvenile=True), circles)
    assert moved.address_changes == () and moved.watch_change is None and moved.purge


def test_becoming_juvenile_purges_without_alerts(circles):
    first = event(addr("100 N Tucker Blvd", near(300)))
    out, _, _ = checked([first], event(addr("1 Far Rd", FAR), juvenile=True), circles)
    assert out.purge
    assert out.address_changes == () and out.watch_change is None
    assert out.state.profile.juvenile


def test_removal_tells_watchers_purges_and_sends_no_proximity_alerts(circles):
    home = addr("100 N Tucker Blvd", near(300))
    first = event(home)
    out, alerts, _ = checked([first], event(kind="remove"), circles, watchers=[1, 2])
    assert out.status == "applied" and out.purge
    assert out.address_changes == () and alerts
    old = state_after(first)
    assert out.state.removed and out.state.addresses == ()
    assert out.state.profile == old.profile  # kept for the record
    w = out.watch_change
    assert w.removed and w.old_addresses == (home,)
    assert w.offender.name == "John Doe"


def test_removing_a_juvenile_or_unknown_offender_says_nothing(circles):
    juvenile = event(addr("100 N Tucker Blvd", near(300)), juvenile=True)
    out, _, _ = checked([juvenile], event(kind="remove"), circles)
    assert out.purge and out.watch_change is None and out.address_changes == ()
    unknown, _, _ = checked([], event(kind="remove"), circles)
    assert unknown.status == "applied" and unknown.purge and unknown.watch_change is None
    assert unknown.state.removed and unknown.state.profile is None


def test_reappearing_after_removal_is_news_again(circles):
    home = addr("100 N Tucker Blvd", near(300))
    first, removal = event(home), event(kind="remove")
    out, alerts, _ = checked([first, removal], event(home), circles)
    assert not out.purge
    assert [c.direction for c in out.address_changes] == ["in"]
    assert proximity(alerts)
    assert out.watch_change is not None and out.watch_change.old_addresses == ()


@pytest.mark.parametrize("precision", ["street", "zip_centroid"])
def test_a_coarse_location_never_claims_proximity(circles: CircleIndex, precision: str) -> None:
    # Placed only at street or ZIP level: it may be 2 miles off, so no "within 500 ft".
    coarse = dataclasses.replace(addr("100 Somewhere St", near(50)), precision=precision)
    out, _, _ = checked([], event(coarse), circles)
    assert out.address_changes == ()
    assert out.unmapped == (coarse,)
    assert out.state is not None and out.state.addresses[0].lat is not None  # kept for the record
    assert out.watch_change is not None  # watchers still hear of the new address


@pytest.mark.parametrize("precision", ["address_point", "interpolated", "provided"])
def test_point_grade_locations_alert(circles: CircleIndex, precision: str) -> None:
    exact = dataclasses.replace(addr("100 Somewhere St", near(50)), precision=precision)
    out, alerts, _ = checked([], event(exact), circles)
    assert [c.direction for c in out.address_changes] == ["in"]
    assert proximity(alerts)


def test_an_address_placed_only_to_its_street_alerts_no_circle(circles) -> None:
    """README: an address geocoded only to its street or ZIP is kept and shown to watchers,
    never near; right at the tracked address, it still makes no proximity alert."""
    coarse = make_address(
        {
            "type": "home",
            "street": "1 Main St",
            "city": "St. Louis",
            "state": "MO",
            "zip": "63101",
            "lat": HOME[0],
            "lon": HOME[1],
            "precision": "street",
        }
    )
    out = apply_event(None, event(coarse))
    assert out.status == "applied"
    assert all_alerts(out, circles) == []
    exact = apply_event(None, event(addr("1 Main St", HOME)))
    assert sorted(a.tracked_address_id for a in all_alerts(exact, circles)) == [11, 12]


def test_each_watched_change_is_its_own_alert_with_its_event_s_revision_and_time() -> None:
    """Two changes of a watched offender, then the removal: three alerts the watcher keeps
    apart (none stored over another as a repeat), each dated and ordered as its event."""
    first = event(addr("1 A St", HOME), revision=5)
    second = event(addr("2 B St", near(900.0)), revision=6)
    gone = event(kind="remove", revision=7)
    state, made = None, []
    for ev in (first, second, gone):
        out = apply_event(state, ev)
        state = out.state or state
        if out.watch_change is not None:
            made += watch_alerts(out.watch_change, [WATCHER, WATCHER])
    assert [(a.kind, a.event_id, a.revision, a.occurred_at) for a in made] == [
        ("watch_changed", first.event_id, 5, first.occurred_at),
        ("watch_changed", second.event_id, 6, second.occurred_at),
        ("watch_removed", gone.event_id, 7, gone.occurred_at),
    ]
    assert len({a.alert_id for a in made}) == 3
    # One event told to two watchers: two alerts, one each.
    two = watch_alerts(apply_event(None, event(addr("3 C St", HOME))).watch_change, [WATCHER, WATCHER + 1])
    assert len({a.alert_id for a in two}) == 2


@pytest.mark.parametrize("last", ["remove", "juvenile"])
def test_a_removal_delivered_again_purges_again(circles, last):
    """A worker that died between storing the state and dropping the offender's pending
    alerts reads the event again: the replay must drop them then (the reference forgets)."""
    moved = event(addr("100 N Tucker Blvd", near(300)), event_id="e1", revision=1)
    gone = (
        event(kind="remove", event_id="e2", revision=2)
        if last == "remove"
        else event(addr("100 N Tucker Blvd", near(300)), event_id="e2", revision=2, juvenile=True)
    )
    applied, _, _ = checked([moved], gone, circles)
    assert applied.purge
    again = apply_event(OffenderState.from_dict(applied.state.to_dict()), gone)
    assert again.status == "replayed" and again.purge
    assert again.watch_change == applied.watch_change


def test_a_change_naming_a_street_level_point_matches_no_circle(circles) -> None:
    """The matcher's own check, for a change that arrives (from the address-changes topic) with
    a point only as good as its street: no proximity alert, even right at the tracked place."""
    exact = apply_event(None, event(addr("1 Main St", HOME))).address_changes[0]
    assert proximity_alert_batch(exact, circles) is not None
    coarse = dataclasses.replace(exact, address=dataclasses.replace(exact.address, precision="street"))
    assert isinstance(coarse, AddressChange) and coarse.address.lat == HOME[0]
    assert proximity_alert_batch(coarse, circles) is None
    assert proximity_alerts(coarse, circles) == []
