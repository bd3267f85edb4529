"""Subscribers as the import writes them and resync reads them: their tracked circles and offender watches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.engine import Connection

from streams.adapters.db import (
    offender_watches,
    subscribers,
    tracked_addresses,
    utcnow,
)
from streams.adapters.sql import Bind, custom_plans, insert_rows, inserted_id, reading_all, transaction
from streams.adapters.sql import insert as sql_insert
from streams.adapters.subscriber_import import ImportedAddress, ImportedSubscriber
from streams.domain import radii
from streams.domain.geocoding import PROVIDED
from streams.domain.model import Circle


def active_subscriber() -> Any:
    return and_(subscribers.c.confirmed.is_(True), subscribers.c.status == "active")


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


# The tracked_addresses columns a Circle is made of, in the order `_circle_of` takes them.
_CIRCLE_COLUMNS = (
    "id",
    "subscriber_id",
    "label",
    "street",
    "city",
    "state",
    "zip",
    "lat",
    "lon",
    "radius_code",
)


def _circle_of(
    cid: int,
    sid: int,
    label: str,
    street: str,
    city: str,
    state: str,
    zip_: str,
    lat: float,
    lon: float,
    radius_code: str,
) -> Circle:
    return Circle(
        cid,
        sid,
        label,
        _one_line(street, city, state, zip_),
        lat,
        lon,
        radii.radius_m(radius_code),
        radius_code,
    )


def circle_of_row(row: Any) -> Circle:
    """The Circle a tracked_addresses row (any object with its columns as attributes) stands for."""
    return _circle_of(*(getattr(row, c) for c in _CIRCLE_COLUMNS))


_ADDRESS_FIELDS = (
    "label",
    "street",
    "city",
    "state",
    "zip",
    "normalized",
    "radius_code",
    "lat",
    "lon",
    "precision",
)


def _address_values(a: ImportedAddress) -> dict[str, Any]:
    values: dict[str, Any] = {f: getattr(a, f, None) for f in _ADDRESS_FIELDS}
    values["normalized"] = values["normalized"] or ""
    values["lat"], values["lon"] = float(values["lat"]), float(values["lon"])
    values["precision"] = values["precision"] or PROVIDED
    return values


def _schedule_values(imported: ImportedSubscriber) -> dict[str, Any]:
    """The line's digest frequency, when it gives one (otherwise the stored choice stands)."""
    s = imported.schedule
    return {} if s is None else {"digest_frequency": s.frequency, "digest_weekday": s.weekday}


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
            update(subscribers)
            .where(subscribers.c.id == sid)
            .values(confirmed=bool(imported.confirmed), **_schedule_values(imported))
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
                (
                    rid
                    for rid, row in unused.items()
                    if all(getattr(row, f) == values[f] for f in _ADDRESS_FIELDS)
                ),
                None,
            )
            if same is not None:
                del unused[same]
                kept_ids.append(same)
                continue
            result = conn.execute(
                tracked_addresses.insert().values(subscriber_id=sid, created_at=now, **values)
            )
            kept_ids.append(inserted_id(result))
        removed = [circle_of_row(row) for row in unused.values()]
        if unused:
            conn.execute(delete(tracked_addresses).where(tracked_addresses.c.id.in_(list(unused))))
        rows = {
            row.id: row
            for row in conn.execute(select(tracked_addresses).where(tracked_addresses.c.subscriber_id == sid))
        }
        circles = [circle_of_row(rows[i]) for i in kept_ids]

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


def upsert_subscribers(bind: Bind, imported: Sequence[ImportedSubscriber]) -> list[SubscriberChange]:
    """`upsert_subscriber` for each, in order, in one transaction and a few set-wise
    statements (an import's block of lines: ~10 statements for 500 subscribers where one at
    a time took ~8 each and a commit). A block naming one e-mail twice goes one at a time,
    so that the later line wins exactly as it would alone."""
    emails = [item.email.strip().lower() for item in imported]
    with transaction(bind) as conn:
        custom_plans(conn)
        if len(set(emails)) < len(emails):
            return [upsert_subscriber(conn, item) for item in imported]
        return _upsert_block(conn, list(imported), emails)


def _upsert_block(
    conn: Connection, items: list[ImportedSubscriber], emails: list[str]
) -> list[SubscriberChange]:
    if not items:
        return []
    now = utcnow()
    conn.execute(
        sql_insert(conn, subscribers).on_conflict_do_nothing(index_elements=[subscribers.c.email]),
        [
            {"email": e, "confirmed": bool(i.confirmed), "status": "active", "created_at": now}
            for e, i in zip(emails, items)
        ],
    )
    found = {
        r.email: r
        for r in conn.execute(
            select(
                subscribers.c.id, subscribers.c.email, subscribers.c.status, subscribers.c.confirmed
            ).where(subscribers.c.email.in_(emails))
        )
    }
    sids = [found[e].id for e in emails]
    stale = [
        {"sid": found[e].id, "c": bool(i.confirmed)}
        for e, i in zip(emails, items)
        if found[e].confirmed != bool(i.confirmed)
    ]
    if stale:
        conn.execute(
            update(subscribers).where(subscribers.c.id == bindparam("sid")).values(confirmed=bindparam("c")),
            stale,
        )
    chosen = [
        {"sid": found[e].id, "f": i.schedule.frequency, "w": i.schedule.weekday}
        for e, i in zip(emails, items)
        if i.schedule is not None
    ]
    if chosen:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == bindparam("sid"))
            .values(digest_frequency=bindparam("f"), digest_weekday=bindparam("w")),
            chosen,
        )

    held: dict[int, list[Any]] = {sid: [] for sid in sids}
    for row in conn.execute(
        select(tracked_addresses)
        .where(tracked_addresses.c.subscriber_id.in_(sids))
        .order_by(tracked_addresses.c.id)
    ):
        held[row.subscriber_id].append(row)
    plans: list[tuple[list[Any], list[Any]]] = []  # per subscriber: kept ids or new values, removed rows
    new_rows: list[dict[str, Any]] = []
    gone: list[int] = []
    for sid, item in zip(sids, items):
        unused = {row.id: row for row in held[sid]}
        kept: list[Any] = []
        for a in item.addresses:
            values = _address_values(a)
            same = next(
                (
                    rid
                    for rid, row in unused.items()
                    if all(getattr(row, f) == values[f] for f in _ADDRESS_FIELDS)
                ),
                None,
            )
            if same is not None:
                kept.append(unused.pop(same))
            else:
                new = {"subscriber_id": sid, "created_at": now, **values}
                new_rows.append(new)
                kept.append(new)
        plans.append((kept, list(unused.values())))
        gone += list(unused)
    if gone:
        conn.execute(delete(tracked_addresses).where(tracked_addresses.c.id.in_(gone)))
    if new_rows:
        for new, rid in zip(new_rows, insert_rows(conn, tracked_addresses, new_rows)):
            new["id"] = rid

    old_watches: dict[int, set[str]] = {sid: set() for sid in sids}
    for w in conn.execute(
        select(offender_watches.c.subscriber_id, offender_watches.c.offender_id).where(
            offender_watches.c.subscriber_id.in_(sids)
        )
    ):
        old_watches[w.subscriber_id].add(w.offender_id)
    drop_watches: list[dict[str, Any]] = []
    add_watches: list[dict[str, Any]] = []
    out: list[SubscriberChange] = []
    for sid, email, item, (kept, removed_rows) in zip(sids, emails, items, plans):
        circles = [circle_of_row(r if not isinstance(r, dict) else SimpleNamespace(**r)) for r in kept]
        removed = [circle_of_row(r) for r in removed_rows]
        watches = list(dict.fromkeys(str(o) for o in item.offenders))
        removed_watches = sorted(old_watches[sid] - set(watches))
        drop_watches += [{"sid": sid, "oid": o} for o in removed_watches]
        add_watches += [
            {"subscriber_id": sid, "offender_id": o, "created_at": now}
            for o in watches
            if o not in old_watches[sid]
        ]
        if found[email].status != "active":
            out.append(SubscriberChange(sid, [], removed + circles, [], removed_watches + watches))
        else:
            out.append(SubscriberChange(sid, circles, removed, watches, removed_watches))
    if drop_watches:
        conn.execute(
            delete(offender_watches).where(
                offender_watches.c.subscriber_id == bindparam("sid"),
                offender_watches.c.offender_id == bindparam("oid"),
            ),
            drop_watches,
        )
    if add_watches:
        conn.execute(offender_watches.insert(), add_watches)
    return out


def active_circles(bind: Bind) -> Iterator[Circle]:
    """Tracked addresses of confirmed, active subscribers (streamed; for resync)."""
    stmt = (
        select(*(tracked_addresses.c[c] for c in _CIRCLE_COLUMNS))
        .join(subscribers, subscribers.c.id == tracked_addresses.c.subscriber_id)
        .where(active_subscriber())
        .order_by(tracked_addresses.c.id)
        .execution_options(yield_per=1000)
    )
    with reading_all(bind) as conn:
        # Rows unpacked as tuples, not read by name (`circle_of_row`): a third of resync's reading
        # at 1M circles went to attribute lookups on rows.
        for row in conn.execute(stmt):
            yield _circle_of(*row)


def active_watches(bind: Bind) -> Iterator[tuple[int, str]]:
    """(subscriber id, offender id) of confirmed, active subscribers (streamed; for resync)."""
    stmt = (
        select(offender_watches.c.subscriber_id, offender_watches.c.offender_id)
        .join(subscribers, subscribers.c.id == offender_watches.c.subscriber_id)
        .where(active_subscriber())
        .order_by(offender_watches.c.subscriber_id, offender_watches.c.offender_id)
        .execution_options(yield_per=1000)
    )
    with reading_all(bind) as conn:
        for row in conn.execute(stmt):
            yield int(row.subscriber_id), str(row.offender_id)


def subscriptions(conn: Connection, subscriber_id: int) -> tuple[list[Circle], list[str]]:
    """A subscriber's tracked circles (in id order) and watched offender ids (sorted)."""
    circles = [
        circle_of_row(r)
        for r in conn.execute(
            select(tracked_addresses)
            .where(tracked_addresses.c.subscriber_id == subscriber_id)
            .order_by(tracked_addresses.c.id)
        )
    ]
    watches = list(
        conn.execute(
            select(offender_watches.c.offender_id)
            .where(offender_watches.c.subscriber_id == subscriber_id)
            .order_by(offender_watches.c.offender_id)
        ).scalars()
    )
    return circles, watches
