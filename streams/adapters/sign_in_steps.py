"""What a browser session holds between two requests of a sign-in or of adding a factor.

A password passed but its second step not yet, a WebAuthn challenge, an app key shown but not
yet confirmed by a code. Each row belongs to one stored session (its id hash) and one purpose, expires on its own, and
goes with the session (foreign key) at log in, log out and when sessions are ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

from streams.adapters.db import metadata
from streams.adapters.sql import stored_utc
from streams.adapters.web_db import web_sessions  # noqa: F401 (the table the foreign key names)

SECOND_STEP = "second_step"  # the password was right; a second factor is still to come
PASSKEY_SIGN_IN = "passkey_sign_in"  # a challenge for signing in (passwordless or second step)
PASSKEY_REGISTER = "passkey_register"  # a challenge for adding a passkey
TOTP_ENROLL = "totp_enroll"  # an app key shown, not yet confirmed by a code (sealed)

LIFETIMES = {
    SECOND_STEP: timedelta(minutes=5),
    PASSKEY_SIGN_IN: timedelta(minutes=5),
    PASSKEY_REGISTER: timedelta(minutes=5),
    TOTP_ENROLL: timedelta(minutes=15),
}

sign_in_steps = Table(
    "sign_in_steps",
    metadata,
    Column(
        "session_hash",
        String(64),
        ForeignKey("web_sessions.id_hash", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("purpose", String(32), primary_key=True),
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=True, index=True
    ),
    Column("value", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Step:
    subscriber_id: int | None
    value: str | None
    attempts: int


def put(
    engine: Engine,
    session_hash: str,
    purpose: str,
    subscriber_id: int | None,
    value: str | None,
    now: datetime,
) -> None:
    """Start (or start again) `purpose` in this session; an earlier one of the same purpose is gone."""
    with engine.begin() as conn:
        conn.execute(
            delete(sign_in_steps).where(
                sign_in_steps.c.session_hash == session_hash, sign_in_steps.c.purpose == purpose
            )
        )
        conn.execute(
            insert(sign_in_steps).values(
                session_hash=session_hash,
                purpose=purpose,
                subscriber_id=subscriber_id,
                value=value,
                attempts=0,
                expires_at=now + LIFETIMES[purpose],
            )
        )


def get(engine: Engine, session_hash: str, purpose: str, now: datetime) -> Step | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(sign_in_steps).where(
                sign_in_steps.c.session_hash == session_hash, sign_in_steps.c.purpose == purpose
            )
        ).first()
    if row is None or stored_utc(row.expires_at) <= now:
        return None
    return Step(row.subscriber_id, row.value, int(row.attempts))


def take(engine: Engine, session_hash: str, purpose: str, now: datetime) -> Step | None:
    """The step, removed: a challenge answers once, even to two requests at the same moment."""
    step = get(engine, session_hash, purpose, now)
    with engine.begin() as conn:
        gone = conn.execute(
            delete(sign_in_steps).where(
                sign_in_steps.c.session_hash == session_hash, sign_in_steps.c.purpose == purpose
            )
        ).rowcount
    return step if gone == 1 else None


def failed(engine: Engine, session_hash: str, purpose: str) -> int:
    """Count a wrong answer to the step; returns how many there have been."""
    with engine.begin() as conn:
        conn.execute(
            update(sign_in_steps)
            .where(sign_in_steps.c.session_hash == session_hash, sign_in_steps.c.purpose == purpose)
            .values(attempts=sign_in_steps.c.attempts + 1)
        )
        found = conn.execute(
            select(sign_in_steps.c.attempts).where(
                sign_in_steps.c.session_hash == session_hash, sign_in_steps.c.purpose == purpose
            )
        ).scalar()
    return int(found or 0)


def drop(engine: Engine, session_hash: str, purpose: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            delete(sign_in_steps).where(
                sign_in_steps.c.session_hash == session_hash, sign_in_steps.c.purpose == purpose
            )
        )


def purge_expired(engine: Engine, now: datetime) -> int:
    with engine.begin() as conn:
        return conn.execute(delete(sign_in_steps).where(sign_in_steps.c.expires_at <= now)).rowcount
