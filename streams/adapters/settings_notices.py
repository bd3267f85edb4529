"""Settings changes waiting for their notice e-mail: recorded at once, mailed together after a delay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Integer, Table, Text, delete, func, insert, select
from sqlalchemy.engine import Engine

from streams.adapters.db import metadata, subscribers
from streams.adapters.sql import stored_utc

# One row per change, kept in the database so a restart of the site loses no notice; the
# account's deletion takes its rows with it (and the sender joins on subscribers besides).
settings_notices = Table(
    "settings_notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("change", Text, nullable=False),  # JSON: what the notice says about it (confirmations.py)
)


def record(engine: Engine, subscriber_id: int, change: str, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(settings_notices).values(subscriber_id=subscriber_id, changed_at=now, change=change)
        )


@dataclass(frozen=True)
class PendingChange:
    id: int
    changed_at: datetime
    change: str


@dataclass(frozen=True)
class DueNotice:
    """One e-mail to send: every change of one account not yet mailed, oldest first."""

    subscriber_id: int
    email: str
    link_key: str | None  # for the unsubscribe link (streams.domain.links)
    changes: list[PendingChange]


def due(engine: Engine, waited_since: datetime, limit: int = 100) -> list[DueNotice]:
    """Accounts whose oldest unmailed change was made at or before `waited_since`."""
    with engine.connect() as conn:
        oldest = (
            select(settings_notices.c.subscriber_id, func.min(settings_notices.c.changed_at).label("first"))
            .group_by(settings_notices.c.subscriber_id)
            .subquery()
        )
        accounts = conn.execute(
            select(subscribers.c.id, subscribers.c.email, subscribers.c.link_key)
            .join(oldest, oldest.c.subscriber_id == subscribers.c.id)
            .where(oldest.c.first <= waited_since)
            .order_by(oldest.c.first, subscribers.c.id)
            .limit(limit)
        ).all()
        notices = []
        for sid, email, link_key in accounts:
            rows = conn.execute(
                select(settings_notices.c.id, settings_notices.c.changed_at, settings_notices.c.change)
                .where(settings_notices.c.subscriber_id == sid)
                .order_by(settings_notices.c.changed_at, settings_notices.c.id)
            ).all()
            notices.append(
                DueNotice(
                    int(sid),
                    email,
                    link_key,
                    [PendingChange(int(r.id), stored_utc(r.changed_at), r.change) for r in rows],
                )
            )
    return notices


def mailed(engine: Engine, ids: list[int]) -> None:
    """The changes a sent notice listed are done with."""
    with engine.begin() as conn:
        conn.execute(delete(settings_notices).where(settings_notices.c.id.in_(ids)))
