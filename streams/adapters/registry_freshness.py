"""How current the registry data is: when the latest registry event was applied."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from streams.adapters.db import registry_event_ids
from streams.adapters.sql import Bind, reading


def registry_as_of(bind: Bind) -> datetime | None:
    """When the newest registry event was applied here; None before the first one."""
    with reading(bind) as conn:
        latest = conn.execute(select(func.max(registry_event_ids.c.applied_at))).scalar()
    if latest is None:
        return None
    return latest if latest.tzinfo is not None else latest.replace(tzinfo=UTC)  # SQLite keeps no zone
