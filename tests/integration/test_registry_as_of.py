"""'Registry as of': the moment the newest registry event was applied, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from streams.adapters.db import registry_event_ids
from streams.adapters.registry_freshness import registry_as_of


def test_nothing_applied_yet_has_no_date(engine: Engine) -> None:
    assert registry_as_of(engine) is None


def test_the_newest_applied_event_dates_the_registry(engine: Engine) -> None:
    base = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)
    with engine.begin() as conn:
        for n, hours in enumerate((5, 0, 2)):
            conn.execute(
                insert(registry_event_ids).values(
                    event_id=f"ev-{n}",
                    offender_id="MO-1",
                    revision=n + 1,
                    content_digest="0" * 64,
                    applied_at=base + timedelta(hours=hours),
                )
            )
    assert registry_as_of(engine) == base + timedelta(hours=5)
