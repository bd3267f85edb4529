"""The second step of signing in: a code from the authenticator app, a recovery code, or a passkey."""

from __future__ import annotations

import structlog
from aiohttp import web

from streams.adapters import second_factors_db, sign_in_steps
from streams.domain import second_factors as rules
from streams.web.account_forms import limited, text, too_many
from streams.web.area_carry import carried
from streams.web.keys import db, flash, now
from streams.web.paths import paths_of
from streams.web.responses import redirect, render
from streams.web.second_steps import MAX_ATTEMPTS, pending, session_hash, signed_in
from streams.web.views_factors import unseal_totp

logger = structlog.get_logger()

WRONG = "That code is not right, or it was used already. Try the code your app shows now."
LOCKED = (
    "Too many wrong codes were typed for this account, so codes are not accepted for now. "
    "Use your passkey, or choose a new password through the link we e-mail you (Forgot your password?): "
    "that makes codes work again."
)
START_AGAIN = "For your safety, log in with your password again."


async def _page(request: web.Request, sid: int, error: str | None = None, status: int = 200) -> web.Response:
    kinds = {f.kind for f in await db(request, second_factors_db.factors, sid)}
    return render(
        request,
        "web/second_step.html.j2",
        {
            "has_totp": second_factors_db.TOTP in kinds,
            "has_passkey": second_factors_db.PASSKEY in kinds,
            "error": error,
        },
        status=status,
    )


async def _no_step(request: web.Request) -> web.Response:
    await flash(request, "Signing in took too long or was not started. " + START_AGAIN)
    raise redirect(paths_of(request).of("login_form"))


async def second_step_form(request: web.Request) -> web.Response:
    sid = await pending(request)
    if sid is None:
        return await _no_step(request)
    return await _page(request, sid)


async def _totp_ok(request: web.Request, sid: int, code: str) -> bool:
    totp = await db(request, second_factors_db.totp_of, sid)
    if totp is None:
        return False
    try:
        key = unseal_totp(request, sid, totp.sealed_secret)
    except ValueError:  # SOR_SECRET_KEY changed since: the app must be added again
        logger.warning("authenticator app key unreadable", subscriber_id=sid)
        return False
    step = rules.matching_step(key, code, now(), totp.last_used_step)
    return step is not None and await db(request, second_factors_db.accept_totp_step, totp.id, step, now())


async def second_step(request: web.Request) -> web.Response:
    sid = await pending(request)
    if sid is None:
        return await _no_step(request)
    form = await request.post()
    code, recovery = text(form, "code", 20), text(form, "recovery_code", 80)
    if limited(request, "second_step", f"subscriber:{sid}"):
        return too_many(request)
    if await db(request, second_factors_db.failures, sid) >= second_factors_db.MAX_FAILURES:
        logger.info("second step locked after many wrong codes", subscriber_id=sid)
        return await _page(request, sid, LOCKED, status=429)
    how = None
    if code and await _totp_ok(request, sid, code):
        how = "totp"
    elif recovery and (normal := rules.normalized_recovery_code(recovery)) is not None:
        if await db(
            request, second_factors_db.use_recovery_code, sid, rules.recovery_code_hash(normal), now()
        ):
            how = "recovery_code"
    if how is None:
        await db(request, second_factors_db.count_failure, sid)
        h = session_hash(request)
        if await db(request, sign_in_steps.failed, h, sign_in_steps.SECOND_STEP) >= MAX_ATTEMPTS:
            await db(request, sign_in_steps.drop, h, sign_in_steps.SECOND_STEP)
            logger.info("second step refused too often", subscriber_id=sid)
            await flash(request, "Too many wrong codes. " + START_AGAIN)
            raise redirect(paths_of(request).of("login_form"))
        logger.info("second step refused", subscriber_id=sid)
        return await _page(request, sid, WRONG, status=400)
    await db(request, second_factors_db.signed_in_with_factor, sid)
    note = None
    if how == "recovery_code":
        left = await db(request, second_factors_db.recovery_codes_left, sid)
        note = (
            f"You used a recovery code; it will not work again ({left} left). "
            "Make new ones under My account, Sign-in factors, before you run out."
        )
    return await signed_in(request, sid, how, note, then=carried(request))
