"""Keep the table of who tracks which offender (keyed like the registry events)."""

from __future__ import annotations

from typing import Any

import structlog

from streams.app import StreamGraph
from streams.bootstrap import Services
from streams.logs import about_message

logger = structlog.get_logger()


def register(g: StreamGraph, services: Services) -> None:
    @g.app.agent(g.offender_watches, name="track_offender_watch")
    async def track_offender_watch(stream: Any) -> None:
        async for event in stream.events():
            change = event.value
            offender_id = change["offender_id"]
            with about_message(event.message, offender_id=offender_id):
                watchers = set(g.offender_to_watchers.get(offender_id) or [])
                if change["active"]:
                    watchers.add(int(change["subscriber_id"]))
                else:
                    watchers.discard(int(change["subscriber_id"]))
                if watchers:
                    g.offender_to_watchers[offender_id] = sorted(watchers)
                elif offender_id in g.offender_to_watchers:
                    del g.offender_to_watchers[offender_id]
                logger.info("offender watch recorded", active=bool(change["active"]), watchers=len(watchers))
