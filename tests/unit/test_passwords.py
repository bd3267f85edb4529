"""The password rules of SP 800-63B-4 on their own: length by factors, the blocklist, the ask to lengthen."""

from __future__ import annotations

import pytest

from streams.domain.passwords import HINT, MAX_LENGTH, hint, needs_strengthening, problem

EMAIL = "annette.reader@example.org"


@pytest.mark.parametrize(
    "password, second_factor, says",
    [
        ("a quiet walk", False, "at least 15 characters"),  # alone: 15
        ("a quiet walk", True, None),  # beside a second factor: 8
        ("seven c", True, "at least 8 characters"),
        ("x" * (MAX_LENGTH + 1), False, f"at most {MAX_LENGTH}"),
        # The trivial passwords, refused also where 8 characters would do.
        (" " * 8, True, "only spaces"),
        ("qqqqqqqqqqqq", True, "repeat one character"),
        ("1234567890123", True, "characters in order"),
        ("abcabcabcabc", True, "short group"),
        ("passwordpassword", False, "repeat"),  # a common word, twice
        ("aaaaaaaaaaaaaab1", False, "repeat"),  # hardly more than one character
        ("qwertyuiopasdf", True, "keys next to each other"),
        ("lkjhgfdsa poiuy", False, "keys next to each other"),  # a row backwards
        ("abcd 1234 wxyz 9876", False, "characters in order"),  # runs one after another
        ("my Registry password", False, "name of this service"),
        ("SOR NOTIFY 4 my family", False, "name of this service"),
        ("annette reader forever", False, "e-mail address"),
        ("hello from example", False, "e-mail address"),
        # Good passphrases, with or without a run inside: only a password made of runs is refused.
        ("plum orchard lantern", False, None),
        ("abc is where my 7 cats sleep", False, None),
        ("Grüße aus Köln, 東京 の 夜 🌙", False, None),
    ],
)
def test_a_new_password_is_judged_by_length_and_blocklist(password, second_factor, says) -> None:
    found = problem(password, EMAIL, has_second_factor=second_factor)
    if says is None:
        assert found is None
    else:
        assert found is not None and says in found


def test_length_is_counted_after_unicode_normalisation() -> None:
    # "ﬀ" (one character, a ligature) is "ff" under NFKC: the 14 typed characters count as 15.
    assert len("ﬀ rolls pebble") == 14
    assert problem("ﬀ rolls pebble", has_second_factor=False) is None
    assert not needs_strengthening("ﬀ rolls pebble", has_second_factor=False)
    assert needs_strengthening("ﬀ rolls pebb", has_second_factor=False)


@pytest.mark.parametrize(
    "length_or_password, second_factor, asked",
    [
        (8, False, True),
        (14, False, True),
        (15, False, False),
        (8, True, False),
        ("tulips 4 Kit", False, True),
    ],
)
def test_a_short_password_alone_needs_strengthening(length_or_password, second_factor, asked) -> None:
    assert needs_strengthening(length_or_password, second_factor) is asked


def test_the_hint_names_the_length_that_applies() -> None:
    assert "At least 15 characters" in HINT and str(MAX_LENGTH) in HINT
    assert "At least 8 characters" in hint(has_second_factor=True)
