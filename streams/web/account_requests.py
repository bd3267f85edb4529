"""What a queued account request does, away from the page that asked for it: look the address
up, issue the link, compose and send the e-mail. The page answered before any of it, the same
for every address, so neither its content nor its timing says whether the address is enrolled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage

from aiohttp import web
from sqlalchemy.engine import Engine

from streams.adapters import account_tokens, accounts
from streams.web.account_mail import compose, deliver
from streams.web.keys import RUNTIME
from streams.web.paths import site_link

ENROLL = "enroll"


@dataclass(frozen=True)
class AccountRequest:
    """One form's request, as queued: never logged with its address (or hash)."""

    kind: str  # reset | delete | enroll
    email: str = field(repr=False)
    password_hash: str | None = field(default=None, repr=False)  # enroll: hashed on the request path
    then: str = field(default="", repr=False)  # enroll: area_carry.carried, for the mailed link


@dataclass(frozen=True)
class _LinkMail:
    start: Callable[[Engine, str, datetime], str | None]  # the link's secret, None for no enrollment
    subject: str
    route: str


LINK_MAILS = {
    account_tokens.RESET: _LinkMail(
        accounts.start_reset, "Choose a new password for registry e-mail alerts", "reset_form"
    ),
    account_tokens.DELETE: _LinkMail(
        accounts.start_delete,
        "Confirm deleting your registry e-mail alerts enrollment",
        "delete_confirm_form",
    ),
}


async def carry_out(app: web.Application, req: AccountRequest, now: datetime) -> None:
    runtime = app[RUNTIME]
    if req.kind == ENROLL:
        msg, purpose = await _enrollment(app, req, now)
    else:
        how, purpose = LINK_MAILS[req.kind], req.kind
        token = await runtime.db_once(how.start, req.email, now)
        if not token:
            return
        msg = compose(app, purpose, req.email, how.subject, link=site_link(app, how.route, token=token))
    await deliver(runtime.mail, msg, purpose)


async def _enrollment(app: web.Application, req: AccountRequest, now: datetime) -> tuple[EmailMessage, str]:
    """A new enrollment gets its confirmation link; an address enrolled already is left as it
    was and told that someone tried."""
    if req.password_hash is None:
        raise ValueError("an enrollment request carries its password's hash")
    enrollment = await app[RUNTIME].db_once(accounts.create_enrollment, req.email, req.password_hash, now)
    if enrollment.token:
        msg = compose(
            app,
            "confirm",
            req.email,
            "Confirm your e-mail address for registry e-mail alerts",
            link=site_link(app, "confirm_form", token=enrollment.token) + req.then,
        )
        return msg, "confirm"
    msg = compose(
        app,
        "already_enrolled",
        req.email,
        "Someone tried to enroll this address in registry e-mail alerts",
        pending=enrollment.pending,
        login=site_link(app, "login_form") + req.then,
        forgot=site_link(app, "forgot_form"),
    )
    return msg, "already_enrolled"
