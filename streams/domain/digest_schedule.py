"""When a subscriber's digest goes out: daily, or weekly on a chosen weekday, at SOR_DIGEST_TIME
in the service's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

DAILY = "daily"
WEEKLY = "weekly"
FREQUENCIES = (DAILY, WEEKLY)
# date.weekday() numbering: 0 is Monday.
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ScheduleError(ValueError):
    """A frequency or weekday that is not one of the choices; the message says what is."""


@dataclass(frozen=True)
class Schedule:
    frequency: str = DAILY
    weekday: int | None = None  # weekly only: 0 Monday … 6 Sunday

    def __post_init__(self) -> None:
        if self.frequency not in FREQUENCIES:
            raise ScheduleError("Choose how often: daily or weekly.")
        if self.frequency == WEEKLY and self.weekday not in range(7):
            raise ScheduleError("Choose the day of the week your weekly digest goes out.")
        if self.frequency == DAILY and self.weekday is not None:
            raise ScheduleError("A daily digest has no weekday: choose weekly to pick a day.")

    @classmethod
    def parse(cls, frequency: str | None, weekday: str | int | None) -> Schedule:
        """From a form or an import line: a weekday by number (0 Monday) or English name;
        a weekday given with "daily" is ignored (a form sends its select either way)."""
        freq = (frequency or "").strip().lower()
        if freq != WEEKLY:
            return cls(freq or DAILY)
        if isinstance(weekday, str):
            text = weekday.strip()
            names = [d.lower() for d in WEEKDAYS]
            if text.lower() in names:
                weekday = names.index(text.lower())
            elif text.isascii() and text.isdigit():
                weekday = int(text)
            else:
                weekday = None
        return cls(WEEKLY, weekday if isinstance(weekday, int) and not isinstance(weekday, bool) else None)

    @classmethod
    def stored(cls, frequency: str | None, weekday: int | None) -> Schedule:
        """As the database holds it; anything but a whole weekly choice reads as daily (more
        mail, never less)."""
        try:
            return cls(WEEKLY, weekday) if frequency == WEEKLY else DAILY_SCHEDULE
        except ScheduleError:
            return DAILY_SCHEDULE

    @property
    def weekly(self) -> bool:
        return self.frequency == WEEKLY

    def due_on(self, day: date) -> bool:
        """Whether the digest run of local date `day` sends this subscriber's digest."""
        return not self.weekly or day.weekday() == self.weekday

    def describe(self) -> str:
        """'once a day' / 'once a week, on Tuesdays'."""
        return f"once a week, on {WEEKDAYS[self.weekday or 0]}s" if self.weekly else "once a day"


DAILY_SCHEDULE = Schedule()


def missed_weekly_cutoffs(day: date, zone: tzinfo) -> dict[int, datetime]:
    """For the digest run of local date `day`: per other weekday, the start (UTC) of that
    weekday's latest date before `day`. A weekly subscriber of that weekday who still has an
    alert recorded before it waiting missed their run (the service was down that whole day:
    had it run, it would have taken the alert), so this run sends their digest, not next week's."""
    cutoffs: dict[int, datetime] = {}
    for weekday in range(7):
        back = (day.weekday() - weekday) % 7
        if back:
            start = datetime.combine(day - timedelta(days=back), time(0), tzinfo=zone)
            cutoffs[weekday] = start.astimezone(UTC)
    return cutoffs


def next_digest_at(
    now: datetime, zone: ZoneInfo, digest_time: tuple[int, int], schedule: Schedule = DAILY_SCHEDULE
) -> datetime:
    """The first send of `schedule` after `now` (aware), in `zone`: the digest a waiting alert goes into."""
    local = now.astimezone(zone)
    at = time(*digest_time)
    for days in range(9):
        day = local.date() + timedelta(days=days)
        candidate = datetime.combine(day, at, tzinfo=zone)
        # Compared in UTC: aware datetimes sharing a tzinfo compare by wall clock, which a
        # daylight-saving change would fool.
        if schedule.due_on(day) and candidate.astimezone(UTC) > now.astimezone(UTC):
            return candidate
    raise AssertionError("a daily or weekly time always comes again within eight days")
