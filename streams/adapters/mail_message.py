"""Every e-mail the service sends, as bytes or as an EmailMessage: headers, then a plain-text and an HTML part."""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as default_policy

# RFC 5322 asks for lines of at most 78 characters; longer or non-ASCII headers are folded and
# encoded by the email package, the rest are written as they are.
_HEADER_LINE = 78
_MAX_LINE = 998  # the hard limit
# "=_" never occurs in quoted-printable text ('=' is always escaped), and a part sent as it is
# (7bit) is one that does not hold the boundary: one fixed boundary does for every message.
BOUNDARY = "=_sor-notify-digest_="


def header(name: str, value: str) -> str:
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


def body(text: str) -> tuple[str, bytes]:
    """A part's Content-Transfer-Encoding and bytes: 7bit as it is when every character is
    ASCII and no line is longer than SMTP allows (most digests: the templates write non-ASCII
    as HTML entities), quoted-printable otherwise. Encoding took about a quarter of rendering
    a digest of ten changes (bench/README.md, morning digest)."""
    if (
        text.isascii()
        and "\r" not in text
        and "\0" not in text
        and BOUNDARY not in text
        and max(map(len, text.split("\n"))) <= _MAX_LINE
    ):
        return "7bit", text.encode("ascii")
    return "quoted-printable", _qp(text)


def message_bytes(
    *,
    from_addr: str,
    to_addr: str,
    subject: str,
    text: str,
    html: str,
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """The whole message as bytes, lines ending in LF (an SMTP client sends them as CRLF).

    `headers` (Date, Message-ID, List-Unsubscribe, ...) follow Subject, From and To in the
    order given.
    """
    head = "".join(
        (
            header("Subject", subject),
            header("From", from_addr),
            header("To", to_addr),
            *(header(name, value) for name, value in headers),
            "MIME-Version: 1.0\n",
            f'Content-Type: multipart/alternative; boundary="{BOUNDARY}"\n',
            "\n",
        )
    )
    part = 'Content-Type: text/{}; charset="utf-8"\nContent-Transfer-Encoding: {}\n\n'
    text_cte, text_bytes = body(text)
    html_cte, html_bytes = body(html)
    return b"".join(
        (
            head.encode("ascii"),
            f"--{BOUNDARY}\n{part.format('plain', text_cte)}".encode("ascii"),
            text_bytes,
            f"\n--{BOUNDARY}\n{part.format('html', html_cte)}".encode("ascii"),
            html_bytes,
            f"\n--{BOUNDARY}--\n".encode("ascii"),
        )
    )


def build_message(
    *,
    from_addr: str,
    to_addr: str,
    subject: str,
    text: str,
    html: str,
    headers: Iterable[tuple[str, str]] = (),
) -> EmailMessage:
    """The same message as an `EmailMessage` (parsed from `message_bytes`)."""
    raw = message_bytes(
        from_addr=from_addr, to_addr=to_addr, subject=subject, text=text, html=html, headers=headers
    )
    return message_from_bytes(raw, policy=default_policy)
