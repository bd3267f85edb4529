"""Second factors' rules (SP 800-63B-4 3.1.3, 3.1.4): TOTP codes, each time step once, and look-up recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from urllib.parse import quote

import pyotp

TOTP_DIGITS = 6
TOTP_STEP_S = 30
# One step either side: a phone's clock a little off still works (RFC 6238 5.2).
TOTP_WINDOW = 1
RECOVERY_CODES = 10
# 28 base32 characters, 140 random bits: well above the 112 bits that let a fast hash store them.
_RECOVERY_CHARS = 28
_RECOVERY_GROUP = 4
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
# What people type for what they read: base32 has neither 0 nor 1.
_LOOKALIKES = str.maketrans({"0": "o", "1": "l", "8": "b"})


def new_totp_secret() -> str:
    """160 random bits in base32, as authenticator apps take them (RFC 4226 recommends 160)."""
    return pyotp.random_base32(32)


def grouped(secret: str) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def otpauth_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI (Key Uri Format) an app reads from a QR code or a link."""
    label = quote(f"{issuer}:{account}", safe="@:")
    return (
        f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer)}"
        f"&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_S}"
    )


def time_step(now: datetime) -> int:
    return int(now.timestamp()) // TOTP_STEP_S


def code_digits(code: str) -> str | None:
    """A typed TOTP code without the spaces apps show in it; None when it is not six digits."""
    digits = "".join(code.split())
    if len(digits) != TOTP_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def matching_step(secret: str, code: str, now: datetime, last_used_step: int | None) -> int | None:
    """The time step whose code `code` is, within the window and later than the last step
    accepted (a code seen once, even by an onlooker, never works again); else None."""
    digits = code_digits(code)
    if digits is None:
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_S)
    current = time_step(now)
    found = None
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        # Every step is compared, matched or not: the time taken says nothing about which.
        if hmac.compare_digest(totp.generate_otp(step), digits) and found is None:
            found = step
    if found is None or (last_used_step is not None and found <= last_used_step):
        return None
    return found


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    return [_recovery_code() for _ in range(count)]


def _recovery_code() -> str:
    raw = "".join(secrets.choice(_BASE32) for _ in range(_RECOVERY_CHARS))
    return "-".join(raw[i : i + _RECOVERY_GROUP] for i in range(0, _RECOVERY_CHARS, _RECOVERY_GROUP))


def normalized_recovery_code(typed: str) -> str | None:
    """A typed recovery code as it was made, whatever the case, spaces and dashes; None if it cannot be one."""
    raw = "".join(ch for ch in typed.casefold() if ch not in " -\t").translate(_LOOKALIKES)
    if len(raw) != _RECOVERY_CHARS or any(ch not in _BASE32 for ch in raw):
        return None
    return "-".join(raw[i : i + _RECOVERY_GROUP] for i in range(0, _RECOVERY_CHARS, _RECOVERY_GROUP))


def recovery_code_hash(code: str) -> str:
    """SHA-256 of the normalized code: a 140-bit secret needs no slow hash (SP 800-63B-4 3.1.2.1)."""
    return hashlib.sha256(code.encode()).hexdigest()
