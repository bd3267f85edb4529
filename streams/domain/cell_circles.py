"""The circles this worker holds, copied per grid cell, seen as one index of unique circles."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from typing import Any

from streams.domain.circle_index import CircleIndex
from streams.domain.model import Circle


class CellCircles:
    """A circle is stored once per cell it touches; the index holds it while any copy is here.

    An event is routed to the cell of its point, and any circle containing that point
    touches that cell, so querying the unique circles held here finds every match once.

    Only the number of copies held is kept per circle, not which cells: the caller knows
    whether a copy is new (its table is keyed by cell and circle), and a count costs ~80
    bytes per circle where a set of cell names cost ~900 (bench/README.md, rebuild).
    """

    def __init__(self) -> None:
        self.index = CircleIndex()
        self._held: dict[int, int] = {}  # circle_id -> copies held here
        self._copies = 0

    def __len__(self) -> int:
        """Unique circles held."""
        return len(self.index)

    @property
    def copies(self) -> int:
        """(cell, circle) pairs held: what the owned partitions of the join carry."""
        return self._copies

    def upsert(self, circle: Circle, *, new_copy: bool) -> None:
        """A copy of `circle` stored for one cell: `new_copy` unless that cell held it already."""
        self.upsert_many([(circle, new_copy)])

    def upsert_many(self, copies: Iterable[tuple[Circle, bool]]) -> None:
        """`upsert` of each (circle, new copy?): a copy of a circle the index already holds
        as it is (its copy for another cell) only counts; the rest go into the index together."""
        changed: list[Circle] = []
        for circle, new_copy in copies:
            if new_copy or circle.circle_id not in self._held:
                self._held[circle.circle_id] = self._held.get(circle.circle_id, 0) + 1
                self._copies += 1
            if not self.index.holds(circle):
                changed.append(circle)
        self.index.upsert_many(changed)

    def remove(self, circle_id: int, *, held_copy: bool) -> None:
        """One cell's copy dropped (`held_copy`: that cell did hold one); the circle leaves the
        index with its last copy."""
        n = self._held.get(circle_id)
        if n is None or not held_copy:
            return
        self._copies -= 1
        if n > 1:
            self._held[circle_id] = n - 1
        else:
            del self._held[circle_id]
            self.index.remove(circle_id)

    def rebuild(self, rows: Iterable[Sequence[Any]]) -> None:
        """Replace everything (after a rebalance) with the copies of the partitions owned now,
        given as stored: one row per copy, `Circle`'s fields in order.

        One `Circle` is built per circle, not per copy, and the garbage collector waits: it
        would otherwise walk the millions of new objects again and again (the largest part of
        a 1M-circle rebuild, bench/README.md).
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            held: dict[int, int] = {}
            unique: dict[int, Sequence[Any]] = {}
            n = 0
            for row in rows:
                cid = row[0]
                held[cid] = held.get(cid, 0) + 1
                unique[cid] = row  # the last copy wins, as with upsert
                n += 1
            self._held, self._copies = held, n
            self.index.clear()
            self.index.bulk_load(Circle(*row) for row in unique.values())
            del unique
        finally:
            if collecting:
                gc.enable()
