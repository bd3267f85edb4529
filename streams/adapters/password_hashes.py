"""Password hashes: argon2id with NFKC-normalised input, and one verification per attempt."""

from __future__ import annotations

import secrets
import unicodedata

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet and ASVS 4.0 (2.4.4): argon2id, 19 MiB, 2 passes, 1 lane.
HASHER = PasswordHasher(
    time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)
# Verified against when the e-mail is unknown or has no password: such a login costs the same time.
DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(32))


def _nfkc(password: str) -> str:
    # NIST SP 800-63B 5.1.1.2: the same password typed on another keyboard must still match.
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return HASHER.hash(_nfkc(password))


def verify_password(stored: str | None, password: str) -> bool:
    """Always one argon2 verification, whether or not there is a stored hash."""
    try:
        HASHER.verify(stored or DUMMY_HASH, _nfkc(password))
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


def needs_rehash(stored: str) -> bool:
    """A hash made with weaker parameters than today's: store a new one at the next sign-in."""
    return HASHER.check_needs_rehash(stored)
