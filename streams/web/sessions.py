"""Server-side sessions: a random cookie, its hash in the database, rotated at login; before
any is needed, a signed cookie's CSRF token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from streams.adapters.sign_in_steps import sign_in_steps
from streams.adapters.sql import stored_utc
from streams.adapters.web_db import web_sessions

COOKIE = "sor_session"
# The random value a visitor's CSRF token is signed from while nothing is stored for them.
CSRF_COOKIE = "sor_csrf"
# Over HTTPS: the browser keeps such a cookie only if it is Secure, for Path=/ and without a
# Domain, so neither a sibling subdomain nor a plain-HTTP answer can plant or overwrite it.
HOST_PREFIX = "__Host-"
IDLE = timedelta(minutes=60)
ABSOLUTE = timedelta(hours=12)
_SEED = re.compile(r"[A-Za-z0-9_-]{43}")


def cookie_name(name: str, secure: bool) -> str:
    return HOST_PREFIX + name if secure else name


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class Session:
    raw_id: str | None  # None: nothing stored; the CSRF token is the signed cookie's
    subscriber_id: int | None
    csrf_token: str
    flash: str | None = None
    changed: bool = False  # a new id: the cookie must be sent

    @property
    def logged_in(self) -> bool:
        return self.subscriber_id is not None

    @property
    def stored(self) -> bool:
        return self.raw_id is not None


# --- before a session is stored: a CSRF token signed from a cookie ---------------------------


def new_csrf_seed() -> str:
    return secrets.token_urlsafe(32)


def valid_csrf_seed(raw: str) -> bool:
    return _SEED.fullmatch(raw) is not None


def csrf_token_for(secret_key: str, seed: str) -> str:
    """The form's token for a cookie's seed: without the site's key nobody can make the pair,
    and a page's token does not give away the cookie."""
    mac = hmac.new(secret_key.encode(), b"sor-csrf-pre-session:" + seed.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def anonymous(csrf_token: str, flash: str | None = None) -> Session:
    """A visitor with nothing stored: no row until something needs one."""
    return Session(None, None, csrf_token, flash)


# --- stored sessions ---------------------------------------------------------------------------


def id_hash(session: Session) -> str:
    """What the database knows a session by (rows that belong to a session point at it); ""
    for a visitor with nothing stored, which no row has."""
    return _hash(session.raw_id) if session.raw_id is not None else ""


def load(engine: Engine, raw_id: str | None, now: datetime) -> Session | None:
    """The session of a cookie, or None. A session without a login only carries a message to
    the next page, or a sign-in under way: the first is spent once read (an anonymous Session
    is returned with it), the second lasts while its step does."""
    if not raw_id or len(raw_id) > 100:
        return None
    key = web_sessions.c.id_hash == _hash(raw_id)
    with engine.connect() as conn:
        row = conn.execute(select(web_sessions).where(key)).first()
    if row is None:
        return None
    with engine.begin() as conn:
        if stored_utc(row.expires_at) <= now or stored_utc(row.last_seen) + IDLE <= now:
            conn.execute(delete(web_sessions).where(key))
            return None
        if row.subscriber_id is None and not _holds_a_step(conn, _hash(raw_id)):
            conn.execute(delete(web_sessions).where(key))
            return anonymous(row.csrf_token, row.flash)
        conn.execute(update(web_sessions).where(key).values(last_seen=now, flash=None))
    return Session(raw_id, row.subscriber_id, row.csrf_token, row.flash)


def _holds_a_step(conn: Any, id_hash: str) -> bool:
    """A session without a login kept for a sign-in under way (a passkey's challenge, the
    second step after the password): it lasts until that step is taken or expires."""
    return (
        conn.execute(
            select(sign_in_steps.c.purpose).where(sign_in_steps.c.session_hash == id_hash).limit(1)
        ).first()
        is not None
    )


def create(
    engine: Engine,
    subscriber_id: int | None,
    now: datetime,
    csrf_token: str | None = None,
    flash: str | None = None,
) -> Session:
    """A stored session; a login's gets a CSRF token of its own, a message's keeps the visitor's."""
    raw = secrets.token_urlsafe(32)
    csrf = csrf_token or secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            insert(web_sessions).values(
                id_hash=_hash(raw),
                subscriber_id=subscriber_id,
                csrf_token=csrf,
                flash=flash,
                created_at=now,
                last_seen=now,
                expires_at=now + ABSOLUTE,
            )
        )
    return Session(raw, subscriber_id, csrf, changed=True)


def rotate(engine: Engine, old: Session | None, subscriber_id: int, now: datetime) -> Session:
    """A new id (and CSRF token) at login: a fixed session id cannot be planted."""
    if old is not None:
        destroy(engine, old)
    return create(engine, subscriber_id, now)


def destroy(engine: Engine, session: Session) -> None:
    if session.raw_id is None:
        return
    with engine.begin() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == _hash(session.raw_id)))


def end_all_for(engine: Engine, subscriber_id: int) -> None:
    """After a password reset or change: every other browser is logged out."""
    with engine.begin() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.subscriber_id == subscriber_id))


def end_all_others(engine: Engine, subscriber_id: int, keep: Session) -> int:
    """After a second factor is added or removed: every session of the subscriber but `keep`
    (the browser that did it) ends. Returns how many ended."""
    others = web_sessions.c.subscriber_id == subscriber_id
    if keep.raw_id is not None:
        others &= web_sessions.c.id_hash != _hash(keep.raw_id)
    with engine.begin() as conn:
        return conn.execute(delete(web_sessions).where(others)).rowcount


def set_flash(engine: Engine, session: Session, message: str) -> None:
    if session.raw_id is None:
        raise ValueError("a message needs a stored session: create one with the message")
    with engine.begin() as conn:
        conn.execute(
            update(web_sessions).where(web_sessions.c.id_hash == _hash(session.raw_id)).values(flash=message)
        )


def purge_expired(engine: Engine, now: datetime) -> int:
    with engine.begin() as conn:
        return conn.execute(
            delete(web_sessions).where(
                (web_sessions.c.expires_at <= now) | (web_sessions.c.last_seen <= now - IDLE)
            )
        ).rowcount
