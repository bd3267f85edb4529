"""Server-side sessions: a random cookie, its hash in the database, rotated at login."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from streams.adapters.web_db import web_sessions

COOKIE = "sor_session"
IDLE = timedelta(minutes=60)
ABSOLUTE = timedelta(hours=12)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class Session:
    raw_id: str
    subscriber_id: int | None
    csrf_token: str
    flash: str | None = None
    changed: bool = False  # the cookie must be (re)sent

    @property
    def logged_in(self) -> bool:
        return self.subscriber_id is not None


def id_hash(session: Session) -> str:
    """What the database knows a session by (rows that belong to a session point at it)."""
    return _hash(session.raw_id)


def load(engine: Engine, raw_id: str | None, now: datetime) -> Session | None:
    if not raw_id or len(raw_id) > 100:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(web_sessions).where(web_sessions.c.id_hash == _hash(raw_id))).first()
    if row is None or _aware(row.expires_at) <= now or _aware(row.last_seen) + IDLE <= now:
        return None
    with engine.begin() as conn:
        conn.execute(
            update(web_sessions)
            .where(web_sessions.c.id_hash == _hash(raw_id))
            .values(last_seen=now, flash=None)
        )
    return Session(raw_id, row.subscriber_id, row.csrf_token, row.flash)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def create(engine: Engine, subscriber_id: int | None, now: datetime) -> Session:
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            insert(web_sessions).values(
                id_hash=_hash(raw),
                subscriber_id=subscriber_id,
                csrf_token=csrf,
                created_at=now,
                last_seen=now,
                expires_at=now + ABSOLUTE,
            )
        )
    return Session(raw, subscriber_id, csrf, changed=True)


def rotate(engine: Engine, old: Session | None, subscriber_id: int | None, now: datetime) -> Session:
    """A new id (and CSRF token) at login and logout: a fixed session id cannot be planted."""
    if old is not None:
        destroy(engine, old)
    return create(engine, subscriber_id, now)


def destroy(engine: Engine, session: Session) -> None:
    with engine.begin() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == _hash(session.raw_id)))


def end_all_for(engine: Engine, subscriber_id: int) -> None:
    """After a password reset or change: every other browser is logged out."""
    with engine.begin() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.subscriber_id == subscriber_id))


def set_flash(engine: Engine, session: Session, message: str) -> None:
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
