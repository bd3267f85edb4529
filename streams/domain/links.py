"""Every absolute link that goes into an e-mail; unsubscribe links signed, so nobody can unsubscribe somebody else."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote, quote_plus

from streams.domain.ids import parse_id


def _sign(secret: str, purpose: str, subscriber_id: int) -> str:
    mac = hmac.new(secret.encode(), f"{purpose}:{subscriber_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def unsubscribe_token(secret: str, subscriber_id: int) -> str:
    return f"{subscriber_id}.{_sign(secret, 'unsubscribe', subscriber_id)}"


def verify_unsubscribe_token(secret: str, token: str) -> int | None:
    raw_sid, _, sig = token.partition(".")
    sid = parse_id(raw_sid)
    if sid is None:
        return None
    expected = _sign(secret, "unsubscribe", sid)
    return sid if hmac.compare_digest(expected, sig) else None


def unsubscribe_url(public_url: str, secret: str, subscriber_id: int) -> str:
    return site_url(public_url, f"/unsubscribe/{unsubscribe_token(secret, subscriber_id)}")


def site_url(public_url: str, path: str) -> str:
    """An absolute link to a page of the site ("/login", "/confirm/<token>", ...)."""
    return public_url.rstrip("/") + path


class Links:
    """The links a digest carries, built in one place."""

    def __init__(self, public_url: str, unsubscribe_url: str) -> None:
        self.base = public_url.rstrip("/")
        self.unsubscribe = unsubscribe_url
        self.settings = f"{self.base}/login"

    def record(self, offender_id: str) -> str:
        return f"{self.base}/offenders/{quote(offender_id, safe='')}"

    def map(self, tracked_address_id: int, offender_id: str) -> str:
        # What urlencode({"tracked": ..., "offender": ...}) gives, without its generality.
        return f"{self.base}/map?tracked={int(tracked_address_id)}&offender={quote_plus(offender_id)}"
