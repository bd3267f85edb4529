"""Hold the tracked circles of the grid cells this worker owns, table and circle index together."""

from __future__ import annotations

from typing import Any

import structlog

from streams.adapters.memory import release_free_memory
from streams.app import StreamGraph
from streams.domain import circle_batch
from streams.domain.model import Circle
from streams.logs import about_message
from streams.runtime import Runtime

logger = structlog.get_logger()


def register(graph: StreamGraph, runtime: Runtime) -> None:
    table = graph.cell_bucket_to_circles
    # Parsed entries kept from one message to the next (checked against the entry's text).
    reader = circle_batch.EntryReader()

    @graph.app.agent(graph.tracked_circles, name="index_tracked_circles")
    async def index_tracked_circles(stream: Any) -> None:
        # One event at a time: a table write goes to the changelog partition of the event
        # being processed. A message holds up to circle_batch.MAX_CIRCLES circles of one cell.
        async for event in stream.events():
            cell = event.key
            with about_message(event.message, cell=cell):
                try:
                    change = circle_batch.decode(event.value)
                except circle_batch.InvalidCircleBatch as err:
                    # Only our own commands write here: a bad message is a bug to look at
                    # (it stays on the topic), not a reason to stop indexing everyone else's.
                    logger.error("tracked-circles message not understood: skipped", error=str(err))
                    continue
                applied = circle_batch.apply(
                    cell,
                    change,
                    {k: table.get(k) for k in circle_batch.keys_of(cell, change)},
                    event.message.partition,
                    reader=reader,
                )
                for key, entry in applied.entries.items():
                    if entry is None:
                        if key in table:
                            del table[key]
                    else:
                        table[key] = entry
                for cid in applied.dropped:
                    runtime.circles.remove(cid, held_copy=True)
                runtime.circles.upsert_many((Circle.from_dict(d), new) for d, new in applied.upserted)
                # Every copy this message carries, held now (new, changed or held already):
                # what readiness checks read. Circle ids are pseudonymous.
                logger.info(
                    "tracked circles indexed",
                    circle_ids=[d["circle_id"] for d in change.upserts],
                    dropped=applied.dropped,
                    changed=len(applied.upserted),
                )

    @table.on_recover
    async def rebuild_index() -> None:
        owned = {
            tp.partition
            for tp in graph.app.assignor.assigned_actives()
            if tp.topic == graph.tracked_circles.get_topic_name()
        }
        runtime.circles.rebuild(
            row for v in table.values() if v["partition"] in owned for row in circle_batch.entry_rows(v)
        )
        release_free_memory()
        logger.info("circle index rebuilt", circles=len(runtime.circles), partitions=sorted(owned))
