"""How a digest writes its dates (registry as of, the days a weekly one covers), for its text and HTML parts."""

from __future__ import annotations

from dataclasses import dataclass
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


def _day(t: datetime) -> str:
    return f"{t:%B} {t.day}"


def days_span(start: datetime, end: datetime, zone: tzinfo) -> str:
    """'December 1 to December 8, 2026' (the local dates from `start` to `end`, both aware)."""
    a, b = start.astimezone(zone), end.astimezone(zone)
    if a.date() == b.date():
        return f"{_day(b)}, {b.year}"
    if a.year == b.year:
        return f"{_day(a)} to {_day(b)}, {b.year}"
    return f"{_day(a)}, {a.year} to {_day(b)}, {b.year}"


@dataclass(frozen=True)
class WeeklyWords:
    """What a weekly digest says about the days it covers: in its subject, heading and body."""

    span: str  # 'December 1 to December 8, 2026'
    covers: str  # the sentence, with weekdays and times


def weekly_words(start: datetime, end: datetime, zone: tzinfo) -> WeeklyWords:
    """A weekly digest covering the changes recorded from `start` (its subscriber's previous
    digest, or enrollment) to `end` (this digest)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("weekly_words: expected aware datetimes")
    a, b = start.astimezone(zone), end.astimezone(zone)
    return WeeklyWords(
        span=days_span(a, b, zone),
        covers=f"It covers the changes recorded from {a:%A}, {local_time(a, zone)}"
        f" to {b:%A}, {local_time(b, zone)}.",
    )
