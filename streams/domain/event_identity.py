"""What makes a registry event one registry entry: its id, and a digest of its content."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from streams.domain.model import Address, RegistryEvent

# 128 bits of SHA-256: collisions are out of reach, and 64 recent digests per offender state
# stay small in the table's changelog.
DIGEST_HEX = 32


def _instant(text: str) -> str:
    """One form per instant: time-zone offset and fractional-second spelling are noise."""
    upper = text.upper()
    try:
        at = datetime.fromisoformat(upper)
    except ValueError:  # a leap second (":60"), which RFC 3339 allows and Python cannot hold
        return upper
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _number(value: float | int | None) -> float | None:
    return None if value is None else float(value)  # 38 and 38.0 are one latitude


def _address(a: Address) -> dict[str, Any]:
    # As the registry sent it; normalized text and precision are derived from these.
    return {
        "type": a.type,
        "street": a.street,
        "city": a.city,
        "state": a.state,
        "zip": a.zip,
        "county": a.county,
        "lat": _number(a.lat),
        "lon": _number(a.lon),
    }


def _canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_digest(event: RegistryEvent) -> str:
    """The digest of what the event says about the registry entry.

    Taken from the decoded event, before any geocoding adds points, so the same message
    gives the same digest however often it comes. Ignored as noise: key order, white space
    and number spelling in the JSON (already gone once decoded), the `schema` field, how
    `occurred_at` writes its instant (offset, fraction digits, letter case), the order of
    the address list and of the online identifiers, and their letter case (they are kept
    only as digests of the lower-cased identifier). Everything else counts, text exactly.
    """
    profile = event.offender.to_dict() if event.offender is not None else None
    if profile is not None:
        profile["online_identifier_digests"] = sorted(profile["online_identifier_digests"])
    doc = {
        "event_id": event.event_id,
        "offender_id": event.offender_id,
        "revision": event.revision,
        "occurred_at": _instant(event.occurred_at),
        "kind": event.kind,
        "baseline": bool(event.baseline),
        "offender": profile,
        "addresses": sorted((_address(a) for a in event.addresses), key=_canonical),
    }
    return hashlib.sha256(_canonical(doc).encode("utf-8")).hexdigest()[:DIGEST_HEX]
