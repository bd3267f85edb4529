"""Slowing password guessing without locking the owner out: whose budget a try is counted in."""

from __future__ import annotations

import hashlib
import time

import structlog
from aiohttp import web

from streams.web import device_cookies, sessions
from streams.web.keys import LIMITER, client_key, runtime_of, session_of
from streams.web.middlewares import served_over_https
from streams.web.security import account_key

logger = structlog.get_logger()


def _cookie_name(request: web.Request) -> str:
    """`__Host-sor_device` over HTTPS, like the session's: no sibling subdomain can plant one."""
    return sessions.cookie_name(device_cookies.COOKIE, served_over_https(request))


def _budget(request: web.Request, email: str) -> tuple[str, str]:
    """(rule, key): a browser that logged in to this account before (its device cookie) has a
    budget of its own; any other shares the account's, which strangers can use up."""
    account = account_key(email)
    device = device_cookies.device_for(
        _secret(request), request.cookies.get(_cookie_name(request)), account, time.time()
    )
    if device is not None:
        return "login:device", f"{account}:{device}"
    return "login:account", account


def login_wait(request: web.Request, email: str) -> int:
    """Seconds the try must wait (0: go ahead). Counts the try for the client when it comes
    from a browser unknown to the account."""
    limiter = request.app[LIMITER]
    rule, key = _budget(request, email)
    if rule == "login:account" and not limiter.allow("login:client", client_key(request)):
        logger.info("rate limited", rule="login:client")
        return max(1, limiter.retry_after("login:client", client_key(request)))
    if wait := limiter.retry_after(rule, key):
        logger.info("rate limited", rule=rule)
    return wait


def login_failed(request: web.Request, email: str) -> None:
    request.app[LIMITER].record(*_budget(request, email))


def remember_device(request: web.Request, response: web.StreamResponse, email: str) -> None:
    """After a right password: this browser gets (or renews) its device cookie for the account."""
    value = device_cookies.remember(
        _secret(request), request.cookies.get(_cookie_name(request)), account_key(email), time.time()
    )
    response.set_cookie(
        _cookie_name(request),
        value,
        httponly=True,
        samesite="Strict",
        secure=served_over_https(request),
        path="/",
        max_age=device_cookies.LIFETIME_S,
    )


def lift(request: web.Request, email: str) -> None:
    """After a password reset or change: the strangers' wrong passwords stop counting."""
    limiter = request.app[LIMITER]
    account = account_key(email)
    limiter.clear("login:account", account)
    limiter.clear_prefix("login:device", f"{account}:")


# A logged-in session confirming its password (change of password or address, delete) is
# never held to the log-in limits; its own wrong tries count per session.


def _session_key(request: web.Request) -> str:
    # Only a logged-in session confirms its password, and a logged-in session is stored.
    return hashlib.sha256((session_of(request).raw_id or "").encode()).hexdigest()[:24]


def reauth_wait(request: web.Request) -> int:
    wait = request.app[LIMITER].retry_after("reauth:session", _session_key(request))
    if wait:
        logger.info("rate limited", rule="reauth:session")
    return wait


def reauth_failed(request: web.Request) -> None:
    request.app[LIMITER].record("reauth:session", _session_key(request))


def _secret(request: web.Request) -> str:
    return runtime_of(request).settings.secret_key
