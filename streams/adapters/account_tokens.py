"""The single-use links we mail: their table, and issuing, spending, retiring and purging them."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from streams.adapters.db import metadata, subscribers

email_tokens = Table(
    "email_tokens",
    metadata,
    # SHA-256 of the link's secret: a database leak hands out no working link.
    Column("token_hash", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),  # confirm|reset|delete|change_email
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("new_email", String(320), nullable=True),  # change_email only
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

CONFIRM, RESET, DELETE, CHANGE_EMAIL = "confirm", "reset", "delete", "change_email"
LIFETIMES = {
    CONFIRM: timedelta(hours=48),
    RESET: timedelta(hours=1),
    DELETE: timedelta(hours=24),
    CHANGE_EMAIL: timedelta(hours=48),
}


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue(
    conn: Connection, purpose: str, subscriber_id: int, now: datetime, new_email: str | None = None
) -> str:
    raw = secrets.token_urlsafe(32)  # 256 bits
    conn.execute(
        insert(email_tokens).values(
            token_hash=_digest(raw),
            purpose=purpose,
            subscriber_id=subscriber_id,
            new_email=new_email,
            created_at=now,
            expires_at=now + LIFETIMES[purpose],
        )
    )
    return raw


def retire(conn: Connection, subscriber_id: int, now: datetime, *purposes: str) -> None:
    """Links of these purposes still out for this subscriber stop working."""
    conn.execute(
        update(email_tokens)
        .where(
            email_tokens.c.subscriber_id == subscriber_id,
            email_tokens.c.purpose.in_(purposes),
            email_tokens.c.used_at.is_(None),
        )
        .values(used_at=now)
    )


def _live(raw: str, purpose: str, now: datetime) -> Any:
    return and_(
        email_tokens.c.token_hash == _digest(raw),
        email_tokens.c.purpose == purpose,
        email_tokens.c.used_at.is_(None),
        email_tokens.c.expires_at > now,
    )


def spend(conn: Connection, raw: str, purpose: str, now: datetime) -> Any:
    """Use a link once: of two concurrent clicks exactly one gets the row."""
    if not raw or len(raw) > 100:
        return None
    n = conn.execute(update(email_tokens).where(_live(raw, purpose, now)).values(used_at=now)).rowcount
    if n != 1:
        return None
    return conn.execute(
        select(email_tokens.c.subscriber_id, email_tokens.c.new_email).where(
            email_tokens.c.token_hash == _digest(raw)
        )
    ).one()


@dataclass(frozen=True)
class LinkHolder:
    """Whom a still-valid link is for (read without using it up)."""

    subscriber_id: int
    email: str
    new_email: str | None


def peek(engine: Engine, raw: str, purpose: str, now: datetime) -> LinkHolder | None:
    if not raw or len(raw) > 100:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(email_tokens.c.subscriber_id, email_tokens.c.new_email, subscribers.c.email)
            .join(subscribers, subscribers.c.id == email_tokens.c.subscriber_id)
            .where(_live(raw, purpose, now))
        ).first()
    return LinkHolder(int(row.subscriber_id), row.email, row.new_email) if row else None


def purge_spent(conn: Connection, now: datetime) -> int:
    """Drop used and expired links; how many went."""
    return conn.execute(
        delete(email_tokens).where(or_(email_tokens.c.used_at.is_not(None), email_tokens.c.expires_at <= now))
    ).rowcount
