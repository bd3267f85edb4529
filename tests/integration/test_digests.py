"""Daily digests end to end on a real database and a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from streams.adapters import digest_store, repository
from streams.adapters.db import digests, subscribers
from streams.adapters.mail import SmtpSender
from streams.adapters.maildir import MaildirSender
from streams.services.digests import DigestRunReport, send_due_digests
from tests.conftest import MailCatcher
from tests.integration.conftest import (
    imported_address,
    offender_state,
    proximity_alert,
    watch_alert,
)

PUBLIC = "https://notify.example.test"
FROM = "Registry Notifications <no-reply@notify.example.test>"
PERIOD = "2026-11-20"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def unsubscribe_url(subscriber_id: int, link_key: str | None) -> str:
    return f"{PUBLIC}/unsubscribe/{subscriber_id}.{link_key}.signature"


def link_key_of(engine: Engine, subscriber_id: int) -> str:
    with engine.connect() as conn:
        key = conn.execute(
            select(subscribers.c.link_key).where(subscribers.c.id == subscriber_id)
        ).scalar_one()
    assert key  # every subscriber has one
    return key


async def run(
    engine: Engine, port: int, *, period: str = PERIOD, now: datetime = NOW, **kw: Any
) -> DigestRunReport:
    sender = SmtpSender("127.0.0.1", port, starttls=False, username=None, password=None, timeout=5)
    return await send_due_digests(
        engine,
        sender,
        period=period,
        from_addr=FROM,
        public_url=PUBLIC,
        unsubscribe_url_for=unsubscribe_url,
        now=now,
        **kw,
    )


def bodies(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def record(engine: Engine, *alerts: Any) -> None:
    repository.record_alerts(engine, list(alerts))


def digest_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(digests).order_by(digests.c.id)).all()


@pytest.fixture
def parent(subscribe) -> tuple[int, int]:
    change = subscribe("Parent@Example.org", offenders=("OFF-W",))
    return change.subscriber_id, change.circles[0].circle_id


async def test_one_digest_with_moved_in_moved_out_and_watch_rows(engine, subscribe, smtp_server) -> None:
    catcher, port = smtp_server
    change = subscribe(
        "Parent@Example.org",
        addresses=(
            imported_address("Home"),
            imported_address("<script>alert('x')</script> & Co", street="5600 Clayton Ave", zip_="63110"),
        ),
        offenders=("OFF-W",),
    )
    sid = change.subscriber_id
    home, odd = (c.circle_id for c in change.circles)
    subscribe("neighbour@example.org")  # nothing for them today
    for oid, first, last in (
        ("OFF-1", "Ray", "Abbott"),
        ("OFF-OUT", "Lee", "Outlaw"),
        ("OFF-W", "Sam", "Watts"),
    ):
        repository.save_offender_state(engine, offender_state(oid, 2, first=first, last=last))
    record(
        engine,
        proximity_alert(
            sid, home, "OFF-1", "Ray Abbott", "800 Olive St", distance=800, offense="Sexual assault"
        ),
        proximity_alert(sid, home, "OFF-OUT", "Lee Outlaw", "20 Near St", kind="moved_out", distance=350),
        proximity_alert(
            sid,
            odd,
            "OFF-1",
            "Ray Abbott",
            "800 Olive St",
            distance=3000,
            label="<script>alert('x')</script> & Co",
        ),
        watch_alert(sid, "OFF-W", "Sam Watts", ["400 S Campbell Ave"], ["2200 N Glenstone Ave"]),
    )

    report = await run(engine, port)

    assert report == DigestRunReport(sent=1)
    assert len(catcher.messages) == 1
    msg = catcher.messages[0]
    assert catcher.envelopes[0] == ("no-reply@notify.example.test", ["parent@example.org"])
    assert msg["To"] == "parent@example.org"
    assert msg["Subject"] == (
        f"Registry notification digest for {PERIOD}: 3 changes near your tracked addresses"
        " and 1 update on offenders you track"
    )
    mailed_unsubscribe = unsubscribe_url(sid, link_key_of(engine, sid))  # the digest binds the key
    assert msg["List-Unsubscribe"] == f"<{mailed_unsubscribe}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<digest-\d+\.[0-9a-f]+@notify\.example\.test>", msg["Message-ID"])
    assert msg["Date"].datetime == NOW
    assert msg.get_content_type() == "multipart/alternative"
    [row] = digest_rows(engine)
    assert (row.status, row.message_id, row.attempts, row.period) == ("sent", msg["Message-ID"], 1, PERIOD)

    text, html = bodies(msg)
    for body in (text, html):
        assert "Ray Abbott" in body and "800 Olive St, St. Louis, MO 63101" in body
        assert "Sexual assault" in body and "within 1/2 mi" in body and "within 2 mi" in body
        assert "Lee Outlaw" in body and "20 Near St" in body and "was within 1/4 mi" in body
        assert "Sam Watts" in body and "400 S Campbell Ave" in body and "2200 N Glenstone Ave" in body
        assert f"{PUBLIC}/login" in body and mailed_unsubscribe in body
        assert "handle-" not in body  # online identifiers never appear
        assert "Parent@Example.org" not in body
    assert f"{PUBLIC}/offenders/OFF-1" in text and f"{PUBLIC}/offenders/OFF-W" in text
    assert f"{PUBLIC}/map?tracked={home}&offender=OFF-1" in text
    assert f"{PUBLIC}/map?tracked={home}&amp;offender=OFF-OUT" in html
    # Moved in is listed before moved out; the watch section comes last.
    assert text.index("Ray Abbott") < text.index("Lee Outlaw") < text.index("Sam Watts")
    # The tracked labels are sorted; the user's label is text, never markup.
    assert text.index("Tracked address: <script>alert('x')</script> & Co") < text.index(
        "Tracked address: Home"
    )
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in html
    assert '<th scope="col"' in html and '<th scope="row"' in html


async def test_running_twice_mails_once_and_a_period_is_never_mailed_twice(
    engine, parent, smtp_server
) -> None:
    catcher, port = smtp_server
    sid, tid = parent
    record(engine, proximity_alert(sid, tid, "OFF-1", "Ray Abbott", "800 Olive St"))

    assert (await run(engine, port)).sent == 1
    assert (await run(engine, port)) == DigestRunReport()
    # News arriving after today's digest waits for tomorrow's, even if the command runs again.
    record(engine, proximity_alert(sid, tid, "OFF-2", "Bob Late", "900 Olive St"))
    assert (await run(engine, port)) == DigestRunReport(skipped_already_sent=1)
    assert len(catcher.messages) == 1

    assert (await run(engine, port, period="2026-11-21", now=NOW + timedelta(days=1))).sent == 1
    assert len(catcher.messages) == 2
    text, _ = bodies(catcher.messages[1])
    assert "Bob Late" in text and "Ray Abbott" not in text


async def test_concurrent_runs_mail_once(engine, subscribe, smtp_server) -> None:
    catcher, port = smtp_server
    for n in range(3):
        change = subscribe(f"s{n}@example.org")
        record(
            engine,
            proximity_alert(
                change.subscriber_id, change.circles[0].circle_id, "OFF-1", "Ray Abbott", "800 Olive St"
            ),
        )
    reports = await asyncio.gather(run(engine, port), run(engine, port), run(engine, port))
    assert sum(r.sent for r in reports) == 3
    assert sorted(rcpt for _, [rcpt] in catcher.envelopes) == [f"s{n}@example.org" for n in range(3)]


async def test_a_digest_left_claimed_by_a_dead_worker_is_sent_once(engine, parent, smtp_server) -> None:
    catcher, port = smtp_server
    sid, tid = parent
    record(engine, proximity_alert(sid, tid, "OFF-1", "Ray Abbott", "800 Olive St"))
    # A worker claimed the digest and died before sending it.
    assert digest_store.claim_digest(engine, sid, PERIOD, now=NOW, message_domain="notify.example.test")

    # Another run soon after leaves it alone: the claim could still be in flight.
    assert (await run(engine, port, now=NOW + timedelta(minutes=5))) == DigestRunReport()
    assert catcher.messages == []

    later = NOW + timedelta(hours=1)
    assert (await run(engine, port, now=later)).sent == 1
    assert (await run(engine, port, now=later + timedelta(hours=2))) == DigestRunReport()
    assert len(catcher.messages) == 1
    assert "Ray Abbott" in bodies(catcher.messages[0])[0]
    [row] = digest_rows(engine)
    assert (row.status, row.period) == ("sent", PERIOD)


async def test_offender_removed_before_the_digest_disappears_from_it(engine, subscribe, smtp_server) -> None:
    catcher, port = smtp_server
    a = subscribe("a@example.org")
    b = subscribe("b@example.org")
    a_sid, a_tid = a.subscriber_id, a.circles[0].circle_id
    b_sid, b_tid = b.subscriber_id, b.circles[0].circle_id
    record(
        engine,
        proximity_alert(a_sid, a_tid, "OFF-R", "Ron Removed", "40 Near St"),
        proximity_alert(a_sid, a_tid, "OFF-1", "Ray Abbott", "800 Olive St"),
        proximity_alert(b_sid, b_tid, "OFF-R", "Ron Removed", "40 Near St"),
    )
    repository.save_offender_state(
        engine, offender_state("OFF-R", 2, first="Ron", last="Removed", removed=True)
    )

    report = await run(engine, port)

    # b had nothing else: no e-mail at all.
    assert report == DigestRunReport(sent=1, empty=1)
    assert [env[1] for env in catcher.envelopes] == [["a@example.org"]]
    for body in bodies(catcher.messages[0]):
        assert "Ray Abbott" in body
        assert "Ron" not in body and "Removed" not in body and "40 Near St" not in body
    assert catcher.messages[0]["Subject"].endswith(": 1 change near your tracked addresses")
    assert {r.status for r in digest_rows(engine)} == {"sent", "empty"}


async def test_a_watcher_hears_that_a_tracked_offender_left_the_registry(engine, parent, smtp_server) -> None:
    catcher, port = smtp_server
    sid, tid = parent
    record(
        engine,
        proximity_alert(sid, tid, "OFF-W", "Sam Watts", "40 Near St"),
        watch_alert(sid, "OFF-W", "Sam Watts", ["40 Near St"], [], removed=True),
    )
    repository.save_offender_state(
        engine, offender_state("OFF-W", 2, first="Sam", last="Watts", removed=True)
    )
    repository.purge_offender_alerts(engine, "OFF-W")

    assert (await run(engine, port)).sent == 1
    text, html = bodies(catcher.messages[0])
    for body in (text, html):
        assert "Sam Watts" in body and "No longer appears on the public registry" in body
        assert "40 Near St" not in body and "Tracked address" not in body


async def test_juvenile_flag_before_the_digest_drops_everything_about_the_offender(
    engine, parent, smtp_server
) -> None:
    catcher, port = smtp_server
    sid, tid = parent
    record(
        engine,
        proximity_alert(sid, tid, "OFF-J", "Jay Junior", "30 Near St"),
        watch_alert(sid, "OFF-J", "Jay Junior", ["30 Near St"], [], removed=True),
        proximity_alert(sid, tid, "OFF-1", "Ray Abbott", "800 Olive St"),
    )
    repository.save_offender_state(
        engine, offender_state("OFF-J", 2, first="Jay", last="Junior", juvenile=True)
    )

    assert (await run(engine, port)).sent == 1
    for body in bodies(catcher.messages[0]):
        assert "Ray Abbott" in body
        assert "Jay" not in body and "Junior" not in body and "30 Near St" not in body


async def test_unconfirmed_or_unsubscribed_subscribers_get_nothing(engine, subscribe, smtp_server) -> None:
    catcher, port = smtp_server
    pending = subscribe("pending@example.org", confirmed=False)
    gone = subscribe("gone@example.org")
    for change in (pending, gone):
        record(
            engine,
            proximity_alert(
                change.subscriber_id, change.circles[0].circle_id, "OFF-1", "Ray Abbott", "800 Olive St"
            ),
        )
    with engine.begin() as conn:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == gone.subscriber_id)
            .values(status="unsubscribed", unsubscribed_at=NOW)
        )

    assert (await run(engine, port)) == DigestRunReport()
    assert catcher.messages == [] and digest_rows(engine) == []


async def test_nothing_to_say_sends_nothing(engine, parent, smtp_server) -> None:
    catcher, port = smtp_server
    sid, tid = parent
    assert (await run(engine, port)) == DigestRunReport()  # no alerts at all
    # Moved in and out again the same day: no net change.
    record(
        engine,
        proximity_alert(sid, tid, "OFF-1", "Ray Abbott", "800 Olive St"),
        proximity_alert(sid, tid, "OFF-1", "Ray Abbott", "800 Olive St", kind="moved_out"),
    )
    assert (await run(engine, port)) == DigestRunReport(empty=1)
    assert catcher.messages == []
    assert [r.status for r in digest_rows(engine)] == ["empty"]


class FlakyCatcher(MailCatcher):
    """Says "try again later" to the first `failures` messages, then accepts."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        if self.failures > 0:
            self.failures -= 1
            return "451 4.3.0 Mailbox of parent@example.org busy, try again later"
        return await super().handle_DATA(server, session, envelope)


class RefusingCatcher(MailCatcher):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        return f"550 5.1.1 <{address}>: no such user here"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve() -> Iterator[Any]:
    controllers: list[Controller] = []

    def start(handler: MailCatcher) -> int:
        port = _free_port()
        c = Controller(handler, hostname="127.0.0.1", port=port)
        c.start()
        controllers.append(c)
        return port

    yield start
    for c in controllers:
        c.stop()


async def test_temporary_smtp_failure_then_success_mails_exactly_once(engine, parent, serve) -> None:
    sid, tid = parent
    record(engine, proximity_alert(sid, tid, "OFF-1", "Ray Abbott", "800 Olive St"))
    catcher = FlakyCatcher(failures=1)
    port = serve(catcher)

    assert (await run(engine, port)) == DigestRunReport(deferred=1)
    assert catcher.messages == []
    [row] = digest_rows(engine)
    assert (row.status, row.attempts) == ("claimed", 1)
    assert row.last_error.startswith("SMTPDataError: 451") and "@" not in row.last_error

    assert (await run(engine, port, now=NOW + timedelta(minutes=10))) == DigestRunReport(sent=1)
    assert (await run(engine, port, now=NOW + timedelta(minutes=20))) == DigestRunReport()
    assert len(catcher.messages) == 1
    [row] = digest_rows(engine)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_unreachable_server_is_a_temporary_failure(engine, parent, smtp_server) -> None:
    catcher, port = smtp_server
    sid, tid = parent
    record(engine, proximity_alert(sid, tid, "OFF-1", "Ray Abbott", "800 Olive St"))
    assert (await run(engine, _free_port())) == DigestRunReport(deferred=1)
    [row] = digest_rows(engine)
    assert (row.status, row.attempts, row.claimed_at) == ("claimed", 1, None)
    assert row.last_error == "connection: SMTPConnectError"
    # Not retried before its backoff is over, even with the server back.
    assert (await run(engine, port, now=NOW + timedelta(minutes=7))) == DigestRunReport()
    assert (await run(engine, port, now=NOW + timedelta(minutes=10))) == DigestRunReport(sent=1)
    assert len(catcher.messages) == 1


def bounce_record(engine: Engine, sid: int) -> tuple[int, str | None, bool]:
    with engine.connect() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.id == sid)).one()
    return row.mail_bounces, row.last_bounce_reason, row.mail_suspended_at is not None


async def test_permanent_refusal_fails_the_digest_for_good(engine, parent, smtp_server, serve) -> None:
    sid, tid = parent
    record(engine, proximity_alert(sid, tid, "OFF-1", "Ray Abbott", "800 Olive St"))
    assert (await run(engine, serve(RefusingCatcher()))) == DigestRunReport(failed=1)
    [row] = digest_rows(engine)
    assert row.status == "failed" and "550" in row.last_error and "@" not in row.last_error
    bounces, reason, suspended = bounce_record(engine, sid)
    assert (bounces, suspended) == (1, False)
    assert reason == "recipient refused: 550 5.1.1 <[email]>: no such user here"

    # The period is done: never retried, however often the command runs that day.
    catcher, port = smtp_server
    assert (await run(engine, port, now=NOW + timedelta(hours=2))) == DigestRunReport(skipped_already_sent=1)
    assert catcher.messages == []

    # Its alert is not lost: the next day's digest carries it, and a delivery clears the record.
    record(engine, proximity_alert(sid, tid, "OFF-2", "Bob Late", "900 Olive St"))
    assert (await run(engine, port, period="2026-11-21", now=NOW + timedelta(days=1))) == DigestRunReport(
        sent=1
    )
    text, _ = bodies(catcher.messages[0])
    assert "Ray Abbott" in text and "Bob Late" in text
    assert bounce_record(engine, sid)[0] == 0


async def test_maildir_sink_writes_a_message_id_once(engine, parent, tmp_path: Path) -> None:
    sid, tid = parent
    record(engine, proximity_alert(sid, tid, "OFF-1", "Ray Abbott", "800 Olive St"))
    box = tmp_path / "maildir"
    report = await send_due_digests(
        engine,
        MaildirSender(box),
        period=PERIOD,
        from_addr=FROM,
        public_url=PUBLIC,
        unsubscribe_url_for=unsubscribe_url,
        now=NOW,
    )
    assert report.sent == 1
    [path] = list((box / "new").iterdir())
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert "Ray Abbott" in bodies(msg)[0]  # type: ignore[arg-type]

    # The same message again (a retry after a crash), from this sender or a new one.
    await MaildirSender(box).send(msg)  # type: ignore[arg-type]
    again = MaildirSender(box)
    await again.send(msg)  # type: ignore[arg-type]
    await again.send(msg)  # type: ignore[arg-type]
    assert len(list((box / "new").iterdir())) == 1
