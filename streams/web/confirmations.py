"""The "your settings changed" e-mail: each change recorded as it is made, and one e-mail a few
minutes later listing every change since the last (so twenty toggles are one e-mail, not twenty)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from streams.adapters import settings_notices, tracking_db
from streams.adapters.mail import MailError, PermanentMailError
from streams.adapters.mail_message import build_message
from streams.adapters.rendering import environment as mail_environment
from streams.adapters.subscriber_store import SubscriberChange
from streams.domain import links
from streams.web.display import Nearby, when_text
from streams.web.keys import RUNTIME, db, flash, now, publish, runtime_of

logger = structlog.get_logger()

# A notice lists at most this many changes (the rest are counted): one e-mail stays readable
# however many changes a script made.
MOST_LISTED = 50


@dataclass
class SettingsChange:
    """What one request changed, worded for the confirmation e-mail."""

    title: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    nearby: list[Nearby] | None = None  # after adding or widening: who is inside now
    nearby_title: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> SettingsChange:
        d = json.loads(raw)
        nearby = None if d["nearby"] is None else [Nearby(**n) for n in d["nearby"]]
        return cls(d["title"], [(t, v) for t, v in d["lines"]], nearby, d["nearby_title"])


@dataclass(frozen=True)
class Listed:
    """One change as the notice lists it."""

    change: SettingsChange
    when: str


def confirmation_message(
    settings: Any,
    subscriber: Any,
    changes: list[tuple[datetime, SettingsChange]],
    when: datetime,
) -> EmailMessage:
    """One e-mail for `changes` (oldest first), every one listed as it was made: a change and
    its undo are both shown, since the owner should see whatever was done to the account.
    `subscriber`: who it goes to (email, subscriber_id, link_key: a DueNotice)."""
    base = settings.public_url.rstrip("/")
    unsubscribe = links.unsubscribe_url(
        settings.public_url, settings.secret_key, subscriber.subscriber_id, subscriber.link_key
    )
    subject = "Your registry e-mail alert settings changed"
    listed = [Listed(c, when_text(t.astimezone(settings.zone))) for t, c in changes[:MOST_LISTED]]
    context = {
        "subject": subject,
        "changes": listed,
        "more": len(changes) - len(listed),
        "one": len(changes) == 1,
        "base": base,
        "unsubscribe_url": unsubscribe,
        "settings_url": links.site_url(base, "/notifications"),
        "login_url": links.site_url(base, "/login"),
    }
    env = mail_environment()
    return build_message(
        from_addr=settings.mail_from,
        to_addr=subscriber.email,
        subject=subject,
        text=env.get_template("mail/settings_changed.txt.j2").render(context),
        html=env.get_template("mail/settings_changed.html.j2").render(context),
        headers=(
            ("Date", format_datetime(when)),
            ("Message-ID", make_msgid("settings", domain=urlsplit(base).hostname or "localhost")),
            ("List-Unsubscribe", f"<{unsubscribe}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Auto-Submitted", "auto-generated"),
        ),
    )


async def finish(
    request: web.Request, sid: int, published: SubscriberChange, change: SettingsChange, message: str
) -> None:
    """Publish (only what an active subscriber may receive), record the change for the next
    notice e-mail, and say so."""
    sub = await db(request, tracking_db.subscriber, sid)
    if not tracking_db.is_active(sub):
        published = SubscriberChange(sid, [], published.removed_circles, [], published.removed_watches)
    if published.circles or published.removed_circles or published.watches or published.removed_watches:
        await publish(request, published)
    if sub is not None:
        await db(request, settings_notices.record, sid, change.to_json(), now())
    minutes = round(runtime_of(request).settings.settings_notice_delay_s / 60)
    await flash(
        request,
        f"{message} A confirmation e-mail follows within about {minutes} minutes, "
        "listing this and any other change you make meanwhile.",
    )


async def send_due_notices(app: web.Application, at: datetime) -> int:
    """Mail every account whose oldest unmailed change is at least the delay old; how many were
    sent. A notice the mail server could not take now stays for the next round; one it refused
    for good is dropped (logged), so a dead address is not retried forever."""
    runtime = app[RUNTIME]
    delay = timedelta(seconds=runtime.settings.settings_notice_delay_s)
    sent = 0
    for notice in await runtime.db_once(settings_notices.due, at - delay):
        changes = [(c.changed_at, SettingsChange.from_json(c.change)) for c in notice.changes]
        msg = confirmation_message(runtime.settings, notice, changes, at)
        try:
            await runtime.mail.send(msg)
        except (MailError, OSError) as exc:
            logger.warning(
                "settings notice not sent",
                subscriber_id=notice.subscriber_id,
                error=type(exc).__name__,
                dropped=isinstance(exc, PermanentMailError),
            )
            if not isinstance(exc, PermanentMailError):
                continue
        else:
            sent += 1
            logger.info("settings notice sent", subscriber_id=notice.subscriber_id, changes=len(changes))
        await runtime.db_once(settings_notices.mailed, [c.id for c in notice.changes])
    return sent
