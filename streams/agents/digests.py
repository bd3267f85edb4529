"""Send the daily digests at the configured local time (one worker, the leader, does it)."""

from __future__ import annotations

import structlog

from streams.app import StreamGraph
from streams.bootstrap import Services

logger = structlog.get_logger()


def register(g: StreamGraph, services: Services) -> None:
    hour, minute = services.settings.digest_time

    @g.app.crontab(f"{minute} {hour} * * *", timezone=services.settings.zone, on_leader=True)
    async def send_daily_digests() -> None:
        report = await services.send_digests()
        logger.info("daily digests sent", **report.__dict__)
