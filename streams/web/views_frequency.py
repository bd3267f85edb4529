"""How often a subscriber's digests go out: daily, or weekly on a chosen weekday (My notifications)."""

from __future__ import annotations

from aiohttp import web

from streams.adapters import tracking_db
from streams.adapters.subscriber_store import SubscriberChange
from streams.domain.digest_schedule import Schedule, ScheduleError
from streams.web.confirmations import SettingsChange, finish
from streams.web.display import clean
from streams.web.frequency import frequency_context, schedule_text
from streams.web.keys import db, flash, session_of
from streams.web.paths import paths_of
from streams.web.responses import redirect, require_login
from streams.web.views_addresses import notifications_page


@require_login
async def set_frequency(request: web.Request) -> web.Response:
    sid: int = session_of(request).subscriber_id  # type: ignore[assignment]
    form = await request.post()
    try:
        new = Schedule.parse(clean(form.get("frequency"), 10), clean(form.get("weekday"), 10))
    except ScheduleError as exc:
        return await notifications_page(request, 400, frequency_error=str(exc))
    old = await db(request, tracking_db.set_schedule, sid, new)
    if old is None or old == new:
        await flash(request, "Nothing changed.")
        raise redirect(paths_of(request).of("notifications"))
    context = frequency_context(request, new)
    change = SettingsChange(
        "You changed how often you get your digest",
        [
            ("Before", schedule_text(old)),
            ("Now", schedule_text(new)),
            ("Next digest", f"{context['next_digest']}, with every change not sent to you yet"),
        ],
    )
    await finish(
        request,
        sid,
        SubscriberChange(sid),
        change,
        f"Your digest now comes {new.describe()}; the next one {context['next_digest']}.",
    )
    raise redirect(paths_of(request).of("notifications"))
