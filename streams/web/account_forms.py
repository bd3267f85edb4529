"""What the account pages share: reading their forms, rate limits, and the answers they have in common."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import structlog
from aiohttp import web
from email_validator import EmailNotValidError, validate_email

from streams.adapters import account_tokens, second_factors_db
from streams.domain import passwords
from streams.web.account_mail import message
from streams.web.account_requests import AccountRequest
from streams.web.account_work import queue_request
from streams.web.keys import LIMITER, client_key, db, now
from streams.web.paths import absolute
from streams.web.responses import render
from streams.web.security import account_key

logger = structlog.get_logger()

MAX_EMAIL = 320
MAX_PASSWORD_INPUT = 1024  # longer than any allowed password; refused before it is hashed


# --- form helpers ------------------------------------------------------------------------


def text(form: Any, name: str, limit: int = MAX_EMAIL) -> str:
    return str(form.get(name, "")).strip()[: limit + 1]


def secret(form: Any, name: str) -> str:
    # Never stripped: spaces are part of a password.
    return str(form.get(name, ""))[: MAX_PASSWORD_INPUT + 1]


def lookup_email(raw: str) -> str:
    """The form addresses are stored in, also for addresses the validator would refuse."""
    try:
        v = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return raw.strip().lower()
    return (v.ascii_email or v.normalized).lower()


def new_email_problem(raw: str) -> str | None:
    if not raw:
        return "Enter your e-mail address."
    if len(raw) > MAX_EMAIL:
        return "That e-mail address is too long."
    try:
        validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return f"Enter an e-mail address like name@example.com. {exc}"
    return None


def password_problems(
    errors: dict[str, str],
    pw: str,
    pw2: str,
    email: str,
    name: str = "password",
    repeat: str = "password2",
    *,
    has_second_factor: bool = False,
) -> None:
    if len(pw) > MAX_PASSWORD_INPUT:
        errors[name] = f"Use at most {passwords.MAX_LENGTH} characters."
    elif msg := passwords.problem(pw, email, has_second_factor=has_second_factor):
        errors[name] = msg
    elif passwords.normalize(pw) != passwords.normalize(pw2):
        errors[repeat] = "The two passwords are different. Type the same password in both boxes."


async def has_second_factor(request: web.Request, subscriber_id: int) -> bool:
    """Whether the account signs in with more than its password (an app or a passkey)."""
    return bool(await db(request, second_factors_db.has_any, subscriber_id))


def limited(request: web.Request, action: str, email: str | None = None) -> int:
    """Seconds to wait before `action` is tried (0: go ahead); the try is counted."""
    limiter = request.app[LIMITER]
    budgets = [(f"{action}:client", client_key(request))]
    if email is not None:
        budgets.append((f"{action}:account", account_key(email)))
    for rule, key in budgets:
        if not limiter.allow(rule, key):
            logger.info("rate limited", rule=rule)
            return max(1, limiter.retry_after(rule, key))
    return 0


def too_many(request: web.Request, wait_s: int = 900, advice: str = "") -> web.Response:
    minutes = max(1, -(-wait_s // 60))
    response = render(
        request,
        "web/error.html.j2",
        {
            "title": "Too many attempts",
            "message": f"For your safety this was not tried. Wait {minutes} minute{'s' if minutes > 1 else ''}, "
            f"then try again.{' ' + advice if advice else ''}",
        },
        status=429,
    )
    response.headers["Retry-After"] = str(max(1, wait_s))
    return response


def link_invalid(request: web.Request, purpose: str) -> web.Response:
    # Forged, expired and used links all get this one answer.
    return render(request, "web/link_invalid.html.j2", {"purpose": purpose}, status=400)


async def mailed_link(request: web.Request, purpose: str) -> account_tokens.LinkHolder | None:
    """Who the mailed link in the path (`{token}`) stands for, if it is still good for `purpose`."""
    return await db(request, account_tokens.peek, request.match_info["token"], purpose, now())


async def mailed_link_page(
    request: web.Request,
    purpose: str,
    template: str,
    context: Callable[[account_tokens.LinkHolder], dict[str, Any]],
) -> web.Response:
    """The page a mailed link opens: its form, or the one answer for a link that is no good."""
    holder = await mailed_link(request, purpose)
    if holder is None:
        return link_invalid(request, purpose)
    return render(request, template, context(holder))


def check_email(request: web.Request, title: str, message: str, **extra: Any) -> web.Response:
    return render(request, "web/check_email.html.j2", {"title": title, "message": message, **extra})


async def mailed_link_request(
    request: web.Request, template: str, purpose: str, *, done: str
) -> web.Response:
    """Ask for an address and say the same thing whatever it is; whether it is enrolled, and
    so whether a link is mailed, is found out after the answer (account_requests.py)."""
    form = await request.post()
    raw = text(form, "email")
    if not raw:
        return render(
            request,
            template,
            {"errors": {"email": "Enter the e-mail address you enrolled with."}},
            status=400,
        )
    email = lookup_email(raw)
    if wait := limited(request, purpose, email):
        return too_many(request, wait, "A link we sent meanwhile still works: look in your mailbox.")
    queue_request(request, AccountRequest(purpose, email))
    return check_email(request, "Check your e-mail", done)


def password_changed_notice(request: web.Request, email: str) -> EmailMessage:
    return message(
        request,
        "password_changed",
        email,
        "Your registry e-mail alerts password was changed",
        forgot=absolute(request, "forgot_form"),
    )
