"""SMTP faults: the mail server down for a whole digest run, "try later" answers, hard bounces.

A real aiosmtpd server on loopback plays each fault; the real `send_due_digests` runs against
a real database with an injected `now`, stepping through backoff times without sleeping. Every
test counts what the server received: each alert in exactly one delivered e-mail (duplicates = 0,
lost = 0), and prints that count.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from streams.adapters import accounts, digest_store, ops_db, repository, subscriber_store
from streams.adapters.db import digests, pending_alerts, subscribers
from streams.adapters.mail import SmtpSender
from streams.domain.retry_policy import GIVE_UP_AFTER, RETRY_FIRST, RETRY_JITTER, RETRY_MAX, retry_delay
from streams.services.digests import (
    DEFAULT_SUSPEND_AFTER,
    DigestRunReport,
    send_due_digests,
)
from streams.settings import load_settings
from tests.counts import report
from tests.faults.conftest import SmtpFaults
from tests.integration.conftest import imported, proximity_alert
from tests.web.conftest import Site, open_site, sent_mail

PUBLIC = "https://notify.example.test"
FROM = "Registry Notifications <no-reply@notify.example.test>"
DAY0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 06:00 in America/Chicago
TICK = timedelta(minutes=10)  # the worker's retry timer
N = DEFAULT_SUSPEND_AFTER
PW = "plum orchard lantern"


def period(day: int) -> str:
    return (date(2026, 11, 20) + timedelta(days=day)).isoformat()


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def digest_run(
    engine: Engine, faults: SmtpFaults, *, now: datetime, day: int = 0, claim_new: bool = True
) -> DigestRunReport:
    """What the worker runs: the daily send (claim_new) or the 10-minute retry tick."""
    sender = SmtpSender("127.0.0.1", faults.port, starttls=False, username=None, password=None, timeout=5)
    return await send_due_digests(
        engine,
        sender,
        period=period(day),
        from_addr=FROM,
        public_url=PUBLIC,
        unsubscribe_url_for=lambda sid, key: f"{PUBLIC}/unsubscribe/{sid}.{key}.sig",
        now=now,
        claim_new=claim_new,
        suspend_after=N,
    )


@dataclass
class Subscriber:
    sid: int
    tid: int
    email: str


def enroll(engine: Engine, *emails: str) -> list[Subscriber]:
    out = []
    for e in emails:
        change = subscriber_store.upsert_subscriber(engine, imported(e))
        out.append(Subscriber(change.subscriber_id, change.circles[0].circle_id, e))
    return out


def news(engine: Engine, subs: list[Subscriber], day: int, expected: dict[int, list[str]]) -> None:
    """One registry change near each subscriber; its offender's name is the token to count."""
    alerts = []
    for i, s in enumerate(subs):
        name = f"Pat Case-{i:02d}-{day:02d}"
        alerts.append(proximity_alert(s.sid, s.tid, f"OFF-{i}-{day}", name, f"{100 + day} Olive St"))
        expected.setdefault(s.sid, []).append(name)
    assert repository.record_alerts(engine, alerts) == len(alerts)


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(digests).order_by(digests.c.id)).all()


def subscriber_row(engine: Engine, sid: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(subscribers).where(subscribers.c.id == sid)).one()


def waiting_alerts(engine: Engine, sid: int) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(pending_alerts)
            .where(pending_alerts.c.subscriber_id == sid, pending_alerts.c.digest_id.is_(None))
        ).scalar_one()


def assert_backoff(delay: timedelta, failures: int) -> None:
    full = min(RETRY_FIRST * 2 ** (failures - 1), RETRY_MAX)
    assert full * (1 - RETRY_JITTER) <= delay <= full, (failures, delay)


def assert_no_address_stored(engine: Engine) -> None:
    with engine.connect() as conn:
        stored = [r.last_error for r in conn.execute(select(digests.c.last_error))]
        stored += [r.last_bounce_reason for r in conn.execute(select(subscribers.c.last_bounce_reason))]
    assert not [s for s in stored if s and "@" in s]


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def digest_mails(faults: SmtpFaults) -> list[Any]:
    """The digests the server accepted (the site's account e-mails go through it too)."""
    return [m for m in faults.handler.messages if str(m["Message-ID"]).startswith("<digest-")]


def digests_received(faults: SmtpFaults) -> Counter[str]:
    return Counter(str(m["To"]).lower() for m in digest_mails(faults))


@dataclass
class Tally:
    emails: int
    duplicates: int
    lost: int
    unexpected: int


def tally(
    faults: SmtpFaults,
    engine: Engine,
    expected: dict[int, list[str]],
    delivered_to: dict[int, str] | None = None,
) -> Tally:
    """Each expected alert must be in exactly one digest e-mail to its subscriber's address."""
    with engine.connect() as conn:
        address = dict(conn.execute(select(subscribers.c.id, subscribers.c.email)).all())
    address.update(delivered_to or {})
    mails = digest_mails(faults)
    by_id = Counter(str(m["Message-ID"]) for m in mails)
    seen: Counter[tuple[str, str]] = Counter()
    for m in mails:
        text = m.get_body(preferencelist=("plain",)).get_content()
        for token in set(re.findall(r"Pat Case-\d\d-\d\d", text)):
            seen[(str(m["To"]).lower(), token)] += 1
    wanted = {(address[sid], token) for sid, tokens in expected.items() for token in tokens}
    return Tally(
        emails=len(mails),
        duplicates=sum(n - 1 for n in by_id.values()) + sum(n - 1 for k, n in seen.items() if k in wanted),
        lost=sum(1 for k in wanted if seen[k] == 0),
        unexpected=sum(n for k, n in seen.items() if k not in wanted),
    )


def report_line(scenario: str, engine: Engine, t: Tally, **counts: int) -> None:
    extra = "".join(f", {k}={v}" for k, v in counts.items())
    report(
        f"SMTP faults ({scenario}, {engine.dialect.name}): digests={len(rows(engine))}, "
        f"e-mails={t.emails}{extra}, duplicates={t.duplicates}, lost={t.lost}"
    )


def assert_no_address_logged(capsys: pytest.CaptureFixture[str], subs: list[Subscriber]) -> None:
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "digest" in logged  # the run did log
    for s in subs:
        assert s.email not in logged.lower()


# --- the mail server down for the whole run, then back -----------------------------------


@pytest.mark.parametrize("outage", ["port closed", "421 at greeting"])
async def test_smtp_down_for_a_whole_run_then_back_delivers_each_digest_once(
    engine, smtp_faults, outage, capsys
) -> None:
    subs = enroll(engine, *(f"reader{n:02d}@example.org" for n in range(12)))
    expected: dict[int, list[str]] = {}
    news(engine, subs, 0, expected)
    smtp_faults.answer_421() if outage == "421 at greeting" else smtp_faults.down()

    # 06:00: the first digest finds the server down; the other eleven are not even tried.
    assert await digest_run(engine, smtp_faults, now=DAY0) == DigestRunReport(deferred=12)
    claimed = rows(engine)
    assert {(r.status, r.claimed_at) for r in claimed} == {("claimed", None)}
    assert sorted(r.attempts for r in claimed) == [0] * 11 + [1]
    [retry_at] = {utc(r.next_attempt_at) for r in claimed}
    assert_backoff(retry_at - DAY0, failures=1)
    message_ids = {r.id: r.message_id for r in claimed}
    if outage == "421 at greeting":
        assert smtp_faults.connections_421 == 1

    # Three hours of outage under the 10-minute retry timer: one digest probes the server
    # when the backoff is over, the rest wait with it; a tick before then does nothing.
    tick, probes = DAY0, 1
    while tick < DAY0 + timedelta(hours=3):
        tick += TICK
        due = any(utc(r.next_attempt_at) <= tick for r in rows(engine))
        report = await digest_run(engine, smtp_faults, now=tick, claim_new=False)
        if not due:
            assert report == DigestRunReport()
            continue
        probes += 1
        assert report == DigestRunReport(deferred=12)
        after = rows(engine)
        probe = max(after, key=lambda r: r.attempts)
        assert sorted(r.attempts for r in after) == [0] * 11 + [probes]
        [retry_at] = {utc(r.next_attempt_at) for r in after}
        assert_backoff(retry_at - tick, failures=probe.attempts)
    assert probes == sum(r.attempts for r in rows(engine)) <= 6  # not 18 ticks x 12 digests
    if outage == "421 at greeting":
        assert smtp_faults.connections_421 == probes
    assert smtp_faults.handler.messages == []

    # Back. The retry tick and an operator's `digest send` run at once: each digest goes once.
    smtp_faults.up()
    back = max(utc(r.next_attempt_at) for r in rows(engine))
    a, b = await asyncio.gather(
        digest_run(engine, smtp_faults, now=back, claim_new=False),
        digest_run(engine, smtp_faults, now=back),
    )
    assert a.sent + b.sent == 12 and a.deferred + b.deferred + a.failed + b.failed == 0
    for later in (back + TICK, back + timedelta(hours=6)):
        assert (await digest_run(engine, smtp_faults, now=later, claim_new=False)) == DigestRunReport()
    assert (await digest_run(engine, smtp_faults, now=back + TICK)) == DigestRunReport()

    done = rows(engine)
    assert {r.status for r in done} == {"sent"}
    assert {r.id: r.message_id for r in done} == message_ids  # the same Message-ID on every try
    assert sorted(str(m["Message-ID"]) for m in smtp_faults.handler.messages) == sorted(message_ids.values())
    assert_no_address_stored(engine)
    assert_no_address_logged(capsys, subs)
    t = tally(smtp_faults, engine, expected)
    assert (t.emails, t.duplicates, t.lost, t.unexpected) == (12, 0, 0, 0)
    assert set(digests_received(smtp_faults).values()) == {1}
    report_line(f"down for a whole run, {outage}", engine, t, deferrals=12, probes=probes)


# --- 4xx, then 2xx -----------------------------------------------------------------------


async def test_4xx_then_2xx_retries_with_backoff_and_delivers_once(engine, smtp_faults, capsys) -> None:
    smtp_faults.up()
    subs = enroll(engine, "greylisted@example.org", "first@example.org", "second@example.org")
    expected: dict[int, list[str]] = {}
    news(engine, subs, 0, expected)
    grey = subs[0].email
    k = 3
    smtp_faults.handler.later[grey] = k

    # One recipient's "try later" holds nobody else up.
    assert await digest_run(engine, smtp_faults, now=DAY0) == DigestRunReport(sent=2, deferred=1)
    assert digests_received(smtp_faults) == Counter({"first@example.org": 1, "second@example.org": 1})

    last_try = DAY0
    for failures in range(1, k + 1):
        [row] = [r for r in rows(engine) if r.subscriber_id == subs[0].sid]
        assert (row.status, row.attempts, row.claimed_at) == ("claimed", failures, None)
        assert row.last_error.startswith("recipient refused: 450 4.2.0 <[email]>")
        due = utc(row.next_attempt_at)
        assert_backoff(due - last_try, failures)
        tried = smtp_faults.handler.rcpt_attempts[grey]
        # A second before it is due: not retried, the server is not even contacted.
        assert (
            await digest_run(engine, smtp_faults, now=due - timedelta(seconds=1), claim_new=False)
            == DigestRunReport()
        )
        assert smtp_faults.handler.rcpt_attempts[grey] == tried
        report = await digest_run(engine, smtp_faults, now=due, claim_new=False)
        assert smtp_faults.handler.rcpt_attempts[grey] == tried + 1
        assert report == (DigestRunReport(deferred=1) if failures < k else DigestRunReport(sent=1))
        last_try = due

    [row] = [r for r in rows(engine) if r.subscriber_id == subs[0].sid]
    assert (row.status, row.attempts, row.last_error) == ("sent", k + 1, None)
    [mail] = [m for m in smtp_faults.handler.messages if m["To"] == grey]
    assert mail["Message-ID"] == row.message_id
    # Later ticks and the next daily run send nothing more.
    for later in (last_try + TICK, last_try + timedelta(hours=3)):
        assert await digest_run(engine, smtp_faults, now=later, claim_new=False) == DigestRunReport()
    assert await digest_run(engine, smtp_faults, now=DAY0 + timedelta(hours=20)) == DigestRunReport()
    assert subscriber_row(engine, subs[0].sid).mail_bounces == 0  # "later" is not a bounce

    assert_no_address_stored(engine)
    assert_no_address_logged(capsys, subs)
    t = tally(smtp_faults, engine, expected)
    assert (t.emails, t.duplicates, t.lost, t.unexpected) == (3, 0, 0, 0)
    report_line(
        "4xx then 2xx", engine, t, deferrals=k, rcpt_attempts=sum(smtp_faults.handler.rcpt_attempts.values())
    )


# --- 5xx for some recipients: bounces, suspension, the site, resuming --------------------


async def log_in(site: Site, email: str) -> str:
    await site.get("/login")
    status, page = await site.post("/login", {"email": email, "password": PW})
    assert status == 200 and "My notifications" in page, page
    return page


def set_password(engine: Engine, sid: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == sid)
            .values(password_hash=accounts.hash_password(PW))
        )


BANNER = f"Mail to your address has been refused {N} times in a row, so we have stopped sending."


async def test_5xx_for_some_recipients_records_bounces_suspends_and_shows_it_on_the_site(
    engine, smtp_faults, tmp_path: Path, capsys
) -> None:
    smtp_faults.up()
    good1, good2, rcpt_bad, data_bad = subs = enroll(
        engine, "good1@example.org", "good2@example.org", "gone@example.org", "disabled@example.org"
    )
    smtp_faults.handler.refuse_rcpt.add(rcpt_bad.email)  # 550 to RCPT
    smtp_faults.handler.refuse_data.add(data_bad.email)  # 554 to DATA
    expected: dict[int, list[str]] = {}
    bounces_before, suspensions_before = (
        metric("sor_digest_bounces_total"),
        metric("sor_mail_suspensions_total"),
    )

    # N days in a row: the others get their digest, the two are refused and recorded.
    for day in range(N):
        news(engine, subs, day, expected)
        report = await digest_run(engine, smtp_faults, now=DAY0 + timedelta(days=day), day=day)
        assert report == DigestRunReport(sent=2, failed=2, suspended=2 if day == N - 1 else 0)
        for s, code in ((rcpt_bad, "550 5.1.1"), (data_bad, "554 5.7.1")):
            row = subscriber_row(engine, s.sid)
            assert row.mail_bounces == day + 1
            assert code in row.last_bounce_reason and "@" not in row.last_bounce_reason
            assert (row.mail_suspended_at is not None) == (day == N - 1)
            # The refused digests' alerts are kept for the next one: nothing is lost.
            assert waiting_alerts(engine, s.sid) == day + 1
    assert metric("sor_digest_bounces_total") - bounces_before == 2 * N
    assert metric("sor_mail_suspensions_total") - suspensions_before == 2
    failed = [r for r in rows(engine) if r.status == "failed"]
    assert len(failed) == 2 * N and all("@" not in r.last_error for r in failed)
    assert smtp_faults.handler.rcpt_attempts[rcpt_bad.email] == N
    assert smtp_faults.handler.data_attempts[data_bad.email] == N

    # Suspended: no more digests to them (not even tried), though their alerts are still recorded.
    news(engine, subs, N, expected)
    assert await digest_run(engine, smtp_faults, now=DAY0 + timedelta(days=N), day=N) == DigestRunReport(
        sent=2
    )
    assert smtp_faults.handler.rcpt_attempts[rcpt_bad.email] == N
    assert smtp_faults.handler.data_attempts[data_bad.email] == N
    assert digest_store.digest_status(engine, rcpt_bad.sid, period(N)) is None
    assert waiting_alerts(engine, rcpt_bad.sid) == waiting_alerts(engine, data_bad.sid) == N + 1
    sizes = ops_db.table_sizes(engine)
    assert (sizes.subscribers_mail_suspended, sizes.subscribers_active) == (2, 4)  # for operators

    for s in subs:
        set_password(engine, s.sid)
    async with open_site(engine, smtp_faults.port, smtp_faults.handler, tmp_path) as site:
        # The suspended subscriber logs in and is told at once, on both pages.
        page = await log_in(site, rcpt_bad.email)
        assert BANNER in page and "Fix or confirm your address to resume" in page
        assert "550 5.1.1 &lt;[email]&gt;: Recipient address rejected: User unknown" in page
        status, account_page = await site.get("/account")
        assert status == 200 and BANNER in account_page and "resume my e-mails" in account_page
        # The mailbox is fixed; the subscriber confirms the address works and resumes.
        smtp_faults.handler.refuse_rcpt.discard(rcpt_bad.email)
        status, page = await site.post("/account/mail/resume")
        assert status == 200 and "Your alert e-mails are on again" in page and BANNER not in page
        assert subscriber_row(engine, rcpt_bad.sid).mail_suspended_at is None
        await site.post("/logout")

        # Someone whose mail goes through sees no banner.
        page = await log_in(site, good1.email)
        assert "stopped sending" not in page and "refused" not in page
        await site.post("/logout")

        # The other one moves to a new address instead: confirmed by a link mailed there.
        page = await log_in(site, data_bad.email)
        assert BANNER in page
        await site.get("/account")
        status, page = await site.post(
            "/account/email",
            {"new_email": "renewed@example.org", "new_email2": "renewed@example.org", "email_password": PW},
        )
        assert status == 200 and "Check your new address" in page
        [to_new] = [m for m in await sent_mail(site) if m["To"] == "renewed@example.org"]
        link = re.search(
            r"https?://\S+(/email/confirm/\S+)", to_new.get_body(("plain",)).get_content()
        ).group(1)
        status, page = await site.post(link)
        assert status == 200 and "alerts now go to the new address" in page and BANNER not in page
        row = subscriber_row(engine, data_bad.sid)
        assert (row.email, row.mail_bounces, row.mail_suspended_at, row.last_bounce_reason) == (
            "renewed@example.org",
            0,
            None,
            None,
        )
    assert ops_db.table_sizes(engine).subscribers_mail_suspended == 0

    # The next digest brings each of them everything recorded since the first refusal, once.
    news(engine, subs, N + 1, expected)
    assert await digest_run(
        engine, smtp_faults, now=DAY0 + timedelta(days=N + 1), day=N + 1
    ) == DigestRunReport(sent=4)
    assert subscriber_row(engine, rcpt_bad.sid).mail_bounces == 0  # a delivery clears the record
    assert waiting_alerts(engine, rcpt_bad.sid) == waiting_alerts(engine, data_bad.sid) == 0
    received = digests_received(smtp_faults)
    assert (received[rcpt_bad.email], received["renewed@example.org"], received[data_bad.email]) == (1, 1, 0)
    assert received[good1.email] == received[good2.email] == N + 2

    assert_no_address_stored(engine)
    assert_no_address_logged(capsys, [good1, good2, rcpt_bad])
    t = tally(smtp_faults, engine, expected)
    assert (t.duplicates, t.lost, t.unexpected) == (0, 0, 0)
    assert t.emails == 2 * (N + 2) + 2
    report_line("5xx for some recipients", engine, t, bounces=2 * N, suspended=2)


async def test_one_refusal_is_shown_as_a_warning_and_stops_nothing(
    engine, smtp_faults, tmp_path: Path
) -> None:
    smtp_faults.up()
    [gone] = subs = enroll(engine, "gone@example.org")
    smtp_faults.handler.refuse_rcpt.add(gone.email)
    news(engine, subs, 0, {})
    assert await digest_run(engine, smtp_faults, now=DAY0) == DigestRunReport(failed=1)
    set_password(engine, gone.sid)
    async with open_site(engine, smtp_faults.port, smtp_faults.handler, tmp_path) as site:
        page = await log_in(site, gone.email)
    assert "Our last e-mail to gone@example.org was refused." in page
    assert f"If it is refused {N} times in a row, we stop sending" in page
    assert "stopped sending" not in page
    row = subscriber_row(engine, gone.sid)
    assert (row.mail_bounces, row.mail_suspended_at) == (1, None)
    # The one digest was offered once and refused at RCPT: nothing delivered, its alert kept.
    assert [r.status for r in rows(engine)] == ["failed"]
    assert smtp_faults.handler.rcpt_attempts[gone.email] == 1
    assert waiting_alerts(engine, gone.sid) == 1
    t = tally(smtp_faults, engine, {})
    assert (t.emails, t.duplicates, t.lost, t.unexpected) == (0, 0, 0, 0)
    report_line("one refusal", engine, t, bounces=1, suspended=0)


async def test_resuming_with_the_address_still_refused_stops_again_at_the_next_refusal(
    engine, smtp_faults, capsys
) -> None:
    smtp_faults.up()
    [gone] = subs = enroll(engine, "gone@example.org")
    smtp_faults.handler.refuse_rcpt.add(gone.email)
    expected: dict[int, list[str]] = {}
    for day in range(N):
        news(engine, subs, day, expected)
        await digest_run(engine, smtp_faults, now=DAY0 + timedelta(days=day), day=day)
    assert subscriber_row(engine, gone.sid).mail_suspended_at is not None

    assert accounts.resume_mail(engine, gone.sid) is True
    assert accounts.resume_mail(engine, gone.sid) is False  # not suspended any more
    assert accounts.account(engine, gone.sid).mail_suspended is False
    news(engine, subs, N, expected)
    report = await digest_run(engine, smtp_faults, now=DAY0 + timedelta(days=N), day=N)
    assert report == DigestRunReport(failed=1, suspended=1)  # one more refusal, not N more
    row = subscriber_row(engine, gone.sid)
    assert row.mail_bounces == N + 1 and row.mail_suspended_at is not None
    assert waiting_alerts(engine, gone.sid) == N + 1  # still nothing lost
    assert smtp_faults.handler.rcpt_attempts[gone.email] == N + 1

    assert_no_address_logged(capsys, subs)
    t = tally(smtp_faults, engine, {})
    assert (t.emails, t.duplicates, t.unexpected) == (0, 0, 0)
    report_line("resumed while still refused", engine, t, bounces=N + 1, suspended=1, waiting=N + 1)


# --- giving up ---------------------------------------------------------------------------


async def test_days_of_our_own_outage_give_up_without_blaming_the_subscriber_and_lose_nothing(
    engine, smtp_faults, capsys
) -> None:
    [reader] = subs = enroll(engine, "reader@example.org")
    expected: dict[int, list[str]] = {}
    news(engine, subs, 0, expected)
    smtp_faults.down()
    assert await digest_run(engine, smtp_faults, now=DAY0) == DigestRunReport(deferred=1)
    before = DAY0 + GIVE_UP_AFTER - timedelta(minutes=1)
    assert await digest_run(engine, smtp_faults, now=before, claim_new=False) == DigestRunReport(deferred=1)
    [row] = rows(engine)
    assert row.status == "claimed" and utc(row.next_attempt_at) > DAY0 + GIVE_UP_AFTER

    assert await digest_run(
        engine, smtp_faults, now=utc(row.next_attempt_at), claim_new=False
    ) == DigestRunReport(failed=1)
    [row] = rows(engine)
    assert row.status == "failed" and row.last_error == "gave up after 5 days: connection: SMTPConnectError"
    assert subscriber_row(engine, reader.sid).mail_bounces == 0  # our outage, not their address
    assert waiting_alerts(engine, reader.sid) == 1

    # Back: the next day's digest carries the old news with the new.
    smtp_faults.up()
    news(engine, subs, 5, expected)
    assert await digest_run(
        engine, smtp_faults, now=DAY0 + timedelta(days=5, hours=1), day=5
    ) == DigestRunReport(sent=1)
    assert_no_address_logged(capsys, subs)
    t = tally(smtp_faults, engine, expected)
    assert (t.emails, t.duplicates, t.lost, t.unexpected) == (1, 0, 0, 0)
    report_line("5 days down, then back", engine, t, gave_up=1)


async def test_a_recipient_saying_later_for_days_is_a_bounce(engine, smtp_faults, capsys) -> None:
    smtp_faults.up()
    [full] = subs = enroll(engine, "full@example.org")
    expected: dict[int, list[str]] = {}
    news(engine, subs, 0, expected)
    smtp_faults.handler.later[full.email] = 10**6
    assert await digest_run(engine, smtp_faults, now=DAY0) == DigestRunReport(deferred=1)
    assert await digest_run(
        engine, smtp_faults, now=DAY0 + GIVE_UP_AFTER, claim_new=False
    ) == DigestRunReport(failed=1)
    [row] = rows(engine)
    assert row.last_error.startswith("gave up after 5 days: recipient refused: 450")
    record = subscriber_row(engine, full.sid)
    assert record.mail_bounces == 1 and record.mail_suspended_at is None
    assert waiting_alerts(engine, full.sid) == 1
    # Offered twice (the first send, then the retry that gave up), "later" both times, never
    # handed over: no e-mail reached the server.
    assert smtp_faults.handler.rcpt_attempts[full.email] == 2
    assert smtp_faults.handler.data_attempts[full.email] == 0
    assert_no_address_stored(engine)
    assert_no_address_logged(capsys, subs)
    t = tally(smtp_faults, engine, {})
    assert (t.emails, t.duplicates, t.lost, t.unexpected) == (0, 0, 0, 0)
    report_line("4xx for 5 days", engine, t, bounces=1, waiting=1)


# --- the schedule itself, and bad input ---------------------------------------------------


def test_backoff_doubles_from_ten_minutes_to_two_hours_with_jitter_below() -> None:
    minutes = [retry_delay(n, 0.0) / timedelta(minutes=1) for n in range(1, 8)]
    assert minutes == [10, 20, 40, 80, 120, 120, 120]
    assert retry_delay(1, 0.999999) > timedelta(minutes=7.5)
    assert retry_delay(10_000, 0.5) == timedelta(minutes=105)
    with pytest.raises(ValueError, match="failures=0"):
        retry_delay(0, 0.0)
    with pytest.raises(ValueError, match="rand=1.0"):
        retry_delay(1, 1.0)


async def test_bad_settings_are_refused_with_a_clear_message(engine, tmp_path: Path) -> None:
    from streams.settings import SettingsError

    assert load_settings({"SOR_DATA_DIR": str(tmp_path)}).suspend_after_bounces == N
    assert (
        load_settings({"SOR_DATA_DIR": str(tmp_path), "SOR_SUSPEND_AFTER_BOUNCES": "5"}).suspend_after_bounces
        == 5
    )
    for raw, says in (("0", "from 1 to 100"), ("three", "whole number")):
        with pytest.raises(SettingsError, match=f"SOR_SUSPEND_AFTER_BOUNCES.*{says}"):
            load_settings({"SOR_DATA_DIR": str(tmp_path), "SOR_SUSPEND_AFTER_BOUNCES": raw})
    with pytest.raises(ValueError, match="suspend_after=0"):
        await send_due_digests(
            engine,
            SmtpSender("127.0.0.1", 9, starttls=False),
            period=period(0),
            from_addr=FROM,
            public_url=PUBLIC,
            unsubscribe_url_for=lambda sid, key: "",
            now=DAY0,
            suspend_after=0,
        )
