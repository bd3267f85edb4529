"""Render a digest into a multipart e-mail (plain text and HTML) with jinja2 templates.

`render_digest_bytes` writes the message straight to bytes (MIME headers, two quoted-printable
parts); `render_digest` parses those bytes into an `EmailMessage` for whoever wants one. One
message layout, written in one place.
"""

from __future__ import annotations

import binascii
from datetime import datetime, timezone
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as default_policy
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from streams.domain.digest import Digest

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
# RFC 5322 asks for lines of at most 78 characters; longer or non-ASCII headers are folded and
# encoded by the email package, the rest are written as they are.
_HEADER_LINE = 78
_MAX_LINE = 998  # the hard limit
# "=_" never occurs in quoted-printable text ('=' is always escaped), and a part sent as it is
# (7bit) is one that does not hold the boundary: one fixed boundary does for every message.
_BOUNDARY = "=_sor-notify-digest_="


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
        # What urlencode({"tracked": ..., "offender": ...}) gives, without its generality.
        return f"{self.base}/map?tracked={int(tracked_address_id)}&offender={quote_plus(offender_id)}"


def _header(name: str, value: str) -> str:
    """One header line (or folded lines), ending in a newline."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name} holds a line break")
    line = f"{name}: {value}"
    if len(line) <= _HEADER_LINE and value.isascii():
        return line + "\n"
    if value.isascii() and "  " not in value and len(line) <= _MAX_LINE:
        # Plain ASCII words: folded at spaces (a word longer than a line stays whole).
        lines, current = [], f"{name}:"
        for word in value.split(" "):
            if len(current) + 1 + len(word) > _HEADER_LINE and current != f"{name}:":
                lines.append(current)
                current = ""
            current += " " + word
        lines.append(current)
        return "\n".join(lines) + "\n"
    return SMTP_POLICY.fold(name, value).replace("\r\n", "\n")


def _qp(text: str) -> bytes:
    # binascii's quoted-printable (C): '=' and non-ASCII encoded, lines soft-broken at 76.
    return binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)


def _body(text: str) -> tuple[str, bytes]:
    """A part's Content-Transfer-Encoding and bytes: 7bit as it is when every character is
    ASCII and no line is longer than SMTP allows (most digests: the templates write non-ASCII
    as HTML entities), quoted-printable otherwise. Encoding took about a quarter of rendering
    a digest of ten changes (bench/README.md, morning digest)."""
    if text.isascii() and "\r" not in text and "\0" not in text and _BOUNDARY not in text \
            and max(map(len, text.split("\n"))) <= _MAX_LINE:
        return "7bit", text.encode("ascii")
    return "quoted-printable", _qp(text)


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
) -> bytes:
    """The whole message as bytes, lines ending in LF (an SMTP client sends them as CRLF)."""
    text_template, html_template = _templates()
    subject = subject_for(digest, period)
    context = {
        "digest": digest,
        "period": period,
        "subject": subject,
        "links": Links(public_url, unsubscribe_url),
    }
    text = text_template.render(context)
    html = html_template.render(context)
    head = "".join((
        _header("Subject", subject),
        _header("From", from_addr),
        _header("To", to_addr),
        _header("Date", format_datetime((date or datetime.now(timezone.utc)).astimezone(timezone.utc))),
        _header("Message-ID", message_id),
        # RFC 8058 one-click unsubscribe: mail programs POST to the URL, no page to click through.
        _header("List-Unsubscribe", f"<{unsubscribe_url}>"),
        _header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        _header("Auto-Submitted", "auto-generated"),  # RFC 3834: no vacation replies, please
        "MIME-Version: 1.0\n",
        f'Content-Type: multipart/alternative; boundary="{_BOUNDARY}"\n',
        "\n",
    ))
    part = 'Content-Type: text/{}; charset="utf-8"\nContent-Transfer-Encoding: {}\n\n'
    text_cte, text_bytes = _body(text)
    html_cte, html_bytes = _body(html)
    return b"".join((
        head.encode("ascii"),
        f"--{_BOUNDARY}\n{part.format('plain', text_cte)}".encode("ascii"), text_bytes,
        f"\n--{_BOUNDARY}\n{part.format('html', html_cte)}".encode("ascii"), html_bytes,
        f"\n--{_BOUNDARY}--\n".encode("ascii"),
    ))


def render_digest(digest: Digest, **fields: Any) -> EmailMessage:
    """The same message as an `EmailMessage` (parsed from `render_digest_bytes`, which names
    the fields)."""
    return message_from_bytes(render_digest_bytes(digest, **fields), policy=default_policy)  # type: ignore[return-value]
