"""Daily and weekly digests over eight days, on a real database and a real SMTP server on loopback.

Three subscribers see the same registry week (Monday November 30 to Monday December 7, 2026,
America/Chicago): one daily, one weekly on Mondays, and one who switches from daily to weekly
on Saturdays on Wednesday and back to daily on Sunday. Every digest the server receives is
read back and compared with what each should get, worked out by hand below.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from streams.adapters import tracking_db
from streams.adapters.db import pending_alerts, subscribers
from streams.domain.digest_schedule import DAILY_SCHEDULE, Schedule
from streams.domain.model import Address
from tests.digest_reading import digest_lines, text_of
from tests.integration.conftest import proximity_alert, watch_alert
from tests.integration.test_digests import record, run

CHICAGO = ZoneInfo("America/Chicago")
FIRST = datetime(2026, 11, 30).date()  # a Monday


def at(day: int, hour: int) -> datetime:
    """Day `day` of the test (0: Monday November 30) at `hour` in Chicago, in UTC."""
    return datetime.combine(FIRST + timedelta(days=day), time(hour), tzinfo=CHICAGO).astimezone(UTC)


def near(name: str, direction: str, street: str) -> tuple[Any, ...]:
    return ("near", "Home", name, direction, street)


def watched(old: str, new: str) -> tuple[Any, ...]:
    return ("watch", "Sam Watts", False, (old,), (new,))


# What happens in the registry before each day's 06:00 run: (offender, name, kind, street).
# W is the tracked offender Sam Watts, changing addresses from 1 Old St to 2 New St and back.
WEEK: dict[int, list[tuple[str, str, str, str]]] = {
    0: [("OFF-A", "Al Early", "moved_in", "10 Elm St")],
    1: [("OFF-B", "Bo Field", "moved_in", "12 Elm St")],
    2: [("OFF-C", "Cy Brief", "moved_in", "14 Elm St"), ("OFF-A", "Al Early", "moved_out", "10 Elm St")],
    3: [("OFF-C", "Cy Brief", "moved_out", "14 Elm St")],
    4: [("OFF-D", "Di Late", "moved_in", "16 Elm St"), ("OFF-W", "", "1 Old St", "2 New St")],
    5: [("OFF-B", "Bo Field", "moved_out", "12 Elm St")],
    6: [],
    7: [("OFF-E", "Ed Last", "moved_in", "18 Elm St"), ("OFF-W", "", "2 New St", "1 Old St")],
    8: [("OFF-F", "Flo After", "moved_in", "20 Elm St")],  # after the last run: still waiting
}

A_IN, A_OUT = near("Al Early", "in", "10 Elm St"), near("Al Early", "out", "10 Elm St")
B_IN, B_OUT = near("Bo Field", "in", "12 Elm St"), near("Bo Field", "out", "12 Elm St")
C_IN, C_OUT = near("Cy Brief", "in", "14 Elm St"), near("Cy Brief", "out", "14 Elm St")
D_IN, E_IN = near("Di Late", "in", "16 Elm St"), near("Ed Last", "in", "18 Elm St")
W_THERE, W_BACK = watched("1 Old St", "2 New St"), watched("2 New St", "1 Old St")

# Per subscriber and run day: (weekly?, the lines), for each digest that should arrive.
EXPECTED: dict[str, dict[int, tuple[bool, list[tuple[Any, ...]]]]] = {
    "daily@example.org": {
        0: (False, [A_IN]),
        1: (False, [B_IN]),
        2: (False, [C_IN, A_OUT]),
        3: (False, [C_OUT]),
        4: (False, [D_IN, W_THERE]),
        5: (False, [B_OUT]),
        # day 6: nothing happened, no e-mail
        7: (False, [E_IN, W_BACK]),
    },
    "weekly@example.org": {
        0: (True, [A_IN]),
        # The week, netted: Bo Field and Cy Brief came and went, Sam Watts moved and moved
        # back; Al Early's move in was last week's news, his move out is this week's.
        7: (True, [D_IN, E_IN, A_OUT]),
    },
    "switcher@example.org": {
        0: (False, [A_IN]),
        1: (False, [B_IN]),
        2: (False, [C_IN, A_OUT]),
        # Wednesday noon: weekly on Saturdays. Thursday's and Friday's runs send nothing.
        5: (True, [C_OUT, D_IN, W_THERE, B_OUT]),
        # Sunday noon: daily again (Sunday's run, before it, was weekly and not due).
        7: (False, [E_IN, W_BACK]),
    },
}
# Each weekly digest's words, written out by hand.
COVERS = {
    ("weekly@example.org", 0): (
        "Weekly registry notification digest, November 29 to November 30, 2026: 1 change near your"
        " tracked addresses",
        "It covers the changes recorded from Sunday, November 29, 2026, 12:00 PM CST"
        " to Monday, November 30, 2026, 6:00 AM CST.",
    ),
    ("weekly@example.org", 7): (
        "Weekly registry notification digest, November 30 to December 7, 2026: 3 changes near your"
        " tracked addresses",
        "It covers the changes recorded from Monday, November 30, 2026, 6:00 AM CST"
        " to Monday, December 7, 2026, 6:00 AM CST.",
    ),
    ("switcher@example.org", 5): (
        "Weekly registry notification digest, December 2 to December 5, 2026: 3 changes near your"
        " tracked addresses and 1 update on offenders you track",
        "It covers the changes recorded from Wednesday, December 2, 2026, 6:00 AM CST"
        " to Saturday, December 5, 2026, 6:00 AM CST.",
    ),
}
SWITCHES = {  # (day, hour in Chicago) -> the switcher's new schedule
    (2, 12): Schedule("weekly", 5),
    (6, 12): DAILY_SCHEDULE,
}


def enrolled(engine: Engine, subscribe: Any, email: str, when: datetime) -> tuple[int, int]:
    change = subscribe(email, offenders=("OFF-W",))
    with engine.begin() as conn:
        conn.execute(
            update(subscribers).where(subscribers.c.id == change.subscriber_id).values(created_at=when)
        )
    return change.subscriber_id, change.circles[0].circle_id


def springfield(street: str) -> dict[str, Any]:
    return Address(
        "home", street, "Springfield", "MO", "65806", normalized=f"{street}, SPRINGFIELD, MO 65806".upper()
    ).to_dict()


def alerts_for(sid: int, circle: int, day: int, revisions: Counter[str]) -> list[Any]:
    out = []
    for n, (oid, name, kind, street) in enumerate(WEEK[day]):
        revisions[oid] += 1
        when = (at(day, 0) - timedelta(hours=8) + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")
        if oid == "OFF-W":  # kind and street: the address before and after
            a = watch_alert(sid, oid, "Sam Watts", [], [])
            a = replace(a, old_addresses=[springfield(kind)], new_addresses=[springfield(street)])
        else:
            a = proximity_alert(sid, circle, oid, name, street, kind=kind, distance=300.0)
        out.append(replace(a, occurred_at=when, revision=revisions[oid]))
    return out


async def test_daily_weekly_and_a_switch_over_eight_days(engine: Engine, subscribe, smtp_server) -> None:
    catcher, port = smtp_server
    people = {
        email: enrolled(engine, subscribe, email, datetime(2026, 11, 29, 18, 0, tzinfo=UTC))
        for email in EXPECTED
    }
    tracking_db.set_schedule(engine, people["weekly@example.org"][0], Schedule("weekly", 0))
    revisions: dict[str, Counter[str]] = {email: Counter() for email in people}
    got: dict[str, dict[int, tuple[bool, Counter[Any], str, str, str]]] = {email: {} for email in people}

    for day in range(8):
        for email, (sid, circle) in people.items():
            record(engine, *alerts_for(sid, circle, day, revisions[email]))
        before = len(catcher.messages)
        period = (FIRST + timedelta(days=day)).isoformat()
        await run(engine, port, period=period, now=at(day, 6), zone=CHICAGO, maps=False)
        for msg in catcher.messages[before:]:
            text = text_of(msg)
            html = msg.get_body(preferencelist=("html",)).get_content()
            weekly = "This is your weekly digest" in text
            assert day not in got[msg["To"]], (msg["To"], day)  # one digest a run at most
            got[msg["To"]][day] = (weekly, digest_lines(text), str(msg["Subject"]), text, html)
        for (d, hour), schedule in SWITCHES.items():
            if d == day:
                assert at(day, hour) > at(day, 6)  # the switch comes after that day's run
                tracking_db.set_schedule(engine, people["switcher@example.org"][0], schedule)
    for email, (sid, circle) in people.items():
        record(engine, *alerts_for(sid, circle, 8, revisions[email]))

    for email, expected in EXPECTED.items():
        assert {d: (w, lines) for d, (w, lines, *_) in got[email].items()} == {
            d: (w, Counter(lines)) for d, (w, lines) in expected.items()
        }, email
        for day, (weekly, _, subject, text, html) in got[email].items():
            period = (FIRST + timedelta(days=day)).isoformat()
            if weekly:
                want_subject, covers = COVERS[(email, day)]
                assert subject == want_subject
                assert covers in " ".join(text.split()) and covers in " ".join(html.split())
                assert "You are told once a week" in " ".join(text.split())
            else:
                assert subject.startswith(f"Registry notification digest for {period}: ")
                assert "It covers the changes recorded" not in text
                assert "You are told once a day" in " ".join(text.split())
    # Nothing lost: what came after the last run waits, one alert each, for the next digest.
    with engine.connect() as conn:
        waiting = dict(
            conn.execute(
                select(pending_alerts.c.subscriber_id, func.count())
                .where(pending_alerts.c.digest_id.is_(None))
                .group_by(pending_alerts.c.subscriber_id)
            ).all()
        )
    assert waiting == {sid: 1 for sid, _ in people.values()}


def test_an_import_line_sets_the_frequency_and_a_line_without_one_keeps_the_stored_choice(
    engine: Engine,
) -> None:
    from streams.adapters import subscriber_store
    from tests.integration.conftest import imported

    def line(email: str, schedule: Schedule | None) -> Any:
        return replace(imported(email), schedule=schedule)

    def schedules() -> dict[str, Schedule]:
        with engine.connect() as conn:
            rows = conn.execute(select(subscribers.c.email, subscribers.c.id)).all()
        return {email: tracking_db.schedule(engine, sid) for email, sid in rows}

    thursday, sunday = Schedule("weekly", 3), Schedule("weekly", 6)
    # One at a time (a block naming an e-mail twice) and set-wise (a block), the same rule.
    subscriber_store.upsert_subscribers(
        engine, [line("a@example.org", thursday), line("b@example.org", None)]
    )
    subscriber_store.upsert_subscriber(engine, line("c@example.org", sunday))
    assert schedules() == {
        "a@example.org": thursday,
        "b@example.org": DAILY_SCHEDULE,
        "c@example.org": sunday,
    }
    subscriber_store.upsert_subscribers(
        engine,
        [line("a@example.org", None), line("b@example.org", sunday), line("c@example.org", DAILY_SCHEDULE)],
    )
    subscriber_store.upsert_subscribers(engine, [line("a@example.org", None), line("a@example.org", None)])
    assert schedules() == {
        "a@example.org": thursday,
        "b@example.org": sunday,
        "c@example.org": DAILY_SCHEDULE,
    }


def recorded_at(engine: Engine, sid: int, when: datetime) -> None:
    """The subscriber's waiting alerts as if stored at `when` (the store stamps the real clock)."""
    with engine.begin() as conn:
        conn.execute(
            update(pending_alerts)
            .where(pending_alerts.c.subscriber_id == sid, pending_alerts.c.digest_id.is_(None))
            .values(created_at=when)
        )


async def test_a_weekly_digest_whose_day_had_no_run_goes_out_the_next_day_not_a_week_later(
    engine: Engine, subscribe, smtp_server
) -> None:
    """Mondays' subscriber: an alert stored on Sunday waits for Monday's run; the service is
    down all Monday, so Tuesday's run sends it (days 6, 7, 8: Sunday Dec 6 to Tuesday Dec 8).
    An alert stored after a Monday that did run waits for the next Monday, as before."""
    catcher, port = smtp_server
    late, circle = enrolled(engine, subscribe, "late@example.org", datetime(2026, 11, 29, 18, 0, tzinfo=UTC))
    kept, kept_circle = enrolled(
        engine, subscribe, "kept@example.org", datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    )
    for sid in (late, kept):
        tracking_db.set_schedule(engine, sid, Schedule("weekly", 0))

    # Sunday noon: one alert each. Monday's run happens for nobody (the service is down).
    record(engine, proximity_alert(late, circle, "OFF-1", "Lena Late", "1 Elm St", distance=300.0))
    recorded_at(engine, late, at(6, 12))
    # `kept`'s alert is stored Monday noon: after Monday began, so had Monday's run happened
    # it might have come after it; it is next Monday's.
    record(engine, proximity_alert(kept, kept_circle, "OFF-2", "Kim Kept", "2 Elm St", distance=300.0))
    recorded_at(engine, kept, at(7, 12))

    # Tuesday's run: `late` missed Monday's run and is sent now; `kept` waits.
    await run(
        engine, port, period=(FIRST + timedelta(days=8)).isoformat(), now=at(8, 6), zone=CHICAGO, maps=False
    )
    assert [m["To"] for m in catcher.messages] == ["late@example.org"]
    assert "Lena Late" in text_of(catcher.messages[0])
    # Wednesday's run: nothing more for either (late's digest is done; kept waits).
    await run(
        engine, port, period=(FIRST + timedelta(days=9)).isoformat(), now=at(9, 6), zone=CHICAGO, maps=False
    )
    assert len(catcher.messages) == 1
    # The next Monday: kept's alert goes out.
    await run(
        engine, port, period=(FIRST + timedelta(days=14)).isoformat(), now=at(14, 6), zone=CHICAGO, maps=False
    )
    assert [m["To"] for m in catcher.messages] == ["late@example.org", "kept@example.org"]
    assert "Kim Kept" in text_of(catcher.messages[1])
