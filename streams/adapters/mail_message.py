"""Every e-mail the service sends, as bytes or as an EmailMessage: headers, then a plain-text and an HTML part."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
# The HTML part and its pictures (multipart/related, RFC 2387); base64 has no "_" either.
RELATED_BOUNDARY = "=_sor-notify-related_="


@dataclass(frozen=True)
class InlineImage:
    """A picture the HTML part shows by `cid:<content_id>`."""

    content_id: str  # without angle brackets
    data: bytes
    filename: str
    content_type: str = "image/png"


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
        and RELATED_BOUNDARY not in text
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
    images: Sequence[InlineImage] = (),
) -> bytes:
    """The whole message as bytes, lines ending in LF (an SMTP client sends them as CRLF).

    `headers` (Date, Message-ID, List-Unsubscribe, ...) follow Subject, From and To in the
    order given. With `images`, the HTML part and they go in a multipart/related in place of
    the HTML part alone; the plain-text part is the same either way.
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
    html_block: tuple[bytes, ...]
    if not images:
        html_block = (f"\n--{BOUNDARY}\n{part.format('html', html_cte)}".encode("ascii"), html_bytes)
    else:
        html_block = (
            f"\n--{BOUNDARY}\n"
            f'Content-Type: multipart/related; type="text/html"; boundary="{RELATED_BOUNDARY}"\n\n'
            f"--{RELATED_BOUNDARY}\n{part.format('html', html_cte)}".encode("ascii"),
            html_bytes,
            *(_inline(image) for image in images),
            f"\n--{RELATED_BOUNDARY}--".encode("ascii"),
        )
    return b"".join(
        (
            head.encode("ascii"),
            f"--{BOUNDARY}\n{part.format('plain', text_cte)}".encode("ascii"),
            text_bytes,
            *html_block,
            f"\n--{BOUNDARY}--\n".encode("ascii"),
        )
    )


def _inline(image: InlineImage) -> bytes:
    if not (image.content_id.isascii() and image.filename.isascii() and image.content_type.isascii()):
        raise ValueError("an inline image's names are ASCII")
    if any(c in image.content_id + image.filename for c in '<>"\r\n'):
        raise ValueError(
            f"inline image {image.filename!r}: its Content-ID or name holds a reserved character"
        )
    return (
        f"\n--{RELATED_BOUNDARY}\n"
        f"Content-Type: {image.content_type}\n"
        "Content-Transfer-Encoding: base64\n"
        f"Content-ID: <{image.content_id}>\n"
        f'Content-Disposition: inline; filename="{image.filename}"\n\n'
    ).encode("ascii") + base64.encodebytes(image.data).rstrip(b"\n")


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
