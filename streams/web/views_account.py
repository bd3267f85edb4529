"""The account page: suspended mail, changing the password or the address, and deleting the enrollment."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from streams.adapters import account_tokens, accounts, tracking_db
from streams.domain import passwords
from streams.web import login_limits, sessions
from streams.web.account_forms import (
    check_email,
    link_invalid,
    lookup_email,
    mailed_link_page,
    mailed_link_request,
    new_email_problem,
    password_changed_notice,
    password_problems,
    secret,
    text,
    too_many,
)
from streams.web.account_mail import message, send_later
from streams.web.keys import db, flash, login_session, now, publish, runtime_of, session_of
from streams.web.paths import absolute, paths_of
from streams.web.responses import redirect, render, require_login

logger = structlog.get_logger()


# --- my account --------------------------------------------------------------------------


async def _current_account(request: web.Request) -> accounts.Account:
    acct = await db(request, accounts.account, session_of(request).subscriber_id)
    if acct is None:  # deleted in another browser
        await login_session(request, None)
        raise redirect(paths_of(request).of("login_form"))
    return acct


def mail_status(request: web.Request, acct: accounts.Account) -> dict[str, Any]:
    """What the suspended-mail banner needs (templates/web/_mail_status.html.j2)."""
    return {
        "suspended": acct.mail_suspended,
        "bounces": acct.mail_bounces,
        "reason": acct.last_bounce_reason,
        "email": acct.email,
        "suspend_after": runtime_of(request).settings.suspend_after_bounces,
    }


def _account_page(
    request: web.Request,
    acct: accounts.Account,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "web/account.html.j2",
        {
            "account": acct,
            "errors": errors or {},
            "values": values or {},
            "hint": passwords.HINT,
            "mail": mail_status(request, acct),
        },
        status=status,
    )


@require_login
async def account_page(request: web.Request) -> web.Response:
    return _account_page(request, await _current_account(request))


@require_login
async def resume_mail(request: web.Request) -> web.Response:
    acct = await _current_account(request)
    if await db(request, accounts.resume_mail, acct.subscriber_id):
        logger.info("digests resumed by the subscriber", subscriber_id=acct.subscriber_id)
        await flash(
            request,
            "Your alert e-mails are on again. Your next e-mail brings every change recorded "
            "meanwhile. If it is refused too, we stop again at once.",
        )
    raise redirect(paths_of(request).of("notifications"))


@require_login
async def start_mail(request: web.Request) -> web.Response:
    """After an unsubscribe: the kept addresses and offenders go back into the stream."""
    acct = await _current_account(request)
    change = await db(request, tracking_db.resubscribe, acct.subscriber_id)
    if change is not None:
        if change.circles or change.watches:
            await publish(request, change)
        logger.info("mail started again by the subscriber", subscriber_id=acct.subscriber_id)
        await flash(
            request,
            "Your alert e-mails are on again: your tracked addresses and offenders are watched "
            "from now on, and changes come in your digest e-mail.",
        )
    raise redirect(paths_of(request).of("notifications"))


@require_login
async def change_password(request: web.Request) -> web.Response:
    acct = await _current_account(request)
    form = await request.post()
    current = secret(form, "current_password")
    pw, pw2 = secret(form, "new_password"), secret(form, "new_password2")
    errors: dict[str, str] = {}
    if not current:
        errors["current_password"] = "Enter your current password."
    password_problems(errors, pw, pw2, acct.email, "new_password", "new_password2")
    if errors:
        return _account_page(request, acct, errors, status=400)
    if wait := login_limits.reauth_wait(request):
        return too_many(request, wait)
    if not await db(request, accounts.change_password, acct.subscriber_id, current, pw):
        login_limits.reauth_failed(request)
        return _account_page(
            request, acct, {"current_password": "That is not your current password."}, status=400
        )
    await db(request, sessions.end_all_for, acct.subscriber_id)
    await login_session(request, acct.subscriber_id)
    login_limits.lift(request, acct.email)
    send_later(request, password_changed_notice(request, acct.email), "password_changed")
    logger.info("password changed", subscriber_id=acct.subscriber_id)
    await flash(
        request, "Your password is changed. Every other browser where you were logged in has been logged out."
    )
    raise redirect(paths_of(request).of("account"))


@require_login
async def change_email(request: web.Request) -> web.Response:
    acct = await _current_account(request)
    form = await request.post()
    raw, raw2 = text(form, "new_email"), text(form, "new_email2")
    pw = secret(form, "email_password")
    errors: dict[str, str] = {}
    if problem := new_email_problem(raw):
        errors["new_email"] = problem
    elif lookup_email(raw) == acct.email:
        errors["new_email"] = "That is already the address your alerts go to."
    elif lookup_email(raw2) != lookup_email(raw):
        errors["new_email2"] = "The two e-mail addresses are different. Type the same address in both boxes."
    if not pw:
        errors["email_password"] = "Enter your password."
    if errors:
        return _account_page(request, acct, errors, {"new_email": raw, "new_email2": raw2}, status=400)
    if wait := login_limits.reauth_wait(request):
        return too_many(request, wait)
    if not await db(request, accounts.check_password, acct.subscriber_id, pw):
        login_limits.reauth_failed(request)
        return _account_page(
            request,
            acct,
            {"email_password": "That is not your password."},
            {"new_email": raw, "new_email2": raw2},
            status=400,
        )

    new = lookup_email(raw)
    change = await db(request, accounts.start_email_change, acct.subscriber_id, new, now())
    if change.token:
        msg = message(
            request,
            "email_change",
            new,
            "Confirm your new address for registry e-mail alerts",
            link=absolute(request, "email_confirm_form", token=change.token),
        )
    else:
        msg = message(
            request,
            "email_taken",
            new,
            "This address already has registry e-mail alerts",
            login=absolute(request, "login_form"),
        )
    send_later(request, msg, "email_change")
    notice = message(
        request,
        "email_change_notice",
        change.old_email,
        "Your registry e-mail alerts are about to move to another address",
        new_email=new,
        forgot=absolute(request, "forgot_form"),
    )
    send_later(request, notice, "email_change_notice")
    return check_email(
        request,
        "Check your new address",
        "We sent a link to the new address. Your alerts keep going to the current address until you "
        "open that link (it works for 48 hours). We also told the current address about this request.",
        back=paths_of(request).of("account"),
    )


async def email_confirm_form(request: web.Request) -> web.Response:
    return await mailed_link_page(
        request,
        account_tokens.CHANGE_EMAIL,
        "web/email_confirm.html.j2",
        lambda holder: {"new_email": holder.new_email},
    )


async def email_confirm(request: web.Request) -> web.Response:
    result = await db(request, accounts.finish_email_change, request.match_info["token"], now())
    if result is None:
        return link_invalid(request, "change_email")
    if not result.changed:
        return render(
            request,
            "web/error.html.j2",
            {
                "title": "That address is enrolled already",
                "message": "Meanwhile the new address got an enrollment of its own, so yours stays at the old "
                "address. Delete the other enrollment first if you want to move yours there.",
            },
            status=409,
        )
    logger.info("e-mail address changed", subscriber_id=result.subscriber_id)
    await flash(request, "Done: your alerts now go to the new address. Use it when you log in.")
    raise redirect(
        paths_of(request).of(
            "account" if session_of(request).subscriber_id == result.subscriber_id else "login_form"
        )
    )


# --- deleting ----------------------------------------------------------------------------


async def _deleted(request: web.Request, change: Any) -> web.Response:
    await publish(request, change)
    await login_session(request, None)
    logger.info("enrollment deleted", subscriber_id=change.subscriber_id)
    await flash(
        request,
        "Your enrollment is deleted, with every address and offender you tracked. "
        "You will get no more e-mails from us.",
    )
    raise redirect(paths_of(request).of("home"))


@require_login
async def delete_logged_in(request: web.Request) -> web.Response:
    acct = await _current_account(request)
    form = await request.post()
    pw = secret(form, "delete_password")
    if not pw:
        return _account_page(
            request, acct, {"delete_password": "Enter your password to delete your enrollment."}, status=400
        )
    if wait := login_limits.reauth_wait(request):
        return too_many(request, wait)
    change = await db(request, accounts.delete_with_password, acct.subscriber_id, pw)
    if change is None:
        login_limits.reauth_failed(request)
        return _account_page(request, acct, {"delete_password": "That is not your password."}, status=400)
    return await _deleted(request, change)


async def delete_form(request: web.Request) -> web.Response:
    return render(request, "web/delete.html.j2", {"errors": {}})


async def delete_request(request: web.Request) -> web.Response:
    return await mailed_link_request(
        request,
        "web/delete.html.j2",
        "delete",
        done="If that address is enrolled, we sent it a link to delete the enrollment. Nothing is deleted "
        "until you open the link (it works for 24 hours) and confirm there.",
    )


async def delete_confirm_form(request: web.Request) -> web.Response:
    return await mailed_link_page(
        request, account_tokens.DELETE, "web/delete_confirm.html.j2", lambda holder: {"email": holder.email}
    )


async def delete_confirm(request: web.Request) -> web.Response:
    change = await db(request, accounts.finish_delete, request.match_info["token"], now())
    if change is None:
        return link_invalid(request, "delete")
    return await _deleted(request, change)
