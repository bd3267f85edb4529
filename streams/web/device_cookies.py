"""Device cookies (OWASP): a signed note that this browser once logged in to an account, so the
browser keeps a budget of wrong passwords of its own when strangers use up the account's."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

COOKIE = "sor_device"
LIFETIME_S = 180 * 24 * 3600
MAX_ACCOUNTS = 5  # accounts one browser is remembered for; the oldest goes first
_PURPOSE = b"sor-notify device cookie v1"
_SIG_BYTES = 16


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _key(secret_key: str) -> bytes:
    # A key of its own: nothing signed for another purpose (unsubscribe links) passes here.
    return hmac.new(secret_key.encode(), _PURPOSE, hashlib.sha256).digest()


def _signature(secret_key: str, account: str, nonce: str, issued: int) -> str:
    msg = f"{account}|{nonce}|{issued}".encode()
    return _b64(hmac.new(_key(secret_key), msg, hashlib.sha256).digest()[:_SIG_BYTES])


def issue(secret_key: str, account: str, now: float) -> str:
    nonce = _b64(secrets.token_bytes(16))
    issued = int(now)
    return f"{nonce}.{issued}.{_signature(secret_key, account, nonce, issued)}"


def device_for(secret_key: str, cookie: str | None, account: str, now: float) -> str | None:
    """The device (its nonce) the cookie proves for `account`, if it holds a good, unexpired one."""
    for token in _tokens(cookie):
        nonce, issued_s, sig = token.split(".")
        if not issued_s.isascii() or not issued_s.isdigit() or len(issued_s) > 12:
            continue
        issued = int(issued_s)
        if not issued <= now < issued + LIFETIME_S:
            continue
        if hmac.compare_digest(sig, _signature(secret_key, account, nonce, issued)):
            return nonce
    return None


def remember(secret_key: str, cookie: str | None, account: str, now: float) -> str:
    """The cookie with a new token for `account` first, in place of any it had for it."""
    kept = [t for t in _tokens(cookie) if device_for(secret_key, t, account, now) is None]
    return "~".join([issue(secret_key, account, now), *kept][:MAX_ACCOUNTS])


def _tokens(cookie: str | None) -> list[str]:
    if not cookie or len(cookie) > 100 * MAX_ACCOUNTS:
        return []
    return [t for t in cookie.split("~")[:MAX_ACCOUNTS] if t.count(".") == 2]
