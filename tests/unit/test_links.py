"""Unsubscribe links are signed: a subscriber id alone, or a forged signature, does nothing;
a link names the enrollment it was mailed to, so it cannot stop somebody else's mail."""

from __future__ import annotations

import base64
import hashlib
import hmac

from streams.domain.links import UnsubscribeLink, unsubscribe_token, verify_unsubscribe_token

SECRET = "x" * 40


def test_token_round_trip() -> None:
    link = verify_unsubscribe_token(SECRET, unsubscribe_token(SECRET, 42, "k3y-Of_42"))
    assert link == UnsubscribeLink(42, "k3y-Of_42")
    assert link.is_for("k3y-Of_42")
    assert not link.is_for("the-next-enrollment") and not link.is_for(None)


def test_links_mailed_before_the_keys_still_work_for_subscribers_without_one() -> None:
    # The format of release 0.1, computed here from its definition, not by the code under test.
    mac = hmac.new(SECRET.encode(), b"unsubscribe:42", hashlib.sha256).digest()
    old = "42." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    assert unsubscribe_token(SECRET, 42, None) == old
    link = verify_unsubscribe_token(SECRET, old)
    assert link == UnsubscribeLink(42, None)
    assert link.is_for(None)
    assert not link.is_for("a-key-given-after-the-link-was-mailed")


def test_forged_or_swapped_tokens_are_refused() -> None:
    token = unsubscribe_token(SECRET, 42, "key42")
    _, key, sig = token.split(".")
    assert verify_unsubscribe_token(SECRET, f"43.{key}.{sig}") is None
    assert verify_unsubscribe_token(SECRET, f"42.other.{sig}") is None
    assert verify_unsubscribe_token(SECRET, f"42.{sig}") is None  # the key left out
    assert verify_unsubscribe_token(SECRET, "42") is None
    assert verify_unsubscribe_token(SECRET, "abc.def") is None
    assert verify_unsubscribe_token(SECRET, f"42..{sig}") is None
    assert verify_unsubscribe_token(SECRET, f"42.{key}.{sig}.x") is None
    assert verify_unsubscribe_token(SECRET, f"42.k%y.{sig}") is None
    assert verify_unsubscribe_token("y" * 40, token) is None
