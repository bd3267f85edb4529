"""Render a digest into a multipart e-mail (plain text and HTML) with jinja2 templates.

`render_digest_bytes` writes the message straight to bytes (the layout every mail shares,
`mail_message.message_bytes`); `render_digest` parses those bytes into an `EmailMessage` for
whoever wants one. The templates' environment serves the site's e-mails too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from streams.adapters.mail_message import InlineImage, message_bytes
from streams.domain import digest_dates
from streams.domain.digest import Digest
from streams.domain.links import Links

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        # Labels and addresses are user and registry text: everything is escaped in HTML.
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates are read once per process
    )


@lru_cache(maxsize=1)
def _templates() -> tuple[Any, Any]:
    env = environment()
    return env.get_template("digest.txt.j2"), env.get_template("digest.html.j2")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def subject_for(digest: Digest, period: str, weekly: digest_dates.WeeklyWords | None = None) -> str:
    parts = []
    if digest.proximity_count:
        parts.append(f"{_plural(digest.proximity_count, 'change')} near your tracked addresses")
    if digest.watch_count:
        parts.append(f"{_plural(digest.watch_count, 'update')} on offenders you track")
    head = (
        f"Weekly registry notification digest, {weekly.span}"
        if weekly
        else (f"Registry notification digest for {period}")
    )
    return f"{head}: " + " and ".join(parts)


@dataclass(frozen=True)
class DigestMap:
    """A tracked address's map picture in a digest: shown in the HTML part by its Content-ID."""

    tracked_address_id: int
    content_id: str
    alt: str
    png: bytes


def render_digest_bytes(
    digest: Digest,
    *,
    to_addr: str,
    from_addr: str,
    public_url: str,
    unsubscribe_url: str,
    message_id: str,
    period: str,
    date: datetime | None = None,
    registry_as_of: str | None = None,
    maps: Sequence[DigestMap] = (),
    weekly: digest_dates.WeeklyWords | None = None,
) -> bytes:
    """The whole message as bytes, lines ending in LF (an SMTP client sends them as CRLF).

    `registry_as_of` is the sentence saying how current the registry data is
    (`digest_dates.registry_as_of`; None: not known); `maps` go in the HTML part only;
    `weekly`: a weekly digest, and the days it covers (None: the daily one).
    """
    text_template, html_template = _templates()
    subject = subject_for(digest, period, weekly)
    context = {
        "digest": digest,
        "period": period,
        "subject": subject,
        "links": Links(public_url, unsubscribe_url),
        "registry_as_of": registry_as_of or digest_dates.registry_as_of(None, UTC),
        "maps": {m.tracked_address_id: m for m in maps},
        "weekly": weekly,
    }
    # One part per picture, however many tracked addresses show the same one.
    images = {m.content_id: InlineImage(m.content_id, m.png, f"map-{m.tracked_address_id}.png") for m in maps}
    return message_bytes(
        from_addr=from_addr,
        to_addr=to_addr,
        subject=subject,
        text=text_template.render(context),
        html=html_template.render(context),
        images=tuple(images.values()),
        headers=(
            ("Date", format_datetime((date or datetime.now(UTC)).astimezone(UTC))),
            ("Message-ID", message_id),
            # RFC 8058 one-click unsubscribe: mail programs POST to the URL, no page to click through.
            ("List-Unsubscribe", f"<{unsubscribe_url}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Auto-Submitted", "auto-generated"),  # RFC 3834: no vacation replies, please
        ),
    )


def render_digest(digest: Digest, **fields: Any) -> EmailMessage:
    """The same message as an `EmailMessage` (parsed from `render_digest_bytes`, which names
    the fields)."""
    return message_from_bytes(render_digest_bytes(digest, **fields), policy=default_policy)
