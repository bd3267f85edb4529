"""The circles this worker holds, copied per grid cell, seen as one index of unique circles."""

from __future__ import annotations

from collections import defaultdict

from streams.domain.circle_index import CircleIndex
from streams.domain.model import Circle


class CellCircles:
    """A circle is stored once per cell it touches; the index holds it while any copy is here.

    An event is routed to the cell of its point, and any circle containing that point
    touches that cell, so querying the unique circles held here finds every match once.
    """

    def __init__(self) -> None:
        self.index = CircleIndex()
        self._cells: dict[int, set[str]] = defaultdict(set)

    def __len__(self) -> int:
        return len(self.index)

    def upsert(self, cell: str, circle: Circle) -> None:
        self._cells[circle.circle_id].add(cell)
        self.index.upsert(circle)

    def remove(self, cell: str, circle_id: int) -> None:
        cells = self._cells.get(circle_id)
        if cells is None:
            return
        cells.discard(cell)
        if not cells:
            del self._cells[circle_id]
            self.index.remove(circle_id)

    def rebuild(self, copies: list[tuple[str, Circle]]) -> None:
        """Replace everything (after a rebalance) with the copies of the partitions owned now."""
        self._cells.clear()
        unique: dict[int, Circle] = {}
        for cell, circle in copies:
            self._cells[circle.circle_id].add(cell)
            unique[circle.circle_id] = circle
        self.index.clear()
        self.index.bulk_load(list(unique.values()))
