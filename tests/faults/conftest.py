"""Fault fixtures: an SMTP server on loopback that can be down, say "later" or refuse for good."""

from __future__ import annotations

import email
import email.policy
import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from tests.e2e.conftest import broker, database_url, system  # noqa: F401 (fixtures: the whole pipeline)
from tests.integration.conftest import engine  # noqa: F401 (fixture: SQLite, and PostgreSQL in CI)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultyHandler:
    """An aiosmtpd handler: answers 4xx to the first K RCPTs of chosen recipients, 5xx to others
    at RCPT or at DATA, and keeps every message it accepted."""

    def __init__(self) -> None:
        self.later: dict[str, int] = {}  # recipient -> RCPTs still to answer 450
        self.refuse_rcpt: set[str] = set()  # recipients answered 550 at RCPT
        self.refuse_data: set[str] = set()  # recipients whose message is answered 554 at DATA
        self.rcpt_attempts: Counter[str] = Counter()
        self.data_attempts: Counter[str] = Counter()
        self.messages: list[EmailMessage] = []
        self.received: Counter[str] = Counter()  # recipient -> messages accepted

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd API)
        address = address.lower()
        self.rcpt_attempts[address] += 1
        if address in self.refuse_rcpt:
            # Servers quote the address: it must not reach our logs or database.
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if self.later.get(address, 0) > 0:
            self.later[address] -= 1
            return f"450 4.2.0 <{address}>: Recipient address rejected: Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        [rcpt] = envelope.rcpt_tos  # a digest has one recipient
        self.data_attempts[rcpt] += 1
        if rcpt in self.refuse_data:
            return f"554 5.7.1 Message to {rcpt} rejected: mailbox disabled"
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        self.received[rcpt] += 1
        return "250 Message accepted for delivery"


class _Greet421(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.server.connections += 1  # type: ignore[attr-defined]
        self.request.sendall(b"421 4.3.2 Service not available, closing transmission channel\r\n")


class _Greet421Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    connections = 0


class SmtpFaults:
    """One loopback port whose SMTP server can be up, down (port closed), or up but answering
    every connection "421 service not available" (counting the connections)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.handler = FaultyHandler()
        self.state = "down"
        self._controller: Controller | None = None
        self._greeter: _Greet421Server | None = None
        self.connections_refused_421 = 0

    def up(self) -> None:
        self._stop()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        self.state = "up"

    def down(self) -> None:
        self._stop()
        self.state = "down"

    def answer_421(self) -> None:
        self._stop()
        self._greeter = _Greet421Server(("127.0.0.1", self.port), _Greet421)
        threading.Thread(target=self._greeter.serve_forever, daemon=True).start()
        self.state = "421"

    def _stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._greeter is not None:
            self.connections_refused_421 += self._greeter.connections
            self._greeter.shutdown()
            self._greeter.server_close()
            self._greeter = None

    @property
    def connections_421(self) -> int:
        """Connections answered 421 so far."""
        return self.connections_refused_421 + (self._greeter.connections if self._greeter else 0)


@pytest.fixture
def smtp_faults() -> Iterator[SmtpFaults]:
    faults = SmtpFaults()
    try:
        yield faults
    finally:
        faults.down()
