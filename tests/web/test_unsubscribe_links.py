"""Issue 15, hole 2: an unsubscribe link stops the mail of the enrollment it was mailed to and
nobody else's, for as long as that enrollment lasts; and mail stopped by it can be started again."""

from __future__ import annotations

import base64
import hashlib
import hmac

import aiohttp
from sqlalchemy import select, update

from streams.adapters.db import offender_watches, subscribers
from streams.domain import links
from streams.web.keys import RUNTIME
from tests.web.conftest import enroll_and_log_in, sent_mail
from tests.web.test_tracking import insert_address, seed_registry

PW = "plum orchard lantern"


def _row(engine, email: str):
    with engine.connect() as conn:
        return conn.execute(
            select(subscribers.c.id, subscribers.c.status, subscribers.c.link_key).where(
                subscribers.c.email == email
            )
        ).one()


def _secret(site) -> str:
    return site.client.app[RUNTIME].settings.secret_key


async def _one_click(site, path: str) -> int:
    async with aiohttp.ClientSession() as mail_program:  # no cookie, no CSRF token (RFC 8058)
        resp = await mail_program.post(site.client.make_url(path), data={"List-Unsubscribe": "One-Click"})
        return resp.status


async def test_a_deleted_enrollments_link_never_stops_the_next_enrollments_mail(site, engine) -> None:
    await enroll_and_log_in(site, "first@example.com", PW)
    first = _row(engine, "first@example.com")
    assert first.link_key  # every new enrollment has its own
    mailed = f"/unsubscribe/{links.unsubscribe_token(_secret(site), first.id, first.link_key)}"
    status, _ = await site.post("/account/delete", {"delete_password": PW})
    assert status == 200
    await sent_mail(site)

    await enroll_and_log_in(site, "second@example.com", PW)
    second = _row(engine, "second@example.com")
    assert second.id > first.id  # SQLite gave the highest freed id out again before AUTOINCREMENT
    assert second.link_key != first.link_key
    published = len(site.published)

    assert await _one_click(site, mailed) == 200  # nothing to say to a mail program but "done"
    status, page = await site.get(mailed)
    assert status == 200 and "already stopped" in page
    assert _row(engine, "second@example.com").status == "active"
    assert len(site.published) == published


async def test_a_link_bound_to_another_enrollment_of_the_same_id_does_nothing(site, engine) -> None:
    """Even where an id was given out twice (SQLite before the upgrade), the link names the
    enrollment it was for: signed by us, but for the earlier holder of the id."""
    await enroll_and_log_in(site, "holder@example.com", PW)
    holder = _row(engine, "holder@example.com")
    earlier = f"/unsubscribe/{links.unsubscribe_token(_secret(site), holder.id, 'an-earlier-key')}"
    assert await _one_click(site, earlier) == 200
    assert _row(engine, "holder@example.com").status == "active"
    key_less = f"/unsubscribe/{links.unsubscribe_token(_secret(site), holder.id, None)}"
    assert await _one_click(site, key_less) == 200
    assert _row(engine, "holder@example.com").status == "active"

    own = f"/unsubscribe/{links.unsubscribe_token(_secret(site), holder.id, holder.link_key)}"
    assert await _one_click(site, own) == 200
    assert _row(engine, "holder@example.com").status == "unsubscribed"


async def test_links_mailed_before_the_upgrade_still_unsubscribe(site, engine) -> None:
    """A subscriber from before the keys has none; the links already mailed to them are the
    release-0.1 format (computed here from its definition) and keep working."""
    await enroll_and_log_in(site, "early@example.com", PW)
    early = _row(engine, "early@example.com")
    with engine.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.id == early.id).values(link_key=None))
    mac = hmac.new(_secret(site).encode(), f"unsubscribe:{early.id}".encode(), hashlib.sha256).digest()
    old_link = f"/unsubscribe/{early.id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    assert await _one_click(site, old_link) == 200
    assert _row(engine, "early@example.com").status == "unsubscribed"


async def test_mail_stopped_by_the_link_starts_again_from_my_account(site, engine) -> None:
    await enroll_and_log_in(site, "parent@example.com", PW)
    me = _row(engine, "parent@example.com")
    seed_registry(engine)
    aid = insert_address(engine, me.id)
    with engine.begin() as conn:
        conn.execute(offender_watches.insert().values(subscriber_id=me.id, offender_id="OFF-MID"))
    link = f"/unsubscribe/{links.unsubscribe_token(_secret(site), me.id, me.link_key)}"
    status, page = await site.post(link, {"from_page": "1"}, csrf=False)
    assert status == 200 and "My account" in page
    assert [c.circle_id for c in site.published[-1].removed_circles] == [aid]

    status, page = await site.get("/account")
    assert status == 200 and "Your alert e-mails are stopped" in page
    assert 'action="/account/mail/start"' in page
    resp = await site.client.post(
        "/account/mail/start", data={"csrf_token": site.csrf}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/notifications"
    assert _row(engine, "parent@example.com").status == "active"
    back = site.published[-1]
    assert [c.circle_id for c in back.circles] == [aid] and back.watches == ["OFF-MID"]
    status, page = await site.get("/notifications")
    assert "Your alert e-mails are on again" in page and "e-mails are stopped" not in page
    status, page = await site.get("/account")
    assert "Start my e-mails again" not in page

    # Pressing it again (a second tab) changes nothing and publishes nothing.
    count = len(site.published)
    resp = await site.client.post(
        "/account/mail/start", data={"csrf_token": site.csrf}, allow_redirects=False
    )
    assert resp.status == 303 and len(site.published) == count


async def test_starting_mail_again_needs_a_signed_in_session_and_the_form_token(site, engine) -> None:
    resp = await site.client.post("/account/mail/start", allow_redirects=False)
    assert resp.status in (303, 403)
    await enroll_and_log_in(site, "someone@example.com", PW)
    resp = await site.client.post("/account/mail/start", data={"csrf_token": "forged"})
    assert resp.status == 403
