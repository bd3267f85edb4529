"""What operator commands keep and read in the database: DLQ replays, table sizes, digest runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    Column,
    DateTime,
    String,
    Table,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.expression import ColumnElement

from streams.adapters.db import (
    digests,
    metadata,
    offender_watches,
    offenders,
    pending_alerts,
    subscribers,
    tracked_addresses,
    utcnow,
)
from streams.adapters.gazetteer_db import address_points, street_ranges
from streams.adapters.geocode_cache import geocode_cache
from streams.adapters.sql import Bind, reading, transaction
from streams.adapters.sql import insert as sql_insert

dlq_replays = Table(
    "dlq_replays",
    metadata,
    Column("entry_id", String(32), primary_key=True),  # "partition:offset" on registry-events-dlq
    # The embedded broker keeps nothing across restarts, so "0:0" can name a new dead letter
    # later: the fingerprint (sha256 of the record) tells a replayed entry from a newcomer.
    Column("fingerprint", String(64), nullable=False),
    Column("replayed_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("event_id", String(200), nullable=False),
)


@dataclass(frozen=True)
class Replay:
    entry_id: str
    replayed_at: datetime
    event_id: str


def _replay(row: object) -> Replay:
    return Replay(row.entry_id, row.replayed_at, row.event_id)  # type: ignore[attr-defined]


def claim_replay(
    bind: Bind, entry_id: str, fingerprint: str, event_id: str, *, force: bool, now: datetime
) -> Replay | None:
    """Record a replay before it is sent; None if done, else the earlier replay (nothing changed).

    Taking the row first means two operators replaying the same entry at once send it once.
    """
    values = {"entry_id": entry_id, "fingerprint": fingerprint, "replayed_at": now, "event_id": event_id}
    with transaction(bind) as conn:
        row = conn.execute(select(dlq_replays).where(dlq_replays.c.entry_id == entry_id)).first()
        if row is None:
            conn.execute(sql_insert(conn, dlq_replays).values(**values))
            return None
        if row.fingerprint == fingerprint and not force:
            return _replay(row)
        conn.execute(update(dlq_replays).where(dlq_replays.c.entry_id == entry_id).values(**values))
        return None


def release_replay(bind: Bind, entry_id: str, fingerprint: str, previous: Replay | None) -> None:
    """Undo a claim whose message never reached the broker (put back what was there before)."""
    with transaction(bind) as conn:
        cond = and_(dlq_replays.c.entry_id == entry_id, dlq_replays.c.fingerprint == fingerprint)
        if previous is None:
            conn.execute(delete(dlq_replays).where(cond))
        else:
            conn.execute(
                update(dlq_replays)
                .where(cond)
                .values(replayed_at=previous.replayed_at, event_id=previous.event_id)
            )


def find_replay(bind: Bind, entry_id: str, fingerprint: str) -> Replay | None:
    with reading(bind) as conn:
        row = conn.execute(
            select(dlq_replays).where(
                dlq_replays.c.entry_id == entry_id, dlq_replays.c.fingerprint == fingerprint
            )
        ).first()
    return _replay(row) if row else None


def find_replays(bind: Bind, entries: Iterable[tuple[str, str]]) -> dict[str, Replay]:
    """entry id -> its replay, for (entry id, fingerprint) pairs that were replayed."""
    wanted = dict(entries)
    if not wanted:
        return {}
    with reading(bind) as conn:
        rows = conn.execute(select(dlq_replays).where(dlq_replays.c.entry_id.in_(list(wanted))))
        return {r.entry_id: _replay(r) for r in rows if wanted.get(r.entry_id) == r.fingerprint}


def offender_revision(bind: Bind, offender_id: str) -> int | None:
    with reading(bind) as conn:
        return conn.execute(
            select(offenders.c.revision).where(offenders.c.offender_id == offender_id)
        ).scalar_one_or_none()


# --- status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSizes:
    subscribers: int
    subscribers_confirmed: int
    subscribers_active: int
    subscribers_mail_suspended: int  # digests stopped after repeated hard bounces
    tracked_addresses: int
    offender_watches: int
    offenders: int
    offenders_public: int
    offenders_removed: int
    offenders_juvenile: int
    pending_alerts: int  # not yet in any digest
    geocode_cache: int
    gazetteer_points: int
    gazetteer_ranges: int


@dataclass(frozen=True)
class DigestRun:
    period: str | None  # the latest period any digest was claimed for
    by_status: dict[str, int] = field(default_factory=dict)  # that period's digests
    last_sent_at: datetime | None = None  # the last digest mailed, any period


def table_sizes(engine: Engine) -> TableSizes:
    def count(conn: Connection, table: Table, *where: ColumnElement[bool]) -> int:
        stmt = select(func.count()).select_from(table)
        if where:
            stmt = stmt.where(*where)
        return int(conn.execute(stmt).scalar_one())

    o = offenders.c
    with reading(engine) as conn:
        return TableSizes(
            subscribers=count(conn, subscribers),
            subscribers_confirmed=count(conn, subscribers, subscribers.c.confirmed.is_(True)),
            subscribers_active=count(conn, subscribers, subscribers.c.status == "active"),
            subscribers_mail_suspended=count(conn, subscribers, subscribers.c.mail_suspended_at.is_not(None)),
            tracked_addresses=count(conn, tracked_addresses),
            offender_watches=count(conn, offender_watches),
            offenders=count(conn, offenders),
            offenders_public=count(conn, offenders, o.removed.is_(False), o.juvenile.is_(False)),
            offenders_removed=count(conn, offenders, o.removed.is_(True)),
            offenders_juvenile=count(conn, offenders, o.juvenile.is_(True), o.removed.is_(False)),
            pending_alerts=count(conn, pending_alerts, pending_alerts.c.digest_id.is_(None)),
            geocode_cache=count(conn, geocode_cache),
            gazetteer_points=count(conn, address_points),
            gazetteer_ranges=count(conn, street_ranges),
        )


def last_digest_run(engine: Engine) -> DigestRun:
    with reading(engine) as conn:
        period = conn.execute(select(func.max(digests.c.period))).scalar_one_or_none()
        last_sent = conn.execute(select(func.max(digests.c.sent_at))).scalar_one_or_none()
        if period is None:
            return DigestRun(period=None, last_sent_at=last_sent)
        rows = conn.execute(
            select(digests.c.status, func.count())
            .where(digests.c.period == period)
            .group_by(digests.c.status)
            .order_by(digests.c.status)
        )
        return DigestRun(period=period, by_status={s: int(n) for s, n in rows}, last_sent_at=last_sent)
