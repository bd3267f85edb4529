"""The "How often" part of My notifications: the subscriber's digest schedule as the page shows it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from streams.domain.digest_schedule import WEEKDAYS, Schedule, next_digest_at
from streams.web.display import when_text
from streams.web.keys import clock_of, runtime_of


def schedule_text(s: Schedule) -> str:
    """'Daily' / 'Weekly, on Tuesdays', as the page and the settings e-mail say it."""
    return f"Weekly, on {WEEKDAYS[s.weekday or 0]}s" if s.weekly else "Daily"


def frequency_context(request: web.Request, schedule: Schedule) -> dict[str, Any]:
    """What the page's "How often" fieldset shows: the choice and when the next digest goes out."""
    settings = runtime_of(request).settings
    at = next_digest_at(clock_of(request), settings.zone, settings.digest_time, schedule)
    return {
        "schedule": schedule,
        "weekdays": list(enumerate(WEEKDAYS)),
        "next_digest": when_text(at.astimezone(settings.zone)),
        "digest_time": f"{at.hour % 12 or 12}:{at:%M} {'AM' if at.hour < 12 else 'PM'}",
        "frequency_error": None,
    }
