"""The pipeline's records: offender states, the event ids seen, pending alerts. Each function is one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, or_, select

from streams.adapters import offender_search
from streams.adapters.alert_writer import record_alert_rows
from streams.adapters.db import (
    digests,
    offenders,
    pending_alerts,
    registry_event_ids,
    utcnow,
)
from streams.adapters.sql import Bind, reading, reading_all, transaction
from streams.adapters.sql import insert as sql_insert
from streams.domain.alert_batch import ALERT_FIELDS
from streams.domain.model import Alert, OffenderState, SeenEvent

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
    id_rows = list(
        {
            e.event_id: {
                "event_id": e.event_id,
                "offender_id": e.offender_id,
                "revision": e.revision,
                "content_digest": e.content_digest,
                "applied_at": now,
            }
            for e in applied
        }.values()
    )
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
                index_elements=[registry_event_ids.c.event_id]
            )
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
                select(t.event_id, t.revision, t.content_digest).where(
                    t.event_id.in_(ids[start : start + 500])
                )
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
            chunk = list(offender_ids[start : start + 500])
            rows = conn.execute(
                select(offenders.c.offender_id, offenders.c.state_json).where(
                    offenders.c.offender_id.in_(chunk)
                )
            )
            out.update((oid, OffenderState.from_dict(doc)) for oid, doc in rows)
    return out


def all_offender_states(bind: Bind) -> Iterator[OffenderState]:
    stmt = select(offenders.c.state_json).order_by(offenders.c.offender_id).execution_options(yield_per=1000)
    with reading_all(bind) as conn:
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
