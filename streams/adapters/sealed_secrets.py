"""Secrets the site must read back (TOTP keys), sealed with AES-GCM under a key derived from SOR_SECRET_KEY."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1"
_NONCE = 12


def _key(secret_key: str, purpose: str) -> bytes:
    # One derived key per purpose: the unsubscribe links' HMAC never meets this key.
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"sor-notify {purpose}".encode()
    ).derive(secret_key.encode())


def seal(secret_key: str, purpose: str, plaintext: str, bound_to: str) -> str:
    """`plaintext` encrypted and authenticated; `bound_to` (e.g. the subscriber id) must be
    given again to open it, so a sealed value copied to another row does not open."""
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(_key(secret_key, purpose)).encrypt(nonce, plaintext.encode(), bound_to.encode())
    return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unseal(secret_key: str, purpose: str, sealed: str, bound_to: str) -> str:
    """The plaintext; raises ValueError for a value that was not sealed so (or was altered)."""
    version, _, body = sealed.partition(".")
    if version != _VERSION:
        raise ValueError("unknown sealed-secret version")
    raw = base64.urlsafe_b64decode(body)
    try:
        plain = AESGCM(_key(secret_key, purpose)).decrypt(raw[:_NONCE], raw[_NONCE:], bound_to.encode())
    except Exception as exc:  # cryptography's InvalidTag: altered, another key or another row
        raise ValueError("sealed secret does not open") from exc
    return plain.decode()
