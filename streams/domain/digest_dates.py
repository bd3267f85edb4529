"""How a digest writes when the registry data was last updated: one rule for its text and HTML parts."""

from __future__ import annotations

from datetime import datetime, tzinfo


def local_time(when: datetime, zone: tzinfo) -> str:
    """'December 7, 2026, 5:30 AM CST': the moment in the digest's zone, the zone named."""
    t = when.astimezone(zone)
    hour = t.hour % 12 or 12
    return f"{t:%B} {t.day}, {t.year}, {hour}:{t:%M} {'AM' if t.hour < 12 else 'PM'} {t.tzname()}"


def registry_as_of(when: datetime | None, zone: tzinfo) -> str:
    """The digest's "registry as of" sentence; `when` is the newest applied registry event."""
    if when is None:
        return "Registry data as of: not known yet (no registry update has been received)."
    if when.tzinfo is None:
        raise ValueError("registry_as_of: expected an aware datetime")
    return f"Registry data as of {local_time(when, zone)}."
