"""Account pages: enroll, confirm, log in and out, reset, change password or address, delete."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import structlog
from aiohttp import web
from email_validator import EmailNotValidError, validate_email

from streams.adapters import accounts
from streams.web import passwords, sessions
from streams.web.account_mail import message, send_later
from streams.web.keys import LIMITER, client_key, db, flash, login_session, now, publish, runtime_of, session_of
from streams.web.paths import absolute, paths_of
from streams.web.responses import redirect, render, require_login
from streams.web.security import account_key

logger = structlog.get_logger()

LOGIN_REFUSED = "E-mail address or password not recognised. Check both and try again."
MAX_EMAIL = 320
MAX_PASSWORD_INPUT = 1024  # longer than any allowed password; refused before it is hashed


# --- form helpers ------------------------------------------------------------------------


def _text(form: Any, name: str, limit: int = MAX_EMAIL) -> str:
    return str(form.get(name, "")).strip()[: limit + 1]


def _secret(form: Any, name: str) -> str:
    # Never stripped: spaces are part of a password.
    return str(form.get(name, ""))[: MAX_PASSWORD_INPUT + 1]


def _lookup_email(raw: str) -> str:
    """The form addresses are stored in, also for addresses the validator would refuse."""
    try:
        v = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return raw.strip().lower()
    return (v.ascii_email or v.normalized).lower()


def _new_email_problem(raw: str) -> str | None:
    if not raw:
        return "Enter your e-mail address."
    if len(raw) > MAX_EMAIL:
        return "That e-mail address is too long."
    try:
        validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return f"Enter an e-mail address like name@example.com. {exc}"
    return None


def _password_problems(errors: dict[str, str], pw: str, pw2: str, email: str,
                       name: str = "password", repeat: str = "password2") -> None:
    if len(pw) > MAX_PASSWORD_INPUT:
        errors[name] = f"Use at most {passwords.MAX_LENGTH} characters."
    elif msg := passwords.problem(pw, email):
        errors[name] = msg
    elif passwords.normalize(pw) != passwords.normalize(pw2):
        errors[repeat] = "The two passwords are different. Type the same password in both boxes."


def _limited(request: web.Request, action: str, email: str | None = None) -> bool:
    limiter = request.app[LIMITER]
    if not limiter.allow(f"{action}:client", client_key(request)):
        logger.info("rate limited", rule=f"{action}:client")
        return True
    if email is not None and not limiter.allow(f"{action}:account", account_key(email)):
        logger.info("rate limited", rule=f"{action}:account")
        return True
    return False


def _too_many(request: web.Request) -> web.Response:
    response = render(request, "web/error.html.j2", {
        "title": "Too many attempts",
        "message": "For your safety this was not tried. Wait 15 minutes, then try again.",
    }, status=429)
    response.headers["Retry-After"] = "900"
    return response


def _link_invalid(request: web.Request, purpose: str) -> web.Response:
    # Forged, expired and used links all get this one answer.
    return render(request, "web/link_invalid.html.j2", {"purpose": purpose}, status=400)


def _check_email(request: web.Request, title: str, message: str, **extra: Any) -> web.Response:
    return render(request, "web/check_email.html.j2", {"title": title, "message": message, **extra})


# --- enroll and confirm ------------------------------------------------------------------


async def enroll_form(request: web.Request) -> web.Response:
    return render(request, "web/enroll.html.j2", {"errors": {}, "hint": passwords.HINT})


async def enroll(request: web.Request) -> web.Response:
    form = await request.post()
    raw, raw2 = _text(form, "email"), _text(form, "email2")
    pw, pw2 = _secret(form, "password"), _secret(form, "password2")
    errors: dict[str, str] = {}
    if msg := _new_email_problem(raw):
        errors["email"] = msg
    elif _lookup_email(raw2) != _lookup_email(raw):
        errors["email2"] = "The two e-mail addresses are different. Type the same address in both boxes."
    email = _lookup_email(raw)
    _password_problems(errors, pw, pw2, email)
    if errors:
        return render(request, "web/enroll.html.j2",
                      {"errors": errors, "email": raw, "email2": raw2, "hint": passwords.HINT}, status=400)
    if _limited(request, "enroll", email):
        return _too_many(request)

    enrollment = await db(request, accounts.create_enrollment, email, pw, now())
    if enrollment.token:
        msg = message(request, "confirm", email, "Confirm your e-mail address for registry e-mail alerts",
                       link=absolute(request, "confirm", token=enrollment.token))
        send_later(request, msg, "confirm")
    else:
        msg = message(request, "already_enrolled", email,
                       "Someone tried to enroll this address in registry e-mail alerts",
                       pending=enrollment.pending, login=absolute(request, "login_form"), forgot=absolute(request, "forgot_form"))
        send_later(request, msg, "already_enrolled")
    return _check_email(
        request, "Check your e-mail",
        "We sent a message to the address you entered. Open it and follow what it says to finish. "
        "A confirmation link works for 48 hours.",
    )


async def confirm(request: web.Request) -> web.StreamResponse:
    change = await db(request, accounts.confirm, request.match_info["token"], now())
    if change is None:
        return _link_invalid(request, "confirm")
    await login_session(request, change.subscriber_id)
    await publish(request, change)
    logger.info("enrollment confirmed", subscriber_id=change.subscriber_id)
    await flash(request, "Your e-mail address is confirmed and you are logged in. "
                         "Now choose the addresses and offenders you want to hear about.")
    raise redirect(paths_of(request).of("notifications"))


# --- log in and out ----------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    if session_of(request).logged_in:
        raise redirect(paths_of(request).of("notifications"))
    return render(request, "web/login.html.j2")


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    raw, pw = _text(form, "email"), _secret(form, "password")
    email = _lookup_email(raw)
    if _limited(request, "login", email):
        return _too_many(request)
    sid = await db(request, accounts.authenticate, email, pw[:MAX_PASSWORD_INPUT])
    if sid is None:
        logger.info("login refused")
        return render(request, "web/login.html.j2", {"error": LOGIN_REFUSED, "email": raw}, status=400)
    await login_session(request, sid)
    logger.info("logged in", subscriber_id=sid)
    raise redirect(paths_of(request).of("notifications"))


async def logout(request: web.Request) -> web.Response:
    await login_session(request, None)
    await flash(request, "You are logged out.")
    raise redirect(paths_of(request).of("home"))


# --- forgotten password ------------------------------------------------------------------


async def forgot_form(request: web.Request) -> web.Response:
    return render(request, "web/forgot.html.j2", {"errors": {}})


async def forgot(request: web.Request) -> web.Response:
    return await _mailed_link_request(
        request, "web/forgot.html.j2", "reset", accounts.start_reset,
        subject="Choose a new password for registry e-mail alerts", route="reset_form",
        done="If that address is enrolled, we sent it a link to choose a new password. "
        "The link works once, for one hour. If nothing arrives in a few minutes, look in your spam or junk folder.",
    )


async def _mailed_link_request(request: web.Request, template: str, purpose: str, start: Any, *,
                               subject: str, route: str, done: str) -> web.Response:
    """Ask for an address, mail it a link if it is enrolled, and say the same thing either way."""
    form = await request.post()
    raw = _text(form, "email")
    if not raw:
        return render(request, template,
                      {"errors": {"email": "Enter the e-mail address you enrolled with."}}, status=400)
    email = _lookup_email(raw)
    if _limited(request, purpose, email):
        return _too_many(request)
    token = await db(request, start, email, now())
    if token:
        msg = message(request, purpose, email, subject, link=absolute(request, route, token=token))
        send_later(request, msg, purpose)
    return _check_email(request, "Check your e-mail", done)


async def reset_form(request: web.Request) -> web.Response:
    holder = await db(request, accounts.peek, request.match_info["token"], accounts.RESET, now())
    if holder is None:
        return _link_invalid(request, "reset")
    return render(request, "web/reset.html.j2", {"errors": {}, "hint": passwords.HINT})


async def reset(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    holder = await db(request, accounts.peek, token, accounts.RESET, now())
    if holder is None:
        return _link_invalid(request, "reset")
    form = await request.post()
    pw, pw2 = _secret(form, "password"), _secret(form, "password2")
    errors: dict[str, str] = {}
    _password_problems(errors, pw, pw2, holder.email)
    if errors:
        return render(request, "web/reset.html.j2", {"errors": errors, "hint": passwords.HINT}, status=400)
    change = await db(request, accounts.finish_reset, token, pw, now())
    if change is None:
        return _link_invalid(request, "reset")
    await db(request, sessions.end_all_for, change.subscriber_id)
    await login_session(request, None)
    if change.circles or change.watches:
        await publish(request, change)
    send_later(request, _password_changed_notice(request, holder.email), "password_changed")
    logger.info("password reset", subscriber_id=change.subscriber_id)
    await flash(request, "Your new password is set, and every browser that was logged in has been logged out. "
                         "Log in with your new password.")
    raise redirect(paths_of(request).of("login_form"))


def _password_changed_notice(request: web.Request, email: str) -> EmailMessage:
    return message(request, "password_changed", email, "Your registry e-mail alerts password was changed",
                    forgot=absolute(request, "forgot_form"))


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
        "suspended": acct.mail_suspended, "bounces": acct.mail_bounces, "reason": acct.last_bounce_reason,
        "email": acct.email, "suspend_after": runtime_of(request).settings.suspend_after_bounces,
    }


def _account_page(request: web.Request, acct: accounts.Account, errors: dict[str, str] | None = None,
                  values: dict[str, str] | None = None, status: int = 200) -> web.Response:
    return render(request, "web/account.html.j2", {
        "account": acct, "errors": errors or {}, "values": values or {}, "hint": passwords.HINT,
        "mail": mail_status(request, acct),
    }, status=status)


@require_login
async def account_page(request: web.Request) -> web.Response:
    return _account_page(request, await _current_account(request))


@require_login
async def resume_mail(request: web.Request) -> web.Response:
    acct = await _current_account(request)
    if await db(request, accounts.resume_mail, acct.subscriber_id):
        logger.info("digests resumed by the subscriber", subscriber_id=acct.subscriber_id)
        await flash(request, "Your alert e-mails are on again. Your next e-mail brings every change recorded "
                             "meanwhile. If it is refused too, we stop again at once.")
    raise redirect(paths_of(request).of("notifications"))


@require_login
async def change_password(request: web.Request) -> web.Response:
    acct = await _current_account(request)
    form = await request.post()
    current = _secret(form, "current_password")
    pw, pw2 = _secret(form, "new_password"), _secret(form, "new_password2")
    errors: dict[str, str] = {}
    if not current:
        errors["current_password"] = "Enter your current password."
    _password_problems(errors, pw, pw2, acct.email, "new_password", "new_password2")
    if errors:
        return _account_page(request, acct, errors, status=400)
    if _limited(request, "login", acct.email):
        return _too_many(request)
    if not await db(request, accounts.change_password, acct.subscriber_id, current, pw):
        return _account_page(request, acct, {"current_password": "That is not your current password."}, status=400)
    await db(request, sessions.end_all_for, acct.subscriber_id)
    await login_session(request, acct.subscriber_id)
    send_later(request, _password_changed_notice(request, acct.email), "password_changed")
    logger.info("password changed", subscriber_id=acct.subscriber_id)
    await flash(request, "Your password is changed. Every other browser where you were logged in has been logged out.")
    raise redirect(paths_of(request).of("account"))


@require_login
async def change_email(request: web.Request) -> web.Response:
    acct = await _current_account(request)
    form = await request.post()
    raw, raw2 = _text(form, "new_email"), _text(form, "new_email2")
    pw = _secret(form, "email_password")
    errors: dict[str, str] = {}
    if msg := _new_email_problem(raw):
        errors["new_email"] = msg
    elif _lookup_email(raw) == acct.email:
        errors["new_email"] = "That is already the address your alerts go to."
    elif _lookup_email(raw2) != _lookup_email(raw):
        errors["new_email2"] = "The two e-mail addresses are different. Type the same address in both boxes."
    if not pw:
        errors["email_password"] = "Enter your password."
    if errors:
        return _account_page(request, acct, errors, {"new_email": raw, "new_email2": raw2}, status=400)
    if _limited(request, "login", acct.email):
        return _too_many(request)
    if not await db(request, accounts.check_password, acct.subscriber_id, pw):
        return _account_page(request, acct, {"email_password": "That is not your password."},
                             {"new_email": raw, "new_email2": raw2}, status=400)

    new = _lookup_email(raw)
    change = await db(request, accounts.start_email_change, acct.subscriber_id, new, now())
    if change.token:
        msg = message(request, "email_change", new, "Confirm your new address for registry e-mail alerts",
                       link=absolute(request, "email_confirm_form", token=change.token))
    else:
        msg = message(request, "email_taken", new, "This address already has registry e-mail alerts",
                       login=absolute(request, "login_form"))
    send_later(request, msg, "email_change")
    notice = message(request, "email_change_notice", change.old_email,
                      "Your registry e-mail alerts are about to move to another address",
                      new_email=new, forgot=absolute(request, "forgot_form"))
    send_later(request, notice, "email_change_notice")
    return _check_email(
        request, "Check your new address",
        "We sent a link to the new address. Your alerts keep going to the current address until you "
        "open that link (it works for 48 hours). We also told the current address about this request.",
        back=paths_of(request).of("account"),
    )


async def email_confirm_form(request: web.Request) -> web.Response:
    holder = await db(request, accounts.peek, request.match_info["token"], accounts.CHANGE_EMAIL, now())
    if holder is None:
        return _link_invalid(request, "change_email")
    return render(request, "web/email_confirm.html.j2", {"new_email": holder.new_email})


async def email_confirm(request: web.Request) -> web.Response:
    result = await db(request, accounts.finish_email_change, request.match_info["token"], now())
    if result is None:
        return _link_invalid(request, "change_email")
    if not result.changed:
        return render(request, "web/error.html.j2", {
            "title": "That address is enrolled already",
            "message": "Meanwhile the new address got an enrollment of its own, so yours stays at the old "
                       "address. Delete the other enrollment first if you want to move yours there.",
        }, status=409)
    logger.info("e-mail address changed", subscriber_id=result.subscriber_id)
    await flash(request, "Done: your alerts now go to the new address. Use it when you log in.")
    raise redirect(paths_of(request).of("account" if session_of(request).subscriber_id == result.subscriber_id
                                        else "login_form"))


# --- deleting ----------------------------------------------------------------------------


async def _deleted(request: web.Request, change: Any) -> web.Response:
    await publish(request, change)
    await login_session(request, None)
    logger.info("enrollment deleted", subscriber_id=change.subscriber_id)
    await flash(request, "Your enrollment is deleted, with every address and offender you tracked. "
                         "You will get no more e-mails from us.")
    raise redirect(paths_of(request).of("home"))


@require_login
async def delete_logged_in(request: web.Request) -> web.Response:
    acct = await _current_account(request)
    form = await request.post()
    pw = _secret(form, "delete_password")
    if not pw:
        return _account_page(request, acct, {"delete_password": "Enter your password to delete your enrollment."},
                             status=400)
    if _limited(request, "login", acct.email):
        return _too_many(request)
    change = await db(request, accounts.delete_with_password, acct.subscriber_id, pw)
    if change is None:
        return _account_page(request, acct, {"delete_password": "That is not your password."}, status=400)
    return await _deleted(request, change)


async def delete_form(request: web.Request) -> web.Response:
    return render(request, "web/delete.html.j2", {"errors": {}})


async def delete_request(request: web.Request) -> web.Response:
    return await _mailed_link_request(
        request, "web/delete.html.j2", "delete", accounts.start_delete,
        subject="Confirm deleting your registry e-mail alerts enrollment", route="delete_confirm_form",
        done="If that address is enrolled, we sent it a link to delete the enrollment. Nothing is deleted "
        "until you open the link (it works for 24 hours) and confirm there.",
    )


async def delete_confirm_form(request: web.Request) -> web.Response:
    holder = await db(request, accounts.peek, request.match_info["token"], accounts.DELETE, now())
    if holder is None:
        return _link_invalid(request, "delete")
    return render(request, "web/delete_confirm.html.j2", {"email": holder.email})


async def delete_confirm(request: web.Request) -> web.Response:
    change = await db(request, accounts.finish_delete, request.match_info["token"], now())
    if change is None:
        return _link_invalid(request, "delete")
    return await _deleted(request, change)
