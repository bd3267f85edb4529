"""Enrollment pages: enroll, confirm, log in and out, and a forgotten password's reset."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from streams.adapters import account_tokens, accounts
from streams.adapters.password_hashes import hash_password
from streams.domain import passwords
from streams.web import login_limits, sessions
from streams.web.account_forms import (
    MAX_PASSWORD_INPUT,
    check_email,
    has_second_factor,
    limited,
    link_invalid,
    lookup_email,
    mailed_link,
    mailed_link_page,
    mailed_link_request,
    new_email_problem,
    password_changed_notice,
    password_problems,
    secret,
    text,
    too_many,
)
from streams.web.account_mail import send_later
from streams.web.account_requests import ENROLL, AccountRequest
from streams.web.account_work import queue_request
from streams.web.area_carry import carried, wish_of
from streams.web.keys import db, flash, login_session, now, publish, session_of
from streams.web.paths import paths_of
from streams.web.responses import redirect, render
from streams.web.second_steps import after_password

logger = structlog.get_logger()

LOGIN_REFUSED = "E-mail address or password not recognised. Check both and try again."
TRY_ANOTHER_WAY = (
    "In a browser where you have logged in before, logging in goes on working; "
    'a new password ("Forgot your password?") works at once everywhere.'
)
LENGTHEN_PASSWORD = (
    f"You are logged in. Your password is shorter than the {passwords.MIN_LENGTH} characters we now ask "
    'for: it still works, but please make it longer under "Change my password" below. '
    "A few unrelated words are long and easy to remember."
)


# --- enroll and confirm ------------------------------------------------------------------


async def enroll_form(request: web.Request) -> web.Response:
    return render(
        request, "web/enroll.html.j2", {"errors": {}, "hint": passwords.HINT, "wish": wish_of(request)}
    )


async def enroll(request: web.Request) -> web.Response:
    form = await request.post()
    raw, raw2 = text(form, "email"), text(form, "email2")
    pw, pw2 = secret(form, "password"), secret(form, "password2")
    errors: dict[str, str] = {}
    if problem := new_email_problem(raw):
        errors["email"] = problem
    elif lookup_email(raw2) != lookup_email(raw):
        errors["email2"] = "The two e-mail addresses are different. Type the same address in both boxes."
    email = lookup_email(raw)
    password_problems(errors, pw, pw2, email)
    if errors:
        return render(
            request,
            "web/enroll.html.j2",
            {
                "errors": errors,
                "email": raw,
                "email2": raw2,
                "hint": passwords.HINT,
                "wish": wish_of(request),
            },
            status=400,
        )
    if wait := limited(request, "enroll", email):
        return too_many(request, wait)

    # Hashed here whatever the address: what is done with it is found out after the answer.
    password_hash = await asyncio.to_thread(hash_password, pw)
    queue_request(request, AccountRequest(ENROLL, email, password_hash, then=carried(request)))
    return check_email(
        request,
        "Check your e-mail",
        "We sent a message to the address you entered. Open it and follow what it says to finish. "
        "A confirmation link works for 48 hours.",
    )


async def confirm_form(request: web.Request) -> web.Response:
    """The page the confirmation link opens: a button, nothing done. A mail scanner fetching the
    link (GET, HEAD) must not confirm, and opening it must not log anybody in."""
    return await mailed_link_page(request, account_tokens.CONFIRM, "web/enroll_confirm.html.j2", lambda _: {})


async def confirm(request: web.Request) -> web.StreamResponse:
    """The button: the address is confirmed. Logging in still takes the password, so a link
    sent to somebody else (or an enrollment of somebody else's address) opens no account."""
    change = await db(request, accounts.confirm, request.match_info["token"], now())
    if change is None:
        return link_invalid(request, "confirm")
    await publish(request, change)
    logger.info("enrollment confirmed", subscriber_id=change.subscriber_id)
    await flash(
        request,
        "Your e-mail address is confirmed. Log in with your password, "
        "then choose the addresses and offenders you want to hear about.",
    )
    raise redirect(paths_of(request).of("login_form") + carried(request))


# --- log in and out ----------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    if session_of(request).logged_in:
        raise redirect(paths_of(request).of("notifications") + carried(request))
    return render(request, "web/login.html.j2")


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    raw, pw = text(form, "email"), secret(form, "password")
    email = lookup_email(raw)
    if wait := login_limits.login_wait(request, email):
        return too_many(request, wait, TRY_ANOTHER_WAY)
    sid = await db(request, accounts.authenticate, email, pw[:MAX_PASSWORD_INPUT])
    if sid is None:
        login_limits.login_failed(request, email)
        logger.info("login refused")
        return render(request, "web/login.html.j2", {"error": LOGIN_REFUSED, "email": raw}, status=400)
    # Long enough when it was chosen, short of SP 800-63B-4's 15 for a password alone: it keeps
    # working, and its owner is asked, at each sign-in, to lengthen it (or add a second factor).
    has_factor = await has_second_factor(request, sid)
    strengthen = passwords.needs_strengthening(pw[:MAX_PASSWORD_INPUT], has_factor)
    try:
        return await after_password(
            request,
            sid,
            has_factor=has_factor,
            note=LENGTHEN_PASSWORD if strengthen else None,
            landing="account" if strengthen else "notifications",
            then=carried(request),
        )
    except web.HTTPException as done:  # signed in, or on to the second step: the password was right
        login_limits.remember_device(request, done, email)
        raise


async def logout(request: web.Request) -> web.Response:
    await login_session(request, None)
    await flash(request, "You are logged out.")
    raise redirect(paths_of(request).of("home"))


# --- forgotten password ------------------------------------------------------------------


async def forgot_form(request: web.Request) -> web.Response:
    return render(request, "web/forgot.html.j2", {"errors": {}})


async def forgot(request: web.Request) -> web.Response:
    return await mailed_link_request(
        request,
        "web/forgot.html.j2",
        "reset",
        done="If that address is enrolled, we sent it a link to choose a new password. "
        "The link works once, for one hour. If nothing arrives in a few minutes, look in your spam or junk folder.",
    )


async def reset_form(request: web.Request) -> web.Response:
    return await mailed_link_page(
        request,
        account_tokens.RESET,
        "web/reset.html.j2",
        lambda holder: {"errors": {}, "hint": passwords.HINT},
    )


async def reset(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    holder = await mailed_link(request, account_tokens.RESET)
    if holder is None:
        return link_invalid(request, account_tokens.RESET)
    form = await request.post()
    pw, pw2 = secret(form, "password"), secret(form, "password2")
    errors: dict[str, str] = {}
    password_problems(errors, pw, pw2, holder.email)
    if errors:
        return render(request, "web/reset.html.j2", {"errors": errors, "hint": passwords.HINT}, status=400)
    change = await db(request, accounts.finish_reset, token, pw, now())
    if change is None:
        return link_invalid(request, "reset")
    login_limits.lift(request, holder.email)
    await db(request, sessions.end_all_for, change.subscriber_id)
    await login_session(request, None)
    if change.circles or change.watches:
        await publish(request, change)
    send_later(request, password_changed_notice(request, holder.email), "password_changed")
    logger.info("password reset", subscriber_id=change.subscriber_id)
    await flash(
        request,
        "Your new password is set, and every browser that was logged in has been logged out. "
        "Log in with your new password.",
    )
    raise redirect(paths_of(request).of("login_form"))
