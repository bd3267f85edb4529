"""Database functions: each takes an Engine (or a Connection) and is one transaction."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from streams.adapters import offender_search
from streams.adapters.db import (
    digests,
    offender_watches,
    offenders,
    pending_alerts,
    registry_event_ids,
    subscribers,
    tracked_addresses,
    utcnow,
)
from streams.adapters.alert_writer import record_alert_rows
from streams.adapters.sql import Bind, reading, transaction
from streams.adapters.sql import insert as sql_insert
from streams.adapters.subscriber_import import ImportedAddress, ImportedSubscriber
from streams.domain import radii
from streams.domain.alert_batch import ALERT_FIELDS
from streams.domain.geocoding import PROVIDED
from streams.domain.model import Alert, Circle, OffenderState, SeenEvent

# Digests that are done with: their alerts are never mailed again.
FINAL_DIGEST_STATUSES = ("sent", "empty", "failed")


def _active_subscriber() -> Any:
    return and_(subscribers.c.confirmed.is_(True), subscribers.c.status == "active")


def _mailable_subscriber() -> Any:
    """Active, and digests not suspended after repeated hard bounces (their alerts are still recorded)."""
    return and_(_active_subscriber(), subscribers.c.mail_suspended_at.is_(None))


# --- subscribers -------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberChange:
    """What a subscriber upsert changed, for publishing: upserts and withdrawals."""

    subscriber_id: int
    circles: list[Circle] = field(default_factory=list)
    # Whole circles (not just ids): withdrawing one means a message to every cell it touched.
    removed_circles: list[Circle] = field(default_factory=list)
    watches: list[str] = field(default_factory=list)
    removed_watches: list[str] = field(default_factory=list)

    @property
    def removed_circle_ids(self) -> list[int]:
        return [c.circle_id for c in self.removed_circles]


def _one_line(street: str, city: str, state: str, zip_: str) -> str:
    return f"{street}, {city}, {state} {zip_}"


def _circle(row: Any) -> Circle:
    return Circle(
        circle_id=row.id,
        subscriber_id=row.subscriber_id,
        label=row.label,
        one_line=_one_line(row.street, row.city, row.state, row.zip),
        lat=row.lat,
        lon=row.lon,
        radius_m=radii.radius_m(row.radius_code),
        radius_code=row.radius_code,
    )


_ADDRESS_FIELDS = (
    "label", "street", "city", "state", "zip", "normalized", "radius_code", "lat", "lon", "precision",
)


def _address_values(a: ImportedAddress) -> dict[str, Any]:
    values = {f: getattr(a, f, None) for f in _ADDRESS_FIELDS}
    values["normalized"] = values["normalized"] or ""
    values["lat"], values["lon"] = float(values["lat"]), float(values["lon"])
    values["precision"] = values["precision"] or PROVIDED
    return values


def upsert_subscriber(bind: Bind, imported: ImportedSubscriber) -> SubscriberChange:
    """Create or update a subscriber by e-mail; its tracked addresses and watches are replaced.

    An address identical to one already tracked keeps its id (re-importing the same line
    changes nothing and withdraws nothing). A subscriber who unsubscribed or was suspended
    keeps that status; everything of theirs is then reported as withdrawn.
    """
    email = imported.email.strip().lower()
    now = utcnow()
    with transaction(bind) as conn:
        conn.execute(
            sql_insert(conn, subscribers)
            .values(email=email, confirmed=bool(imported.confirmed), status="active", created_at=now)
            .on_conflict_do_nothing(index_elements=[subscribers.c.email])
        )
        sid, status = conn.execute(
            select(subscribers.c.id, subscribers.c.status).where(subscribers.c.email == email)
        ).one()
        conn.execute(
            update(subscribers).where(subscribers.c.id == sid).values(confirmed=bool(imported.confirmed))
        )

        existing = list(
            conn.execute(
                select(tracked_addresses)
                .where(tracked_addresses.c.subscriber_id == sid)
                .order_by(tracked_addresses.c.id)
            )
        )
        unused = {row.id: row for row in existing}
        kept_ids: list[int] = []
        for a in imported.addresses:
            values = _address_values(a)
            same = next(
                (rid for rid, row in unused.items() if all(getattr(row, f) == values[f] for f in _ADDRESS_FIELDS)),
                None,
            )
            if same is not None:
                del unused[same]
                kept_ids.append(same)
                continue
            result = conn.execute(
                tracked_addresses.insert().values(subscriber_id=sid, created_at=now, **values)
            )
            kept_ids.append(result.inserted_primary_key[0])
        removed = [_circle(row) for row in unused.values()]
        if unused:
            conn.execute(delete(tracked_addresses).where(tracked_addresses.c.id.in_(list(unused))))
        rows = {
            row.id: row
            for row in conn.execute(select(tracked_addresses).where(tracked_addresses.c.subscriber_id == sid))
        }
        circles = [_circle(rows[i]) for i in kept_ids]

        old_watches = set(
            conn.execute(
                select(offender_watches.c.offender_id).where(offender_watches.c.subscriber_id == sid)
            ).scalars()
        )
        watches = list(dict.fromkeys(str(o) for o in imported.offenders))
        removed_watches = sorted(old_watches - set(watches))
        if removed_watches:
            conn.execute(
                delete(offender_watches).where(
                    offender_watches.c.subscriber_id == sid,
                    offender_watches.c.offender_id.in_(removed_watches),
                )
            )
        added = [o for o in watches if o not in old_watches]
        if added:
            conn.execute(
                offender_watches.insert(),
                [{"subscriber_id": sid, "offender_id": o, "created_at": now} for o in added],
            )

    if status != "active":
        return SubscriberChange(sid, [], removed + circles, [], removed_watches + watches)
    return SubscriberChange(sid, circles, removed, watches, removed_watches)


def active_circles(bind: Bind) -> Iterator[Circle]:
    """Tracked addresses of confirmed, active subscribers (streamed; for resync)."""
    stmt = (
        select(tracked_addresses)
        .join(subscribers, subscribers.c.id == tracked_addresses.c.subscriber_id)
        .where(_active_subscriber())
        .order_by(tracked_addresses.c.id)
        .execution_options(yield_per=1000)
    )
    with reading(bind) as conn:
        for row in conn.execute(stmt):
            yield _circle(row)


def active_watches(bind: Bind) -> Iterator[tuple[int, str]]:
    """(subscriber id, offender id) of confirmed, active subscribers (streamed; for resync)."""
    stmt = (
        select(offender_watches.c.subscriber_id, offender_watches.c.offender_id)
        .join(subscribers, subscribers.c.id == offender_watches.c.subscriber_id)
        .where(_active_subscriber())
        .order_by(offender_watches.c.subscriber_id, offender_watches.c.offender_id)
        .execution_options(yield_per=1000)
    )
    with reading(bind) as conn:
        for row in conn.execute(stmt):
            yield int(row.subscriber_id), str(row.offender_id)


# --- offenders ---------------------------------------------------------------------------


def save_offender_state(bind: Bind, state: OffenderState) -> bool:
    """Store the state unless the stored revision is already as new; True when written."""
    return save_offender_states(bind, [state]) == 1


@dataclass(frozen=True)
class AppliedEvent:
    """A registry event id and what it said, to remember for good (registry_event_ids)."""

    event_id: str
    offender_id: str
    revision: int
    content_digest: str


def save_offender_states(
    bind: Bind, states: Sequence[OffenderState], applied: Sequence[AppliedEvent] = ()
) -> int:
    """Store each state unless its stored revision is already as new, and the ids of the
    events applied, all in one transaction and a few statements; returns how many states
    were written. Of two states of one offender, the higher revision counts."""
    latest: dict[str, OffenderState] = {}
    for state in states:
        held = latest.get(state.offender_id)
        if held is None or held.revision < state.revision:
            latest[state.offender_id] = state
    if not latest:
        return 0
    now = utcnow()
    id_rows = list({
        e.event_id: {"event_id": e.event_id, "offender_id": e.offender_id, "revision": e.revision,
                     "content_digest": e.content_digest, "applied_at": now}
        for e in applied
    }.values())
    rows = [
        {
            "offender_id": state.offender_id,
            "revision": state.revision,
            "removed": state.removed,
            "juvenile": bool(state.profile and state.profile.juvenile),
            "state_json": state.to_dict(),
            "updated_at": now,
        }
        for state in latest.values()
    ]
    with transaction(bind) as conn:
        stmt = sql_insert(conn, offenders)
        stmt = stmt.on_conflict_do_update(
            index_elements=[offenders.c.offender_id],
            set_={k: stmt.excluded[k] for k in rows[0] if k != "offender_id"},
            where=offenders.c.revision < stmt.excluded.revision,
        ).returning(offenders.c.offender_id)
        # RETURNING rather than rowcount: drivers disagree on rowcount for upserts. Executed
        # with many rows, SQLAlchemy batches it into multi-row statements ("insertmanyvalues").
        written = set(conn.execute(stmt, rows).scalars())
        offender_search.index_offenders(conn, [s for oid, s in latest.items() if oid in written])
        if id_rows:
            ids = sql_insert(conn, registry_event_ids).on_conflict_do_nothing(
                index_elements=[registry_event_ids.c.event_id])
            conn.execute(ids, id_rows)
        return len(written)


def known_events(bind: Bind, event_ids: Sequence[str]) -> dict[str, SeenEvent]:
    """What the system of record holds for these event ids (those it has), by id."""
    out: dict[str, SeenEvent] = {}
    ids = sorted(set(event_ids))
    with reading(bind) as conn:
        for start in range(0, len(ids), 500):
            t = registry_event_ids.c
            rows = conn.execute(
                select(t.event_id, t.revision, t.content_digest).where(t.event_id.in_(ids[start:start + 500]))
            )
            out.update((r.event_id, SeenEvent(r.event_id, r.content_digest, r.revision)) for r in rows)
    return out


def get_offender_state(bind: Bind, offender_id: str) -> OffenderState | None:
    with reading(bind) as conn:
        doc = conn.execute(
            select(offenders.c.state_json).where(offenders.c.offender_id == offender_id)
        ).scalar()
    return OffenderState.from_dict(doc) if doc is not None else None


def get_offender_states(bind: Bind, offender_ids: Sequence[str]) -> dict[str, OffenderState]:
    """The stored states of these offenders (those that have one), by id."""
    out: dict[str, OffenderState] = {}
    with reading(bind) as conn:
        for start in range(0, len(offender_ids), 500):
            chunk = list(offender_ids[start:start + 500])
            rows = conn.execute(
                select(offenders.c.offender_id, offenders.c.state_json).where(offenders.c.offender_id.in_(chunk))
            )
            out.update((oid, OffenderState.from_dict(doc)) for oid, doc in rows)
    return out


def all_offender_states(bind: Bind) -> Iterator[OffenderState]:
    stmt = (
        select(offenders.c.state_json)
        .order_by(offenders.c.offender_id)
        .execution_options(yield_per=1000)
    )
    with reading(bind) as conn:
        for (doc,) in conn.execute(stmt):
            yield OffenderState.from_dict(doc)


# --- pending alerts ----------------------------------------------------------------------


def _not_in_sent_digest() -> Any:
    sent = select(digests.c.id).where(digests.c.status == "sent")
    return or_(pending_alerts.c.digest_id.is_(None), pending_alerts.c.digest_id.not_in(sent))


def purge_offender_alerts(bind: Bind, offender_id: str) -> int:
    """Delete the not-yet-mailed alerts naming an offender who is no longer public.

    The one kept is the watch alert saying a removed offender left the public registry:
    that news is for the people who tracked them. A juvenile flag purges that too.
    """
    with transaction(bind) as conn:
        juvenile = conn.execute(
            select(offenders.c.juvenile).where(offenders.c.offender_id == offender_id)
        ).scalar()
        cond = and_(pending_alerts.c.offender_id == offender_id, _not_in_sent_digest())
        if not juvenile:
            cond = and_(cond, pending_alerts.c.kind != "watch_removed")
        return conn.execute(delete(pending_alerts).where(cond)).rowcount




def record_alerts(bind: Bind, alerts: Sequence[Alert]) -> int:
    """Insert the alerts not stored yet (a redelivered alert is ignored); returns how many were new."""
    # A shallow copy of each alert's fields: dataclasses.asdict deep-copies every nested dict
    # and was the largest cost per alert (bench/README.md, Pipeline); the JSON is the same.
    return record_alert_rows(bind, ({f: getattr(a, f) for f in ALERT_FIELDS} for a in alerts))


def count_pending_alerts(bind: Bind) -> int:
    """Alerts waiting for a digest."""
    with reading(bind) as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(pending_alerts).where(pending_alerts.c.digest_id.is_(None))
            ).scalar_one()
        )


# --- digests -----------------------------------------------------------------------------


def subscribers_with_unassigned_alerts(bind: Bind) -> list[int]:
    """Confirmed, active subscribers whose mail is not suspended, with alerts not yet in any digest."""
    stmt = (
        select(pending_alerts.c.subscriber_id)
        .join(subscribers, subscribers.c.id == pending_alerts.c.subscriber_id)
        .where(pending_alerts.c.digest_id.is_(None), _mailable_subscriber())
        .group_by(pending_alerts.c.subscriber_id)
        .order_by(pending_alerts.c.subscriber_id)
    )
    with reading(bind) as conn:
        return [int(s) for s in conn.execute(stmt).scalars()]


def claim_digest(
    bind: Bind, subscriber_id: int, period: str, *, now: datetime, message_domain: str
) -> int | None:
    """Claim the (subscriber, period) digest and attach the subscriber's unassigned alerts.

    Returns the digest id, or None when that period already has a digest (sent, or being
    sent by another run) or the subscriber may not receive one. The UNIQUE constraint on
    (subscriber_id, period) is what makes a second or concurrent run back off.
    """
    with transaction(bind) as conn:
        ok = conn.execute(
            select(subscribers.c.id).where(subscribers.c.id == subscriber_id, _mailable_subscriber())
        ).first()
        if ok is None:
            return None
        digest_id = conn.execute(
            sql_insert(conn, digests)
            .values(
                subscriber_id=subscriber_id,
                period=period,
                status="claimed",
                attempts=0,
                claimed_at=now,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[digests.c.subscriber_id, digests.c.period])
            .returning(digests.c.id)
        ).scalar()
        if digest_id is None:
            return None
        # Fixed at claim time so every retry of this digest carries the same Message-ID;
        # the random part keeps ids unique across databases that reuse digest ids.
        message_id = f"<digest-{digest_id}.{secrets.token_hex(6)}@{message_domain}>"
        conn.execute(update(digests).where(digests.c.id == digest_id).values(message_id=message_id))
        conn.execute(
            update(pending_alerts)
            .where(pending_alerts.c.subscriber_id == subscriber_id, pending_alerts.c.digest_id.is_(None))
            .values(digest_id=digest_id)
        )
        return int(digest_id)


def digest_status(bind: Bind, subscriber_id: int, period: str) -> str | None:
    with reading(bind) as conn:
        return conn.execute(
            select(digests.c.status).where(digests.c.subscriber_id == subscriber_id, digests.c.period == period)
        ).scalar()


def take_over_claimed_digests(bind: Bind, *, now: datetime, stale_before: datetime) -> list[int]:
    """Take the claimed digests nobody is sending and that are due: released after a temporary
    failure and past their `next_attempt_at`, or claimed before `stale_before` by a run that
    died. Each row is taken with a conditional UPDATE, so of two concurrent runs only one gets it."""
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
    taken: list[int] = []
    with reading(bind) as conn:
        candidates = list(conn.execute(select(digests.c.id).where(free).order_by(digests.c.id)).scalars())
    for digest_id in candidates:
        with transaction(bind) as conn:
            n = conn.execute(
                update(digests).where(digests.c.id == digest_id, free).values(claimed_at=now)
            ).rowcount
        if n == 1:
            taken.append(int(digest_id))
    return taken


@dataclass(frozen=True)
class DigestWork:
    """A claimed digest with what is needed to mail it."""

    digest_id: int
    subscriber_id: int
    period: str
    email: str
    deliverable: bool  # the subscriber is (still) confirmed and active
    mail_suspended: bool  # digests stopped after repeated hard bounces
    message_id: str | None
    attempts: int
    created_at: datetime | None  # first claimed (None: a row from before this was kept)
    alerts: list[Alert]  # only offenders who may still be shown
    withheld: int  # alerts dropped: the offender was removed or flagged juvenile since


def _still_shown(kind: str, removed: bool | None, juvenile: bool | None) -> bool:
    """Juvenile records are never shown; a removed offender only in the watch line saying so."""
    if juvenile:
        return False
    if removed:
        return kind == "watch_removed"
    return True


def _utc(value: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes; every time stored here is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def load_digest(bind: Bind, digest_id: int) -> DigestWork:
    with reading(bind) as conn:
        d = conn.execute(
            select(
                digests.c.id,
                digests.c.subscriber_id,
                digests.c.period,
                digests.c.message_id,
                digests.c.attempts,
                digests.c.created_at,
                subscribers.c.email,
                subscribers.c.confirmed,
                subscribers.c.status,
                subscribers.c.mail_suspended_at,
            )
            .join(subscribers, subscribers.c.id == digests.c.subscriber_id)
            .where(digests.c.id == digest_id)
        ).one()
        rows = conn.execute(
            select(pending_alerts.c.kind, pending_alerts.c.payload, offenders.c.removed, offenders.c.juvenile)
            .select_from(
                pending_alerts.outerjoin(offenders, offenders.c.offender_id == pending_alerts.c.offender_id)
            )
            .where(pending_alerts.c.digest_id == digest_id)
            .order_by(pending_alerts.c.created_at, pending_alerts.c.alert_id)
        ).all()
    alerts = [Alert.from_dict(r.payload) for r in rows if _still_shown(r.kind, r.removed, r.juvenile)]
    return DigestWork(
        digest_id=int(d.id),
        subscriber_id=int(d.subscriber_id),
        period=d.period,
        email=d.email,
        deliverable=bool(d.confirmed) and d.status == "active",
        mail_suspended=d.mail_suspended_at is not None,
        message_id=d.message_id,
        attempts=int(d.attempts),
        created_at=_utc(d.created_at),
        alerts=alerts,
        withheld=len(rows) - len(alerts),
    )


def _finish(conn: Connection, digest_id: int, **values: Any) -> bool:
    return (
        conn.execute(
            update(digests)
            .where(digests.c.id == digest_id, digests.c.status == "claimed")
            .values(**values)
        ).rowcount
        == 1
    )


def mark_digest_sent(bind: Bind, digest_id: int, *, now: datetime, message_id: str) -> bool:
    """Done; a delivered digest also ends the subscriber's run of hard bounces."""
    with transaction(bind) as conn:
        if not _finish(
            conn, digest_id, status="sent", sent_at=now, message_id=message_id,
            attempts=digests.c.attempts + 1, last_error=None, next_attempt_at=None,
        ):
            return False
        owner = select(digests.c.subscriber_id).where(digests.c.id == digest_id).scalar_subquery()
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == owner, subscribers.c.mail_bounces != 0)
            .values(mail_bounces=0)
        )
        return True


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
            conn, digest_id, status="failed", attempts=digests.c.attempts + (1 if attempted else 0),
            last_error=error[:300], next_attempt_at=None,
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


def release_digest(
    bind: Bind, digest_id: int, *, error: str, retry_at: datetime, attempted: bool = True
) -> bool:
    """A temporary failure: stays claimed, free for a run at or after `retry_at` to retry.
    `attempted=False` for a digest not tried because the mail server was found down."""
    with transaction(bind) as conn:
        return _finish(
            conn, digest_id, claimed_at=None, next_attempt_at=retry_at,
            attempts=digests.c.attempts + (1 if attempted else 0), last_error=error[:300],
        )

