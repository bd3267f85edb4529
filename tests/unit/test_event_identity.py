"""An event id names one registry entry: a repeat with other content changes nothing."""

from __future__ import annotations

import dataclasses

from pyproj import Geod

from streams.domain.addresses import make_address
from streams.domain.circle_index import CircleIndex
from streams.domain.event_identity import content_digest
from streams.domain.matching import apply_event, proximity_alerts, watch_alerts
from streams.domain.model import (
    Address,
    Circle,
    OffenderProfile,
    OffenderState,
    Offense,
    RegistryEvent,
    SeenEvent,
)
from streams.domain.radii import RADII

GEOD = Geod(ellps="WGS84")
TRACKED = (38.627, -90.199)  # a parent's tracked address in St. Louis, 5-mile circle
FAR = (39.0997, -94.5786)  # Kansas City


def near(metres: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(TRACKED[1], TRACKED[0], 45.0, metres)
    return lat, lon


def home(street: str, point: tuple[float, float] | None) -> Address:
    d = {"type": "home", "street": street, "city": "St. Louis", "state": "MO", "zip": "63101"}
    if point is not None:
        d["lat"], d["lon"] = point
    return make_address(d)


PROFILE = OffenderProfile(
    last_name="Doe",
    first_name="John",
    date_of_birth="1970-01-01",
    tier=2,
    compliance="compliant",
    juvenile=False,
    offenses=(Offense("Statutory sodomy 2nd degree", "566.064"),),
)


def ev(
    event_id: str,
    revision: int,
    *addresses: Address,
    baseline: bool = False,
    occurred_at: str = "2026-12-04T10:00:00Z",
) -> RegistryEvent:
    return RegistryEvent(event_id, "MO-123", revision, occurred_at, "upsert", baseline, PROFILE, addresses)


def circles() -> CircleIndex:
    idx = CircleIndex()
    idx.upsert(Circle(11, 1, "Home", "1 Main St, St. Louis", *TRACKED, RADII["5mi"][0], "5mi"))
    return idx


def alerts_of(outcome) -> list[tuple[str, str]]:
    return sorted(
        (a.alert_id, a.kind) for ch in outcome.address_changes for a in proximity_alerts(ch, circles())
    )


def stored(state: OffenderState) -> OffenderState:
    """As the table and the database keep it."""
    return OffenderState.from_dict(state.to_dict())


ORIGINAL_HOME = home("100 N Tucker Blvd", near(300))


def test_the_registry_office_scenario_a_conflicting_repeat_is_never_applied():
    """Baseline E (rev 3) inside the circle; E again with another home (rev 4); F (rev 4) far away."""
    baseline = ev("E", 3, ORIGINAL_HOME, baseline=True)
    state = stored(apply_event(None, baseline).state)

    repeat = ev("E", 4, home("500 Elsewhere Ave", near(1000)))
    out = apply_event(state, repeat)
    assert out.status == "conflicting"
    assert out.state is None and out.address_changes == () and out.watch_change is None and not out.purge
    assert out.conflict == SeenEvent("E", content_digest(baseline), 3)
    assert out.digest == content_digest(repeat) != content_digest(baseline)

    # F is judged against the state before the repeat: the offender moved out of the original home.
    moved = apply_event(state, ev("F", 4, home("1 Far Rd", FAR)))
    assert moved.status == "applied"
    assert sorted((c.direction, c.address.street) for c in moved.address_changes) == [
        ("in", "1 Far Rd"),
        ("out", "100 N Tucker Blvd"),
    ]
    assert [kind for _, kind in alerts_of(moved)] == ["moved_out"]


def test_an_exact_replay_of_a_baseline_derives_nothing():
    baseline = ev("E", 3, ORIGINAL_HOME, baseline=True)
    state = stored(apply_event(None, baseline).state)
    again = apply_event(state, baseline)
    assert again.status == "replayed"
    assert again.address_changes == () and again.watch_change is None and not again.purge


def test_a_replay_takes_the_stored_baseline_flag_not_the_message():
    """Even if the repeat could be read as live, the original was a baseline: nothing moves."""
    baseline = ev("E", 3, ORIGINAL_HOME, baseline=True)
    state = stored(apply_event(None, baseline).state)
    # Same id and content digest as stored, so this is the same entry; the stored flag rules.
    again = apply_event(state, dataclasses.replace(baseline, baseline=False), digest=content_digest(baseline))
    assert again.status == "replayed" and again.address_changes == () and again.watch_change is None


def test_an_exact_replay_of_the_latest_live_event_derives_the_same_alert_ids():
    before = stored(apply_event(None, ev("A", 1, home("1 Far Rd", FAR))).state)
    # Sent without coordinates; geocoding placed it. The digest is of the event as sent.
    sent = ev("B", 2, home("100 N Tucker Blvd", None))
    located = ev("B", 2, ORIGINAL_HOME)
    applied = apply_event(before, located, digest=content_digest(sent))
    state = stored(applied.state)

    again = apply_event(state, sent)
    assert again.status == "replayed" and again.state is None
    assert alerts_of(again) == alerts_of(applied) != []
    assert again.address_changes == applied.address_changes  # the stored, geocoded point
    assert again.watch_change == applied.watch_change
    assert watch_alerts(again.watch_change, [7]) == watch_alerts(applied.watch_change, [7])


def test_a_conflicting_repeat_of_an_older_event_is_never_applied():
    first = ev("A", 1, ORIGINAL_HOME)
    state = stored(apply_event(apply_event(None, first).state, ev("B", 2, home("1 Far Rd", FAR))).state)
    for repeat in (
        ev("A", 3, home("9 Other St", near(100))),  # a higher revision would otherwise apply
        ev("A", 1, home("9 Other St", near(100))),
        dataclasses.replace(first, baseline=True),  # the flag is part of the entry
    ):
        out = apply_event(state, repeat)
        assert out.status == "conflicting", repeat
        assert out.conflict == SeenEvent("A", content_digest(first), 1)
        assert out.state is None and out.address_changes == () and out.watch_change is None


def test_an_id_past_the_recent_window_is_caught_by_the_system_of_record():
    """The state lists 3 recent ids here; the database remembers every id for good."""
    first = ev("e1", 1, ORIGINAL_HOME)
    state = None
    for e in [first] + [ev(f"e{i}", i, home("1 Far Rd", FAR)) for i in range(2, 6)]:
        state = apply_event(state, e, recent_limit=3).state
    assert "e1" not in state.recent_event_ids
    reuse = ev("e1", 9, ORIGINAL_HOME)
    # What the database holds for e1 (repository.known_events):
    known = SeenEvent("e1", content_digest(first), 1)
    out = apply_event(state, reuse, recent_limit=3, known=known)
    assert out.status == "conflicting" and out.conflict == known
    # The same message as first sent is an old, stale entry either way.
    assert apply_event(state, first, recent_limit=3, known=known).status == "duplicate"
    assert apply_event(state, first, recent_limit=3).status == "stale"


def test_an_id_reused_for_another_offender_conflicts():
    first = ev("E", 1, ORIGINAL_HOME)
    other = dataclasses.replace(first, offender_id="MO-999")
    known = SeenEvent("E", content_digest(first), 1)
    assert apply_event(None, other, known=known).status == "conflicting"


def test_a_state_stored_before_digests_treats_a_repeat_as_a_plain_duplicate():
    e = ev("E", 3, ORIGINAL_HOME)
    legacy = apply_event(None, e).state.to_dict()
    legacy["recent_event_ids"] = [x[0] for x in legacy.pop("recent_events")]
    del legacy["baseline"]
    state = OffenderState.from_dict(legacy)
    for repeat in (e, ev("E", 4, home("1 Far Rd", FAR))):
        out = apply_event(state, repeat)
        assert out.status == "duplicate" and out.address_changes == () and out.watch_change is None


def test_the_content_digest_ignores_formatting_and_nothing_else():
    base = ev("E", 3, ORIGINAL_HOME, home("200 Market St", near(100)))
    same = [
        dataclasses.replace(base, occurred_at="2026-12-04T05:00:00-05:00"),
        dataclasses.replace(base, occurred_at="2026-12-04t10:00:00.000z"),
        dataclasses.replace(base, addresses=tuple(reversed(base.addresses))),
    ]
    for e in same:
        assert content_digest(e) == content_digest(base), e
    other = [
        dataclasses.replace(base, revision=4),
        dataclasses.replace(base, occurred_at="2026-12-04T10:00:01Z"),
        dataclasses.replace(base, baseline=True),
        dataclasses.replace(base, addresses=base.addresses[:1]),
        dataclasses.replace(base, addresses=(home("100 N Tucker Blvd.", near(300)), base.addresses[1])),
        dataclasses.replace(base, offender=dataclasses.replace(PROFILE, compliance="non-compliant")),
        dataclasses.replace(base, offender_id="MO-124"),
        dataclasses.replace(base, event_id="E2"),
    ]
    digests = {content_digest(e) for e in other}
    assert len(digests) == len(other) and content_digest(base) not in digests
