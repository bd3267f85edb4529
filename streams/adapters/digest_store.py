"""Digests in the database, a block at a time: claim, load, mark. Each function is one transaction.

A run claims a block of due subscribers in one transaction (the UNIQUE (subscriber, period)
constraint still makes a second or concurrent run back off, row by row), loads the block's
alerts in one query, and marks what the mail server accepted in small batches. The Message-ID of
each digest is fixed when it is claimed, so every retry of it carries the same one.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

from streams.adapters.db import digests, offenders, pending_alerts, subscribers, tracked_addresses
from streams.adapters.sql import Bind, custom_plans, reading, stored_utc, transaction
from streams.adapters.sql import insert as sql_insert
from streams.adapters.subscriber_store import active_subscriber as _active_subscriber
from streams.domain.digest_map import Circle
from streams.domain.digest_schedule import DAILY_SCHEDULE, WEEKLY, Schedule
from streams.domain.model import Alert

# Digests that are done with: their alerts are never mailed again.
FINAL_DIGEST_STATUSES = ("sent", "empty", "failed")
# Bound parameters per IN list: far below SQLite's and PostgreSQL's limits.
_CHUNK = 2000


def _mailable_subscriber() -> Any:
    """Active, and digests not suspended after repeated hard bounces (their alerts are still recorded)."""
    return and_(_active_subscriber(), subscribers.c.mail_suspended_at.is_(None))


def _due(period: str, missed: Mapping[int, datetime] | None = None) -> Any:
    """`Schedule.due_on` in SQL, for the run of the local date `period`: daily subscribers, and
    weekly ones whose weekday it is (a weekly one's alerts wait, unassigned, until then); with
    `missed` (`digest_schedule.missed_weekly_cutoffs`), also weekly ones of another weekday
    with an alert waiting from before that weekday's last date: their run did not happen."""
    weekday = date.fromisoformat(period).weekday()
    overdue = [
        and_(
            subscribers.c.digest_weekday == day,
            exists().where(
                pending_alerts.c.subscriber_id == subscribers.c.id,
                pending_alerts.c.digest_id.is_(None),
                pending_alerts.c.created_at < cutoff,
            ),
        )
        for day, cutoff in (missed or {}).items()
    ]
    return or_(subscribers.c.digest_frequency != WEEKLY, subscribers.c.digest_weekday == weekday, *overdue)


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def message_id_for(digest_id: int, message_domain: str) -> str:
    # The random part keeps ids unique across databases that reuse digest ids.
    return f"<digest-{digest_id}.{secrets.token_hex(6)}@{message_domain}>"


# What the run's statements filter and join on: analyzed before a run claims (cheap, a sample of
# at most 300 x default_statistics_target rows whatever the size; the JSON payloads are left out).
_RUN_STATISTICS = (
    "ANALYZE (SKIP_LOCKED) subscribers (id, confirmed, status, mail_suspended_at),"
    " pending_alerts (subscriber_id, digest_id), digests (subscriber_id, period, status)"
)


def refresh_statistics(bind: Bind) -> None:
    """PostgreSQL: planner statistics that match the tables as they are now.

    A morning run meets `pending_alerts` seconds after the worker bulk-loaded it, before
    autovacuum's next look (once a minute at best). Planned with statistics from before the
    load, the due-subscriber query believed that few subscribers could get mail and few
    alerts were unassigned, and chose a nested loop that re-read every unassigned alert for
    each subscriber: 13.5 minutes before the first mail at 50,000 subscribers
    (bench/README.md, morning digest). A table another session is analyzing or vacuuming is
    skipped (SKIP_LOCKED): its statistics are being refreshed already, and the run must not
    wait. A database user who does not own a table gets a warning, not an error.
    """
    if bind.dialect.name == "postgresql":
        with transaction(bind) as conn:
            conn.exec_driver_sql(_RUN_STATISTICS)


def subscribers_with_unassigned_alerts(
    bind: Bind, period: str | None = None, missed: Mapping[int, datetime] | None = None
) -> list[int]:
    """Confirmed, active subscribers whose mail is not suspended, with alerts not yet in any digest
    (and due in the run of `period`, when given: see `_due`).

    Two single-table statements, not a join: neither can be planned into work that grows
    with subscribers times alerts, whatever the statistics say (see `refresh_statistics`).
    """
    with reading(bind) as conn:
        waiting = sorted(
            int(s)
            for s in conn.execute(
                select(pending_alerts.c.subscriber_id).where(pending_alerts.c.digest_id.is_(None)).distinct()
            ).scalars()
        )
        due: list[int] = []
        for part in _chunks(waiting):
            due += (
                int(s)
                for s in conn.execute(
                    select(subscribers.c.id).where(
                        subscribers.c.id.in_(part),
                        _mailable_subscriber(),
                        _due(period, missed) if period is not None else literal(True),
                    )
                ).scalars()
            )
    return sorted(due)


@dataclass(frozen=True)
class Claimed:
    digest_ids: list[int]  # the digests claimed, in subscriber order
    already_final: int  # subscribers whose digest of the period was already sent, empty or failed


def _set_message_ids(conn: Connection, message_ids: dict[int, str]) -> None:
    if not message_ids:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "update digests set message_id = v.mid from (select unnest(cast(:ids as integer[])) as id,"
                " unnest(cast(:mids as text[])) as mid) as v where digests.id = v.id"
            ),
            {"ids": list(message_ids), "mids": list(message_ids.values())},
        )
    else:
        conn.execute(
            update(digests).where(digests.c.id == bindparam("b_id")).values(message_id=bindparam("b_mid")),
            [{"b_id": i, "b_mid": m} for i, m in message_ids.items()],
        )


_ATTACH_PG = text(
    "update pending_alerts set digest_id = v.did"
    " from (select unnest(cast(:dids as integer[])) as did, unnest(cast(:sids as integer[])) as sid) as v"
    " where pending_alerts.subscriber_id = v.sid and pending_alerts.digest_id is null"
)


def claim_digests(
    bind: Bind,
    subscriber_ids: Sequence[int],
    period: str,
    *,
    now: datetime,
    message_domain: str,
    missed: Mapping[int, datetime] | None = None,
) -> Claimed:
    """Claim the (subscriber, period) digest of each subscriber who may receive one, is due on
    the period's date and has none for the period yet, and attach each one's unassigned alerts
    to it (whatever schedule they were recorded under): one transaction.

    Rows are inserted in subscriber order, so two runs claiming overlapping blocks wait for
    each other without deadlocking; a subscriber another run holds is skipped.
    """
    ids = sorted(set(subscriber_ids))
    if not ids:
        return Claimed([], 0)
    with transaction(bind) as conn:
        # A generic plan scanned every pending alert per block (the third 100k-digest bench
        # run: ~4 s a block): plan each block's statements for its own ids.
        custom_plans(conn)
        source = (
            select(
                subscribers.c.id,
                literal(period, String),
                literal("claimed", String),
                literal(0, Integer),
                literal(now, DateTime(timezone=True)),
                literal(now, DateTime(timezone=True)),
            )
            .where(subscribers.c.id.in_(ids), _mailable_subscriber(), _due(period, missed))
            .order_by(subscribers.c.id)
        )
        rows = conn.execute(
            sql_insert(conn, digests)
            .from_select(
                ["subscriber_id", "period", "status", "attempts", "claimed_at", "created_at"], source
            )
            .on_conflict_do_nothing(index_elements=[digests.c.subscriber_id, digests.c.period])
            .returning(digests.c.id, digests.c.subscriber_id)
        ).all()
        by_subscriber = {int(r.subscriber_id): int(r.id) for r in rows}
        claimed = [by_subscriber[s] for s in ids if s in by_subscriber]
        _set_message_ids(conn, {d: message_id_for(d, message_domain) for d in claimed})
        if conn.dialect.name == "postgresql":
            # From the claimed pairs themselves, not a join with `digests`: a prepared statement's
            # generic plan, made while that table was nearly empty, scanned every alert per block.
            conn.execute(_ATTACH_PG, {"dids": claimed, "sids": [s for s in ids if s in by_subscriber]})
        else:
            for part in _chunks(claimed):
                conn.execute(
                    update(pending_alerts)
                    .where(
                        pending_alerts.c.subscriber_id == digests.c.subscriber_id,
                        digests.c.id.in_(part),
                        pending_alerts.c.digest_id.is_(None),
                    )
                    .values(digest_id=digests.c.id)
                )
        others = [s for s in ids if s not in by_subscriber]
        final = 0
        for part in _chunks(others):
            final += len(
                conn.execute(
                    select(digests.c.id).where(
                        digests.c.period == period,
                        digests.c.subscriber_id.in_(part),
                        digests.c.status.in_(FINAL_DIGEST_STATUSES),
                    )
                ).all()
            )
    return Claimed(claimed, final)


def claim_digest(
    bind: Bind, subscriber_id: int, period: str, *, now: datetime, message_domain: str
) -> int | None:
    """One subscriber's `claim_digests`: the digest id, or None when the period already has a
    digest (sent, or being sent by another run) or the subscriber may not receive one."""
    claimed = claim_digests(bind, [subscriber_id], period, now=now, message_domain=message_domain)
    return claimed.digest_ids[0] if claimed.digest_ids else None


def digest_status(bind: Bind, subscriber_id: int, period: str) -> str | None:
    with reading(bind) as conn:
        return conn.execute(
            select(digests.c.status).where(
                digests.c.subscriber_id == subscriber_id, digests.c.period == period
            )
        ).scalar()


def take_over_claimed_digests(bind: Bind, *, now: datetime, stale_before: datetime) -> list[int]:
    """Take the claimed digests nobody is sending and that are due: released after a temporary
    failure and past their `next_attempt_at`, or claimed before `stale_before` by a run that
    died. One conditional UPDATE: of two concurrent runs, each row goes to one."""
    free = and_(
        digests.c.status == "claimed",
        or_(
            and_(
                digests.c.claimed_at.is_(None),
                or_(digests.c.next_attempt_at.is_(None), digests.c.next_attempt_at <= now),
            ),
            digests.c.claimed_at < stale_before,
        ),
    )
    with transaction(bind) as conn:
        taken = conn.execute(
            update(digests).where(free).values(claimed_at=now).returning(digests.c.id)
        ).scalars()
        return sorted(int(i) for i in taken)


@dataclass(frozen=True)
class DigestWork:
    """A claimed digest with what is needed to mail it."""

    digest_id: int
    subscriber_id: int
    period: str
    email: str
    link_key: str | None  # bound into the unsubscribe link (streams.domain.links)
    deliverable: bool  # the subscriber is (still) confirmed and active
    mail_suspended: bool  # digests stopped after repeated hard bounces
    message_id: str | None
    attempts: int
    created_at: datetime | None  # first claimed (None: a row from before this was kept)
    alerts: list[Alert]  # only offenders who may still be shown
    withheld: int  # alerts dropped: the offender was removed or flagged juvenile since
    # The tracked addresses its proximity alerts name, as they stand now (a deleted one is
    # missing): the circles its maps draw.
    circles: dict[int, Circle] = field(default_factory=dict)
    schedule: Schedule = DAILY_SCHEDULE  # the subscriber's, as it stands now
    # Weekly only: from when the digest's alerts were recorded (the previous digest sent, or
    # enrollment); the digest itself covers up to its claim (`created_at`).
    covers_from: datetime | None = None


def _still_shown(kind: str, removed: bool | None, juvenile: bool | None) -> bool:
    """Juvenile records are never shown; a removed offender only in the watch line saying so."""
    if juvenile:
        return False
    if removed:
        return kind == "watch_removed"
    return True


def _utc(value: datetime | None) -> datetime | None:
    return stored_utc(value) if value is not None else None


def load_digests(bind: Bind, digest_ids: Sequence[int]) -> list[DigestWork]:
    """The digests (in the order asked) with their alerts: two queries per block."""
    heads: dict[int, Any] = {}
    alerts: dict[int, list[Alert]] = {i: [] for i in digest_ids}
    withheld: dict[int, int] = dict.fromkeys(digest_ids, 0)
    with reading(bind) as conn:
        for part in _chunks(list(digest_ids)):
            for d in conn.execute(
                select(
                    digests.c.id,
                    digests.c.subscriber_id,
                    digests.c.period,
                    digests.c.message_id,
                    digests.c.attempts,
                    digests.c.created_at,
                    subscribers.c.email,
                    subscribers.c.link_key,
                    subscribers.c.confirmed,
                    subscribers.c.status,
                    subscribers.c.mail_suspended_at,
                    subscribers.c.digest_frequency,
                    subscribers.c.digest_weekday,
                )
                .join(subscribers, subscribers.c.id == digests.c.subscriber_id)
                .where(digests.c.id.in_(part))
            ):
                heads[int(d.id)] = d
            rows = conn.execute(
                select(
                    pending_alerts.c.digest_id,
                    pending_alerts.c.kind,
                    pending_alerts.c.payload,
                    offenders.c.removed,
                    offenders.c.juvenile,
                )
                .select_from(
                    pending_alerts.outerjoin(
                        offenders, offenders.c.offender_id == pending_alerts.c.offender_id
                    )
                )
                .where(pending_alerts.c.digest_id.in_(part))
                .order_by(pending_alerts.c.digest_id, pending_alerts.c.created_at, pending_alerts.c.alert_id)
            )
            for r in rows:
                if _still_shown(r.kind, r.removed, r.juvenile):
                    alerts[r.digest_id].append(Alert.from_dict(r.payload))
                else:
                    withheld[r.digest_id] += 1
        circles = _circles(conn, {a.tracked_address_id for found in alerts.values() for a in found})
        schedules = {i: Schedule.stored(d.digest_frequency, d.digest_weekday) for i, d in heads.items()}
        covers_from = _covers_from(conn, [i for i, s in schedules.items() if s.weekly])
    missing = [i for i in digest_ids if i not in heads]
    if missing:
        raise LookupError(f"no digest with id {missing[0]}")
    return [
        DigestWork(
            digest_id=i,
            subscriber_id=int(d.subscriber_id),
            period=d.period,
            email=d.email,
            link_key=d.link_key,
            deliverable=bool(d.confirmed) and d.status == "active",
            mail_suspended=d.mail_suspended_at is not None,
            message_id=d.message_id,
            attempts=int(d.attempts),
            created_at=_utc(d.created_at),
            alerts=alerts[i],
            withheld=withheld[i],
            circles={
                a.tracked_address_id: circles[a.tracked_address_id]
                for a in alerts[i]
                if a.tracked_address_id in circles
            },
            schedule=schedules[i],
            covers_from=covers_from.get(i),
        )
        for i in digest_ids
        for d in (heads[i],)
    ]


def _covers_from(conn: Connection, digest_ids: list[int]) -> dict[int, datetime]:
    """Per digest: when its subscriber's previous digest took its alerts (sent, or empty after
    netting; a failed one gave them back), else when they enrolled. Weekly digests only, so a
    daily run reads nothing more."""
    previous = digests.alias("previous")
    out: dict[int, datetime] = {}
    for part in _chunks(digest_ids):
        last = (
            select(func.max(func.coalesce(previous.c.created_at, previous.c.sent_at)))
            .where(
                previous.c.subscriber_id == digests.c.subscriber_id,
                previous.c.id < digests.c.id,
                previous.c.status.in_(("sent", "empty")),
            )
            .scalar_subquery()
        )
        for r in conn.execute(
            select(digests.c.id, last.label("last"), subscribers.c.created_at)
            .join(subscribers, subscribers.c.id == digests.c.subscriber_id)
            .where(digests.c.id.in_(part))
        ):
            since = r.last if r.last is not None else r.created_at
            if since is not None:
                out[int(r.id)] = stored_utc(since)
    return out


def _circles(conn: Connection, ids: set[int | None]) -> dict[int, Circle]:
    wanted = sorted(i for i in ids if i is not None)
    out: dict[int, Circle] = {}
    for part in _chunks(wanted):
        for r in conn.execute(
            select(
                tracked_addresses.c.id,
                tracked_addresses.c.lat,
                tracked_addresses.c.lon,
                tracked_addresses.c.radius_code,
            ).where(tracked_addresses.c.id.in_(part))
        ):
            out[int(r.id)] = Circle(float(r.lat), float(r.lon), r.radius_code)
    return out


def load_digest(bind: Bind, digest_id: int) -> DigestWork:
    [work] = load_digests(bind, [digest_id])
    return work


def _finish(conn: Connection, digest_id: int, **values: Any) -> bool:
    return (
        conn.execute(
            update(digests).where(digests.c.id == digest_id, digests.c.status == "claimed").values(**values)
        ).rowcount
        == 1
    )


_MARK_SENT_PG = text(
    "with sent as (select unnest(cast(:ids as integer[])) as id, unnest(cast(:mids as text[])) as mid),"
    " done as (update digests set status = 'sent', sent_at = :now, message_id = sent.mid,"
    " attempts = digests.attempts + 1, last_error = null, next_attempt_at = null"
    " from sent where digests.id = sent.id and digests.status = 'claimed'"
    " returning digests.id, digests.subscriber_id),"
    " cleared as (update subscribers set mail_bounces = 0 from done"
    " where subscribers.id = done.subscriber_id and subscribers.mail_bounces <> 0)"
    " select count(*) from done"
)


def mark_digests_sent(bind: Bind, sent: Sequence[tuple[int, str]], *, now: datetime) -> int:
    """Done, for each (digest id, Message-ID it went out with) still claimed; a delivered digest
    also ends its subscriber's run of hard bounces. Returns how many were marked."""
    if not sent:
        return 0
    wanted = dict(sent)
    marked = 0
    with transaction(bind) as conn:
        if conn.dialect.name == "postgresql":
            # One statement (this runs every few milliseconds in a run): cheaper than three.
            return int(
                conn.execute(
                    _MARK_SENT_PG,
                    {
                        "ids": list(wanted),
                        "mids": list(wanted.values()),
                        "now": now,
                    },
                ).scalar_one()
            )
        for part in _chunks(list(wanted)):
            rows = conn.execute(
                update(digests)
                .where(digests.c.id.in_(part), digests.c.status == "claimed")
                .values(
                    status="sent",
                    sent_at=now,
                    attempts=digests.c.attempts + 1,
                    last_error=None,
                    next_attempt_at=None,
                )
                .returning(digests.c.id, digests.c.subscriber_id, digests.c.message_id)
            ).all()
            marked += len(rows)
            # A row from before Message-IDs were fixed at claim time went out with a new one.
            _set_message_ids(conn, {r.id: wanted[r.id] for r in rows if r.message_id != wanted[r.id]})
            owners = sorted({int(r.subscriber_id) for r in rows})
            if owners:
                conn.execute(
                    update(subscribers)
                    .where(subscribers.c.id.in_(owners), subscribers.c.mail_bounces != 0)
                    .values(mail_bounces=0)
                )
    return marked


def mark_digest_sent(bind: Bind, digest_id: int, *, now: datetime, message_id: str) -> bool:
    """Done; a delivered digest also ends the subscriber's run of hard bounces."""
    return mark_digests_sent(bind, [(digest_id, message_id)], now=now) == 1


def mark_digest_empty(bind: Bind, digest_id: int, *, note: str | None = None) -> bool:
    with transaction(bind) as conn:
        return _finish(conn, digest_id, status="empty", last_error=note, next_attempt_at=None)


@dataclass(frozen=True)
class DigestFailure:
    """What marking a digest failed did to its subscriber."""

    bounces: int  # hard bounces in a row now (unchanged when this was not a bounce)
    suspended: bool  # this failure suspended the subscriber's digests


def mark_digest_failed(
    bind: Bind,
    digest_id: int,
    *,
    error: str,
    now: datetime,
    bounce: bool,
    suspend_after: int,
    attempted: bool = True,
) -> DigestFailure | None:
    """Fail the digest for good (None if it was not claimed any more).

    Its alerts go back to waiting, so the subscriber's next digest carries them: a refused
    digest loses nothing. A `bounce` (the receiving side refused the recipient or message)
    counts towards the subscriber's run of hard bounces; at `suspend_after` in a row their
    digests stop until they change the address or resume on the site.
    """
    if suspend_after < 1:
        raise ValueError(f"suspend_after={suspend_after}: expected at least 1")
    with transaction(bind) as conn:
        if not _finish(
            conn,
            digest_id,
            status="failed",
            attempts=digests.c.attempts + (1 if attempted else 0),
            last_error=error[:300],
            next_attempt_at=None,
        ):
            return None
        conn.execute(
            update(pending_alerts).where(pending_alerts.c.digest_id == digest_id).values(digest_id=None)
        )
        sid = conn.execute(select(digests.c.subscriber_id).where(digests.c.id == digest_id)).scalar_one()
        if bounce:
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == sid)
                .values(
                    mail_bounces=subscribers.c.mail_bounces + 1,
                    last_bounce_at=now,
                    last_bounce_reason=error[:200],
                )
            )
        count, suspended_at = conn.execute(
            select(subscribers.c.mail_bounces, subscribers.c.mail_suspended_at).where(subscribers.c.id == sid)
        ).one()
        suspend = bounce and count >= suspend_after and suspended_at is None
        if suspend:
            conn.execute(update(subscribers).where(subscribers.c.id == sid).values(mail_suspended_at=now))
        return DigestFailure(bounces=int(count), suspended=suspend)


def release_digests(
    bind: Bind, digest_ids: Sequence[int], *, error: str, retry_at: datetime, attempted: bool = True
) -> int:
    """A temporary failure: they stay claimed, free for a run at or after `retry_at` to retry.
    `attempted=False` for digests not tried because the mail server was found down."""
    released = 0
    with transaction(bind) as conn:
        for part in _chunks(list(digest_ids)):
            released += conn.execute(
                update(digests)
                .where(digests.c.id.in_(part), digests.c.status == "claimed")
                .values(
                    claimed_at=None,
                    next_attempt_at=retry_at,
                    attempts=digests.c.attempts + (1 if attempted else 0),
                    last_error=error[:300],
                )
            ).rowcount
    return released


def release_digest(
    bind: Bind, digest_id: int, *, error: str, retry_at: datetime, attempted: bool = True
) -> bool:
    return release_digests(bind, [digest_id], error=error, retry_at=retry_at, attempted=attempted) == 1
