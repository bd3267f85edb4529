"""Keep the table of who tracks which offender (keyed like the registry events)."""

from __future__ import annotations

from typing import Any

import structlog

from streams.app import StreamGraph
from streams.domain import watch_batch
from streams.logs import about_message
from streams.runtime import Runtime

logger = structlog.get_logger()


def register(graph: StreamGraph, runtime: Runtime) -> None:
    table = graph.offender_to_watchers

    @graph.app.agent(graph.offender_watches, name="track_offender_watch")
    async def track_offender_watch(stream: Any) -> None:
        # One event at a time: a table write goes to the changelog partition of the event.
        async for event in stream.events():
            with about_message(event.message):
                try:
                    change = watch_batch.decode(event.value)
                except watch_batch.InvalidWatchBatch as err:
                    # Only our own commands write here: a bug to look at, kept on the topic.
                    logger.error("offender-watches message not understood: skipped", error=str(err))
                    continue
                oid = change.offender_id
                watchers = watch_batch.apply(table.get(oid), change)
                if watchers:
                    table[oid] = watchers
                elif watchers is not None and oid in table:
                    del table[oid]
                logger.info(
                    "offender watch recorded",
                    offender_id=oid,
                    watching=len(change.watch),
                    unwatching=len(change.unwatch),
                    watchers=len(table.get(oid) or ()),
                    changed=watchers is not None,
                )
