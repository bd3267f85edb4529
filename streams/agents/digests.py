"""Send the daily digests at the configured local time, and retry deferred ones when due (leader only)."""

from __future__ import annotations

import structlog

from streams.app import StreamGraph
from streams.domain.retry_policy import RETRY_FIRST
from streams.runtime import Runtime
from streams.services.digests import send_digests

logger = structlog.get_logger()


def register(graph: StreamGraph, runtime: Runtime) -> None:
    hour, minute = runtime.settings.digest_time

    @graph.app.crontab(f"{minute} {hour} * * *", timezone=runtime.settings.zone, on_leader=True)
    async def send_daily_digests() -> None:
        report = await send_digests(runtime)
        logger.info("daily digests sent", **report.__dict__)

    @graph.app.timer(interval=RETRY_FIRST.total_seconds(), on_leader=True)
    async def retry_deferred_digests() -> None:
        # A mail server that was down at 06:00 should not cost subscribers a whole day. Each
        # tick sends only the deferred digests whose backoff is over (`next_attempt_at`).
        await send_digests(runtime, claim_new=False)
