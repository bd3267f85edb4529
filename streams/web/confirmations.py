"""The "your settings changed" e-mail, and finishing a tracking change: publish, confirm, flash."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from streams.adapters import tracking_db
from streams.adapters.mail import MailError
from streams.adapters.mail_message import build_message
from streams.adapters.rendering import environment as mail_environment
from streams.adapters.subscriber_store import SubscriberChange
from streams.domain import links
from streams.web.display import Nearby
from streams.web.keys import db, flash, now, publish, runtime_of

logger = structlog.get_logger()


@dataclass
class SettingsChange:
    """What one request changed, worded for the confirmation e-mail."""

    title: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    nearby: list[Nearby] | None = None  # after adding or widening: who is inside now
    nearby_title: str = ""


def _when_text(t: datetime) -> str:
    return f"{t:%B} {t.day}, {t.year} at {t.hour % 12 or 12}:{t:%M %p %Z}"


def confirmation_message(
    settings: Any, subscriber: Any, change: SettingsChange, when: datetime
) -> EmailMessage:
    """`subscriber`: its row (email, id, link_key), as tracking_db.subscriber reads it."""
    base = settings.public_url.rstrip("/")
    unsubscribe = links.unsubscribe_url(
        settings.public_url, settings.secret_key, subscriber.id, subscriber.link_key
    )
    subject = "Your registry e-mail alert settings changed"
    context = {
        "subject": subject,
        "change": change,
        "base": base,
        "unsubscribe_url": unsubscribe,
        "settings_url": links.site_url(base, "/notifications"),
        "login_url": links.site_url(base, "/login"),
        "when": _when_text(when.astimezone(settings.zone)),
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


async def _confirm_by_mail(request: web.Request, sub: Any, change: SettingsChange) -> bool:
    runtime = runtime_of(request)
    msg = confirmation_message(runtime.settings, sub, change, now())
    try:
        await runtime.mail.send(msg)
    except (MailError, OSError) as exc:
        logger.warning("settings confirmation not sent", error=type(exc).__name__)
        return False
    return True


async def finish(
    request: web.Request, sid: int, published: SubscriberChange, change: SettingsChange, message: str
) -> None:
    """Publish (only what an active subscriber may receive), confirm by e-mail, and say so."""
    sub = await db(request, tracking_db.subscriber, sid)
    if not tracking_db.is_active(sub):
        published = SubscriberChange(sid, [], published.removed_circles, [], published.removed_watches)
    if published.circles or published.removed_circles or published.watches or published.removed_watches:
        await publish(request, published)
    mailed = sub is not None and await _confirm_by_mail(request, sub, change)
    tail = (
        " A confirmation e-mail is on its way."
        if mailed
        else " We could not send the confirmation e-mail just now; your change is saved all the same."
    )
    await flash(request, message + tail)
