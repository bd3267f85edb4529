"""What one day's alerts become in a digest: grouping, order, and changes that cancel out."""

from __future__ import annotations

from typing import Any

from streams.domain.digest import build_digest
from streams.domain.model import Alert, alert_id_for
from streams.domain.radii import proximity_band

SUB = 7
_seq = iter(range(1, 100_000))


def address(street: str, type_: str = "home", city: str = "St. Louis") -> dict[str, Any]:
    return {
        "type": type_,
        "street": street,
        "city": city,
        "state": "MO",
        "zip": "63101",
        "county": None,
        "lat": 38.63,
        "lon": -90.2,
        "normalized": f"{street.upper()}, {city.upper()}, MO 63101",
    }


def who(oid: str, name: str, offense: str = "Sexual assault") -> dict[str, Any]:
    return {"offender_id": oid, "name": name, "main_offense": offense, "tier": 2, "compliance": "compliant"}


def moved(
    kind: str,
    oid: str,
    name: str,
    street: str,
    *,
    distance: float = 300.0,
    tracked: int = 1,
    label: str = "Home",
    at: str | None = None,
    type_: str = "home",
    subscriber: int = SUB,
    revision: int = 0,
) -> Alert:
    n = next(_seq)
    return Alert(
        alert_id=alert_id_for("t", n),
        subscriber_id=subscriber,
        offender_id=oid,
        kind=kind,
        event_id=f"ev-{n}",
        occurred_at=at or f"2026-11-20T10:{n % 60:02d}:00Z",
        offender=who(oid, name),
        tracked_address_id=tracked,
        tracked_label=label,
        tracked_one_line=f"{tracked} Tracked St, St. Louis, MO 63101",
        address=address(street, type_),
        distance_m=distance,
        band=proximity_band(distance),
        revision=revision,
    )


def watch(
    oid: str,
    name: str,
    old: list[str],
    new: list[str],
    *,
    removed: bool = False,
    at: str = "",
    revision: int = 0,
) -> Alert:
    n = next(_seq)
    return Alert(
        alert_id=alert_id_for("w", n),
        subscriber_id=SUB,
        offender_id=oid,
        kind="watch_removed" if removed else "watch_changed",
        event_id=f"ev-{n}",
        occurred_at=at or f"2026-11-20T11:{n % 60:02d}:00Z",
        offender=who(oid, name),
        old_addresses=[address(s) for s in old],
        new_addresses=[address(s) for s in new],
        revision=revision,
    )


def test_nothing_to_say_is_no_digest() -> None:
    assert build_digest(SUB, []) is None


def test_proximity_lines_are_grouped_by_tracked_address_and_ordered() -> None:
    alerts = [
        moved("moved_out", "O-3", "Lee Outlaw", "20 Near St", distance=100, label="Work", tracked=2),
        moved("moved_in", "O-2", "Bob Far", "900 Olive St", distance=1500),
        moved("moved_out", "O-4", "Al Gone", "5 Elm St", distance=50),
        moved("moved_in", "O-1", "Ray Abbott", "800 Olive St", distance=800, type_="work"),
    ]
    digest = build_digest(SUB, alerts)
    assert digest is not None
    assert [p.label for p in digest.places] == ["Home", "Work"]
    home = digest.places[0]
    # moved in before moved out, nearest first within each
    assert [(ln.direction, ln.name) for ln in home.lines] == [
        ("in", "Ray Abbott"),
        ("in", "Bob Far"),
        ("out", "Al Gone"),
    ]
    ray = home.lines[0]
    assert (ray.address_type, ray.address, ray.offense, ray.band, ray.offender_id) == (
        "Work",
        "800 Olive St, St. Louis, MO 63101",
        "Sexual assault",
        "within 1/2 mi",
        "O-1",
    )
    assert [ln.name for ln in home.moved_out] == ["Al Gone"]
    assert digest.proximity_count == 4 and digest.watch_count == 0 and digest.change_count == 4


def test_moved_in_then_out_of_the_same_address_cancels_out() -> None:
    alerts = [
        moved("moved_in", "O-1", "Ray Abbott", "800 Olive St", at="2026-11-20T09:00:00Z"),
        moved("moved_out", "O-1", "Ray Abbott", "800 Olive St", at="2026-11-20T12:00:00Z"),
    ]
    assert build_digest(SUB, alerts) is None
    # ... in whichever order they were recorded
    assert build_digest(SUB, list(reversed(alerts))) is None


def test_moved_out_then_back_in_cancels_out() -> None:
    alerts = [
        moved("moved_out", "O-1", "Ray Abbott", "800 Olive St", at="2026-11-20T09:00:00Z"),
        moved("moved_in", "O-1", "Ray Abbott", "800 Olive St", at="2026-11-20T12:00:00Z"),
    ]
    assert build_digest(SUB, alerts) is None


def test_in_out_in_leaves_one_moved_in() -> None:
    alerts = [
        moved("moved_in", "O-1", "Ray Abbott", "800 Olive St", at="2026-11-20T09:00:00Z"),
        moved("moved_out", "O-1", "Ray Abbott", "800 Olive St", at="2026-11-20T10:00:00Z"),
        moved("moved_in", "O-1", "Ray Abbott", "800 Olive St", at="2026-11-20T11:00:00Z"),
    ]
    digest = build_digest(SUB, alerts)
    assert digest is not None
    assert [(ln.direction, ln.address) for ln in digest.places[0].lines] == [
        ("in", "800 Olive St, St. Louis, MO 63101")
    ]


def test_a_move_between_two_addresses_in_the_circle_shows_both() -> None:
    alerts = [
        moved("moved_out", "O-1", "Ray Abbott", "800 Olive St"),
        moved("moved_in", "O-1", "Ray Abbott", "900 Olive St"),
    ]
    digest = build_digest(SUB, alerts)
    assert digest is not None
    assert [(ln.direction, ln.address.split(",")[0]) for ln in digest.places[0].lines] == [
        ("in", "900 Olive St"),
        ("out", "800 Olive St"),
    ]


def test_changes_only_cancel_within_one_tracked_address() -> None:
    alerts = [
        moved(
            "moved_in",
            "O-1",
            "Ray Abbott",
            "800 Olive St",
            tracked=1,
            label="Home",
            at="2026-11-20T09:00:00Z",
        ),
        moved(
            "moved_out",
            "O-1",
            "Ray Abbott",
            "800 Olive St",
            tracked=2,
            label="School",
            at="2026-11-20T10:00:00Z",
        ),
    ]
    digest = build_digest(SUB, alerts)
    assert digest is not None
    assert [(p.label, p.lines[0].direction) for p in digest.places] == [("Home", "in"), ("School", "out")]


def test_tracked_offender_changes_collapse_to_before_and_after() -> None:
    alerts = [
        watch("W-1", "Sam Watts", ["400 S Campbell Ave"], ["1 First St"], at="2026-11-20T09:00:00Z"),
        watch("W-1", "Sam Watts", ["1 First St"], ["2200 N Glenstone Ave"], at="2026-11-20T10:00:00Z"),
    ]
    digest = build_digest(SUB, alerts)
    assert digest is not None and digest.places == ()
    [line] = digest.watches
    assert (line.name, line.removed) == ("Sam Watts", False)
    assert [a.one_line.split(",")[0] for a in line.old_addresses] == ["400 S Campbell Ave"]
    assert [(a.type, a.one_line.split(",")[0]) for a in line.new_addresses] == [
        ("Home", "2200 N Glenstone Ave")
    ]


def test_revisions_order_changes_that_carry_the_same_time() -> None:
    """Three revisions stamped with the same minute, recorded out of order (one batch of
    alerts shares one timestamp): the digest still goes from the first to the last."""
    same = "2026-11-20T09:00:00Z"
    alerts = [
        watch("W-1", "Sam Watts", ["2 Second St"], ["3 Third St"], at=same, revision=3),
        watch("W-1", "Sam Watts", ["1 First St"], ["2 Second St"], at=same, revision=2),
        moved("moved_out", "O-1", "Ray Abbott", "800 Olive St", at=same, revision=3),
        moved("moved_in", "O-1", "Ray Abbott", "800 Olive St", at=same, revision=2),
        moved("moved_out", "O-1", "Ray Abbott", "12 Pine St", at=same, revision=2),
    ]
    digest = build_digest(SUB, alerts)
    assert digest is not None
    [line] = digest.watches
    assert [a.one_line.split(",")[0] for a in line.old_addresses] == ["1 First St"]
    assert [a.one_line.split(",")[0] for a in line.new_addresses] == ["3 Third St"]
    # In at revision 2, out at 3: nothing to say about Olive St; Pine St's move out stands.
    [place] = digest.places
    assert [(ln.direction, ln.address.split(",")[0]) for ln in place.lines] == [("out", "12 Pine St")]


def test_tracked_offender_changed_and_changed_back_says_nothing() -> None:
    alerts = [
        watch("W-1", "Sam Watts", ["400 S Campbell Ave"], ["1 First St"], at="2026-11-20T09:00:00Z"),
        watch("W-1", "Sam Watts", ["1 First St"], ["400 S Campbell Ave"], at="2026-11-20T10:00:00Z"),
    ]
    assert build_digest(SUB, alerts) is None


def test_tracked_offender_leaving_the_registry() -> None:
    alerts = [
        watch("W-2", "Zed Young", ["1 A St"], ["2 B St"], at="2026-11-20T09:00:00Z"),
        watch("W-2", "Zed Young", ["2 B St"], [], removed=True, at="2026-11-20T10:00:00Z"),
        watch("W-1", "Abe Adams", ["3 C St"], ["4 D St"]),
    ]
    digest = build_digest(SUB, alerts)
    assert digest is not None
    assert [(w.name, w.removed) for w in digest.watches] == [("Abe Adams", False), ("Zed Young", True)]
    assert digest.watches[1].new_addresses == ()


def test_other_subscribers_alerts_and_repeats_are_ignored() -> None:
    mine = moved("moved_in", "O-1", "Ray Abbott", "800 Olive St")
    other = moved("moved_in", "O-2", "Bob Far", "900 Olive St", subscriber=SUB + 1)
    digest = build_digest(SUB, [mine, mine, other])
    assert digest is not None and digest.change_count == 1
    assert build_digest(SUB, [other]) is None


def test_one_offender_changed_back_does_not_hide_the_next_ones_news() -> None:
    """Of two tracked offenders, the first changed and changed back (nothing to say), the
    second moved: the e-mail still says so, with the offense the registry gives."""
    alerts = [
        watch("W-1", "Abe Adams", ["1 A St"], ["2 B St"], at="2026-11-20T09:00:00Z"),
        watch("W-1", "Abe Adams", ["2 B St"], ["1 A St"], at="2026-11-20T09:30:00Z"),
        watch("W-2", "Zed Young", ["3 C St"], ["4 D St"], at="2026-11-20T10:00:00Z"),
    ]
    digest = build_digest(SUB, alerts)
    assert digest is not None
    [line] = digest.watches
    assert (line.offender_id, line.name, line.offense, line.removed) == (
        "W-2",
        "Zed Young",
        "Sexual assault",
        False,
    )
    assert [a.one_line.split(",")[0] for a in line.new_addresses] == ["4 D St"]


def test_a_tracked_place_shows_its_own_label_and_address() -> None:
    digest = build_digest(
        SUB, [moved("moved_in", "O-1", "Ray Abbott", "800 Olive St", tracked=3, label="Gym")]
    )
    assert digest is not None
    [place] = digest.places
    assert (place.label, place.one_line) == ("Gym", "3 Tracked St, St. Louis, MO 63101")


def test_a_watched_offender_s_address_changing_type_is_news() -> None:
    """Same street, now where they work rather than live: the watcher hears of it."""
    home, work = address("1 A St"), address("1 A St", "work")
    alerts = [
        Alert(
            alert_id=alert_id_for("w", "type"),
            subscriber_id=SUB,
            offender_id="W-1",
            kind="watch_changed",
            event_id="ev-type",
            occurred_at="2026-11-20T11:00:00Z",
            offender=who("W-1", "Sam Watts"),
            old_addresses=[home],
            new_addresses=[work],
            revision=1,
        )
    ]
    digest = build_digest(SUB, alerts)
    assert digest is not None
    [line] = digest.watches
    assert [(a.type, a.one_line) for a in line.old_addresses] == [("Home", "1 A St, St. Louis, MO 63101")]
    assert [(a.type, a.one_line) for a in line.new_addresses] == [("Work", "1 A St, St. Louis, MO 63101")]


def test_moved_and_moved_back_under_another_spelling_says_nothing() -> None:
    """The registry re-spells the street on the way back (USPS form is the same): no change."""
    back = address("400 South Campbell Avenue") | {"normalized": "400 S CAMPBELL AVE, ST. LOUIS, MO 63101"}
    there = address("400 S Campbell Ave")  # normalized: 400 S CAMPBELL AVE, ST. LOUIS, MO 63101
    alerts = [
        watch("W-1", "Sam Watts", ["400 S Campbell Ave"], ["1 First St"], at="2026-11-20T09:00:00Z"),
        Alert(
            alert_id=alert_id_for("w", "back"),
            subscriber_id=SUB,
            offender_id="W-1",
            kind="watch_changed",
            event_id="ev-back",
            occurred_at="2026-11-20T10:00:00Z",
            offender=who("W-1", "Sam Watts"),
            old_addresses=[address("1 First St")],
            new_addresses=[back],
            revision=0,
        ),
    ]
    assert there["normalized"] == back["normalized"]
    assert build_digest(SUB, alerts) is None


def test_address_lines_leave_out_what_the_registry_left_blank() -> None:
    """An address with no ZIP (or no city, state, street) shows only what it has, and a type
    outside the usual ones is shown by its own name."""
    bare = {"type": "temporary", "street": "5 E St", "city": "", "state": "MO", "zip": ""}
    alerts = [
        Alert(
            alert_id=alert_id_for("w", "bare"),
            subscriber_id=SUB,
            offender_id="W-3",
            kind="watch_changed",
            event_id="ev-bare",
            occurred_at="2026-11-20T11:00:00Z",
            offender=who("W-3", "Ann Bare"),
            old_addresses=[],
            new_addresses=[
                bare,
                {"type": "shelter", "street": "", "city": "Joplin", "state": "", "zip": "64801"},
            ],
            revision=1,
        )
    ]
    digest = build_digest(SUB, alerts)
    assert digest is not None
    [line] = digest.watches
    assert sorted((a.type, a.one_line) for a in line.new_addresses) == [
        ("Shelter", "Joplin, 64801"),
        ("Temporary", "5 E St, MO"),
    ]


def test_what_an_alert_leaves_blank_the_digest_leaves_blank() -> None:
    """No name, offense, band, address type or tracked label and address: the e-mail shows
    empty text there, never a placeholder."""
    bare = Alert(
        alert_id=alert_id_for("t", "bare"),
        subscriber_id=SUB,
        offender_id="O-9",
        kind="moved_in",
        event_id="ev-bare",
        occurred_at="2026-11-20T10:00:00Z",
        offender={"offender_id": "O-9"},
        tracked_address_id=4,
        tracked_label="",
        tracked_one_line="",
        address={"street": "9 Elm St", "city": "St. Louis", "state": "MO", "zip": "63101"},
        distance_m=100.0,
        band="",
    )
    gone = Alert(
        alert_id=alert_id_for("w", "bare"),
        subscriber_id=SUB,
        offender_id="W-9",
        kind="watch_changed",
        event_id="ev-w-bare",
        occurred_at="2026-11-20T11:00:00Z",
        offender={"offender_id": "W-9"},
        old_addresses=[],
        new_addresses=[{"street": "9 Elm St", "city": "St. Louis", "state": "MO", "zip": ""}],
        revision=1,
    )
    digest = build_digest(SUB, [bare, gone])
    assert digest is not None
    [place] = digest.places
    assert (place.label, place.one_line) == ("", "")
    [ln] = place.lines
    assert (ln.name, ln.offense, ln.band, ln.address_type) == ("", "", "", "")
    assert ln.address == "9 Elm St, St. Louis, MO 63101"
    [w] = digest.watches
    assert (w.name, w.offense) == ("", "")
    assert [(a.type, a.one_line) for a in w.new_addresses] == [("", "9 Elm St, St. Louis, MO")]
