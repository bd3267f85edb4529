"""A Maildir folder as the mail server: the embedded default, demos and development."""

from __future__ import annotations

import asyncio
import mailbox
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path

from streams.adapters.mail import MailServerUnavailable, Message, OutgoingMail, clean_reason


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
                    # typeshed: mailbox's _ProxyFile is a binary file, but not a _WrappedBuffer.
                    mid = parser.parse(fh).get("Message-ID")  # type: ignore[arg-type]
            except (OSError, KeyError):
                continue
            if mid:
                seen.add(str(mid).strip())
        return seen

    def _write(self, msg: Message) -> None:
        box = mailbox.Maildir(self.path, create=True)
        if self._seen is None:
            # One scan per sender (per command run); after that the set is kept up to date.
            self._seen = self._scan(box)
        mid = (msg.message_id if isinstance(msg, OutgoingMail) else str(msg.get("Message-ID", ""))).strip()
        content: bytes | EmailMessage = msg.data if isinstance(msg, OutgoingMail) else msg
        if mid and mid in self._seen:
            return
        box.add(content)
        if mid:
            self._seen.add(mid)

    async def send(self, msg: Message) -> None:
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, msg)
            except OSError as exc:
                # A full or unwritable disk fails every message alike.
                raise MailServerUnavailable(clean_reason(f"maildir: {type(exc).__name__}")) from None
