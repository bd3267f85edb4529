"""Password rules of NIST SP 800-63B-4: long enough for the factors it stands with, not on a blocklist."""

from __future__ import annotations

import re
import unicodedata

from zxcvbn.frequency_lists import FREQUENCY_LISTS

# SP 800-63B-4 3.1.1.2: 15 characters when the password is the only factor, 8 beside another one.
MIN_LENGTH = 15
MIN_LENGTH_WITH_SECOND_FACTOR = 8
MAX_LENGTH = 128  # generous for passphrases; bounds the work a single login can cause


def hint(has_second_factor: bool = False) -> str:
    """The words under a new-password box."""
    return (
        f"At least {min_length(has_second_factor)} characters (up to {MAX_LENGTH}). Spaces, accents and "
        "symbols are all fine. A few unrelated words make a strong password that is easy to remember."
    )


# The 30,000 most common passwords of leaked lists that zxcvbn ships (all lower-case).
_COMMON = frozenset(FREQUENCY_LISTS["passwords"])
# Context words (SP 800-63B-4 3.1.1.2): this service, what it is about, where it runs.
_SERVICE_WORDS = ("sornotify", "registry", "offender", "missouri")
# A shorter piece of an address ("al@…", "mo.org") would forbid too many good passwords.
_MIN_EMAIL_PIECE_CHECKED = 4
_GENERIC_DOMAIN_LABELS = frozenset({"mail", "email", "smtp", "mx", "www"})
# Keys next to each other, read either way (the letter and digit alphabets are checked by step).
_KEYBOARD_ROWS = (
    "1234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "!@#$%^&*()",
    "qwertzuiop",
    "azertyuiop",
)
_ROWS_BOTH_WAYS = _KEYBOARD_ROWS + tuple(row[::-1] for row in _KEYBOARD_ROWS)
_MIN_RUN = 3  # "ab" is two letters, not a run
_SEPARATORS = re.compile(r"[\s\-_.+]+")


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def min_length(has_second_factor: bool) -> int:
    return MIN_LENGTH_WITH_SECOND_FACTOR if has_second_factor else MIN_LENGTH


HINT = hint()


def needs_strengthening(password_length_or_password: int | str, has_second_factor: bool) -> bool:
    """An existing password that was long enough before SP 800-63B-4 but is not now: it still
    works, and its owner is asked to lengthen it or add a second factor."""
    value = password_length_or_password
    length = len(normalize(value)) if isinstance(value, str) else value
    return length < min_length(has_second_factor)


def problem(password: str, email: str = "", *, has_second_factor: bool = False) -> str | None:
    """What is wrong with a new password, in words a person can act on; None if it is fine."""
    p = normalize(password)
    least = min_length(has_second_factor)
    if len(p) < least:
        return f"Use at least {least} characters. Spaces count, so a short phrase works well."
    if len(p) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    folded = p.casefold()
    compact = _SEPARATORS.sub("", folded)
    if not compact:
        return "Don't use only spaces: type words or other characters."
    if _repetitive(compact):
        return (
            'Don\'t repeat one character or a short group of characters (like "aaaa" or "abcabc"): '
            "that is among the first things someone would try. A few unrelated words are better."
        )
    if _sequential(compact):
        return (
            'Don\'t use characters in order or keys next to each other (like "12345", "abcdef" or '
            '"qwerty"): that is among the first things someone would try. A few unrelated words are better.'
        )
    if _uses_email(folded, compact, email):
        return "Don't use your e-mail address or part of it in your password: it is the first thing someone would try."
    if any(word in compact for word in _SERVICE_WORDS):
        return (
            'Don\'t use the name of this service or what it is about ("sor-notify", "registry", '
            '"offender", "Missouri") in your password.'
        )
    if folded in _COMMON or compact in _COMMON:
        return (
            "This password is on a list of passwords that are common or have leaked, so it is easy "
            "to guess. Choose another one, for example a few words that have nothing to do with each other."
        )
    return None


def _repetitive(s: str) -> bool:
    """Few different characters, mostly one, or a unit repeated: "qqqq", "aaaaaaaab1", "abcabcab",
    "passwordpassword"."""
    if len(set(s)) <= 2 or 2 * max(map(s.count, set(s))) > len(s):
        return True
    for period in range(1, len(s) // 2 + 1):
        if all(s[i] == s[i - period] for i in range(period, len(s))):
            unit = s[:period]
            return period <= len(s) // 3 or unit in _COMMON or _sequential(unit)
    return False


def _sequential(s: str) -> bool:
    """Made only of runs of at least three: "1234567890123", "abcdef", "qwertyasdfgh", "987zyx"."""
    covered = [True] + [False] * len(s)  # covered[i]: s[:i] is a sequence of runs
    for start in range(len(s)):
        if covered[start]:
            for end in range(start + _MIN_RUN, start + _longest_run(s, start) + 1):
                covered[end] = True
    return covered[len(s)]


def _longest_run(s: str, start: int) -> int:
    """How many characters from `start` on go in order: one code point up or down (letters and
    digits), the same one again, or along a keyboard row either way."""
    best = 1
    if start + 1 < len(s):
        step = ord(s[start + 1]) - ord(s[start])
        if step == 0 or (
            step in (-1, 1) and s[start : start + 2].isascii() and s[start : start + 2].isalnum()
        ):
            end = start + 2
            while end < len(s) and ord(s[end]) - ord(s[end - 1]) == step and (step == 0 or s[end].isalnum()):
                end += 1
            best = end - start
    for row in _ROWS_BOTH_WAYS:
        at = row.find(s[start])
        if at >= 0:
            n = 1
            while start + n < len(s) and at + n < len(row) and s[start + n] == row[at + n]:
                n += 1
            best = max(best, n)
    return best


def _uses_email(folded: str, compact: str, email: str) -> bool:
    local, _, domain = email.strip().casefold().partition("@")
    if local and folded == local:
        return True
    labels = set(domain.split(".")[:-1]) - _GENERIC_DOMAIN_LABELS
    pieces = {local, _SEPARATORS.sub("", local), *_SEPARATORS.split(local), *labels}
    return any(len(piece) >= _MIN_EMAIL_PIECE_CHECKED and piece in compact for piece in pieces)
