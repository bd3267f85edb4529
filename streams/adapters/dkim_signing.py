"""DKIM signatures (RFC 6376, rsa-sha256, relaxed/relaxed) on every message, as it is handed over.

dkimpy canonicalises and hashes the headers exactly as its verifier (and every receiver) does;
the RSA operation is OpenSSL's (`cryptography`), with the key object loaded once: dkimpy's own
pure-Python RSA took ~10 ms a message, ten times a whole digest's cost in the run.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim.canonicalization import CanonicalizationPolicy, Relaxed, correct_empty_body, strip_trailing_lines

from streams.adapters.mail import MailLanes, MailSender, Message, OutgoingMail, lanes_of, outgoing

# What a receiver shows or acts on; each signed where present, and the first seven once more
# (a name listed past its last instance signs its absence: nobody can add a second Subject,
# or a List-Unsubscribe of their own, without breaking the signature).
REQUIRED = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
ALSO = ("mime-version", "content-type", "auto-submitted")
_POLICY = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_LF_ONLY = re.compile(rb"\r?\n")


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4 on a CRLF body, as dkimpy computes it; a body without tabs (what the
    templates write) has its runs of spaces and the spaces ending its lines removed by
    bytes.replace instead of dkimpy's regular expressions, which took ~0.7 ms on a digest
    carrying a map picture (17 kB, most of it base64 lines)."""
    if b"\t" in body:
        return Relaxed.canonicalize_body(body)
    while b"  " in body:  # a run of n spaces is one after log2(n) rounds
        body = body.replace(b"  ", b" ")
    return correct_empty_body(strip_trailing_lines(body.replace(b" \r\n", b"\r\n")))


def _split(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(line separator, header block ending in one separator, body with CRLF line ends)."""
    first = data.find(b"\n")
    sep = b"\r\n" if first > 0 and data[first - 1 : first] == b"\r" else b"\n"
    end = data.find(sep + sep)
    if end < 0:
        return sep, data if data.endswith(sep) else data + sep, b""
    head, body = data[: end + len(sep)], data[end + 2 * len(sep) :]
    if sep == b"\n":
        body = body.replace(b"\n", b"\r\n") if b"\r" not in body else _LF_ONLY.sub(b"\r\n", body)
    return sep, head, body


def _fold(names: list[bytes], sep: bytes) -> bytes:
    """h= across lines of at most ~76 characters, broken after a colon (FWS is allowed there)."""
    lines, line = [], b"h="
    for n, name in enumerate(names):
        piece = name + (b":" if n < len(names) - 1 else b";")
        if len(line) + len(piece) > 74:
            lines.append(line)
            line = b""
        line += piece
    lines.append(line)
    return (sep + b" ").join(lines)


class DkimSigner:
    """Signs bytes with one key, loaded once by the composition root."""

    def __init__(self, selector: str, domain: str, key: rsa.RSAPrivateKey) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self._key = key

    def sign(self, data: bytes) -> bytes:
        """The message with a DKIM-Signature header first, in the message's own line ends."""
        sep, head, body = _split(data)
        headers, _ = dkim.rfc822_parse(head + sep)
        present = {name.lower().decode("ascii") for name, _ in headers}
        names = [n.encode() for n in (*REQUIRED, *ALSO) if n in present]
        names += [n.encode() for n in REQUIRED]
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        value = (sep + b" ").join(
            (
                b"v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + self.domain + b"; s=" + self.selector + b";",
                b"t=" + str(int(time.time())).encode("ascii") + b"; q=dns/txt;",
                _fold(names, sep),
                b"bh=" + body_hash + b";",
                b"b=",
            )
        )
        hasher = hashlib.sha256()
        dkim.hash_headers(
            hasher,
            _POLICY,
            _POLICY.canonicalize_headers(headers),
            names,
            (b"DKIM-Signature", b" " + value),
            {},
        )
        signature = self._key.sign(hasher.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        b64 = base64.b64encode(signature)
        folded = (sep + b"  ").join(b64[i : i + 72] for i in range(0, len(b64), 72))
        return b"DKIM-Signature: " + value + sep + b"  " + folded + sep + data

    def signed(self, msg: Message) -> OutgoingMail:
        mail = outgoing(msg)
        data = mail.data
        if isinstance(msg, EmailMessage):
            data = data.replace(b"\r\n", b"\n")  # as the rendered mails are (a Maildir's convention)
        return mail._replace(data=self.sign(data))


class SigningSender:
    """A sender whose every message is signed once, just before it is handed over."""

    def __init__(self, inner: MailSender, signer: DkimSigner) -> None:
        self.inner = inner
        self.signer = signer

    async def send(self, msg: Message) -> None:
        await self.inner.send(self.signer.signed(msg))

    @asynccontextmanager
    async def connections(self, lanes: int) -> AsyncIterator[MailLanes]:
        async with lanes_of(self.inner, lanes) as pool:
            yield _SigningLanes(pool, self.signer)


class _SigningLanes:
    def __init__(self, pool: MailLanes, signer: DkimSigner) -> None:
        self.pool = pool
        self.lanes = pool.lanes
        self.signer = signer

    async def send(self, msg: OutgoingMail) -> None:
        # Signed here, once: the pool's own retry on a fresh connection re-sends these bytes.
        await self.pool.send(self.signer.signed(msg))
