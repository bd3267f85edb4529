"""Sending e-mail: SMTP (aiosmtplib) in production, a Maildir folder for demos and development.

A digest run sends through `lanes_of(sender, n)`: for SMTP, a pool of up to n connections kept
open for the run (`SmtpSender.connections`), each message one MAIL/RCPT/DATA transaction on one of
them; the account e-mails of the site go one at a time (`send`: a connection per message).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import NamedTuple, Protocol

import aiosmtplib
from aiosmtplib.email import extract_recipients, extract_sender, flatten_message

from streams.adapters import metrics

_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(\.[\w\-]+)+")


def clean_reason(text: str, limit: int = 200) -> str:
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


class NotTried(MailServerUnavailable):
    """The message was not offered: the first connection of the pool failed (with this reason)."""


class PermanentMailError(MailError):
    """A hard bounce: a 5xx reply to this recipient (RCPT) or to this message (DATA)."""


class OutgoingMail(NamedTuple):
    """A message rendered to bytes with its envelope: what a sender hands over as it is."""

    mail_from: str  # envelope sender (a bare address)
    to: str  # the one recipient (a bare address)
    data: bytes  # the whole message, headers and body
    message_id: str


Message = EmailMessage | OutgoingMail


class MailSender(Protocol):
    async def send(self, msg: Message) -> None: ...


class MailLanes(Protocol):
    """Messages sent side by side, up to `lanes` at once, for the length of an `async with`."""

    lanes: int

    async def send(self, msg: OutgoingMail) -> None: ...


def outgoing(msg: Message) -> OutgoingMail:
    """Any message as an OutgoingMail: envelope from its From and To headers."""
    if isinstance(msg, OutgoingMail):
        return msg
    recipients = extract_recipients(msg)
    if len(recipients) != 1:
        raise ValueError(f"expected one recipient, found {len(recipients)}")
    return OutgoingMail(
        extract_sender(msg) or "", recipients[0], flatten_message(msg), str(msg["Message-ID"] or "")
    )


@asynccontextmanager
async def lanes_of(sender: MailSender, lanes: int) -> AsyncIterator[MailLanes]:
    """The sender's own lanes (SmtpSender: kept-open connections), or its `send` one at a time."""
    if lanes < 1:
        raise ValueError(f"lanes={lanes}: expected at least 1")
    own = getattr(sender, "connections", None)
    if own is not None:
        async with own(lanes) as pool:
            yield pool
    else:
        yield _OneAtATime(sender)


class _OneAtATime:
    lanes = 1

    def __init__(self, sender: MailSender) -> None:
        self._send = sender.send

    async def send(self, msg: OutgoingMail) -> None:
        await self._send(msg)


def _about_message(code: int, reason: str) -> MailError:
    """A reply to RCPT or DATA: about this recipient or message, except 421 (the server is closing)."""
    if code == 421:
        return MailServerUnavailable(reason, code)
    if 500 <= code < 600:
        return PermanentMailError(reason, code)
    return TemporaryMailError(reason, code)


# Errors of one transaction that say the connection, not the message, is at fault.
_DROPS = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, ConnectionError, OSError)


class _Stale(Exception):
    """A kept-open connection turned out closed (or closing, 421) before the message was handed
    over: worth one more try on a new connection."""


def _refused_recipient(exc: aiosmtplib.SMTPRecipientRefused) -> MailError:
    return _about_message(exc.code, clean_reason(f"recipient refused: {exc.code} {exc.message}"))


def _connection_error(exc: BaseException) -> MailServerUnavailable:
    """Connecting, greeting, EHLO, STARTTLS, login, the sender: the server as a whole."""
    if isinstance(exc, (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPSenderRefused)):
        # Our credentials or our sender address: wrong for every digest alike, so failing
        # them all for good would be worse than retrying once the set-up is fixed.
        return MailServerUnavailable(clean_reason(f"mail set-up: {exc.code} {exc.message}"), exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return MailServerUnavailable(
            clean_reason(f"{type(exc).__name__}: {exc.code} {exc.message}"), exc.code
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return MailServerUnavailable(clean_reason(f"mail set-up: {exc.message}"))
    return MailServerUnavailable(clean_reason(f"connection: {type(exc).__name__}"))


# An address that needs no quoting in MAIL FROM / RCPT TO (what the web site and imports store).
_PLAIN_ADDRESS = re.compile(r'[^\s<>()\[\]\\,;:"@]+@[^\s<>()\[\]\\,;:"@]+')


async def _mail_from(smtp: aiosmtplib.SMTP, address: str, options: list[str], encoding: str) -> None:
    """MAIL FROM, as `smtp.mail` sends it, without re-parsing a plain address each time."""
    if not _PLAIN_ADDRESS.fullmatch(address):
        await smtp.mail(address, options=options, encoding=encoding)
        return
    reply = await smtp.execute_command(
        b"MAIL", b"FROM:<" + address.encode(encoding) + b">", *(o.encode("ascii") for o in options)
    )
    if reply.code != 250:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, address)


async def _rcpt_to(smtp: aiosmtplib.SMTP, address: str, encoding: str) -> None:
    if not _PLAIN_ADDRESS.fullmatch(address):
        await smtp.rcpt(address, encoding=encoding)
        return
    reply = await smtp.execute_command(b"RCPT", b"TO:<" + address.encode(encoding) + b">")
    if reply.code not in (250, 251):
        raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, address)


class SmtpSender:
    """SMTP with aiosmtplib: `send` opens a connection per message; `connections(n)` keeps up
    to n open for a run of messages (a digest run)."""

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

    async def send(self, msg: Message) -> None:
        async with self.connections(1) as pool:
            await pool.send(msg)

    @asynccontextmanager
    async def connections(self, lanes: int) -> AsyncIterator[SmtpPool]:
        pool = SmtpPool(self, lanes)
        try:
            yield pool
        finally:
            await pool.close()

    async def connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            start_tls=self.starttls and not self.use_tls,
            use_tls=self.use_tls,
            timeout=self.timeout,
        )
        try:
            await smtp.connect()
            # EHLO now (aiosmtplib would before the first MAIL), so a transaction knows the
            # server's extensions and a refused greeting is a connection error.
            await smtp._ehlo_or_helo_if_needed()
        except BaseException:
            smtp.close()
            raise
        return smtp


class SmtpPool:
    """Up to `lanes` SMTP connections kept open, one message at a time on each.

    - Until one connection has opened, only one is tried at a time; if it fails, every message
      waiting for it fails with `NotTried` (the server is down: one probe, not one per lane).
    - A kept-open connection found closed, or answering 421 ("closing"), before the message was
      handed over, is replaced and the message tried once more on the new one. A connection that
      drops after the message content went out is not retried here: whether the server took it
      is unknown, and the digest's retry (same Message-ID) decides.
    - After a refused recipient the envelope is reset (RSET) and the connection kept; a connection
      that cannot be reset is closed.
    """

    def __init__(self, sender: SmtpSender, lanes: int) -> None:
        if lanes < 1:
            raise ValueError(f"lanes={lanes}: expected at least 1")
        self.sender = sender
        self.lanes = lanes
        self.opened = 0  # connections opened so far
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(lanes)
        self._probe = asyncio.Lock()
        self._proven = False
        self._failed: MailServerUnavailable | None = None

    async def send(self, msg: Message) -> None:
        mail = outgoing(msg)
        async with self._slots:
            with metrics.SMTP_SEND_SECONDS.time():
                smtp, reused = await self._take()
                try:
                    await self._attempt(smtp, mail, reused)
                except _Stale:
                    # Found closed (or closing) before the message went out: once more, anew;
                    # whatever the new connection answers is the answer.
                    await self._attempt(await self._open(), mail, False)

    async def _attempt(self, smtp: aiosmtplib.SMTP, mail: OutgoingMail, reused: bool) -> None:
        try:
            await self._transaction(smtp, mail, reused)
        except MailError:
            self._keep(smtp)
            raise
        except BaseException:
            smtp.close()
            raise
        self._idle.append(smtp)

    def _keep(self, smtp: aiosmtplib.SMTP) -> None:
        """Back to the idle ones after a refusal, if it is still open (and was reset)."""
        if smtp.is_connected:
            self._idle.append(smtp)

    async def _take(self) -> tuple[aiosmtplib.SMTP, bool]:
        while self._idle:
            smtp = self._idle.pop()
            if smtp.is_connected:
                return smtp, True
        if not self._proven:
            async with self._probe:
                if self._failed is not None:
                    raise NotTried(self._failed.reason, self._failed.code)
                if self._idle:  # the probing lane has finished with its connection
                    return self._idle.pop(), True
                return await self._open(), False
        return await self._open(), False

    async def _open(self) -> aiosmtplib.SMTP:
        try:
            smtp = await self.sender.connect()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            self._failed = None if self._proven else _connection_error(exc)
            raise _connection_error(exc) from None
        self._proven = True
        self.opened += 1
        return smtp

    async def _transaction(self, smtp: aiosmtplib.SMTP, mail: OutgoingMail, reused: bool) -> None:
        utf8 = not (mail.mail_from.isascii() and mail.to.isascii())
        encoding, options = ("utf-8", ["SMTPUTF8"]) if utf8 else ("ascii", [])
        stage = "mail"
        try:
            if utf8 and not smtp.supports_extension("smtputf8"):
                raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
            await _mail_from(smtp, mail.mail_from, options, encoding)
            stage = "rcpt"
            await _rcpt_to(smtp, mail.to, encoding)
            stage = "data"
            await smtp.data(mail.data)
        except aiosmtplib.SMTPRecipientRefused as exc:
            if exc.code == 421 and reused:
                raise _Stale() from None
            await self._reset(smtp)
            raise _refused_recipient(exc) from None
        except aiosmtplib.SMTPDataError as exc:
            if exc.code == 421 and reused:
                raise _Stale() from None  # refused outright: not taken, safe to offer again
            await self._reset(smtp)
            raise _about_message(exc.code, clean_reason(f"SMTPDataError: {exc.code} {exc.message}")) from None
        except aiosmtplib.SMTPResponseException as exc:  # MAIL FROM refused
            if exc.code == 421 and reused:
                raise _Stale() from None
            await self._reset(smtp)
            raise _connection_error(exc) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise _connection_error(exc) from None
        except (TimeoutError, *_DROPS, aiosmtplib.SMTPException) as exc:
            smtp.close()
            if reused and stage != "data":
                raise _Stale() from None
            raise _connection_error(exc) from None

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        """RSET after a refusal, so that the next MAIL FROM on this connection starts clean."""
        if not smtp.is_connected:
            return
        try:
            await smtp.rset()
        except (TimeoutError, *_DROPS, aiosmtplib.SMTPException):
            smtp.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for smtp in idle:
            try:
                await smtp.quit()
            except (TimeoutError, *_DROPS, aiosmtplib.SMTPException):
                smtp.close()
