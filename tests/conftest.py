"""Fixtures shared by every suite: a real SMTP server on loopback, database URLs."""

from __future__ import annotations

import email
import email.policy
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests import counts
from tests.ci_rule import pytest_runtest_makereport, pytest_sessionstart  # noqa: F401 (hooks)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailCatcher:
    """An aiosmtpd handler that keeps every message it accepted, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # each message's bytes as received (a signature is checked on these)
        self.envelopes: list[tuple[str, list[str]]] = []
        # Called with the number of messages accepted so far each time a client names a
        # recipient, before it hears 250: a test can act between one message and the next.
        self.on_recipient: Callable[[int], None] | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd API)
        if self.on_recipient is not None:
            self.on_recipient(len(self.messages))
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        self.raw.append(envelope.original_content or envelope.content)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@contextmanager
def running_smtp(handler: object) -> Iterator[int]:
    """A real SMTP server (aiosmtpd) on a free loopback port with this handler; its port."""
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[tuple[MailCatcher, int]]:
    catcher = MailCatcher()
    with running_smtp(catcher) as port:
        yield catcher, port


@pytest.fixture(scope="session")
def dkim_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An operator's DKIM key (RSA 2048, PKCS#8 PEM, as openssl genpkey writes it), one per session."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    return path


def database_urls() -> list[str]:
    urls = ["sqlite"]
    if os.environ.get("SOR_TEST_DATABASE_URL"):
        urls.append("postgresql")
    return urls


@pytest.fixture(autouse=True)
def _counts_reported_by(request: pytest.FixtureRequest) -> Iterator[None]:
    counts.current = request.node
    yield
    counts.current = None


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 (pytest hook)
    """The fault and property tests' counts (kills, events, e-mails, duplicates, lost), at the end."""
    lines = [
        f"{rep.nodeid}: {value}"
        for outcome in ("passed", "failed")
        for rep in terminalreporter.stats.get(outcome, [])
        if rep.when == "call"
        for key, value in getattr(rep, "user_properties", [])
        if key == "counts"
    ]
    if lines:
        terminalreporter.section("counts from the fault and property tests")
        for line in lines:
            terminalreporter.write_line(line)
