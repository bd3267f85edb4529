"""Render a digest into a multipart e-mail (plain text and HTML) with jinja2 templates."""

from __future__ import annotations

from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from streams.domain.digest import Digest

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
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def subject_for(digest: Digest, period: str) -> str:
    parts = []
    if digest.proximity_count:
        parts.append(f"{_plural(digest.proximity_count, 'change')} near your tracked addresses")
    if digest.watch_count:
        parts.append(f"{_plural(digest.watch_count, 'update')} on offenders you track")
    return f"Registry notification digest for {period}: " + " and ".join(parts)


class Links:
    """Every URL an e-mail carries, built in one place."""

    def __init__(self, public_url: str, unsubscribe_url: str) -> None:
        self.base = public_url.rstrip("/")
        self.unsubscribe = unsubscribe_url
        self.settings = f"{self.base}/login"

    def record(self, offender_id: str) -> str:
        return f"{self.base}/offenders/{quote(offender_id, safe='')}"

    def map(self, tracked_address_id: int, offender_id: str) -> str:
        return f"{self.base}/map?" + urlencode({"tracked": tracked_address_id, "offender": offender_id})


def render_digest(
    digest: Digest,
    *,
    to_addr: str,
    from_addr: str,
    public_url: str,
    unsubscribe_url: str,
    message_id: str,
    period: str,
    date: datetime | None = None,
) -> EmailMessage:
    env = environment()
    subject = subject_for(digest, period)
    context = {
        "digest": digest,
        "period": period,
        "subject": subject,
        "links": Links(public_url, unsubscribe_url),
    }
    text = env.get_template("digest.txt.j2").render(context)
    html = env.get_template("digest.html.j2").render(context)

    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = from_addr
    msg["To"] = to_addr
    msg["Date"] = format_datetime((date or datetime.now(timezone.utc)).astimezone(timezone.utc))
    msg["Message-ID"] = message_id
    # RFC 8058 one-click unsubscribe: mail programs POST to the URL, no page to click through.
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    return msg
