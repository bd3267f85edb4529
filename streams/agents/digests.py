"""Send the daily digests at the configured local time, and retry deferred ones when due (leader only)."""

from __future__ import annotations

import structlog

from streams.app import StreamGraph
from streams.bootstrap import Services
from streams.services.digests import RETRY_FIRST

logger = structlog.get_logger()


def register(g: StreamGraph, services: Services) -> None:
    hour, minute = services.settings.digest_time

    @g.app.crontab(f"{minute} {hour} * * *", timezone=services.settings.zone, on_leader=True)
    async def send_daily_digests() -> None:
        report = await services.send_digests()
        logger.info("daily digests sent", **report.__dict__)

    @g.app.timer(interval=RETRY_FIRST.total_seconds(), on_leader=True)
    async def retry_deferred_digests() -> None:
        # A mail server that was down at 06:00 should not cost subscribers a whole day. Each
        # tick sends only the deferred digests whose backoff is over (`next_attempt_at`).
        await services.send_digests(claim_new=False)
