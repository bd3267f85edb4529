"""Every absolute link that goes into an e-mail; unsubscribe links signed, so nobody can unsubscribe somebody else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from streams.domain.ids import parse_id

# What streams.adapters.db.new_link_key makes (base64url), with room to spare.
_LINK_KEY = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _sign(secret: str, purpose: str, subscriber_id: int, link_key: str | None) -> str:
    bound = f"{purpose}:{subscriber_id}" + (f":{link_key}" if link_key is not None else "")
    mac = hmac.new(secret.encode(), bound.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def unsubscribe_token(secret: str, subscriber_id: int, link_key: str | None) -> str:
    """`<id>.<link key>.<signature>`; `<id>.<signature>` for a subscriber without a link key
    (enrolled before the keys: the links already mailed to them keep working)."""
    if link_key is None:
        return f"{subscriber_id}.{_sign(secret, 'unsubscribe', subscriber_id, None)}"
    return f"{subscriber_id}.{link_key}.{_sign(secret, 'unsubscribe', subscriber_id, link_key)}"


@dataclass(frozen=True)
class UnsubscribeLink:
    """A link this service signed: whose it was, and which enrollment of that id it was for."""

    subscriber_id: int
    link_key: str | None

    def is_for(self, current_link_key: str | None) -> bool:
        """Whether the enrollment that has this id now is the one the link was mailed to. An
        id is never given out twice, but a key-less link is honoured only while the
        subscriber has no key either."""
        return self.link_key == current_link_key


def verify_unsubscribe_token(secret: str, token: str) -> UnsubscribeLink | None:
    """The link's claims when this service signed them; None for anything else."""
    parts = token.split(".")
    if len(parts) not in (2, 3):
        return None
    sid = parse_id(parts[0])
    key = parts[1] if len(parts) == 3 else None
    if sid is None or key == "" or (key is not None and not _LINK_KEY.fullmatch(key)):
        return None
    expected = _sign(secret, "unsubscribe", sid, key)
    return UnsubscribeLink(sid, key) if hmac.compare_digest(expected, parts[-1]) else None


def unsubscribe_url(public_url: str, secret: str, subscriber_id: int, link_key: str | None) -> str:
    return site_url(public_url, f"/unsubscribe/{unsubscribe_token(secret, subscriber_id, link_key)}")


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
