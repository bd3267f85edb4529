"""Sending e-mail: SMTP (aiosmtplib) in production, a Maildir folder for demos and development."""

from __future__ import annotations

import asyncio
import mailbox
import re
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Protocol

import aiosmtplib

from streams.adapters import metrics

_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(\.[\w\-]+)+")


def _clean(text: str, limit: int = 200) -> str:
    """Server replies often quote the recipient: keep them out of the database and the logs."""
    return _EMAIL.sub("[email]", " ".join(str(text).split()))[:limit]


class MailError(Exception):
    """A message was not accepted. `reason` is short and free of addresses."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TemporaryMailError(MailError):
    """Worth retrying later: a 4xx reply about this recipient or this message."""


class MailServerUnavailable(TemporaryMailError):
    """Every message would fail alike right now: the server cannot be reached, or will not
    take mail from us (greeting, HELO, login, sender refused, a 421 "closing"). A run stops
    trying others on this; nothing about the recipient is learnt from it."""


class PermanentMailError(MailError):
    """A hard bounce: a 5xx reply to this recipient (RCPT) or to this message (DATA)."""


class MailSender(Protocol):
    async def send(self, msg: EmailMessage) -> None: ...


def _about_message(code: int, reason: str) -> MailError:
    """A reply to RCPT or DATA: about this recipient or message, except 421 (the server is closing)."""
    if code == 421:
        return MailServerUnavailable(reason, code)
    if 500 <= code < 600:
        return PermanentMailError(reason, code)
    return TemporaryMailError(reason, code)


class SmtpSender:
    """One SMTP connection per message (digests go out once a day, one per subscriber)."""

    def __init__(
        self,
        host: str,
        port: int,
        starttls: bool,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        *,
        use_tls: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.starttls = starttls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.use_tls = use_tls

    async def send(self, msg: EmailMessage) -> None:
        try:
            with metrics.SMTP_SEND_SECONDS.time():
                await aiosmtplib.send(
                    msg,
                    hostname=self.host,
                    port=self.port,
                    username=self.username,
                    password=self.password,
                    start_tls=self.starttls and not self.use_tls,
                    use_tls=self.use_tls,
                    timeout=self.timeout,
                )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0] if exc.recipients else None
            if first is None:
                raise TemporaryMailError("recipient refused") from None
            reason = _clean(f"recipient refused: {first.code} {first.message}")
            # Digests have one recipient; were there more, one "later" makes it all worth a retry.
            later = [r.code for r in exc.recipients if not 500 <= r.code < 600]
            raise _about_message(later[0] if later else first.code, reason) from None
        except aiosmtplib.SMTPDataError as exc:
            raise _about_message(exc.code, _clean(f"SMTPDataError: {exc.code} {exc.message}")) from None
        except (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPSenderRefused) as exc:
            # Our credentials or our sender address: wrong for every digest alike, so failing
            # them all for good would be worse than retrying once the set-up is fixed.
            raise MailServerUnavailable(_clean(f"mail set-up: {exc.code} {exc.message}"), exc.code) from None
        except aiosmtplib.SMTPResponseException as exc:
            # Greeting, HELO/EHLO, STARTTLS: the server as a whole, never this recipient.
            raise MailServerUnavailable(
                _clean(f"{type(exc).__name__}: {exc.code} {exc.message}"), exc.code
            ) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise MailServerUnavailable(_clean(f"mail set-up: {exc.message}")) from None
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            raise MailServerUnavailable(_clean(f"connection: {type(exc).__name__}")) from None


class MaildirSender:
    """Writes each message into a Maildir once: a Message-ID already there is not written again."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._seen: set[str] | None = None
        self._lock = asyncio.Lock()

    def _scan(self, box: mailbox.Maildir) -> set[str]:
        parser = BytesHeaderParser(policy=default_policy)
        seen: set[str] = set()
        for key in box.iterkeys():
            try:
                with box.get_file(key) as fh:
                    mid = parser.parse(fh).get("Message-ID")
            except (OSError, KeyError):
                continue
            if mid:
                seen.add(str(mid).strip())
        return seen

    def _write(self, msg: EmailMessage) -> None:
        box = mailbox.Maildir(self.path, create=True)
        if self._seen is None:
            # One scan per sender (per command run); after that the set is kept up to date.
            self._seen = self._scan(box)
        mid = str(msg.get("Message-ID", "")).strip()
        if mid and mid in self._seen:
            return
        box.add(msg)
        if mid:
            self._seen.add(mid)

    async def send(self, msg: EmailMessage) -> None:
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, msg)
            except OSError as exc:
                # A full or unwritable disk fails every message alike.
                raise MailServerUnavailable(_clean(f"maildir: {type(exc).__name__}")) from None
