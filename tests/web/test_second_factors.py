"""Second factors over HTTP (SP 800-63B-4): an authenticator app confirmed by a code, a second
step after the password, codes good once, recovery codes good once, removal behind the password."""

from __future__ import annotations

import html
import logging
import re
from datetime import UTC, datetime, timedelta

import pyotp
import structlog.testing
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from streams.adapters.second_factors_db import recovery_codes, second_factors
from streams.adapters.sign_in_steps import sign_in_steps
from tests.web.conftest import Site, enroll_and_log_in, sent_mail
from tests.web.test_account import PW, is_logged_in, log_in, second_browser, subscriber

SECRET = re.compile(r'<code id="totp-secret">([A-Z2-7 ]+)</code>')
CODE = re.compile(r"<li><code>([a-z2-7-]{34})</code></li>")


def code_at(secret: str, offset_steps: int = 0) -> str:
    """The app's code now, or `offset_steps` steps of 30 s on (still inside the ±1 window)."""
    return pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30 * offset_steps))


async def add_app(site: Site) -> tuple[str, list[str]]:
    """Add an authenticator app on the account's page; returns its key and the recovery codes shown."""
    status, page = await site.get("/account/app")
    assert status == 200
    secret = SECRET.search(page).group(1).replace(" ", "")  # type: ignore[union-attr]
    assert "otpauth://totp/Registry%20e-mail%20alerts:" in html.unescape(page)
    assert f"secret={secret}" in html.unescape(page) and "<svg" in page
    status, page = await site.post("/account/app", {"code": code_at(secret), "label": "My phone"})
    assert status == 200, page
    codes = CODE.findall(page)
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


async def password_step(site: Site, email: str) -> None:
    """The password, right: the session waits for the second step, and is not logged in yet."""
    status, _, location = await log_in(site, email)
    assert (status, location) == (303, "/login/second-step")
    assert not await is_logged_in(site)
    status, page = await site.get("/login/second-step")
    assert status == 200 and "authenticator app" in page


async def second_step(site: Site, **form: str) -> tuple[int, str | None]:
    await site.get("/login/second-step")
    resp = await site.client.post(
        "/login/second-step", data={**form, "csrf_token": site.csrf}, allow_redirects=False
    )
    return resp.status, resp.headers.get("Location")


def rows(engine: Engine, table, **where) -> int:
    cond = [getattr(table.c, k) == v for k, v in where.items()]
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*cond)).scalar_one()


# --- adding an authenticator app ---------------------------------------------------------


async def test_an_app_is_added_only_with_a_right_code_its_key_sealed_and_the_owner_told(
    site: Site, engine: Engine
) -> None:
    await enroll_and_log_in(site, "tia@example.org")
    sid = subscriber(engine, "tia@example.org").id
    status, page = await site.get("/account/app")
    secret = SECRET.search(page).group(1).replace(" ", "")  # type: ignore[union-attr]
    status, again = await site.get("/account/app")  # a reload shows the same key: the app has it
    assert SECRET.search(again).group(1).replace(" ", "") == secret  # type: ignore[union-attr]
    wrong = f"{(int(code_at(secret)) + 1) % 1_000_000:06d}"
    status, page = await site.post("/account/app", {"code": wrong})
    assert status == 400 and "does not match" in page
    assert rows(engine, second_factors, subscriber_id=sid) == 0

    async with second_browser(site) as other:
        assert (await log_in(other, "tia@example.org"))[0] == 303
        assert await is_logged_in(other)
        with structlog.testing.capture_logs() as events:
            status, page = await site.post("/account/app", {"code": code_at(secret)})
        assert status == 200 and len(CODE.findall(page)) == 10
        assert not await is_logged_in(other)  # adding a factor ends every other session
    assert await is_logged_in(site)
    codes = CODE.findall(page)
    with engine.connect() as conn:
        stored = conn.execute(select(second_factors.c.totp_secret)).scalar_one()
        hashes = list(conn.execute(select(recovery_codes.c.code_hash)).scalars())
    assert secret not in stored and len(hashes) == 10  # sealed; codes only as hashes
    assert not any(c in h or c.replace("-", "") in h for c in codes for h in hashes)
    assert secret not in str(events) and not any(c in str(events) for c in codes)
    mail = (await sent_mail(site))[-1]
    assert "factor was added" in mail["Subject"] and mail["To"] == "tia@example.org"
    status, page = await site.get("/account/security")
    assert "<strong>Authenticator app</strong>" in page and "10</strong> of 10" in page  # the default name


# --- signing in --------------------------------------------------------------------------


async def test_with_an_app_the_password_alone_does_not_sign_in_the_code_does(site: Site) -> None:
    await enroll_and_log_in(site, "uli@example.org")
    secret, _ = await add_app(site)
    await site.post("/logout")
    await password_step(site, "uli@example.org")
    resp = await site.client.get("/notifications", allow_redirects=False)
    assert resp.headers["Location"] == "/login"  # nothing of the account before the second step
    assert await second_step(site, code=code_at(secret, 1)) == (303, "/notifications")
    assert await is_logged_in(site)


async def test_a_code_signs_in_once_and_the_enrolment_code_not_at_all(site: Site) -> None:
    await enroll_and_log_in(site, "val@example.org")
    secret, _ = await add_app(site)
    await site.post("/logout")
    await password_step(site, "val@example.org")
    # The code that confirmed the app, seen by someone over the shoulder, is spent.
    status, _ = await second_step(site, code=code_at(secret))
    assert status == 400 and not await is_logged_in(site)
    code = code_at(secret, 1)
    assert await second_step(site, code=code) == (303, "/notifications")
    await site.post("/logout")
    await password_step(site, "val@example.org")
    status, _ = await second_step(site, code=code)  # the same code, a second time
    assert status == 400 and not await is_logged_in(site)


async def test_a_recovery_code_signs_in_once(site: Site, engine: Engine) -> None:
    await enroll_and_log_in(site, "wes@example.org")
    _, codes = await add_app(site)
    await site.post("/logout")
    await password_step(site, "wes@example.org")
    typed = codes[3].upper().replace("-", " ")  # however it is typed
    assert await second_step(site, recovery_code=typed) == (303, "/notifications")
    status, page = await site.get("/notifications")
    assert "recovery code" in page and "9 left" in page
    await site.post("/logout")
    await password_step(site, "wes@example.org")
    status, _ = await second_step(site, recovery_code=codes[3])
    assert status == 400 and not await is_logged_in(site)
    assert await second_step(site, recovery_code=codes[4]) == (303, "/notifications")


async def test_five_wrong_codes_ask_for_the_password_again(site: Site) -> None:
    await enroll_and_log_in(site, "xia@example.org")
    secret, _ = await add_app(site)
    await site.post("/logout")
    await password_step(site, "xia@example.org")
    right = code_at(secret, 1)
    wrong = f"{(int(right) + 7) % 1_000_000:06d}"
    for _ in range(4):
        assert (await second_step(site, code=wrong))[0] == 400
    assert await second_step(site, code=wrong) == (303, "/login")
    assert await second_step(site, code=right) == (303, "/login")  # the step is gone: password first
    assert not await is_logged_in(site)


async def test_the_second_step_is_tied_to_the_browser_that_gave_the_password(site: Site) -> None:
    await enroll_and_log_in(site, "yul@example.org")
    secret, _ = await add_app(site)
    await site.post("/logout")
    await password_step(site, "yul@example.org")
    async with second_browser(site) as thief:  # a code alone, without that browser's session
        await thief.get("/login")
        assert await second_step(thief, code=code_at(secret, 1)) == (303, "/login")
        assert not await is_logged_in(thief)


# --- removing ----------------------------------------------------------------------------


async def test_removing_the_app_needs_the_password_ends_other_sessions_and_tells_the_owner(
    site: Site, engine: Engine
) -> None:
    await enroll_and_log_in(site, "zed@example.org")
    sid = subscriber(engine, "zed@example.org").id
    secret, _ = await add_app(site)
    [factor_id] = [
        int(m) for m in re.findall(r"/account/factors/(\d+)/delete", (await site.get("/account/security"))[1])
    ]
    async with second_browser(site) as other:
        await password_step(other, "zed@example.org")
        assert await second_step(other, code=code_at(secret, 1)) == (303, "/notifications")
        status, page = await site.post(f"/account/factors/{factor_id}/delete", {"password": "not it at all"})
        assert status == 400 and "not your password" in page
        status, page = await site.post(f"/account/factors/{factor_id}/delete", {"password": ""})
        assert status == 400
        assert rows(engine, second_factors, subscriber_id=sid) == 1 and await is_logged_in(other)
        status, page = await site.post(f"/account/factors/{factor_id}/delete", {"password": PW})
        assert status == 200 and "is removed" in page
        assert not await is_logged_in(other)
    assert await is_logged_in(site)
    assert rows(engine, second_factors, subscriber_id=sid) == 0
    assert rows(engine, recovery_codes, subscriber_id=sid) == 0  # with the last factor, its codes
    assert "factor was removed" in (await sent_mail(site))[-1]["Subject"]
    await site.post("/logout")
    assert (await log_in(site, "zed@example.org"))[2] == "/notifications"  # the password alone again


async def test_new_recovery_codes_need_the_password_and_replace_the_old(site: Site) -> None:
    await enroll_and_log_in(site, "amy@example.org")
    _, old = await add_app(site)
    status, _ = await site.post("/account/recovery-codes", {"password": "wrong one"})
    assert status == 400
    status, page = await site.post("/account/recovery-codes", {"password": PW})
    new = CODE.findall(page)
    assert status == 200 and len(new) == 10 and not set(new) & set(old)
    await site.post("/logout")
    await password_step(site, "amy@example.org")
    assert (await second_step(site, recovery_code=old[0]))[0] == 400
    assert await second_step(site, recovery_code=new[0]) == (303, "/notifications")


async def test_deleting_the_enrollment_deletes_its_factors_and_codes(
    site: Site, engine: Engine, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    await enroll_and_log_in(site, "bo@example.org")
    sid = subscriber(engine, "bo@example.org").id
    await add_app(site)
    await site.get("/account")
    status, _ = await site.post("/account/delete", {"delete_password": PW})
    assert status == 200
    for table in (second_factors, recovery_codes, sign_in_steps):
        assert rows(engine, table, subscriber_id=sid) == 0


async def test_an_app_key_that_no_longer_opens_refuses_codes_but_recovery_codes_still_work(
    site: Site, engine: Engine
) -> None:
    """After SOR_SECRET_KEY changed, a stored app key cannot be read: no error page, the code
    is refused, and a recovery code (or a passkey) still signs in."""
    await enroll_and_log_in(site, "cy@example.org")
    secret, codes = await add_app(site)
    with engine.begin() as conn:
        conn.execute(
            second_factors.update().values(totp_secret="v1.c2VhbGVkIHVuZGVyIGFub3RoZXIga2V5IGxvbmcgZW5vdWdo")
        )
    await site.post("/logout")
    await password_step(site, "cy@example.org")
    assert (await second_step(site, code=code_at(secret, 1)))[0] == 400
    assert await second_step(site, recovery_code=codes[0]) == (303, "/notifications")


async def test_after_100_wrong_codes_in_a_row_codes_wait_for_a_password_reset(
    site: Site, engine: Engine
) -> None:
    """SP 800-63B-4 3.2.2: at most 100 failed attempts in a row, across sign-ins and browsers;
    the mailed reset link, which only the owner gets, lifts it."""
    from tests.web.test_account import link_in

    await enroll_and_log_in(site, "di@example.org")
    secret, codes = await add_app(site)
    await site.post("/logout")
    with engine.begin() as conn:  # 99 wrong codes typed earlier, over many sign-ins
        conn.execute(second_factors.update().values(failed_attempts=99))
    await password_step(site, "di@example.org")
    wrong = f"{(int(code_at(secret, 1)) + 3) % 1_000_000:06d}"
    assert (await second_step(site, code=wrong))[0] == 400
    assert (await second_step(site, code=code_at(secret, 1)))[0] == 429
    assert (await second_step(site, recovery_code=codes[0]))[0] == 429

    await site.get("/forgot")
    await site.post("/forgot", {"email": "di@example.org"})
    reset = link_in((await sent_mail(site))[-1], "/reset/")
    await site.get(reset)
    await site.post(reset, {"password": "cedar harbor violet", "password2": "cedar harbor violet"})
    status, _, location = await log_in(site, "di@example.org", "cedar harbor violet")
    assert location == "/login/second-step"
    assert await second_step(site, code=code_at(secret, 1)) == (303, "/notifications")
