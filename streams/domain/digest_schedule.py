"""When the daily digest goes out: SOR_DIGEST_TIME in the service's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def next_digest_at(now: datetime, zone: ZoneInfo, digest_time: tuple[int, int]) -> datetime:
    """The first daily send after `now` (aware), in `zone`: the digest a waiting alert goes into."""
    local = now.astimezone(zone)
    at = time(*digest_time)
    for days in (0, 1, 2):
        candidate = datetime.combine(local.date() + timedelta(days=days), at, tzinfo=zone)
        # Compared in UTC: aware datetimes sharing a tzinfo compare by wall clock, which a
        # daylight-saving change would fool.
        if candidate.astimezone(UTC) > now.astimezone(UTC):
            return candidate
    raise AssertionError("a daily time always comes again within two days")
