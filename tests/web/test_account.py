"""Account flows over HTTP: enroll, confirm, log in, reset, change password or address, delete."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
import structlog
import structlog.testing
from argon2 import PasswordHasher
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from streams.adapters import password_hashes, repository, subscriber_store
from streams.adapters.account_tokens import email_tokens
from streams.adapters.accounts import hash_password
from streams.adapters.db import offender_watches, pending_alerts, subscribers, tracked_addresses
from streams.adapters.mail import TemporaryMailError
from streams.web import housekeeping
from tests.integration import conftest as integration_fixtures
from tests.integration.conftest import imported, imported_address, proximity_alert
from tests.web.conftest import CSRF, Site, enroll_and_log_in, open_site, sent_mail

# The integration suite's fixture, requested by name below. Bound by assignment, not imported by
# name: an imported name that a test's parameter shadows reads as a redefinition (F811).
subscribe = integration_fixtures.subscribe

PW = "plum orchard lantern"
BASE = "http://notify.test"
GENERIC_LOGIN_ERROR = "E-mail address or password not recognised"


# --- helpers -----------------------------------------------------------------------------


def path_of(url: str) -> str:
    assert url.startswith(BASE + "/"), url
    return url[len(BASE) :]


def link_in(msg: EmailMessage, part: str) -> str | None:
    body = msg.get_body(preferencelist=("plain",)).get_content()
    found = [u for u in re.findall(r"https?://\S+", body) if part in u]
    return path_of(found[0]) if found else None


def comparable(page: str, *typed: str) -> str:
    """A page without what differs by design: the CSRF token and what the person typed."""
    page = CSRF.sub('name="csrf_token" value=""', page)
    for text in typed:
        page = page.replace(text, "TYPED")
    return page


async def enroll(
    site: Site, email: str, password: str = PW, *, email2: str | None = None, password2: str | None = None
) -> tuple[int, str]:
    await site.get("/enroll")
    return await site.post(
        "/enroll",
        {
            "email": email,
            "email2": email if email2 is None else email2,
            "password": password,
            "password2": password if password2 is None else password2,
        },
    )


async def log_in(site: Site, email: str, password: str = PW) -> tuple[int, str, str | None]:
    await site.get("/login")
    resp = await site.client.post(
        "/login", data={"email": email, "password": password, "csrf_token": site.csrf}, allow_redirects=False
    )
    text = await resp.text()
    if m := CSRF.search(text):
        site.csrf = m.group(1)
    return resp.status, text, resp.headers.get("Location")


async def is_logged_in(site: Site) -> bool:
    resp = await site.client.get("/account", allow_redirects=False)
    if resp.status == 200:
        text = await resp.text()
        site.csrf = CSRF.search(text).group(1)  # type: ignore[union-attr]
        return True
    assert resp.status in (302, 303) and resp.headers["Location"] == "/login"
    return False


async def click(site: Site, path: str) -> aiohttp.ClientResponse:
    return await site.client.get(path, allow_redirects=False)


async def confirm(site: Site, path: str) -> aiohttp.ClientResponse:
    """The button on a confirmation link's page (the session's CSRF token, as the page has it)."""
    page = await (await site.client.get("/enroll")).text()
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    return await site.client.post(path, data={"csrf_token": token}, allow_redirects=False)


def subscriber(engine: Engine, email: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(subscribers).where(subscribers.c.email == email)).first()


def expire_links(engine: Engine, purpose: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(email_tokens)
            .where(email_tokens.c.purpose == purpose)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def count(engine: Engine, table: Any, **where: Any) -> int:
    with engine.connect() as conn:
        stmt = select(func.count()).select_from(table)
        for column, value in where.items():
            stmt = stmt.where(table.c[column] == value)
        return int(conn.execute(stmt).scalar_one())


@asynccontextmanager
async def second_browser(site: Site) -> AsyncIterator[Site]:
    """Another browser on the same server: its own cookies, the same mailbox."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:

        class Client:
            def get(self, path: str, **kw: Any) -> Any:
                return session.get(site.client.make_url(path), **kw)

            def post(self, path: str, **kw: Any) -> Any:
                return session.post(site.client.make_url(path), **kw)

        yield Site(Client(), site.mail, site.published)  # type: ignore[arg-type]


# --- enroll and confirm ------------------------------------------------------------------


async def test_opening_a_confirmation_link_only_shows_a_button(site, engine) -> None:
    """A mail scanner fetching the link (GET or HEAD, no cookie of ours) confirms nothing and
    logs nobody in: else enrolling someone else's address with one's own password, or sending a
    person one's own link, would hand over an account (pre-hijacking, login CSRF)."""
    await enroll(site, "scan@example.org")
    [msg] = await sent_mail(site)
    link = link_in(msg, "/confirm/")
    site.client.session.cookie_jar.clear()
    head = await site.client.head(link, allow_redirects=False)
    resp = await click(site, link)
    page = await resp.text()
    assert (head.status, resp.status) == (200, 200)
    assert '<form method="post"' in page and "Confirm my address" in page
    assert not subscriber(engine, "scan@example.org").confirmed
    assert not await is_logged_in(site)
    assert site.published == []


async def test_enrolling_mails_a_link_whose_button_confirms_then_the_password_logs_in(site, engine) -> None:
    status, page = await enroll(site, "Ann.Reader@Example.org")
    assert status == 200 and "Check your e-mail" in page

    [msg] = await sent_mail(site)  # the enrollment is made after the answer, then mailed
    assert not subscriber(engine, "ann.reader@example.org").confirmed
    assert msg["To"] == "ann.reader@example.org"
    assert msg["Subject"] == "Confirm your e-mail address for registry e-mail alerts"
    assert msg.get_body(preferencelist=("html",)) is not None
    link = link_in(msg, "/confirm/")
    assert link and link in msg.get_body(preferencelist=("html",)).get_content()
    # 256 random bits in the link; only their hash is stored.
    token = link.rsplit("/", 1)[1]
    assert len(token) >= 43
    with engine.connect() as conn:
        assert token not in {r.token_hash for r in conn.execute(select(email_tokens))}

    assert (await click(site, link)).status == 200  # the page with the button
    resp = await confirm(site, link)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert subscriber(engine, "ann.reader@example.org").confirmed
    assert [c.subscriber_id for c in site.published] == [subscriber(engine, "ann.reader@example.org").id]
    status, page = await site.get("/login")
    assert "Your e-mail address is confirmed. Log in with your password" in page
    assert not await is_logged_in(site)  # the link proves the address, the password the person
    cookie_before = site.cookie("sor_session")  # none: nothing is stored before a login
    status, _, location = await log_in(site, "ann.reader@example.org")
    assert (status, location) == (303, "/notifications")
    assert site.cookie("sor_session") not in (None, cookie_before)  # a new session at login
    assert await is_logged_in(site)


async def test_a_forged_expired_or_used_confirmation_link_is_refused_the_same_way(site, engine) -> None:
    await enroll(site, "bo@example.org")
    [msg] = await sent_mail(site)
    link = link_in(msg, "/confirm/")

    forged = await click(site, "/confirm/" + "A" * 43)
    forged_page = await forged.text()
    assert forged.status == 400 and "This link does not work" in forged_page

    expire_links(engine, "confirm")
    expired = await click(site, link)
    assert (expired.status, comparable(await expired.text())) == (400, comparable(forged_page))
    assert not subscriber(engine, "bo@example.org").confirmed

    assert (await confirm(site, link)).status == 400  # the button of an expired link: no better
    assert not subscriber(engine, "bo@example.org").confirmed
    with engine.begin() as conn:  # give the link back its 48 hours
        conn.execute(update(email_tokens).values(expires_at=datetime.now(UTC) + timedelta(hours=47)))
    assert (await click(site, link)).status == 200
    assert (await confirm(site, link)).status == 303
    await site.get("/login")  # where the button leads (it shows the confirmation once)
    assert subscriber(engine, "bo@example.org").confirmed
    used = await click(site, link)
    assert (used.status, comparable(await used.text())) == (400, comparable(forged_page))
    again = await confirm(site, link)
    assert (again.status, comparable(await again.text())) == (400, comparable(forged_page))
    assert not await is_logged_in(site)


async def test_the_enroll_form_explains_each_mistake_next_to_its_field(site) -> None:
    cases = [
        ({"email": "ann@example", "email2": "ann@example"}, "email", "name@example.com"),
        ({"email2": "anne@example.org"}, "email2", "two e-mail addresses are different"),
        ({"password2": PW + "!"}, "password2", "two passwords are different"),
        ({"password": "password standard", "password2": "password standard"}, "password", "common"),
    ]
    for changes, field, message in cases:
        form = {
            "email": "ann@example.org",
            "email2": "ann@example.org",
            "password": PW,
            "password2": PW,
            **changes,
        }
        await site.get("/enroll")
        status, page = await site.post("/enroll", form)
        assert status == 400, field
        error = re.search(rf'<p id="{field}-error" class="error">([^<]*)</p>', page)
        assert error and message in error.group(1), (field, page)
        assert re.search(rf'<input id="{field}"[^>]*aria-describedby="[^"]*{field}-error"', page), field
        assert form["password"] not in page and form["password2"] not in page  # never echoed
        assert 'value="ann@example.org"' in page or field == "email"  # the address is kept
    assert await sent_mail(site) == []


@pytest.mark.parametrize(
    "password, says",
    [
        ("Password Standard", "common"),
        ("1qaz 2wsx 3edc 4rfv", "common"),  # spaces do not hide a common password
        ("fourteen chars", "at least 15 characters"),  # SP 800-63B-4: 15 for a password alone
        ("Password1", "at least 15 characters"),
        ("annette.reader 2024", "e-mail address"),
        ("reader reads at night", "e-mail address"),  # a piece of the address counts too
        ("my example.org login", "e-mail address"),  # the address's domain too
        ("my registry login", "name of this service"),
        ("sor-notify for me and you", "name of this service"),
        ("nearby offender alerts", "name of this service"),
        ("Missouri rivers at dawn", "name of this service"),
        # Issue 15, hole 7: SP 800-63B's blocklist of repetitive and sequential strings.
        (" " * 15, "only spaces"),
        ("\t \u3000" * 5, "only spaces"),  # any white space, also the ideographic space
        ("q" * 15, "repeat one character"),
        ("abcabcabcabcabc", "repeat one character or a short group"),
        ("ab ab ab ab ab ab ab", "repeat"),
        ("1234567890123", "at least 15 characters"),
        ("123456789012345", "characters in order"),
        ("9876543210987654", "characters in order"),
        ("abcdefghijklmnopq", "characters in order"),
        ("qwertyuiop asdfghjkl", "keys next to each other"),
        ("zxcvbnm 1234567890", "keys next to each other"),
    ],
)
async def test_weak_and_common_passwords_are_refused(site, engine, password, says) -> None:
    status, page = await enroll(site, "annette.reader@example.org", password)
    assert status == 400 and says in page
    assert subscriber(engine, "annette.reader@example.org") is None


async def test_a_long_passphrase_with_spaces_and_unicode_is_accepted(site) -> None:
    passphrase = "Grüße aus Köln: 東京 の 夜 🌙 and a quiet walk by the riverside at dusk"
    passphrase = passphrase[:64]
    assert len(passphrase) == 64 and " " in passphrase
    await enroll_and_log_in(site, "dee@example.org", passphrase)
    await site.post("/logout")
    assert (await log_in(site, "dee@example.org", passphrase))[0] == 303
    assert (await log_in(site, "dee@example.org", passphrase.replace(" ", "")))[0] == 400


async def test_a_short_password_from_before_still_works_and_its_owner_is_asked_to_lengthen_it(
    site, engine
) -> None:
    """SP 800-63B-4: 15 characters for a password alone. An 8-to-14 character one chosen under the
    old rule keeps working; each sign-in with it asks for a longer one, on the account page."""
    await enroll_and_log_in(site, "kit@example.org")
    await site.post("/logout")
    old = "tulips 4 Kit"  # 12 characters: fine before, short now
    with engine.begin() as conn:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.email == "kit@example.org")
            .values(password_hash=hash_password(old))
        )
    status, _, location = await log_in(site, "kit@example.org", old)
    assert (status, location) == (303, "/account")
    status, page = await site.get("/account")
    assert status == 200 and "shorter than the 15 characters" in page and "Change my password" in page
    assert old not in page
    status, page = await site.post(
        "/account/password",
        {
            "current_password": old,
            "new_password": "cedar harbor violet",
            "new_password2": "cedar harbor violet",
        },
    )
    assert status == 200 and "Your password is changed" in page
    await site.post("/logout")
    status, _, location = await log_in(site, "kit@example.org", "cedar harbor violet")
    assert (status, location) == (303, "/notifications")  # long enough: nothing more is asked


# --- no enumeration ----------------------------------------------------------------------


async def test_enrolling_an_enrolled_address_looks_the_same_and_changes_nothing(site, engine) -> None:
    await enroll_and_log_in(site, "cat@example.org")
    await site.post("/logout")
    before = subscriber(engine, "cat@example.org")

    status_new, page_new = await enroll(site, "new@example.org", "amber kite meadow")
    status_old, page_old = await enroll(site, "cat@example.org", "amber kite meadow")
    assert (status_old, comparable(page_old)) == (status_new, comparable(page_new))

    mails = await sent_mail(site)
    to_new = next(m for m in mails if m["To"] == "new@example.org")
    to_old = next(m for m in mails if m["To"] == "cat@example.org" and m is not mails[0])
    assert to_new["To"] == "new@example.org" and link_in(to_new, "/confirm/")
    assert to_old["To"] == "cat@example.org" and "tried to enroll" in to_old["Subject"]
    assert link_in(to_old, "/confirm/") is None
    assert link_in(to_old, "/login") and link_in(to_old, "/forgot")
    assert subscriber(engine, "cat@example.org").password_hash == before.password_hash
    assert (await log_in(site, "cat@example.org", "amber kite meadow"))[0] == 400
    assert (await log_in(site, "cat@example.org", PW))[0] == 303


async def test_login_fails_the_same_way_and_with_the_same_work_for_every_reason(
    site, engine, subscribe, monkeypatch
) -> None:
    await enroll_and_log_in(site, "eve@example.org")
    await site.post("/logout")
    await enroll(site, "unconfirmed@example.org")
    subscribe("imported@example.org")  # from the old program: no password yet

    verified_against_dummy: list[bool] = []
    real_verify = PasswordHasher.verify

    def verify(self: PasswordHasher, hash: str, password: str) -> bool:  # noqa: A002
        verified_against_dummy.append(hash == password_hashes.DUMMY_HASH)
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", verify)
    attempts = {
        "nobody@example.org": PW,  # unknown address
        "eve@example.org": "wrong horse battery",  # wrong password
        "unconfirmed@example.org": PW,  # right password, address never confirmed
        "imported@example.org": PW,  # no password yet
    }
    answers = []
    for email, password in attempts.items():
        status, page, _ = await log_in(site, email, password)
        assert GENERIC_LOGIN_ERROR in page and password not in page
        answers.append((status, comparable(page, email)))
    assert all(a == answers[0] for a in answers) and answers[0][0] == 400
    # One argon2 verification each; the dummy hash stands in where there is no password.
    assert verified_against_dummy == [True, False, False, True]
    assert not await is_logged_in(site)


async def test_forgot_and_delete_requests_look_the_same_for_unknown_addresses(site) -> None:
    await enroll_and_log_in(site, "fay@example.org")
    await site.post("/logout")
    mails_before = len(await sent_mail(site))
    for path, part in (("/forgot", "/reset/"), ("/delete", "/delete/confirm/")):
        await site.get(path)
        known = await site.post(path, {"email": "fay@example.org"})
        unknown = await site.post(path, {"email": "nobody@example.org"})
        assert known[0] == unknown[0] == 200
        assert comparable(known[1]) == comparable(unknown[1])
        mails = await sent_mail(site)
        assert len(mails) == mails_before + 1 and mails[-1]["To"] == "fay@example.org"
        assert link_in(mails[-1], part)
        mails_before += 1


async def test_a_mail_server_failure_does_not_show(engine, smtp_server, tmp_path, caplog, capsys) -> None:
    class Refusing:
        async def send(self, msg: EmailMessage) -> None:
            raise TemporaryMailError("connection: ConnectionRefusedError")

    catcher, port = smtp_server
    caplog.set_level(logging.INFO)
    async with open_site(engine, port, catcher, tmp_path, mail=Refusing()) as site:
        await enroll(site, "gil@example.org")
        await site.get("/forgot")
        known = await site.post("/forgot", {"email": "gil@example.org"})
        unknown = await site.post("/forgot", {"email": "nobody@example.org"})
        await sent_mail(site)
    assert known == unknown and known[0] == 200
    out = capsys.readouterr()
    logged = caplog.text + out.out + out.err
    assert "account e-mail not sent" in logged and "gil@example.org" not in logged


# --- log in and out ----------------------------------------------------------------------


async def test_login_is_rate_limited_per_account_and_per_client(site_with_limits) -> None:
    site = site_with_limits  # 3 wrong passwords per account, 6 tries per client
    await enroll_and_log_in(site, "hal@example.org")  # its log-in is the client's first try
    await site.post("/logout")
    async with second_browser(site) as other:  # a browser hal never logged in from
        for _ in range(3):
            assert (await log_in(other, "hal@example.org", "not the password"))[0] == 400
        status, page, _ = await log_in(other, "hal@example.org", PW)  # right, but too late
        assert status == 429 and "Too many attempts" in page
        # Other accounts can still be tried from here, until the client's own limit.
        assert (await log_in(other, "other@example.org", PW))[0] == 400
        assert (await log_in(other, "third@example.org", PW))[0] == 429
        assert not await is_logged_in(other)


async def test_logging_in_rotates_the_session_and_logging_out_ends_it(site) -> None:
    await enroll_and_log_in(site, "ida@example.org")
    await site.post("/logout")
    await site.get("/login")
    anonymous = site.cookie("sor_session")
    status, _, location = await log_in(site, "ida@example.org")
    assert (status, location) == (303, "/notifications")
    logged_in = site.cookie("sor_session")
    assert logged_in not in (None, anonymous)
    assert await is_logged_in(site)

    status, page = await site.post("/logout")
    assert status == 200 and "You are logged out" in page
    assert not await is_logged_in(site)
    async with second_browser(site) as thief:  # the old cookie is worth nothing now
        resp = await thief.client.get("/account", allow_redirects=False, cookies={"sor_session": logged_in})
        assert resp.headers["Location"] == "/login"


async def test_the_account_page_needs_a_login(site) -> None:
    resp = await site.client.get("/account", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"


# --- password reset ----------------------------------------------------------------------


async def test_reset_sets_a_new_password_and_logs_out_every_browser(site, engine) -> None:
    await enroll_and_log_in(site, "jo@example.org")
    async with second_browser(site) as other:
        await other.get("/forgot")
        status, page = await other.post("/forgot", {"email": "JO@example.org"})
        assert status == 200
        msg = (await sent_mail(site))[-1]
        assert msg["To"] == "jo@example.org" and "new password" in msg["Subject"]
        link = link_in(msg, "/reset/")

        status, page = await other.get(link)
        assert status == 200 and "Choose a new password" in page
        status, page = await other.post(
            link, {"password": "1qaz2wsx3edc4rfv", "password2": "1qaz2wsx3edc4rfv"}
        )
        assert status == 400 and "common" in page
        status, page = await other.post(
            link, {"password": "cedar harbor violet", "password2": "cedar harbor violet"}
        )
        assert status == 200 and "Log in with your new password" in page

        assert not await is_logged_in(site)  # the first browser was logged out
        assert (await log_in(other, "jo@example.org", PW))[0] == 400
        assert (await log_in(other, "jo@example.org", "cedar harbor violet"))[0] == 303
        assert (await other.get(link))[0] == 400  # used
    notice = (await sent_mail(site))[-1]
    assert notice["To"] == "jo@example.org" and "password was changed" in notice["Subject"]


async def test_a_reset_link_lasts_one_hour(site, engine) -> None:
    await enroll_and_log_in(site, "kim@example.org")
    await site.post("/logout")
    await site.get("/forgot")
    await site.post("/forgot", {"email": "kim@example.org"})
    link = link_in((await sent_mail(site))[-1], "/reset/")
    with engine.connect() as conn:
        row = conn.execute(select(email_tokens).where(email_tokens.c.purpose == "reset")).one()
    assert row.expires_at - row.created_at == timedelta(hours=1)
    expire_links(engine, "reset")
    status, page = await site.get(link)
    assert status == 400 and "This link does not work" in page
    status, _ = await site.post(link, {"password": "cedar harbor violet", "password2": "cedar harbor violet"})
    assert status == 400
    assert (await log_in(site, "kim@example.org", PW))[0] == 303


async def test_imported_subscribers_choose_their_first_password_through_reset(
    site, engine, subscribe
) -> None:
    subscribe("lee@example.org", confirmed=True)
    unconfirmed = subscribe("max@example.org", confirmed=False, offenders=("MO-77",))
    for email in ("lee@example.org", "max@example.org"):
        await site.get("/forgot")
        await site.post("/forgot", {"email": email})
        link = link_in((await sent_mail(site))[-1], "/reset/")
        await site.get(link)
        await site.post(link, {"password": "cedar harbor violet", "password2": "cedar harbor violet"})
        assert (await log_in(site, email, "cedar harbor violet"))[0] == 303
        assert subscriber(engine, email).confirmed
        await site.get("/account")
        await site.post("/logout")
    # The link proved the unconfirmed address: what it tracks goes to the stream now.
    [change] = site.published
    assert change.subscriber_id == unconfirmed.subscriber_id
    assert change.watches == ["MO-77"] and len(change.circles) == 1


# --- my account --------------------------------------------------------------------------


async def test_changing_the_password_needs_the_current_one_and_ends_other_sessions(site) -> None:
    await enroll_and_log_in(site, "ned@example.org")
    async with second_browser(site) as other:
        assert (await log_in(other, "ned@example.org"))[0] == 303
        status, page = await site.post(
            "/account/password",
            {
                "current_password": "not it at all",
                "new_password": "cedar harbor violet",
                "new_password2": "cedar harbor violet",
            },
        )
        assert status == 400 and "not your current password" in page
        status, page = await site.post(
            "/account/password",
            {
                "current_password": PW,
                "new_password": "cedar harbor violet",
                "new_password2": "cedar harbor violet",
            },
        )
        assert status == 200 and "Your password is changed" in page
        assert await is_logged_in(site)
        assert not await is_logged_in(other)
        assert (await log_in(other, "ned@example.org", PW))[0] == 400
        assert (await log_in(other, "ned@example.org", "cedar harbor violet"))[0] == 303
    assert "password was changed" in (await sent_mail(site))[-1]["Subject"]


async def test_the_address_changes_only_when_the_new_address_confirms(site, engine) -> None:
    await enroll_and_log_in(site, "old@example.org")
    status, page = await site.post(
        "/account/email",
        {
            "new_email": "fresh@example.org",
            "new_email2": "fresh@example.org",
            "email_password": "guess guess",
        },
    )
    assert status == 400 and "not your password" in page
    mails_before = len(await sent_mail(site))

    status, page = await site.post(
        "/account/email",
        {"new_email": "Fresh@Example.org", "new_email2": "fresh@example.org", "email_password": PW},
    )
    assert status == 200 and "Check your new address" in page
    mails = await sent_mail(site)
    assert len(mails) == mails_before + 2
    to_new = next(m for m in mails[-2:] if m["To"] == "fresh@example.org")
    notice = next(m for m in mails[-2:] if m["To"] == "old@example.org")
    assert "fresh@example.org" in notice.get_body(preferencelist=("plain",)).get_content()
    assert link_in(notice, "/email/confirm/") is None
    link = link_in(to_new, "/email/confirm/")
    assert subscriber(engine, "old@example.org") is not None  # nothing moved yet

    status, page = await site.get(link)
    assert status == 200 and "fresh@example.org" in page
    assert subscriber(engine, "old@example.org") is not None  # opening the page is not enough
    status, page = await site.post(link)
    assert status == 200 and "now go to the new address" in page
    assert subscriber(engine, "old@example.org") is None
    assert subscriber(engine, "fresh@example.org").confirmed
    await site.post("/logout")
    assert (await log_in(site, "old@example.org"))[0] == 400
    assert (await log_in(site, "fresh@example.org"))[0] == 303
    assert (await site.get(link))[0] == 400  # used


async def test_moving_to_an_enrolled_address_looks_the_same_and_moves_nothing(site, engine) -> None:
    await enroll_and_log_in(site, "taken@example.org")
    await site.post("/logout")
    await enroll_and_log_in(site, "pat@example.org")
    answers = []
    for new in ("free@example.org", "taken@example.org"):
        status, page = await site.post(
            "/account/email", {"new_email": new, "new_email2": new, "email_password": PW}
        )
        answers.append((status, comparable(page, new)))
        await site.get("/account")
    assert answers[0] == answers[1] and answers[0][0] == 200
    mails = (await sent_mail(site))[-4:]  # two requests, two e-mails each
    to_taken = next(m for m in mails if m["To"] == "taken@example.org")
    notice = next(m for m in mails if m["To"] == "pat@example.org")
    assert to_taken["To"] == "taken@example.org" and link_in(to_taken, "/email/confirm/") is None
    assert notice["To"] == "pat@example.org"
    assert (
        subscriber(engine, "pat@example.org") is not None
        and subscriber(engine, "taken@example.org") is not None
    )


# --- deleting ----------------------------------------------------------------------------


def give_tracking(engine: Engine, email: str) -> subscriber_store.SubscriberChange:
    change = subscriber_store.upsert_subscriber(
        engine, imported(email, addresses=(imported_address(),), offenders=("MO-1", "MO-2"))
    )
    repository.record_alerts(
        engine,
        [
            proximity_alert(
                change.subscriber_id, change.circles[0].circle_id, "MO-9", "Ray Abbott", "800 Olive St"
            )
        ],
    )
    return change


async def test_delete_by_link_removes_everything_and_withdraws_it(site, engine) -> None:
    await enroll_and_log_in(site, "quinn@example.org")
    await site.post("/logout")
    tracking = give_tracking(engine, "quinn@example.org")
    give_tracking(engine, "bystander@example.org")
    sid = tracking.subscriber_id

    await site.get("/delete")
    status, page = await site.post("/delete", {"email": "quinn@example.org"})
    assert status == 200 and subscriber(engine, "quinn@example.org") is not None  # typing is not enough
    link = link_in((await sent_mail(site))[-1], "/delete/confirm/")
    status, page = await site.get(link)
    assert status == 200 and "Delete this enrollment?" in page
    assert subscriber(engine, "quinn@example.org") is not None  # opening the link is not enough
    status, page = await site.post(link)
    assert status == 200 and "Your enrollment is deleted" in page

    assert subscriber(engine, "quinn@example.org") is None
    for table in (tracked_addresses, offender_watches, pending_alerts, email_tokens):
        assert count(engine, table, subscriber_id=sid) == 0, table.name
    assert count(engine, tracked_addresses) == 1 and count(engine, pending_alerts) == 1  # the bystander's
    withdrawal = site.published[-1]
    assert withdrawal.subscriber_id == sid
    assert withdrawal.removed_circle_ids == [c.circle_id for c in tracking.circles]
    assert sorted(withdrawal.removed_watches) == ["MO-1", "MO-2"]
    assert not withdrawal.circles and not withdrawal.watches
    assert (await site.get(link))[0] == 400


async def test_delete_when_logged_in_needs_the_password(site, engine) -> None:
    await enroll_and_log_in(site, "rae@example.org")
    tracking = give_tracking(engine, "rae@example.org")
    status, page = await site.post("/account/delete", {"delete_password": "not it"})
    assert status == 400 and "not your password" in page and subscriber(engine, "rae@example.org") is not None
    status, page = await site.post("/account/delete", {"delete_password": PW})
    assert status == 200 and "Your enrollment is deleted" in page
    assert subscriber(engine, "rae@example.org") is None
    assert count(engine, tracked_addresses, subscriber_id=tracking.subscriber_id) == 0
    assert site.published[-1].removed_watches == ["MO-1", "MO-2"]
    assert not await is_logged_in(site)


# --- protections -------------------------------------------------------------------------


async def test_every_account_form_refuses_a_post_without_its_csrf_token(site, engine) -> None:
    await enroll_and_log_in(site, "sam@example.org")
    for path, data in [
        (
            "/account/password",
            {
                "current_password": PW,
                "new_password": "cedar harbor violet",
                "new_password2": "cedar harbor violet",
            },
        ),
        (
            "/account/email",
            {"new_email": "sam2@example.org", "new_email2": "sam2@example.org", "email_password": PW},
        ),
        ("/account/delete", {"delete_password": PW}),
        ("/account/mail/resume", {}),
        ("/logout", {}),
    ]:
        status, page = await site.post(path, data, csrf=False)
        assert status == 403 and "form has expired" in page, path
    assert await is_logged_in(site)
    await site.post("/logout")

    # Valid links: the missing token is the only thing wrong with these posts.
    await site.get("/forgot")
    await site.post("/forgot", {"email": "sam@example.org"})
    await site.post("/delete", {"email": "sam@example.org"})
    mails = await sent_mail(site)
    reset = next(filter(None, (link_in(m, "/reset/") for m in mails)))
    delete = next(filter(None, (link_in(m, "/delete/confirm/") for m in mails)))
    sent = len(mails)
    for path, data in [
        (
            "/enroll",
            {"email": "tia@example.org", "email2": "tia@example.org", "password": PW, "password2": PW},
        ),
        ("/login", {"email": "sam@example.org", "password": PW}),
        ("/forgot", {"email": "sam@example.org"}),
        ("/delete", {"email": "sam@example.org"}),
        (reset, {"password": "cedar harbor violet", "password2": "cedar harbor violet"}),
        (delete, {}),
        ("/email/confirm/" + "A" * 43, {}),
    ]:
        status, page = await site.post(path, data, csrf=False)
        assert status == 403 and "form has expired" in page, path
    assert len(await sent_mail(site)) == sent
    assert subscriber(engine, "tia@example.org") is None and subscriber(engine, "sam@example.org") is not None
    assert not await is_logged_in(site)
    assert (await log_in(site, "sam@example.org", PW))[0] == 303  # password unchanged
    assert (await site.get(reset))[0] == 200 and (await site.get(delete))[0] == 200  # links unused


async def test_unconfirmed_enrollments_are_purged_after_48_hours(site, engine, subscribe) -> None:
    await enroll(site, "stale@example.org")
    await enroll(site, "recent@example.org")
    await enroll_and_log_in(site, "kept@example.org")
    subscribe("legacy@example.org", confirmed=False)
    stale_link = link_in(
        next(m for m in await sent_mail(site) if m["To"] == "stale@example.org"), "/confirm/"
    )
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.email != "recent@example.org")
            .values(created_at=now - timedelta(hours=49))
        )
        conn.execute(
            update(subscribers)
            .where(subscribers.c.email == "recent@example.org")
            .values(created_at=now - timedelta(hours=47))
        )

    housekeeping.purge_expired(engine, now)
    assert subscriber(engine, "stale@example.org") is None
    for email in ("recent@example.org", "kept@example.org", "legacy@example.org"):
        assert subscriber(engine, email) is not None, email
    with engine.connect() as conn:  # the used confirmation link is gone; the live one stays
        assert [r.purpose for r in conn.execute(select(email_tokens))] == ["confirm"]
    assert (await click(site, stale_link)).status == 400


async def test_logs_hold_no_address_password_or_token(site, engine, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        await enroll_and_log_in(site, "uma@example.org")
        await site.post("/logout")
        await log_in(site, "uma@example.org", "a wrong password")
        await site.get("/forgot")
        await site.post("/forgot", {"email": "uma@example.org"})
        reset = link_in((await sent_mail(site))[-1], "/reset/")
        await site.get(reset)
        await site.post(reset, {"password": "cedar harbor violet", "password2": "cedar harbor violet"})
        await log_in(site, "uma@example.org", "cedar harbor violet")
        await site.get("/account")
        await site.post("/account/delete", {"delete_password": "cedar harbor violet"})
        mails = await sent_mail(site)

    tokens = [
        path.rsplit("/", 1)[1]
        for m in mails
        for path in filter(None, [link_in(m, "/confirm/"), link_in(m, "/reset/")])
    ]
    assert len(tokens) == 2
    assert {
        "enrollment confirmed",
        "login refused",
        "password reset",
        "logged in",
        "enrollment deleted",
        "account e-mail sent",
    } <= {e["event"] for e in events}
    # Not ours: the test SMTP server's own log ("mail.log"), and aiohttp's access log of request
    # paths, which only this test server keeps (`sor-notify web` runs without one).
    harness = {"mail.log", "aiohttp.access"}
    logged = "\n".join(map(str, events)) + "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name not in harness
    )
    for secret in ("uma@example.org", PW, "a wrong password", "cedar harbor violet", *tokens):
        assert secret not in logged
