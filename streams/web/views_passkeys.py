"""Passkeys over HTTP: adding one on the account's page, signing in with one (alone, or as the second step)."""

from __future__ import annotations

import structlog
from aiohttp import web
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse

from streams.adapters import accounts, passkeys_db, second_factors_db, sign_in_steps
from streams.web import passkeys
from streams.web.account_forms import limited, text, too_many
from streams.web.area_carry import carried
from streams.web.keys import db, flash, now, runtime_of, session_of
from streams.web.paths import paths_of
from streams.web.responses import redirect, require_login
from streams.web.second_steps import (
    factors_changed,
    new_codes,
    pending,
    session_hash,
    signed_in,
    stored_session_hash,
)
from streams.web.views_factors import ADDED, added

logger = structlog.get_logger()

MAX_CREDENTIAL = 16 * 1024  # a response with attestation is a few KiB; the form limit is 64 KiB
NOT_SIGNED_IN = "That passkey did not sign you in. Try again, or log in with your password."


def _json(body: str) -> web.Response:
    return web.Response(text=body, content_type="application/json")


def _credential(form: object) -> str:
    return str(form.get("credential", ""))[:MAX_CREDENTIAL]  # type: ignore[attr-defined]


# --- adding a passkey --------------------------------------------------------------------


@require_login
async def register_options(request: web.Request) -> web.Response:
    sid = session_of(request).subscriber_id
    assert sid is not None
    acct = await db(request, accounts.account, sid)
    existing = await db(request, passkeys_db.passkeys_of, sid)
    body, challenge = passkeys.registration_options(runtime_of(request).settings, sid, acct.email, existing)
    await db(
        request,
        sign_in_steps.put,
        await stored_session_hash(request),
        sign_in_steps.PASSKEY_REGISTER,
        sid,
        bytes_to_base64url(challenge),
        now(),
    )
    return _json(body)


@require_login
async def register(request: web.Request) -> web.Response:
    sid = session_of(request).subscriber_id
    assert sid is not None
    form = await request.post()
    label = text(form, "label", second_factors_db.MAX_LABEL) or "Passkey"
    step = await db(request, sign_in_steps.take, session_hash(request), sign_in_steps.PASSKEY_REGISTER, now())
    try:
        if step is None or step.subscriber_id != sid or not step.value:
            raise InvalidRegistrationResponse("no challenge in this session")
        verified = passkeys.verify_registration(
            runtime_of(request).settings, _credential(form), base64url_to_bytes(step.value)
        )
    except (InvalidRegistrationResponse, ValueError) as exc:
        logger.info("passkey not added", subscriber_id=sid, reason=type(exc).__name__)
        await flash(request, "No passkey was added: your browser's answer could not be checked. Try again.")
        raise redirect(paths_of(request).of("security")) from None
    transports = list(_transports(form))
    codes, hashes = new_codes()
    result = await db(
        request,
        lambda engine: passkeys_db.add_passkey(
            engine,
            sid,
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=transports,
            label=label,
            code_hashes=hashes,
            now=now(),
        ),
    )
    if result.factor_id is None:
        await flash(request, "No passkey was added: it is registered already, or you have ten.")
        raise redirect(paths_of(request).of("security"))
    await factors_changed(request, sid, *ADDED)
    logger.info("second factor added", subscriber_id=sid, kind=second_factors_db.PASSKEY)
    return await added(request, codes if result.codes_set else None)


def _transports(form: object) -> list[str]:
    raw = str(form.get("transports", ""))[:200]  # type: ignore[attr-defined]
    return [
        t for t in raw.split(",") if t in {"usb", "nfc", "ble", "internal", "hybrid", "cable", "smart-card"}
    ]


# --- signing in --------------------------------------------------------------------------


async def sign_in_options(request: web.Request) -> web.Response:
    """Passwordless when no password was given in this session; else the second step, with the account's passkeys."""
    sid = await pending(request)
    allowed = await db(request, passkeys_db.passkeys_of, sid) if sid is not None else None
    body, challenge = passkeys.authentication_options(runtime_of(request).settings, allowed)
    await db(
        request,
        sign_in_steps.put,
        await stored_session_hash(request),
        sign_in_steps.PASSKEY_SIGN_IN,
        sid,
        bytes_to_base64url(challenge),
        now(),
    )
    return _json(body)


async def _refused(request: web.Request, reason: str) -> web.Response:
    logger.info("passkey sign-in refused", reason=reason)
    await flash(request, NOT_SIGNED_IN)
    second = await pending(request)
    raise redirect(paths_of(request).of("second_step" if second is not None else "login_form"))


async def sign_in(request: web.Request) -> web.Response:
    form = await request.post()
    if limited(request, "second_step"):
        return too_many(request)
    settings = runtime_of(request).settings
    step = await db(request, sign_in_steps.take, session_hash(request), sign_in_steps.PASSKEY_SIGN_IN, now())
    if step is None or not step.value:
        return await _refused(request, "no challenge")
    credential = _credential(form)
    try:
        credential_id, handle = passkeys.credential_id_of(credential)
    except ValueError:
        return await _refused(request, "unreadable")
    key = await db(request, passkeys_db.passkey_by_credential, credential_id)
    passwordless = step.subscriber_id is None
    if key is None or not passkeys.handle_matches(settings, key, handle):
        return await _refused(request, "unknown passkey")
    if not passwordless and key.subscriber_id != step.subscriber_id:
        return await _refused(request, "another account's passkey")
    if limited(request, "second_step", f"subscriber:{key.subscriber_id}"):
        return too_many(request)
    try:
        count = passkeys.verify_sign_in(
            settings, credential, base64url_to_bytes(step.value), key, passwordless=passwordless
        )
    except (InvalidAuthenticationResponse, ValueError) as exc:
        return await _refused(request, type(exc).__name__)
    if not await db(request, passkeys_db.accept_sign_count, key.id, key.sign_count, count, now()):
        return await _refused(request, "sign count")
    acct = await db(request, accounts.account, key.subscriber_id)
    if acct is None or not acct.confirmed or acct.status == "suspended":
        return await _refused(request, "account")
    await db(request, second_factors_db.signed_in_with_factor, key.subscriber_id)
    return await signed_in(request, key.subscriber_id, "passkey", then=carried(request))
