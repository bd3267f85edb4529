"""How often, over HTTP: My notifications offers daily or weekly on a weekday, refuses anything
else with a message, mails a settings notice, and the why page and the FAQ tell the truth about
when a change reaches a daily and a weekly subscriber."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from streams.adapters import repository
from streams.adapters.db import subscribers
from tests.web.conftest import notices_sent
from tests.web.test_tracking import seed_registry, visible
from tests.web.test_why_page import answer, dated, proximity_alert, track

CHICAGO = ZoneInfo("America/Chicago")  # the site's default SOR_TIMEZONE; SOR_DIGEST_TIME 06:00
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def next_send(now: datetime, weekday: int | None) -> str:
    """The next 06:00 in Chicago after `now` on `weekday` (any day: None), as the site writes it."""
    day = now.astimezone(CHICAGO).date()
    while True:
        at = datetime.combine(day, time(6, 0), tzinfo=CHICAGO)
        if at.astimezone(UTC) > now and (weekday is None or day.weekday() == weekday):
            return f"{at:%B} {at.day}, {at.year} at 6:00 AM {at:%Z}"
        day += timedelta(days=1)


def stored(engine: Any, sid: int) -> tuple[str, int | None]:
    with engine.connect() as conn:
        row = conn.execute(
            select(subscribers.c.digest_frequency, subscribers.c.digest_weekday).where(
                subscribers.c.id == sid
            )
        ).one()
    return row[0], row[1]


def checked(page: str) -> list[str]:
    return re.findall(r'name="frequency" value="(\w+)" checked', page)


async def test_a_subscriber_starts_daily_and_switches_to_weekly_on_a_chosen_day(
    logged_in_site, engine
) -> None:
    site = logged_in_site
    before = datetime.now(UTC)
    status, page = await site.get("/notifications")
    assert status == 200 and checked(page) == ["daily"]
    text = " ".join(visible(page).split())
    assert "How often do you want your digest?" in text
    assert "within 24 hours of being entered" in text and "can wait up to 7 days" in text
    assert any(f"Your next digest: {next_send(t, None)}" in text for t in (before, datetime.now(UTC)))

    before = datetime.now(UTC)
    status, page = await site.post("/notifications/frequency", {"frequency": "weekly", "weekday": "4"})
    after = datetime.now(UTC)
    assert status == 200 and checked(page) == ["weekly"]
    assert re.search(r'<option value="4" selected>Friday</option>', page)
    text = " ".join(visible(page).split())
    assert "Your digest now comes once a week, on Fridays" in text
    assert any(f"Your next digest: {next_send(t, 4)}" in text for t in (before, after))
    assert stored(engine, site.subscriber_id) == ("weekly", 4)

    [notice] = await notices_sent(site)
    body = notice.get_body(preferencelist=("plain",)).get_content()
    assert "You changed how often you get your digest" in body
    assert "Before: Daily" in body and "Now: Weekly, on Fridays" in body

    # ... and back to daily: the weekday goes with it.
    status, page = await site.post("/notifications/frequency", {"frequency": "daily", "weekday": "4"})
    assert status == 200 and checked(page) == ["daily"]
    assert stored(engine, site.subscriber_id) == ("daily", None)


async def test_a_choice_that_is_not_offered_is_refused_with_a_message_and_changes_nothing(
    logged_in_site, engine
) -> None:
    site = logged_in_site
    await site.get("/notifications")
    for form, message in [
        ({"frequency": "weekly", "weekday": "9"}, "Choose the day of the week your weekly digest goes out."),
        ({"frequency": "weekly"}, "Choose the day of the week your weekly digest goes out."),
        ({"frequency": "weekly", "weekday": "Caturday"}, "Choose the day of the week"),
        ({"frequency": "hourly", "weekday": "1"}, "Choose how often: daily or weekly."),
    ]:
        status, page = await site.post("/notifications/frequency", form)
        assert status == 400, form
        assert message in " ".join(visible(page).split()), form
        assert checked(page) == ["daily"]
    assert stored(engine, site.subscriber_id) == ("daily", None)
    assert await notices_sent(site) == []


async def test_the_frequency_form_needs_its_csrf_token(logged_in_site, engine) -> None:
    site = logged_in_site
    await site.get("/notifications")
    status, page = await site.post(
        "/notifications/frequency", {"frequency": "weekly", "weekday": "2"}, csrf=False
    )
    assert status == 403 and "form has expired" in page.lower()
    assert stored(engine, site.subscriber_id) == ("daily", None)


async def test_the_why_page_names_the_next_digest_of_the_subscribers_own_schedule(
    logged_in_site, engine
) -> None:
    site = logged_in_site
    seed_registry(engine)
    place = track(engine, site.subscriber_id)
    state = dated(engine, "OFF-NEAR", "2026-12-05T14:00:00Z")
    repository.record_alerts(engine, [proximity_alert(state, site.subscriber_id, place)])
    await site.get("/notifications")
    await site.post("/notifications/frequency", {"frequency": "weekly", "weekday": "0"})
    before = datetime.now(UTC)
    _, page = await answer(site, "OFF-NEAR")
    after = datetime.now(UTC)
    text = " ".join(visible(page).split())
    wanted = {f"It is in your next digest, sent {next_send(t, 0)}" for t in (before, after)}
    assert any(w in text for w in wanted), text


async def test_the_faq_states_each_schedules_promise(site) -> None:
    status, page = await site.get("/faq")
    text = " ".join(visible(page).split())
    assert status == 200
    assert "Daily (the choice unless you change it), a change reaches you within 24 hours" in text
    assert "so a change can wait up to 7 days to reach you" in text
    assert "Switching loses nothing and repeats nothing" in text
