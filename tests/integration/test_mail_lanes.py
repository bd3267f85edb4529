"""A digest run's mail lanes against a real aiosmtpd server on loopback: kept-open connections,
several at once, a new one after a drop or a 421, RSET after a refused recipient.

The server counts what a mail operator would see in its log: connections, transactions at the
same time, RSETs, and every message accepted (each digest once, by Message-ID).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from streams.adapters import repository, subscriber_store
from streams.adapters.db import digests
from streams.adapters.mail import SmtpSender
from streams.services.digests import DigestRunReport, send_due_digests
from tests.conftest import running_smtp
from tests.integration.conftest import imported, proximity_alert

PUBLIC = "https://notify.example.test"
FROM = "Registry Notifications <no-reply@notify.example.test>"
PERIOD = "2026-11-20"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class CountingServer:
    """An aiosmtpd handler that tells connections apart (aiosmtpd makes one session per
    connection) and can be told to misbehave."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[Any] = []
        self.sessions: set[int] = set()
        self.delivered_on: Counter[int] = Counter()  # session -> messages accepted on it
        self.rsets = 0
        self.refuse_rcpt: set[str] = set()
        self.close_after: int | None = None  # hang up after this many messages on a connection
        self.busy_after: int | None = None  # 421 to MAIL after this many messages on a connection
        self.busy_replies = 0
        self.hold_until: int | None = None  # messages after the first wait in DATA until this many do
        self.in_data = 0
        self.most_in_data = 0
        self.all_here = threading.Event()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802 (aiosmtpd API)
        with self.lock:
            self.sessions.add(id(session))
            if self.busy_after is not None and self.delivered_on[id(session)] >= self.busy_after:
                self.busy_replies += 1
                return "421 4.7.0 Too many messages on this connection, closing"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd API)
        if address in self.refuse_rcpt:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        with self.lock:
            self.rsets += 1
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        with self.lock:
            self.in_data += 1
            self.most_in_data = max(self.most_in_data, self.in_data)
            if self.hold_until is not None and self.in_data >= self.hold_until:
                self.all_here.set()
            # The run's first message goes alone (it probes the server): hold the ones after it.
            hold = self.hold_until is not None and bool(self.messages) and not self.all_here.is_set()
        if hold:
            # A safety bound only: with fewer lanes than asked the run is not stuck, and the
            # assertion on `most_in_data` says what went wrong.
            if not await asyncio.get_running_loop().run_in_executor(None, self.all_here.wait, 20):
                self.all_here.set()  # nobody else came: let everyone through
        with self.lock:
            self.in_data -= 1
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            self.delivered_on[id(session)] += 1
            hang_up = self.close_after is not None and self.delivered_on[id(session)] >= self.close_after
        if hang_up:
            asyncio.get_running_loop().call_soon(server.transport.close)  # after the 250 below
        return "250 Message accepted for delivery"

    def message_ids(self) -> Counter[str]:
        return Counter(str(m["Message-ID"]) for m in self.messages)


@pytest.fixture
def server() -> Iterator[tuple[CountingServer, int]]:
    handler = CountingServer()
    with running_smtp(handler) as port:
        try:
            yield handler, port
        finally:
            handler.all_here.set()  # let any message still held go before the server stops


def enroll_with_news(engine: Engine, n: int, prefix: str = "reader") -> list[str]:
    emails = []
    for i in range(n):
        address = f"{prefix}{i:04d}@example.org"
        change = subscriber_store.upsert_subscriber(engine, imported(address))
        repository.record_alerts(
            engine,
            [
                proximity_alert(
                    change.subscriber_id,
                    change.circles[0].circle_id,
                    f"OFF-{i}",
                    f"Pat Case-{i:04d}",
                    "800 Olive St",
                )
            ],
        )
        emails.append(address)
    return emails


async def run(engine: Engine, port: int, lanes: int) -> DigestRunReport:
    sender = SmtpSender("127.0.0.1", port, starttls=False, timeout=10)
    return await send_due_digests(
        engine,
        sender,
        period=PERIOD,
        from_addr=FROM,
        public_url=PUBLIC,
        unsubscribe_url_for=lambda sid, key: f"{PUBLIC}/unsubscribe/{sid}.{key}.sig",
        now=NOW,
        lanes=lanes,
    )


def statuses(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        return Counter(
            dict(conn.execute(select(digests.c.status, func.count()).group_by(digests.c.status)).all())
        )


async def test_a_run_sends_over_as_many_kept_open_connections_as_lanes_side_by_side(engine, server) -> None:
    handler, port = server
    emails = enroll_with_news(engine, 40)
    handler.hold_until = 4  # after the first, messages wait until four transactions are open at once

    assert await run(engine, port, lanes=4) == DigestRunReport(sent=40)

    assert handler.most_in_data == 4  # four messages in flight at once
    assert len(handler.sessions) == 4  # over four connections, not one per message
    assert sorted(str(m["To"]) for m in handler.messages) == emails
    assert set(handler.message_ids().values()) == {1}
    assert statuses(engine) == Counter(sent=40)


async def test_one_lane_is_one_connection_for_the_whole_run(engine, server) -> None:
    handler, port = server
    enroll_with_news(engine, 12)
    assert await run(engine, port, lanes=1) == DigestRunReport(sent=12)
    assert len(handler.sessions) == 1 and handler.most_in_data == 1
    assert len(handler.message_ids()) == 12


async def test_a_connection_the_server_hangs_up_is_replaced_and_nothing_is_lost_or_sent_twice(
    engine, server
) -> None:
    handler, port = server
    emails = enroll_with_news(engine, 10)
    handler.close_after = 3  # the server drops each connection after its third message

    assert await run(engine, port, lanes=1) == DigestRunReport(sent=10)

    assert len(handler.sessions) == 4  # 3 + 3 + 3 + 1
    assert sorted(str(m["To"]) for m in handler.messages) == emails
    assert set(handler.message_ids().values()) == {1}
    assert statuses(engine) == Counter(sent=10)


async def test_a_421_on_a_kept_open_connection_is_answered_by_a_new_connection(engine, server) -> None:
    handler, port = server
    emails = enroll_with_news(engine, 10)
    handler.busy_after = 3  # "421 too many messages on this connection" to the fourth MAIL FROM

    assert await run(engine, port, lanes=2) == DigestRunReport(sent=10)

    assert handler.busy_replies >= 2  # each such connection was left for a new one...
    assert sorted(str(m["To"]) for m in handler.messages) == emails  # ...and the message went there
    assert set(handler.message_ids().values()) == {1}
    assert statuses(engine) == Counter(sent=10)


async def test_after_a_refused_recipient_the_connection_is_reset_and_kept(engine, server) -> None:
    handler, port = server
    first, refused, last = enroll_with_news(engine, 3)
    handler.refuse_rcpt.add(refused)

    assert await run(engine, port, lanes=1) == DigestRunReport(sent=2, failed=1)

    # One connection throughout: RSET cleared the refused envelope, and the next MAIL FROM on
    # the same connection was not a "nested MAIL command".
    assert handler.rsets == 1 and len(handler.sessions) == 1
    assert sorted(str(m["To"]) for m in handler.messages) == [first, last]
    assert statuses(engine) == Counter(sent=2, failed=1)


async def test_the_site_mails_one_message_per_connection(server) -> None:
    """`send` (account e-mails) still opens, uses and closes one connection per message."""
    handler, port = server
    sender = SmtpSender("127.0.0.1", port, starttls=False, timeout=10)
    for n in range(3):
        msg = email.message.EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = FROM, f"who{n}@example.org", "Confirm your address"
        msg["Message-ID"] = f"<confirm-{n}@notify.example.test>"
        msg.set_content("Follow the link.")
        await sender.send(msg)
    assert len(handler.sessions) == 3
    assert [str(m["To"]) for m in handler.messages] == [f"who{n}@example.org" for n in range(3)]
