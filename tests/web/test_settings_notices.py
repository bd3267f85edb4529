"""Settings-changed e-mails are coalesced: every change is recorded as it is made, and one
e-mail, a delay after the first, lists them all in order. Pending notices survive a restart
of the site; a deleted account gets none."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from streams.adapters.settings_notices import settings_notices
from tests.web.conftest import enroll_and_log_in, notices_sent, open_site, sent_mail, work_of
from tests.web.test_account import PW
from tests.web.test_tracking import seed_registry


async def toggle_watch(site: Any, times: int) -> None:
    """Track Milo Middleton, stop tracking him, and so on: `times` changes in all."""
    await site.get("/notifications")
    for i in range(times):
        if i % 2 == 0:
            status, _ = await site.post("/notifications/offenders", {"offender_id": "OFF-MID"})
        else:
            status, _ = await site.post("/notifications/offenders/OFF-MID/delete")
        assert status == 200


def pending(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(settings_notices)).scalar_one())


def plain(msg: Any) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


async def test_twenty_toggles_make_one_email_listing_every_change_in_order(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    await toggle_watch(site, 20)
    assert await notices_sent(site, after=0) == []  # none before the delay
    assert await notices_sent(site, after=4 * 60) == []
    [msg] = await notices_sent(site)  # five minutes after the first change
    assert msg["To"] == site.email and msg["List-Unsubscribe"]
    text = plain(msg)
    started = text.count("You started tracking an offender")
    stopped = text.count("You stopped tracking an offender")
    assert (started, stopped) == (10, 10)
    # In the order they were made: started, stopped, started, ...
    order = [
        line.split(",")[0]
        for line in text.splitlines()
        if line.startswith(("You started tracking", "You stopped tracking"))
    ]
    assert order == ["You started tracking an offender", "You stopped tracking an offender"] * 10
    assert "Milo Middleton" in text and pending(engine) == 0
    assert await notices_sent(site, after=3600) == [msg]  # and no second e-mail later


async def test_a_pending_notice_survives_a_restart_and_goes_out_when_the_site_starts(
    engine, smtp_server, tmp_path: Path
) -> None:
    catcher, port = smtp_server
    seed_registry(engine)
    async with open_site(engine, port, catcher, tmp_path) as site:
        await enroll_and_log_in(site, "restart@example.org", PW)
        await toggle_watch(site, 3)
    assert pending(engine) == 3 and [m["To"] for m in catcher.messages] == ["restart@example.org"]
    # The site was down for ten minutes: the notice fell due meanwhile.
    with engine.begin() as conn:
        conn.execute(update(settings_notices).values(changed_at=datetime.now(UTC) - timedelta(minutes=10)))
    async with open_site(engine, port, catcher, tmp_path) as site:
        for _ in range(200):  # the start's first round, in the background
            if len(catcher.messages) == 2:
                break
            await asyncio.sleep(0.05)
        await work_of(site).idle()
    notice = catcher.messages[-1]
    assert notice["To"] == "restart@example.org" and "Changes to your registry e-mail alerts" in plain(notice)
    assert plain(notice).count("tracking an offender") == 3 and pending(engine) == 0


async def test_a_deleted_account_gets_no_settings_notice(site, engine) -> None:
    seed_registry(engine)
    await enroll_and_log_in(site, "gone@example.org", PW)
    await toggle_watch(site, 2)
    assert pending(engine) == 2
    status, _ = await site.post("/account/delete", {"delete_password": PW})
    assert status == 200
    assert pending(engine) == 0
    before = len(await sent_mail(site))
    assert len(await notices_sent(site, after=3600)) == before
