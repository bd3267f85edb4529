"""The sign-in page of My account: an authenticator app, passkeys and recovery codes, added and removed."""

from __future__ import annotations

from typing import Any

import segno
import structlog
from aiohttp import web

from streams.adapters import accounts, sealed_secrets, second_factors_db, sign_in_steps
from streams.domain import passwords
from streams.domain import second_factors as rules
from streams.web.account_forms import limited, secret, text, too_many
from streams.web.keys import db, flash, now, runtime_of, session_of
from streams.web.paths import paths_of
from streams.web.responses import not_found, redirect, render, require_login
from streams.web.second_steps import after_rotation, factors_changed, new_codes, session_hash

logger = structlog.get_logger()

ISSUER = "Registry e-mail alerts"
TOTP_PURPOSE = "totp secret"
ADDED = ("factor_added", "A sign-in factor was added to your registry e-mail alerts")
REMOVED = ("factor_removed", "A sign-in factor was removed from your registry e-mail alerts")


def seal_totp(request: web.Request, subscriber_id: int, secret_b32: str) -> str:
    key = runtime_of(request).settings.secret_key
    return sealed_secrets.seal(key, TOTP_PURPOSE, secret_b32, f"subscriber {subscriber_id}")


def unseal_totp(request: web.Request, subscriber_id: int, sealed: str) -> str:
    key = runtime_of(request).settings.secret_key
    return sealed_secrets.unseal(key, TOTP_PURPOSE, sealed, f"subscriber {subscriber_id}")


def _sid(request: web.Request) -> int:
    sid = session_of(request).subscriber_id
    assert sid is not None  # require_login
    return sid


async def _security_page(
    request: web.Request, errors: dict[str, str] | None = None, status: int = 200
) -> web.Response:
    sid = _sid(request)
    found = await db(request, second_factors_db.factors, sid)
    return render(
        request,
        "web/security.html.j2",
        {
            "factors": found,
            "has_totp": any(f.kind == second_factors_db.TOTP for f in found),
            "codes_left": await db(request, second_factors_db.recovery_codes_left, sid),
            "errors": errors or {},
            "hint": passwords.HINT,
        },
        status=status,
    )


@require_login
async def security_page(request: web.Request) -> web.Response:
    return await _security_page(request)


# --- an authenticator app ----------------------------------------------------------------


async def _app_key(request: web.Request, sid: int) -> str:
    """The key being enrolled in this session: the same one on a reload, so an app that has
    read it already still matches."""
    h = session_hash(request)
    step = await db(request, sign_in_steps.get, h, sign_in_steps.TOTP_ENROLL, now())
    if step is not None and step.subscriber_id == sid and step.value:
        try:
            return unseal_totp(request, sid, step.value)
        except ValueError:  # sealed under an earlier SOR_SECRET_KEY: show a new key
            pass
    key = rules.new_totp_secret()
    await db(
        request, sign_in_steps.put, h, sign_in_steps.TOTP_ENROLL, sid, seal_totp(request, sid, key), now()
    )
    return key


def _app_page(
    request: web.Request, email: str, key: str, errors: dict[str, str], label: str, status: int = 200
) -> web.Response:
    uri = rules.otpauth_uri(key, email, ISSUER)
    return render(
        request,
        "web/totp_add.html.j2",
        {
            "secret": rules.grouped(key),
            "uri": uri,
            # An SVG made here (no image service sees the key); no script, so the CSP allows it.
            "qr_svg": segno.make(uri, error="m").svg_inline(scale=4, title="QR code of the key"),
            "errors": errors,
            "label": label,
        },
        status=status,
    )


@require_login
async def app_form(request: web.Request) -> web.Response:
    sid = _sid(request)
    if await db(request, second_factors_db.totp_of, sid) is not None:
        await flash(request, "You already have an authenticator app. Remove it first to use another one.")
        raise redirect(paths_of(request).of("security"))
    acct = await db(request, accounts.account, sid)
    return _app_page(request, acct.email, await _app_key(request, sid), {}, "")


@require_login
async def app_add(request: web.Request) -> web.Response:
    sid = _sid(request)
    form = await request.post()
    label = text(form, "label", second_factors_db.MAX_LABEL) or "Authenticator app"
    code = text(form, "code", 20)
    acct = await db(request, accounts.account, sid)
    if limited(request, "second_step", f"subscriber:{sid}"):
        return too_many(request)
    key = await _app_key(request, sid)
    step = rules.matching_step(key, code, now(), None)
    if step is None:
        return _app_page(
            request,
            acct.email,
            key,
            {"code": "That code does not match. Type the six digits the app shows now."},
            label,
            status=400,
        )
    codes, hashes = new_codes()
    codes_set = await db(
        request, second_factors_db.add_totp, sid, seal_totp(request, sid, key), label, step, hashes, now()
    )
    await db(request, sign_in_steps.drop, session_hash(request), sign_in_steps.TOTP_ENROLL)
    await factors_changed(request, sid, *ADDED)
    logger.info("second factor added", subscriber_id=sid, kind=second_factors_db.TOTP)
    return await added(request, codes if codes_set else None)


async def added(request: web.Request, codes: list[str] | None) -> web.Response:
    """After a factor is added: the recovery codes, once, if they were made now."""
    note = (
        "Your new sign-in factor is ready. Every other browser where you were logged in has been "
        "logged out. From now on, logging in asks for it after your password."
    )
    if codes is None:
        await flash(request, note)
        raise redirect(paths_of(request).of("security"))
    return render(
        request, "web/recovery_codes.html.j2", {"codes": codes, "note": note, **after_rotation(request)}
    )


# --- removing, recovery codes ------------------------------------------------------------


async def _password_refused(request: web.Request, form: Any) -> web.Response | None:
    """Re-authentication: the password, with the login's limits; None when it is right."""
    sid = _sid(request)
    pw = secret(form, "password")
    if not pw:
        return await _security_page(request, {"password": "Enter your password."}, status=400)
    acct = await db(request, accounts.account, sid)
    if limited(request, "login", acct.email):
        return too_many(request)
    if not await db(request, accounts.check_password, sid, pw):
        return await _security_page(request, {"password": "That is not your password."}, status=400)
    return None


@require_login
async def remove_factor(request: web.Request) -> web.Response:
    sid = _sid(request)
    form = await request.post()
    if refused := await _password_refused(request, form):
        return refused
    raw = request.match_info["factor_id"]
    gone = await db(request, second_factors_db.remove, sid, int(raw)) if len(raw) <= 9 else None
    if gone is None:
        return not_found(request)
    await factors_changed(request, sid, *REMOVED)
    logger.info("second factor removed", subscriber_id=sid, kind=gone.kind)
    await flash(
        request,
        f"“{gone.label}” is removed. Every other browser where you were logged in has been logged out.",
    )
    raise redirect(paths_of(request).of("security"))


@require_login
async def recovery_codes(request: web.Request) -> web.Response:
    sid = _sid(request)
    form = await request.post()
    if refused := await _password_refused(request, form):
        return refused
    codes, hashes = new_codes()
    if not await db(request, second_factors_db.new_recovery_codes, sid, hashes, now()):
        return not_found(request)
    logger.info("recovery codes replaced", subscriber_id=sid)
    return render(
        request,
        "web/recovery_codes.html.j2",
        {"codes": codes, "note": "These new codes replace the earlier ones, which no longer work."},
    )
