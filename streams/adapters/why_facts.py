"""What the "why (not)?" answers read: a subscriber's tracked places, watch and alerts about one offender."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from streams.adapters.db import digests, offender_watches, pending_alerts, tracked_addresses
from streams.adapters.sql import reading, stored_utc
from streams.domain import radii
from streams.domain.why import AlertFact, TrackedPlace


def _place(row: Any) -> TrackedPlace:
    return TrackedPlace(
        place_id=row.id,
        label=row.label,
        lat=row.lat,
        lon=row.lon,
        radius_m=radii.radius_m(row.radius_code),
        radius_code=row.radius_code,
        precision=row.precision,
        tracked_since=stored_utc(row.created_at),
    )


def tracked_places(engine: Engine, sid: int) -> list[TrackedPlace]:
    with reading(engine) as conn:
        rows = conn.execute(
            select(tracked_addresses)
            .where(tracked_addresses.c.subscriber_id == sid)
            .order_by(tracked_addresses.c.id)
        )
        return [_place(r) for r in rows]


def watched_since(engine: Engine, sid: int, offender_id: str) -> datetime | None:
    with reading(engine) as conn:
        at = conn.execute(
            select(offender_watches.c.created_at).where(
                offender_watches.c.subscriber_id == sid, offender_watches.c.offender_id == offender_id
            )
        ).scalar()
    return stored_utc(at) if at is not None else None


def alert_facts(engine: Engine, sid: int, offender_id: str) -> list[AlertFact]:
    """The subscriber's alerts about the offender, each with when its digest went out (if it has)."""
    stmt = (
        select(pending_alerts.c.kind, pending_alerts.c.payload, digests.c.status, digests.c.sent_at)
        .select_from(pending_alerts.outerjoin(digests, digests.c.id == pending_alerts.c.digest_id))
        .where(pending_alerts.c.subscriber_id == sid, pending_alerts.c.offender_id == offender_id)
    )
    facts = []
    with reading(engine) as conn:
        for r in conn.execute(stmt):
            address = r.payload.get("address") or None
            sent = r.status == "sent" and r.sent_at is not None
            facts.append(
                AlertFact(
                    kind=r.kind,
                    place_id=r.payload.get("tracked_address_id"),
                    identity=(address["type"], address["normalized"]) if address else None,
                    sent_at=stored_utc(r.sent_at) if sent else None,
                )
            )
    return facts
