"""Password rules after NIST SP 800-63B: long enough, not common, not about us; nothing else."""

from __future__ import annotations

import unicodedata

from zxcvbn.frequency_lists import FREQUENCY_LISTS

MIN_LENGTH = 8
MAX_LENGTH = 128  # generous for passphrases; bounds the work a single login can cause

HINT = (
    f"{MIN_LENGTH} to {MAX_LENGTH} characters. Spaces, accents and symbols are all fine. "
    "A few unrelated words make a strong password that is easy to remember."
)

# The 30,000 most common passwords of leaked lists that zxcvbn ships (all lower-case).
_COMMON = frozenset(FREQUENCY_LISTS["passwords"])
_SERVICE_WORDS = ("sor-notify", "sornotify", "registry")
# A shorter local part ("al@…") would forbid too many good passwords merely for containing it.
_MIN_LOCAL_PART_CHECKED = 4


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def problem(password: str, email: str = "") -> str | None:
    """What is wrong with a new password, in words a person can act on; None if it is fine."""
    p = normalize(password)
    if len(p) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters. Spaces count, so a short phrase works well."
    if len(p) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    folded = p.casefold()
    local = email.split("@", 1)[0].strip().casefold()
    if local and (folded == local or (len(local) >= _MIN_LOCAL_PART_CHECKED and local in folded)):
        return "Don't use your e-mail address in your password: it is the first thing someone would try."
    if any(word in folded for word in _SERVICE_WORDS):
        return 'Don\'t use the name of this service ("registry" or "sor-notify") in your password.'
    if folded in _COMMON or "".join(folded.split()) in _COMMON:
        return (
            "This password is on a list of passwords that are common or have leaked, so it is easy "
            "to guess. Choose another one, for example a few words that have nothing to do with each other."
        )
    return None
