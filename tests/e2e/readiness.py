"""Preconditions a test waits for before it publishes: every circle copy indexed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from streams.domain.cells import cells_overlapping
from streams.domain.geometry import bounding_box

INDEXED = "tracked circles indexed"


def indexed_copies(log: str) -> set[tuple[str, int]]:
    """(cell, circle id) of every copy the workers' log lines say they hold."""
    seen: set[tuple[str, int]] = set()
    for line in log.splitlines():
        if INDEXED in line and "{" in line:
            try:  # a supervisor may prefix its children's lines
                doc = json.loads(line[line.index("{") :])
            except ValueError:
                continue
            if doc.get("event") == INDEXED:
                seen |= {(doc["cell"], cid) for cid in doc["circle_ids"]}
    return seen


def wait_for_circles(
    system: Any, circles: Iterable[tuple[int, float, float, float]], timeout: float = 180.0
) -> None:
    """Every copy of every (circle id, lat, lon, radius in metres) indexed by some worker, as
    the workers' logs say: the routing under test decides which cells a copy goes to."""
    copies = {
        (cell, circle_id)
        for circle_id, lat, lon, radius_m in circles
        for cell in cells_overlapping(bounding_box(lat, lon, radius_m))
    }
    deadline = time.monotonic() + timeout
    seen: set[tuple[str, int]] = set()
    while time.monotonic() < deadline and not copies <= seen:
        seen = indexed_copies(system.worker_log())
        time.sleep(0.5)
    assert copies <= seen, f"{len(copies - seen)} circle copies never indexed"
