"""Preconditions a test waits for before it publishes: every circle copy indexed."""

from __future__ import annotations

import re
import time
from typing import Any, Iterable

from streams.domain.cells import cells_overlapping
from streams.domain.geometry import bounding_box

INDEXED = re.compile(r'"circle_id": (\d+), "cell": "([^"]+)", "event": "tracked circle indexed"')


def wait_for_circles(system: Any, circles: Iterable[tuple[int, float, float, float]], timeout: float = 180.0) -> None:
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
        seen = {(m.group(2), int(m.group(1))) for m in INDEXED.finditer(system.worker_log())}
        time.sleep(0.5)
    assert copies <= seen, f"{len(copies - seen)} circle copies never indexed"
