"""Hold the tracked circles of the grid cells this worker owns, table and circle index together."""

from __future__ import annotations

from typing import Any

import structlog

from streams.app import StreamGraph
from streams.bootstrap import Services
from streams.domain.model import Circle
from streams.logs import about_message

logger = structlog.get_logger()


def register(g: StreamGraph, services: Services) -> None:
    table = g.cell_circle_to_circle

    @g.app.agent(g.tracked_circles, name="index_tracked_circle")
    async def index_tracked_circle(stream: Any) -> None:
        async for event in stream.events():
            change = event.value
            cell = event.key
            circle = Circle.from_dict(change["circle"])
            key = f"{cell}/{circle.circle_id}"
            with about_message(event.message):
                if change["op"] == "upsert":
                    new_copy = key not in table  # a redelivered upsert is not a second copy
                    # The partition rides along so a rebuild can keep only the owned ones.
                    table[key] = {"partition": event.message.partition, "circle": change["circle"]}
                    services.circles.upsert(circle, new_copy=new_copy)
                    logger.info("tracked circle indexed", circle_id=circle.circle_id, cell=cell)
                else:
                    held = key in table
                    if held:
                        del table[key]
                    services.circles.remove(circle.circle_id, held_copy=held)
                    logger.info("tracked circle dropped", circle_id=circle.circle_id, cell=cell)

    @table.on_recover
    async def rebuild_index() -> None:
        owned = {
            tp.partition
            for tp in g.app.assignor.assigned_actives()
            if tp.topic == g.tracked_circles.get_topic_name()
        }
        services.circles.rebuild(v["circle"] for v in table.values() if v["partition"] in owned)
        logger.info("circle index rebuilt", circles=len(services.circles), partitions=sorted(owned))
