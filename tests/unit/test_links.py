"""Unsubscribe links are signed: a subscriber id alone, or a forged signature, does nothing."""

from __future__ import annotations

from streams.domain.links import unsubscribe_token, verify_unsubscribe_token

SECRET = "x" * 40


def test_token_round_trip() -> None:
    assert verify_unsubscribe_token(SECRET, unsubscribe_token(SECRET, 42)) == 42


def test_forged_or_swapped_tokens_are_refused() -> None:
    token = unsubscribe_token(SECRET, 42)
    sig = token.split(".", 1)[1]
    assert verify_unsubscribe_token(SECRET, f"43.{sig}") is None
    assert verify_unsubscribe_token(SECRET, "42") is None
    assert verify_unsubscribe_token(SECRET, "abc.def") is None
    assert verify_unsubscribe_token("y" * 40, token) is None
