"""How current the registry data is: when the latest registry event was applied."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from streams.adapters.db import registry_event_ids
from streams.adapters.sql import Bind, reading, stored_utc


def registry_as_of(bind: Bind) -> datetime | None:
    """When the newest registry event was applied here; None before the first one."""
    with reading(bind) as conn:
        latest = conn.execute(select(func.max(registry_event_ids.c.applied_at))).scalar()
    return stored_utc(latest) if latest is not None else None
