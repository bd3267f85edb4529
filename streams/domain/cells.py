"""A fixed lat/lon grid that keys the geo join: events meet every circle of their cell."""

from __future__ import annotations

import math

# 0.1 degree cells (~11 km north-south, ~9 km east-west in Missouri): a 5-mile circle
# touches at most 3x3 cells, and a state holds thousands of cells to spread over partitions.
CELL_DEG = 0.1


def cell_of(lat: float, lon: float) -> str:
    return f"{math.floor(lat / CELL_DEG)}:{math.floor(lon / CELL_DEG)}"


def cells_overlapping(box: tuple[float, float, float, float]) -> list[str]:
    """Every cell a (min_lon, min_lat, max_lon, max_lat) box touches."""
    min_lon, min_lat, max_lon, max_lat = box
    rows = range(math.floor(min_lat / CELL_DEG), math.floor(max_lat / CELL_DEG) + 1)
    cols = range(math.floor(min_lon / CELL_DEG), math.floor(max_lon / CELL_DEG) + 1)
    return [f"{r}:{c}" for r in rows for c in cols]
