"""Daily or weekly: when a subscriber's digest is due, what a week's alerts net to, what a
weekly digest says about the days it covers, and what switching mid-week sends when.

The week used is Monday November 30 to Sunday December 6, 2026 (America/Chicago, CST).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from streams.domain.digest import Digest, build_digest
from streams.domain.digest_dates import days_span, weekly_words
from streams.domain.digest_schedule import DAILY_SCHEDULE, Schedule, ScheduleError, next_digest_at
from streams.domain.model import Alert, alert_id_for

CHICAGO = ZoneInfo("America/Chicago")
SUB = 3
MONDAY = date(2026, 11, 30)
_n = iter(range(1, 10_000))


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=CHICAGO)


def on(weekday: int) -> date:
    """The day of the test week: 0 Monday … 6 Sunday (and 7, the next Monday)."""
    return MONDAY + timedelta(days=weekday)


def proximity(kind: str, oid: str, name: str, street: str, when: datetime, revision: int) -> Alert:
    n = next(_n)
    return Alert(
        alert_id=alert_id_for("f", n),
        subscriber_id=SUB,
        offender_id=oid,
        kind=kind,
        event_id=f"ev-{n}",
        occurred_at=when.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        offender={"offender_id": oid, "name": name, "main_offense": "Sexual assault"},
        tracked_address_id=1,
        tracked_label="Home",
        tracked_one_line="1 Tracked St, St. Louis, MO 63101",
        address={
            "type": "home",
            "street": street,
            "city": "St. Louis",
            "state": "MO",
            "zip": "63101",
            "normalized": f"{street.upper()}, ST. LOUIS, MO 63101",
        },
        distance_m=200.0,
        band="within 500 ft",
        revision=revision,
    )


def lines(digest: Digest | None) -> list[tuple[str, str, str]]:
    """What the reader sees: (in|out, name, street), in the digest's order."""
    if digest is None:
        return []
    return [(ln.direction, ln.name, ln.address.split(",")[0]) for p in digest.places for ln in p.lines]


# --- when a digest is due ----------------------------------------------------------------


def test_a_daily_subscriber_is_due_every_day_a_weekly_one_on_their_weekday_only() -> None:
    tuesdays = Schedule("weekly", 1)
    assert [DAILY_SCHEDULE.due_on(on(d)) for d in range(7)] == [True] * 7
    assert [tuesdays.due_on(on(d)) for d in range(8)] == [
        False,
        True,
        False,
        False,
        False,
        False,
        False,
        False,
    ]
    assert Schedule("weekly", 0).due_on(on(7))  # the next Monday


@pytest.mark.parametrize(
    ("now_local", "schedule", "want_local"),
    [
        # Monday 18:20: Monday's send is over, so next week's Monday for a Monday subscriber
        (datetime(2026, 12, 7, 18, 20), Schedule("weekly", 0), datetime(2026, 12, 14, 6, 0)),
        (datetime(2026, 12, 7, 18, 20), Schedule("weekly", 1), datetime(2026, 12, 8, 6, 0)),
        (datetime(2026, 12, 7, 18, 20), Schedule("weekly", 6), datetime(2026, 12, 13, 6, 0)),
        (datetime(2026, 12, 7, 18, 20), DAILY_SCHEDULE, datetime(2026, 12, 8, 6, 0)),
        # Monday 05:59: Monday's send has not started
        (datetime(2026, 12, 7, 5, 59), Schedule("weekly", 0), datetime(2026, 12, 7, 6, 0)),
        # across the spring clock change (Sunday March 8, 2026)
        (datetime(2026, 3, 7, 12, 0), Schedule("weekly", 6), datetime(2026, 3, 8, 6, 0)),
    ],
)
def test_the_next_digest_follows_the_subscribers_own_schedule(
    now_local: datetime, schedule: Schedule, want_local: datetime
) -> None:
    now = now_local.replace(tzinfo=CHICAGO).astimezone(UTC)
    got = next_digest_at(now, CHICAGO, (6, 0), schedule)
    assert got.astimezone(CHICAGO).replace(tzinfo=None) == want_local
    assert timedelta(0) < got - now <= timedelta(days=7)


def test_a_schedule_is_read_from_words_and_a_wrong_one_says_what_to_choose() -> None:
    assert Schedule.parse("weekly", "Tuesday") == Schedule("weekly", 1)
    assert Schedule.parse("Weekly", "6") == Schedule("weekly", 6)
    assert Schedule.parse("weekly", 0) == Schedule("weekly", 0)
    assert Schedule.parse("daily", "3") == DAILY_SCHEDULE  # the form's select comes along anyway
    assert Schedule.parse(None, None) == DAILY_SCHEDULE
    with pytest.raises(ScheduleError, match="daily or weekly"):
        Schedule.parse("monthly", None)
    for bad in ("7", "-1", "Caturday", "", None, "٣"):
        with pytest.raises(ScheduleError, match="day of the week"):
            Schedule.parse("weekly", bad)
    assert Schedule("weekly", 4).describe() == "once a week, on Fridays"
    assert DAILY_SCHEDULE.describe() == "once a day"


# --- what a weekly digest says about its days --------------------------------------------


def test_a_weekly_digest_names_its_days_and_times_in_the_service_zone() -> None:
    words = weekly_words(local(date(2026, 12, 1), 6), local(date(2026, 12, 8), 6), CHICAGO)
    assert words.span == "December 1 to December 8, 2026"
    assert words.covers == (
        "It covers the changes recorded from Tuesday, December 1, 2026, 6:00 AM CST"
        " to Tuesday, December 8, 2026, 6:00 AM CST."
    )
    # given in UTC, written in the zone: 03:00 UTC on December 29 is still December 28 in Chicago
    start = datetime(2026, 12, 29, 3, 0, tzinfo=UTC)
    assert days_span(start, datetime(2027, 1, 4, 12, 0, tzinfo=UTC), CHICAGO) == (
        "December 28, 2026 to January 4, 2027"
    )
    with pytest.raises(ValueError, match="aware"):
        weekly_words(datetime(2026, 12, 1), local(date(2026, 12, 8), 6), CHICAGO)


# --- a week, netted ------------------------------------------------------------------------


def test_a_week_nets_like_a_day() -> None:
    """Moved in Monday and out Thursday: not mentioned. In on Monday and still in: mentioned
    once. Moved out this week after last week's digest told of the move in: mentioned."""
    week = [
        proximity("moved_in", "O-1", "Ray Abbott", "800 Olive St", local(on(0), 9), 1),
        proximity("moved_in", "O-2", "Bo Field", "12 Elm St", local(on(0), 10), 1),
        proximity("moved_out", "O-1", "Ray Abbott", "800 Olive St", local(on(3), 15), 2),
        proximity("moved_out", "O-3", "Cy Told", "5 Oak St", local(on(2), 8), 4),
    ]
    assert lines(build_digest(SUB, week)) == [
        ("in", "Bo Field", "12 Elm St"),
        ("out", "Cy Told", "5 Oak St"),
    ]
    # The same week sent daily: Ray Abbott was news on Tuesday and again on Friday.
    assert lines(build_digest(SUB, week[:2])) == [
        ("in", "Bo Field", "12 Elm St"),
        ("in", "Ray Abbott", "800 Olive St"),
    ]
    assert lines(build_digest(SUB, [week[2]])) == [("out", "Ray Abbott", "800 Olive St")]


# --- switching mid-week ---------------------------------------------------------------------


def sent_by(
    recorded: list[tuple[datetime, Alert]],
    schedules: list[tuple[datetime, Schedule]],
    days: range,
) -> dict[date, list[tuple[str, str, str]]]:
    """The outbox as the service keeps it: an alert waits until a digest sends it; the run of
    each local day at 06:00 sends one to a subscriber whose schedule, as it stands then, is due."""
    out: dict[date, list[tuple[str, str, str]]] = {}
    waiting = sorted(recorded, key=lambda r: r[0])
    for d in days:
        run = local(on(d), 6)
        schedule = [s for at, s in schedules if at <= run][-1]
        if not schedule.due_on(run.date()):
            continue
        now = [a for t, a in waiting if t < run]
        waiting = [(t, a) for t, a in waiting if t >= run]
        out[run.date()] = lines(build_digest(SUB, now))
    return out


def test_daily_to_weekly_on_wednesday_repeats_nothing_and_the_rest_goes_weekly() -> None:
    start = local(on(0) - timedelta(days=7), 0)
    sundays = Schedule("weekly", 6)
    recorded = [
        (local(on(0), 9), proximity("moved_in", "O-1", "Ray Abbott", "800 Olive St", local(on(0), 9), 1)),
        (local(on(1), 9), proximity("moved_in", "O-2", "Bo Field", "12 Elm St", local(on(1), 9), 1)),
        # Wednesday, before the switch at noon and after the 06:00 digest
        (local(on(2), 8), proximity("moved_in", "O-3", "Cy Near", "5 Oak St", local(on(2), 8), 1)),
        (local(on(2), 15), proximity("moved_out", "O-2", "Bo Field", "12 Elm St", local(on(2), 15), 2)),
        (local(on(4), 9), proximity("moved_in", "O-4", "Di Late", "9 Ash St", local(on(4), 9), 1)),
        (local(on(5), 9), proximity("moved_out", "O-4", "Di Late", "9 Ash St", local(on(5), 9), 2)),
    ]
    got = sent_by(recorded, [(start, DAILY_SCHEDULE), (local(on(2), 12), sundays)], range(0, 8))
    assert got == {
        on(0): [],  # Monday 06:00: nothing recorded yet (no e-mail is sent for an empty digest)
        on(1): [("in", "Ray Abbott", "800 Olive St")],
        on(2): [("in", "Bo Field", "12 Elm St")],
        # Sunday: Wednesday to Saturday; Bo Field's move in, told Wednesday, is not repeated
        # and his move out is news; Di Late came and went within the week.
        on(6): [("in", "Cy Near", "5 Oak St"), ("out", "Bo Field", "12 Elm St")],
    }


def test_weekly_to_daily_sends_the_weeks_waiting_alerts_in_the_next_daily_digest() -> None:
    start = local(on(0) - timedelta(days=7), 0)
    fridays = Schedule("weekly", 4)
    recorded = [
        (local(on(0), 9), proximity("moved_in", "O-1", "Ray Abbott", "800 Olive St", local(on(0), 9), 1)),
        (local(on(1), 9), proximity("moved_in", "O-2", "Bo Field", "12 Elm St", local(on(1), 9), 1)),
        (local(on(1), 11), proximity("moved_out", "O-2", "Bo Field", "12 Elm St", local(on(1), 11), 2)),
        (local(on(2), 9), proximity("moved_out", "O-5", "Ed Gone", "3 Fir St", local(on(2), 9), 3)),
        (local(on(3), 9), proximity("moved_in", "O-6", "Flo Next", "7 Elm St", local(on(3), 9), 1)),
    ]
    got = sent_by(recorded, [(start, fridays), (local(on(2), 12), DAILY_SCHEDULE)], range(0, 8))
    assert got == {
        # Monday to Wednesday at 06:00: weekly on Fridays, not due; the alerts wait.
        # Thursday, the first daily digest: Monday to Wednesday, netted (Bo Field came and went)
        on(3): [("in", "Ray Abbott", "800 Olive St"), ("out", "Ed Gone", "3 Fir St")],
        on(4): [("in", "Flo Next", "7 Elm St")],
        on(5): [],
        on(6): [],
        on(7): [],
    }


def test_the_missed_weekly_cutoffs_are_the_starts_of_the_last_date_of_each_other_weekday() -> None:
    """Worked by hand: the run of Tuesday December 8, 2026 in Chicago (CST, UTC-6)."""
    from streams.domain.digest_schedule import missed_weekly_cutoffs

    chicago = ZoneInfo("America/Chicago")
    cut = missed_weekly_cutoffs(date(2026, 12, 8), chicago)
    assert 1 not in cut  # Tuesday's own subscribers are simply due
    assert cut[0] == datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # Monday Dec 7, 00:00 CST
    assert cut[2] == datetime(2026, 12, 2, 6, 0, tzinfo=UTC)  # Wednesday Dec 2
    assert cut[6] == datetime(2026, 12, 6, 6, 0, tzinfo=UTC)  # Sunday Dec 6
    # Across the change to standard time (Sunday November 1, 2026, 2 AM CDT): that Sunday began
    # at 00:00 CDT, UTC-5.
    assert missed_weekly_cutoffs(date(2026, 11, 3), chicago)[6] == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
