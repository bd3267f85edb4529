"""The account e-mails: composed from the mail templates, sent after the response so no page shows how sending went."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from streams.adapters.mail_message import build_message
from streams.adapters.rendering import environment
from streams.web.keys import RUNTIME, now, runtime_of
from streams.web.paths import site_link

logger = structlog.get_logger()

# Sends still under way; kept so a task is not garbage-collected before it finishes.
_outbox: set[asyncio.Task[None]] = set()


def message(request: web.Request, template: str, to: str, subject: str, **context: Any) -> EmailMessage:
    return compose(request.app, template, to, subject, **context)


def compose(app: web.Application, template: str, to: str, subject: str, **context: Any) -> EmailMessage:
    """`message` away from any request (the site's background work)."""
    settings = app[RUNTIME].settings
    env = environment()
    context = {"subject": subject, "home": site_link(app, "home"), **context}
    return build_message(
        from_addr=settings.mail_from,
        to_addr=to,
        subject=subject,
        text=env.get_template(f"mail/{template}.txt.j2").render(context),
        html=env.get_template(f"mail/{template}.html.j2").render(context),
        headers=(
            ("Date", format_datetime(now())),
            (
                "Message-ID",
                make_msgid(
                    "account", domain=urlsplit(settings.public_url).hostname or "sor-notify.localhost"
                ),
            ),
            ("Auto-Submitted", "auto-generated"),  # RFC 3834: no vacation replies, please
        ),
    )


def send_later(request: web.Request, msg: EmailMessage, purpose: str) -> None:
    """Send after the response: whether a mail goes out (or fails) never shows in the page or its timing."""
    task = asyncio.get_running_loop().create_task(deliver(runtime_of(request).mail, msg, purpose))
    _outbox.add(task)
    task.add_done_callback(_outbox.discard)


async def mail_sent() -> None:
    """Wait until the account e-mails under way are handed over (for tests and shutdown)."""
    loop = asyncio.get_running_loop()
    while pending := [t for t in _outbox if t.get_loop() is loop]:
        await asyncio.gather(*pending, return_exceptions=True)


async def deliver(mail: Any, msg: EmailMessage, purpose: str) -> None:
    """Hand `msg` to the mail server; a failure is logged (without the address), never raised."""
    try:
        await mail.send(msg)
    except Exception as exc:  # noqa: BLE001 - logged without the address; nothing else to do
        logger.warning(
            "account e-mail not sent",
            purpose=purpose,
            error=type(exc).__name__,
            code=getattr(exc, "code", None),
        )
    else:
        logger.info("account e-mail sent", purpose=purpose)
