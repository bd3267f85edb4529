"""What a subscriber tracks, as the site reads and changes it: tracked addresses, offender watches, unsubscribing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine

from streams.adapters import offender_search
from streams.adapters.db import offender_watches, subscribers, tracked_addresses, utcnow
from streams.adapters.sql import inserted_id, reading
from streams.adapters.subscriber_store import SubscriberChange, circle_of_row, subscriptions
from streams.domain.digest_schedule import DAILY_SCHEDULE, Schedule
from streams.domain.limits import MAX_ADDRESSES, MAX_OFFENDERS
from streams.domain.model import Circle, OffenderState

ADDED, ALREADY, FULL = "added", "already", "full"


def subscriber(engine: Engine, sid: int) -> Any:
    with reading(engine) as conn:
        return conn.execute(
            select(
                subscribers.c.id,
                subscribers.c.email,
                subscribers.c.confirmed,
                subscribers.c.status,
                subscribers.c.link_key,
            ).where(subscribers.c.id == sid)
        ).first()


def is_active(row: Any) -> bool:
    return row is not None and bool(row.confirmed) and row.status == "active"


def tracked_rows(engine: Engine, sid: int) -> list[Any]:
    with reading(engine) as conn:
        return list(
            conn.execute(
                select(tracked_addresses)
                .where(tracked_addresses.c.subscriber_id == sid)
                .order_by(tracked_addresses.c.id)
            )
        )


def tracked_row(engine: Engine, sid: int, address_id: int) -> Any:
    with reading(engine) as conn:
        return conn.execute(
            select(tracked_addresses).where(
                tracked_addresses.c.id == address_id, tracked_addresses.c.subscriber_id == sid
            )
        ).first()


def _lock_subscriber(conn: Any, sid: int) -> None:
    """Serialize one subscriber's changes, so two tabs cannot both add a fifth (PostgreSQL;
    SQLite writers are serialized already)."""
    conn.execute(select(subscribers.c.id).where(subscribers.c.id == sid).with_for_update())


def add_address(engine: Engine, sid: int, values: dict[str, Any]) -> Circle | None:
    """The new circle, or None when the subscriber already tracks the most allowed."""
    with engine.begin() as conn:
        _lock_subscriber(conn, sid)
        count = conn.execute(
            select(func.count())
            .select_from(tracked_addresses)
            .where(tracked_addresses.c.subscriber_id == sid)
        ).scalar_one()
        if count >= MAX_ADDRESSES:
            return None
        new_id = inserted_id(
            conn.execute(tracked_addresses.insert().values(subscriber_id=sid, created_at=utcnow(), **values))
        )
        return circle_of_row(
            conn.execute(select(tracked_addresses).where(tracked_addresses.c.id == new_id)).one()
        )


def update_address(
    engine: Engine, sid: int, address_id: int, values: dict[str, Any]
) -> tuple[Circle, Circle] | None:
    """(old circle, new circle), or None when the address is not the subscriber's."""
    with engine.begin() as conn:
        where = (tracked_addresses.c.id == address_id) & (tracked_addresses.c.subscriber_id == sid)
        old = conn.execute(select(tracked_addresses).where(where)).first()
        if old is None:
            return None
        conn.execute(update(tracked_addresses).where(where).values(**values))
        new = conn.execute(select(tracked_addresses).where(where)).one()
        return circle_of_row(old), circle_of_row(new)


def delete_address(engine: Engine, sid: int, address_id: int) -> Circle | None:
    with engine.begin() as conn:
        where = (tracked_addresses.c.id == address_id) & (tracked_addresses.c.subscriber_id == sid)
        row = conn.execute(select(tracked_addresses).where(where)).first()
        if row is None:
            return None
        conn.execute(delete(tracked_addresses).where(where))
        return circle_of_row(row)


def watched_ids(engine: Engine, sid: int) -> list[str]:
    with reading(engine) as conn:
        return list(
            conn.execute(
                select(offender_watches.c.offender_id)
                .where(offender_watches.c.subscriber_id == sid)
                .order_by(offender_watches.c.created_at, offender_watches.c.offender_id)
            ).scalars()
        )


def add_watch(engine: Engine, sid: int, offender_id: str) -> str:
    """ADDED, ALREADY or FULL."""
    with engine.begin() as conn:
        _lock_subscriber(conn, sid)
        current = set(
            conn.execute(
                select(offender_watches.c.offender_id).where(offender_watches.c.subscriber_id == sid)
            ).scalars()
        )
        if offender_id in current:
            return ALREADY
        if len(current) >= MAX_OFFENDERS:
            return FULL
        conn.execute(
            offender_watches.insert().values(subscriber_id=sid, offender_id=offender_id, created_at=utcnow())
        )
        return ADDED


def delete_watch(engine: Engine, sid: int, offender_id: str) -> bool:
    with engine.begin() as conn:
        return (
            conn.execute(
                delete(offender_watches).where(
                    offender_watches.c.subscriber_id == sid, offender_watches.c.offender_id == offender_id
                )
            ).rowcount
            == 1
        )


def unsubscribe(engine: Engine, sid: int, when: datetime) -> SubscriberChange | None:
    """Stop all mail; the tracked rows stay (re-activating restores them) but leave the stream."""
    with engine.begin() as conn:
        row = conn.execute(select(subscribers.c.status).where(subscribers.c.id == sid)).first()
        if row is None:
            return None
        if row.status != "unsubscribed":
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == sid)
                .values(status="unsubscribed", unsubscribed_at=when)
            )
        circles, watches = subscriptions(conn, sid)
    return SubscriberChange(sid, [], circles, [], watches)


def resubscribe(engine: Engine, sid: int) -> SubscriberChange | None:
    """Start the mail again after an unsubscribe: the tracked rows kept meanwhile go back
    into the stream. None when the subscriber was not unsubscribed (or is gone)."""
    with engine.begin() as conn:
        if (
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == sid, subscribers.c.status == "unsubscribed")
                .values(status="active", unsubscribed_at=None)
            ).rowcount
            != 1
        ):
            return None
        confirmed = conn.execute(select(subscribers.c.confirmed).where(subscribers.c.id == sid)).scalar()
        if not confirmed:
            return SubscriberChange(sid)
        circles, watches = subscriptions(conn, sid)
    return SubscriberChange(sid, circles=circles, watches=watches)


def public_states(engine: Engine, ids: list[str]) -> dict[str, OffenderState | None]:
    return {oid: offender_search.public_offender(engine, oid) for oid in ids}


def schedule(engine: Engine, sid: int) -> Schedule:
    """How often the subscriber's digests go out (daily for an unknown id)."""
    with reading(engine) as conn:
        row = conn.execute(
            select(subscribers.c.digest_frequency, subscribers.c.digest_weekday).where(
                subscribers.c.id == sid
            )
        ).first()
    return Schedule.stored(*row) if row is not None else DAILY_SCHEDULE


def set_schedule(engine: Engine, sid: int, new: Schedule) -> Schedule | None:
    """Change how often; returns the schedule before (None: no such subscriber). Alerts waiting
    stay waiting: the next digest due under the new schedule takes them."""
    with engine.begin() as conn:
        row = conn.execute(
            select(subscribers.c.digest_frequency, subscribers.c.digest_weekday)
            .where(subscribers.c.id == sid)
            .with_for_update()
        ).first()
        if row is None:
            return None
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == sid)
            .values(digest_frequency=new.frequency, digest_weekday=new.weekday)
        )
    return Schedule.stored(*row)
