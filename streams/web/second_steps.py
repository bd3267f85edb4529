"""Signing in with a second factor: a session waits for its second step; a changed factor ends other sessions."""

from __future__ import annotations

import structlog
from aiohttp import web

from streams.adapters import accounts, sign_in_steps
from streams.domain import second_factors as rules
from streams.web import sessions
from streams.web.account_mail import message, send_later
from streams.web.keys import db, flash, login_session, now, session_of, stored_session
from streams.web.paths import absolute, paths_of
from streams.web.responses import redirect

logger = structlog.get_logger()

# Wrong codes one password may be followed by; then the password is asked again (which has
# its own limits), so guessing a six-digit code stays hopeless.
MAX_ATTEMPTS = 5


def session_hash(request: web.Request) -> str:
    """The session's key for reading its steps ("" for a visitor with nothing stored)."""
    return sessions.id_hash(session_of(request))


async def stored_session_hash(request: web.Request) -> str:
    """The session's key for keeping a step: the session is stored first if it was not."""
    return sessions.id_hash(await stored_session(request))


async def after_password(
    request: web.Request,
    subscriber_id: int,
    *,
    has_factor: bool,
    note: str | None = None,
    landing: str = "notifications",
    then: str = "",
) -> web.Response:
    """The login view's last word once the password was right: signed in (on `landing`, with
    `note`), or, when the account has a second factor, a session that is not signed in yet
    and waits for the second step. `then` (area_carry.carried) rides on to the landing."""
    if not has_factor:
        return await signed_in(request, subscriber_id, "password", note, landing, then)
    await login_session(request, None)  # a new session id: the pending step belongs to it alone
    await db(
        request,
        sign_in_steps.put,
        await stored_session_hash(request),
        sign_in_steps.SECOND_STEP,
        subscriber_id,
        None,
        now(),
    )
    logger.info("password accepted, second step asked", subscriber_id=subscriber_id)
    raise redirect(paths_of(request).of("second_step") + then)


async def pending(request: web.Request) -> int | None:
    """Whose password this session passed, while its second step is still to come."""
    step = await db(request, sign_in_steps.get, session_hash(request), sign_in_steps.SECOND_STEP, now())
    return None if step is None else step.subscriber_id


async def signed_in(
    request: web.Request,
    subscriber_id: int,
    how: str,
    note: str | None = None,
    landing: str = "notifications",
    then: str = "",
) -> web.Response:
    await login_session(request, subscriber_id)  # the old session, and any step it held, is gone
    if note:
        await flash(request, note)
    logger.info("logged in", subscriber_id=subscriber_id, factor=how)
    # An address carried from the near page goes only to the form that adds it.
    raise redirect(paths_of(request).of(landing) + (then if landing == "notifications" else ""))


async def factors_changed(request: web.Request, subscriber_id: int, template: str, subject: str) -> None:
    """After a factor is added or removed: every other session ends (this one gets a new id)
    and the owner is told by mail, so a factor an intruder slipped in does not go unseen."""
    await db(request, sessions.end_all_others, subscriber_id, session_of(request))
    await login_session(request, subscriber_id)  # and this one gets a new id
    acct = await db(request, accounts.account, subscriber_id)
    if acct is not None:
        msg = message(
            request,
            template,
            acct.email,
            subject,
            security=absolute(request, "security"),
            forgot=absolute(request, "forgot_form"),
        )
        send_later(request, msg, template)


def after_rotation(request: web.Request) -> dict[str, object]:
    """What a page rendered after the session changed in the same request must show of it: the
    templates' context was read before the view ran (aiohttp_jinja2's middleware)."""
    s = session_of(request)
    return {"session": s, "csrf_token": s.csrf_token, "logged_in": s.logged_in, "flash": None}


def new_codes() -> tuple[list[str], list[str]]:
    """Fresh recovery codes and their hashes (only the hashes are stored)."""
    codes = rules.new_recovery_codes()
    return codes, [rules.recovery_code_hash(c) for c in codes]
