"""Issue 15, hole 4: guessing is slowed, the owner is not locked out, and the client is who the
trusted proxies say it is (over HTTP, with the log-in limits of tests/web/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from streams.web.security import DEFAULT_LIMITS, RateLimiter
from tests.web.conftest import CSRF, LOGIN_LIMITS, Site, enroll_and_log_in, open_site, sent_mail
from tests.web.test_account import link_in, second_browser

PW = "plum orchard lantern"
WRONG = "not the password at all"
NEW_PW = "cedar harbor violet"
STRANGER = "203.0.113.66"  # where the guesses come from, as the proxy saw it


@pytest.fixture
async def site_behind_proxy(engine, smtp_server, tmp_path: Path) -> AsyncIterator[Site]:
    """The site with the test limits, behind a reverse proxy at 127.0.0.1 (the test client)."""
    catcher, port = smtp_server
    limiter = RateLimiter(limits={**DEFAULT_LIMITS, **LOGIN_LIMITS})
    env = {"SOR_WEB_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}
    async with open_site(engine, port, catcher, tmp_path, limiter=limiter, env=env) as s:
        yield s


async def log_in(site: Site, email: str, password: str, via: str | None = None) -> aiohttp.ClientResponse:
    """One log-in form sent; `via`: the X-Forwarded-For header it arrives with."""
    headers = {"X-Forwarded-For": via} if via else {}
    page = await (await site.client.get("/login", headers=headers)).text()
    site.csrf = CSRF.search(page).group(1)  # type: ignore[union-attr]
    resp = await site.client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": site.csrf},
        headers=headers,
        allow_redirects=False,
    )
    await resp.read()
    return resp


async def guess(site: Site, email: str, times: int, via: str | None = None) -> list[int]:
    return [(await log_in(site, email, WRONG, via)).status for _ in range(times)]


async def test_a_strangers_wrong_passwords_do_not_stop_the_owner_in_a_browser_they_used(
    site_behind_proxy,
) -> None:
    site = site_behind_proxy
    await enroll_and_log_in(site, "hal@example.org")  # this browser now has hal's device cookie
    await site.post("/logout")
    async with second_browser(site) as stranger:
        assert await guess(stranger, "hal@example.org", 12, via=STRANGER) == [400] * 3 + [429] * 9
        refused = await log_in(stranger, "hal@example.org", PW, via=STRANGER)  # right, but not tried
        assert refused.status == 429 and 0 < int(refused.headers["Retry-After"]) <= 900
        assert "Forgot your password" in await refused.text()  # what the owner can do meanwhile
    resp = await log_in(site, "hal@example.org", PW)
    assert (resp.status, resp.headers["Location"]) == (303, "/notifications")
    [device] = [c for c in resp.headers.getall("Set-Cookie") if c.startswith("sor_device=")]
    assert "HttpOnly" in device and "SameSite=Strict" in device and "hal" not in device
    # The owner's browser has a budget of its own, for its own wrong passwords.
    await site.post("/logout")
    assert await guess(site, "hal@example.org", 4) == [400] * 3 + [429]


async def test_only_wrong_passwords_count_against_the_account(site_behind_proxy) -> None:
    site = site_behind_proxy
    await enroll_and_log_in(site, "ivy@example.org")
    for n in range(4):  # more right passwords than the account's limit of wrong ones
        async with second_browser(site) as fresh:  # each a browser ivy never used
            assert (await log_in(fresh, "ivy@example.org", PW, via=f"198.51.100.{n}")).status == 303
    async with second_browser(site) as stranger:
        assert await guess(stranger, "ivy@example.org", 4, via=STRANGER) == [400] * 3 + [429]


async def test_a_password_reset_lifts_what_strangers_did(site_behind_proxy) -> None:
    site = site_behind_proxy
    await enroll_and_log_in(site, "jo@example.org")
    async with second_browser(site) as stranger, second_browser(site) as new_phone:
        assert await guess(stranger, "jo@example.org", 5, via=STRANGER) == [400] * 3 + [429] * 2
        # A browser jo never logged in from shares the account's budget: refused, until ...
        assert (await log_in(new_phone, "jo@example.org", PW, via="198.51.100.7")).status == 429
        await new_phone.get("/forgot")
        await new_phone.post("/forgot", {"email": "jo@example.org"})
        link = link_in((await sent_mail(site))[-1], "/reset/")
        assert link
        await new_phone.get(link)
        status, page = await new_phone.post(link, {"password": NEW_PW, "password2": NEW_PW})
        assert status == 200 and "Log in with your new password" in page
        # ... a reset (which proves the mailbox) lifts it.
        resp = await log_in(new_phone, "jo@example.org", NEW_PW, via="198.51.100.7")
        assert (resp.status, resp.headers["Location"]) == (303, "/notifications")


async def test_a_logged_in_session_changes_its_password_whatever_strangers_did(site_behind_proxy) -> None:
    site = site_behind_proxy
    await enroll_and_log_in(site, "kim@example.org")
    async with second_browser(site) as stranger:
        assert (await guess(stranger, "kim@example.org", 10, via=STRANGER))[-1] == 429
    await site.get("/account")
    change = {"current_password": PW, "new_password": NEW_PW, "new_password2": NEW_PW}
    status, page = await site.post("/account/password", change)
    assert status == 200 and "Your password is changed" in page
    # The session's own wrong current passwords are limited, per session.
    wrong = {"current_password": WRONG, "new_password": PW, "new_password2": PW}
    statuses = [(await site.post("/account/password", wrong))[0] for _ in range(4)]
    assert statuses == [400] * 3 + [429]
    status, page = await site.post("/account/password", {**wrong, "current_password": NEW_PW})
    assert status == 429 and "Too many attempts" in page


async def test_x_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(site_with_limits) -> None:
    site = site_with_limits  # no trusted proxies: the peer is the client, whatever it writes
    statuses = [
        (await log_in(site, f"nobody{n}@example.org", WRONG, via=f"198.51.100.{n}")).status for n in range(7)
    ]
    assert statuses == [400] * 6 + [429]


async def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(site_behind_proxy) -> None:
    site = site_behind_proxy
    # What a client writes itself (left) changes nothing: the right-most address not of a
    # trusted proxy counts, here the same client behind two proxies of ours.
    statuses = [
        (await log_in(site, f"nobody{n}@example.org", WRONG, via=f"192.0.2.{n}, {STRANGER}, 10.1.2.3")).status
        for n in range(7)
    ]
    assert statuses == [400] * 6 + [429]
    # Another client behind the same proxy is not held up.
    assert (await log_in(site, "nobody@example.org", WRONG, via="198.51.100.9")).status == 400


async def test_too_many_reset_requests_say_how_long_to_wait_and_that_the_mailed_links_work(
    site_behind_proxy,
) -> None:
    site = site_behind_proxy
    await enroll_and_log_in(site, "lou@example.org")
    await site.get("/forgot")
    for _ in range(3):  # three mails an hour per address: a stranger cannot flood the mailbox
        assert (await site.post("/forgot", {"email": "lou@example.org"}))[0] == 200
    resp = await site.client.post("/forgot", data={"email": "lou@example.org", "csrf_token": site.csrf})
    assert resp.status == 429 and 900 < int(resp.headers["Retry-After"]) <= 3600
    assert "A link we sent meanwhile still works" in await resp.text()
    link = link_in((await sent_mail(site))[-1], "/reset/")
    assert link and (await site.get(link))[0] == 200
