"""The site's hourly housekeeping: expired sessions, used or expired links, unconfirmed enrollments."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import structlog

from streams.adapters import accounts, db_calls, sign_in_steps
from streams.web import sessions
from streams.web.keys import now

logger = structlog.get_logger()

EVERY_S = 3600


def purge_expired(engine: Any, now: datetime) -> accounts.Purged:
    """Used or expired links, enrollments unconfirmed after 48 hours."""
    purged = accounts.purge_expired(engine, now)
    if purged.tokens or purged.enrollments:
        logger.info("expired account data purged", links=purged.tokens, enrollments=purged.enrollments)
    return purged


async def purge_hourly(engine: Any) -> None:
    """Runs until cancelled (the app's cleanup ends it)."""
    while True:
        try:
            await db_calls.call(engine, sessions.purge_expired, now())
            await db_calls.call(engine, sign_in_steps.purge_expired, now())
            await db_calls.call(engine, purge_expired, now())
        except Exception as exc:  # noqa: BLE001 - the site keeps serving; the next hour tries again
            logger.warning("housekeeping failed", error=type(exc).__name__)
        await asyncio.sleep(EVERY_S)
