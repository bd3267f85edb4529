"""Hold the tracked circles of the grid cells this worker owns, table and R-tree together."""

from __future__ import annotations

from typing import Any

import structlog

from streams.app import StreamGraph
from streams.bootstrap import Services
from streams.domain.model import Circle

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
            if change["op"] == "upsert":
                # The partition rides along so a rebuild can keep only the owned ones.
                table[key] = {"partition": event.message.partition, "circle": change["circle"]}
                services.circles.upsert(cell, circle)
                logger.info("tracked circle indexed", circle_id=circle.circle_id, cell=cell)
            else:
                if key in table:
                    del table[key]
                services.circles.remove(cell, circle.circle_id)

    @table.on_recover
    async def rebuild_index() -> None:
        owned = {
            tp.partition
            for tp in g.app.assignor.assigned_actives()
            if tp.topic == g.tracked_circles.get_topic_name()
        }
        copies = [
            (key.split("/", 1)[0], Circle.from_dict(v["circle"]))
            for key, v in table.items()
            if v["partition"] in owned
        ]
        services.circles.rebuild(copies)
        logger.info("circle index rebuilt", circles=len(services.circles), partitions=sorted(owned))
