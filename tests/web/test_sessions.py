"""Sessions and cookies over HTTP: nothing stored for a visitor, the CSRF cookie until a login,
timeouts by a moved clock, the __Host- prefix and HSTS over HTTPS, rotation, logout, and the
end of every other session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from streams.adapters.web_db import web_sessions
from streams.web import sessions
from tests.web.conftest import CSRF, Site, enroll_and_log_in, open_site, sent_mail

PW = "plum orchard lantern"
PUBLIC_PAGES = ("/", "/faq", "/enroll", "/login", "/forgot", "/delete", "/offenders/search")
# What else a crawler tries: a page that is not there, a made-up link, a page behind the login.
OTHER_PATHS = ("/no-such-page", "/confirm/" + "A" * 43, "/reset/" + "A" * 43, "/account", "/notifications")


class MovedClock:
    """The site's clock for its sessions, moved by the test instead of waiting."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at

    def move(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def stored_sessions(engine: Engine, subscriber_id: int | None = None) -> int:
    query = select(func.count()).select_from(web_sessions)
    if subscriber_id is not None:
        query = query.where(web_sessions.c.subscriber_id == subscriber_id)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def subscriber_id_of(engine: Engine, email: str) -> int:
    from streams.adapters.db import subscribers

    with engine.connect() as conn:
        return int(conn.execute(select(subscribers.c.id).where(subscribers.c.email == email)).scalar_one())


async def logged_in(site: Site) -> bool:
    resp = await site.client.get("/account", allow_redirects=False)
    if resp.status == 200:
        if m := CSRF.search(await resp.text()):
            site.csrf = m.group(1)
        return True
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    return False


@asynccontextmanager
async def browser(site: Site, cookies: dict[str, str] | None = None) -> AsyncIterator[Site]:
    """Another browser on the same server: its own cookies (or the ones given), the same mailbox."""
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=str(site.client.make_url("/")))
    async with aiohttp.ClientSession(cookie_jar=jar, cookies=cookies) as session:

        class Client:
            def __init__(self) -> None:
                self.session = session
                self.server = site.client.server  # the same site: its background work too

            def make_url(self, path: str) -> Any:
                return site.client.make_url(path)

            def get(self, path: str, **kw: Any) -> Any:
                return session.get(site.client.make_url(path), **kw)

            def post(self, path: str, **kw: Any) -> Any:
                return session.post(site.client.make_url(path), **kw)

        yield Site(Client(), site.mail, site.published)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> MovedClock:
    return MovedClock()


@pytest.fixture
async def timed_site(engine, smtp_server, tmp_path: Path, clock: MovedClock) -> AsyncIterator[Site]:
    catcher, port = smtp_server
    async with open_site(engine, port, catcher, tmp_path, clock=clock) as opened:
        yield opened


@pytest.fixture
async def https_site(engine, smtp_server, tmp_path: Path) -> AsyncIterator[Site]:
    """The site as deployed behind TLS: SOR_PUBLIC_URL is https (the test client's cookie jar
    treats the loopback server as a secure origin, as a browser does behind the proxy)."""
    catcher, port = smtp_server
    async with open_site(engine, port, catcher, tmp_path, public_url="https://notify.test") as opened:
        yield opened


def set_cookies(resp: aiohttp.ClientResponse) -> dict[str, str]:
    """Each Set-Cookie header of an answer, by cookie name, as sent."""
    return {h.split("=", 1)[0]: h for h in resp.headers.getall("Set-Cookie", [])}


def attributes(header: str) -> set[str]:
    return {part.strip().split("=", 1)[0].lower() for part in header.split(";")[1:]}


# --- hole 8: a visitor's pages store nothing ---------------------------------------------------


async def test_cookieless_gets_of_public_pages_store_no_session(site, engine) -> None:
    """A crawler (no cookies kept) and a browser (cookies kept) read every public page: no rows."""
    for _ in range(5):
        for path in PUBLIC_PAGES:
            resp = await site.client.get(path, cookies=None)
            assert resp.status == 200, path
            site.client.session.cookie_jar.clear()  # the crawler drops every cookie
        for path in OTHER_PATHS:
            await site.client.get(path, allow_redirects=False)
            site.client.session.cookie_jar.clear()
    async with browser(site) as visitor:
        for path in PUBLIC_PAGES:
            assert (await visitor.get(path))[0] == 200, path
        assert visitor.cookie("sor_session") is None
    assert stored_sessions(engine) == 0


async def test_forms_work_without_a_stored_session_with_the_pages_token(site, engine) -> None:
    """Enroll, forgot and delete need no stored session: the token of the page, checked against
    the browser's CSRF cookie, is enough."""
    await site.get("/enroll")
    status, page = await site.post(
        "/enroll", {"email": "vi@example.org", "email2": "vi@example.org", "password": PW, "password2": PW}
    )
    assert status == 200 and "Check your e-mail" in page
    await site.get("/forgot")
    assert (await site.post("/forgot", {"email": "vi@example.org"}))[0] == 200
    await site.get("/delete")
    assert (await site.post("/delete", {"email": "vi@example.org"}))[0] == 200
    subjects = [m["Subject"] for m in await sent_mail(site)]
    assert len(subjects) == 3 and any("new password" in s for s in subjects)  # each form did its work
    assert site.cookie("sor_session") is None
    assert stored_sessions(engine) == 0


async def test_a_form_without_a_stored_session_needs_the_token_of_its_own_csrf_cookie(site, engine) -> None:
    form = {"email": "wu@example.org"}
    resp = await site.client.get("/forgot")
    assert "sor_session" not in resp.cookies and resp.cookies["sor_csrf"]["httponly"]
    token = CSRF.search(await resp.text()).group(1)  # type: ignore[union-attr]
    assert token != site.cookie("sor_csrf")  # the page's token is signed from the cookie, not a copy

    assert (await site.post("/forgot", form, csrf=False))[0] == 403  # missing
    wrong = token[:-1] + ("B" if token[-1] == "A" else "A")
    assert (await site.post("/forgot", {**form, "csrf_token": wrong}))[0] == 403
    assert (await site.post("/forgot", {**form, "csrf_token": site.cookie("sor_csrf")}))[0] == 403
    async with browser(site) as other:  # another browser's cookie with this page's token
        await other.get("/forgot")
        assert (await other.post("/forgot", {**form, "csrf_token": token}))[0] == 403
        other_seed = other.cookie("sor_csrf")
    async with browser(site, {"sor_csrf": sessions.new_csrf_seed()}) as forged:  # a seed of one's own
        assert (await forged.post("/forgot", {**form, "csrf_token": token}))[0] == 403
    async with browser(site) as cookieless:  # a cross-site form: no cookie at all
        assert (await cookieless.post("/forgot", {**form, "csrf_token": token}))[0] == 403

    assert other_seed != site.cookie("sor_csrf")
    status, page = await site.post("/forgot", {**form, "csrf_token": token})
    assert status == 200 and "Check your e-mail" in page
    assert stored_sessions(engine) == 0


async def test_login_csrf_stays_impossible_without_a_stored_session(site, engine) -> None:
    """An attacker's own page and token cannot log somebody else's browser into the attacker's
    account: the token is bound to the victim's own cookie, which no other site can read or set."""
    await enroll_and_log_in(site, "mallory@example.org")
    await site.post("/logout")
    await site.get("/login")
    attackers_token = site.csrf
    async with browser(site) as victim:
        await victim.get("/")
        status, page = await victim.post(
            "/login", {"email": "mallory@example.org", "password": PW, "csrf_token": attackers_token}
        )
        assert status == 403 and "form has expired" in page
        assert not await logged_in(victim)
        assert victim.cookie("sor_session") is None
    assert stored_sessions(engine, subscriber_id_of(engine, "mallory@example.org")) == 0


async def test_a_message_for_the_next_page_is_stored_only_until_shown(site, engine) -> None:
    """Confirming an enrollment and logging out leave a message: a session row holds it until the
    next page shows it; the page's form still works with the browser's CSRF cookie."""
    await enroll_and_log_in(site, "mo@example.org")
    resp = await site.client.post("/logout", data={"csrf_token": site.csrf}, allow_redirects=False)
    assert resp.status == 303
    assert stored_sessions(engine) == 1 and site.cookie("sor_session")
    status, page = await site.get("/login")
    assert "You are logged out" in page
    assert stored_sessions(engine) == 0 and site.cookie("sor_session") is None
    assert "You are logged out" not in (await site.get("/login"))[1]  # once
    status, _ = await site.post("/login", {"email": "mo@example.org", "password": PW})
    assert status == 200 and await logged_in(site)


async def test_deleting_by_a_mailed_link_works_in_a_browser_with_no_session(site, engine) -> None:
    await enroll_and_log_in(site, "del@example.org")
    await site.post("/logout")
    async with browser(site) as fresh:
        await fresh.get("/delete")
        assert (await fresh.post("/delete", {"email": "del@example.org"}))[0] == 200
        await sent_mail(fresh)
        [link] = [u for u in fresh.links_in_last_mail() if "/delete/confirm/" in u]
        path = link.replace("http://notify.test", "")
        assert (await fresh.get(path))[0] == 200
        status, page = await fresh.post(path)
        assert status == 200 and "Your enrollment is deleted" in page
    assert stored_sessions(engine) == 0


# --- ASVS V7: timeouts, rotation, logout, other sessions ---------------------------------------


async def test_a_session_ends_after_60_idle_minutes(timed_site, engine, clock) -> None:
    site = timed_site
    await enroll_and_log_in(site, "idle@example.org")
    for _ in range(3):  # each use restarts the idle timer: 3 hours of use in all
        clock.move(minutes=59)
        assert await logged_in(site)
    clock.move(minutes=60)
    assert not await logged_in(site)
    assert stored_sessions(engine, subscriber_id_of(engine, "idle@example.org")) == 0


async def test_a_session_ends_12_hours_after_login_however_busy(timed_site, engine, clock) -> None:
    site = timed_site
    await enroll_and_log_in(site, "busy@example.org")
    for _ in range(14):  # 14 x 50 minutes = 11 h 40 min
        clock.move(minutes=50)
        assert await logged_in(site)
    clock.move(minutes=19)
    assert await logged_in(site)  # 11 h 59 min
    clock.move(minutes=1)
    assert not await logged_in(site)  # 12 h, though idle for a minute only
    assert stored_sessions(engine, subscriber_id_of(engine, "busy@example.org")) == 0


async def test_login_rotates_the_session_id_so_a_planted_or_earlier_one_is_worth_nothing(
    site, engine
) -> None:
    await enroll_and_log_in(site, "victim@example.org")
    resp = await site.client.post("/logout", data={"csrf_token": site.csrf}, allow_redirects=False)
    assert resp.status == 303
    before_login = site.cookie("sor_session")  # the session that holds "You are logged out"
    await site.get("/login")
    pre_login_token = site.csrf
    # An attacker's session id, planted in the victim's browser just before the login.
    planted = sessions.create(engine, None, datetime.now(UTC), flash="Welcome").raw_id
    site.client.session.cookie_jar.update_cookies({"sor_session": planted})
    status, _ = await site.post("/login", {"email": "victim@example.org", "password": PW})
    assert status == 200 and await logged_in(site)
    after_login = site.cookie("sor_session")
    assert after_login not in (None, planted, before_login)
    for old in (planted, before_login):
        async with browser(site, {"sor_session": old}) as other:  # type: ignore[dict-item]
            assert not await logged_in(other)
    # Nor does the form token of the page before the login carry over.
    status, page = await site.post("/logout", {"csrf_token": pre_login_token})
    assert status == 403 and await logged_in(site)
    assert stored_sessions(engine) == 1


async def test_logout_destroys_the_session_on_the_server(site, engine) -> None:
    await enroll_and_log_in(site, "out@example.org")
    sid = subscriber_id_of(engine, "out@example.org")
    cookie = site.cookie("sor_session")
    assert stored_sessions(engine, sid) == 1
    status, page = await site.post("/logout")
    assert status == 200 and "You are logged out" in page
    assert stored_sessions(engine, sid) == 0
    async with browser(site, {"sor_session": cookie}) as replay:  # type: ignore[dict-item]
        assert not await logged_in(replay)


async def test_deleting_the_enrollment_ends_its_sessions_in_every_browser(site, engine) -> None:
    await enroll_and_log_in(site, "gone@example.org")
    sid = subscriber_id_of(engine, "gone@example.org")
    async with browser(site) as other:
        await other.get("/login")
        assert (await other.post("/login", {"email": "gone@example.org", "password": PW}))[0] == 200
        assert stored_sessions(engine, sid) == 2
        await logged_in(site)  # the account page's token
        status, page = await site.post("/account/delete", {"delete_password": PW})
        assert status == 200 and "Your enrollment is deleted" in page
        assert not await logged_in(site) and not await logged_in(other)
    assert stored_sessions(engine, sid) == 0


async def test_ending_all_other_sessions_keeps_only_the_browser_that_asked(site, engine) -> None:
    """What adding or removing a second factor calls: the subscriber's other browsers are out,
    this one stays in, nobody else's session is touched."""
    await enroll_and_log_in(site, "keeper@example.org")
    sid = subscriber_id_of(engine, "keeper@example.org")
    async with browser(site) as laptop, browser(site) as phone, browser(site) as neighbour:
        for b in (laptop, phone):
            await b.get("/login")
            assert (await b.post("/login", {"email": "keeper@example.org", "password": PW}))[0] == 200
        await enroll_and_log_in(neighbour, "next.door@example.org")
        assert stored_sessions(engine, sid) == 3

        keep = sessions.load(engine, site.cookie("sor_session"), datetime.now(UTC))
        assert keep is not None
        assert sessions.end_all_others(engine, sid, keep) == 2

        assert await logged_in(site)
        assert not await logged_in(laptop) and not await logged_in(phone)
        assert await logged_in(neighbour)
        assert stored_sessions(engine, sid) == 1


async def test_changing_the_password_or_address_asks_for_the_password_again(site, engine) -> None:
    await enroll_and_log_in(site, "re.auth@example.org")
    mails = len(await sent_mail(site))
    new = {"new_password": "cedar harbor violet", "new_password2": "cedar harbor violet"}
    for current in ("", "not my password"):
        status, page = await site.post("/account/password", {**new, "current_password": current})
        assert status == 400 and (
            "Enter your current password." in page or "not your current password" in page
        )
    for password in ("", "not my password"):
        status, page = await site.post(
            "/account/email",
            {"new_email": "moved@example.org", "new_email2": "moved@example.org", "email_password": password},
        )
        assert status == 400 and ("Enter your password." in page or "That is not your password." in page)
    assert len(await sent_mail(site)) == mails  # no link to a new address, no notice
    await site.post("/logout")
    await site.get("/login")
    status, _ = await site.post("/login", {"email": "re.auth@example.org", "password": PW})
    assert status == 200 and await logged_in(site)  # the old password still opens it
    assert stored_sessions(engine, subscriber_id_of(engine, "re.auth@example.org")) == 1


# --- ASVS V3: cookie attributes, the __Host- prefix, HSTS --------------------------------------


async def test_cookies_are_httponly_lax_and_not_secure_over_plain_http(site) -> None:
    """Development over http: plain names (a __Host- cookie needs Secure, which http cannot keep)."""
    resp = await site.client.get("/login")
    [csrf] = [v for k, v in set_cookies(resp).items() if k.endswith("sor_csrf")]
    assert csrf.startswith("sor_csrf=")
    assert {"httponly", "samesite", "path"} <= attributes(csrf) and "secure" not in attributes(csrf)
    assert "SameSite=Lax" in csrf and "Path=/" in csrf and "domain" not in attributes(csrf)
    assert "Strict-Transport-Security" not in resp.headers  # only when the public URL is https
    await enroll_and_log_in(site, "plain@example.org")
    await site.post("/logout")
    await site.get("/login")
    resp = await site.client.post(
        "/login",
        data={"email": "plain@example.org", "password": PW, "csrf_token": site.csrf},
        allow_redirects=False,
    )
    assert resp.status == 303
    session = set_cookies(resp)["sor_session"]
    assert {"httponly", "samesite", "path", "max-age"} <= attributes(session)
    assert "secure" not in attributes(session) and "domain" not in attributes(session)
    assert "SameSite=Lax" in session and "Path=/" in session


async def test_over_https_cookies_are_host_prefixed_secure_httponly_and_lax(https_site, engine) -> None:
    site = https_site
    async with browser(site) as b:
        resp = await b.client.get("/login")
        cookies = set_cookies(resp)
        assert set(cookies) == {"__Host-sor_csrf"}
        header = cookies["__Host-sor_csrf"]
        assert {"secure", "httponly", "samesite", "path"} <= attributes(header)
        assert "Path=/" in header and "SameSite=Lax" in header and "domain" not in attributes(header)

        await enroll_and_log_in(b, "tls@example.org")
        await b.post("/logout")
        await b.get("/login")
        resp = await b.client.post(
            "/login",
            data={"email": "tls@example.org", "password": PW, "csrf_token": b.csrf},
            allow_redirects=False,
        )
        assert resp.status == 303
        header = set_cookies(resp)["__Host-sor_session"]
        assert {"secure", "httponly", "samesite", "path", "max-age"} <= attributes(header)
        assert "Path=/" in header and "SameSite=Lax" in header and "domain" not in attributes(header)
        assert "sor_session" not in set_cookies(resp) and await logged_in(b)
        device = set_cookies(resp)["__Host-sor_device"]  # the log-in limits' device cookie too
        assert {"secure", "httponly", "path"} <= attributes(device) and "domain" not in attributes(device)
        assert "SameSite=Strict" in device and "sor_device" not in set_cookies(resp)
        live = b.cookie("__Host-sor_session")

    # The unprefixed name (which a subdomain or a plain-http answer could set) opens nothing.
    async with browser(site, {"sor_session": live}) as downgraded:  # type: ignore[dict-item]
        assert not await logged_in(downgraded)


async def test_hsts_is_sent_on_every_answer_when_the_public_url_is_https(https_site) -> None:
    for path in ("/", "/login", "/no-such-page", "/static/site.css", "/account"):
        resp = await https_site.client.get(path, allow_redirects=False)
        assert resp.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains", path
