"""A mutable R-tree of tracked circles whose hits are confirmed by the exact geodesic test."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
from rtree import index as rtree_index

from streams.domain.geometry import bounding_box, ecef, within_circles
from streams.domain.model import Circle

_INITIAL_CAPACITY = 64


def _boxes(circle: Circle) -> list[tuple[float, float, float, float]]:
    box = bounding_box(circle.lat, circle.lon, circle.radius_m)
    min_lon, min_lat, max_lon, max_lat = box
    # A box running past the antimeridian is also filed shifted by 360 degrees, so a point
    # on the other side (queried with its own longitude) still finds it.
    if min_lon < -180.0:
        return [box, (min_lon + 360.0, min_lat, max_lon + 360.0, max_lat)]
    if max_lon > 180.0:
        return [box, (min_lon - 360.0, min_lat, max_lon - 360.0, max_lat)]
    return [box]


class CircleIndex:
    """Circles keyed by circle_id; the R-tree finds candidates, numpy arrays decide.

    Per-circle numbers live in slot-indexed arrays (slots reused through a free-list) so a
    point inside hundreds of circles is tested in one vectorized call, not a Python loop.
    """

    def __init__(self) -> None:
        self._reset(_INITIAL_CAPACITY)

    def _reset(self, capacity: int) -> None:
        self._tree = rtree_index.Index()
        self._slot_of: dict[int, int] = {}
        self._circles: list[Circle | None] = []
        self._entries: list[list[tuple[float, float, float, float]]] = []
        self._free: list[int] = []
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self._xyz = np.zeros((capacity, 3))
        self._lat = np.zeros(capacity)
        self._lon = np.zeros(capacity)
        self._radius = np.zeros(capacity)

    def _grow(self) -> None:
        old = len(self._lat)
        xyz, lat, lon, radius = self._xyz, self._lat, self._lon, self._radius
        self._alloc(old * 2)
        self._xyz[:old], self._lat[:old] = xyz, lat
        self._lon[:old], self._radius[:old] = lon, radius

    def _new_slot(self) -> int:
        if self._free:
            return self._free.pop()
        slot = len(self._circles)
        if slot >= len(self._lat):
            self._grow()
        self._circles.append(None)
        self._entries.append([])
        return slot

    def _fill(self, slot: int, circle: Circle) -> None:
        self._circles[slot] = circle
        self._slot_of[circle.circle_id] = slot
        self._xyz[slot] = ecef(circle.lat, circle.lon)
        self._lat[slot], self._lon[slot] = circle.lat, circle.lon
        self._radius[slot] = circle.radius_m
        self._entries[slot] = _boxes(circle)

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, circle_id: object) -> bool:
        return circle_id in self._slot_of

    def get(self, circle_id: int) -> Circle | None:
        slot = self._slot_of.get(circle_id)
        return None if slot is None else self._circles[slot]

    def circles(self) -> Iterator[Circle]:
        return (c for c in self._circles if c is not None)

    def upsert(self, circle: Circle) -> None:
        slot = self._slot_of.get(circle.circle_id)
        if slot is None:
            slot = self._new_slot()
        else:
            for box in self._entries[slot]:
                self._tree.delete(slot, box)
        self._fill(slot, circle)
        for box in self._entries[slot]:
            self._tree.insert(slot, box)

    def remove(self, circle_id: int) -> bool:
        slot = self._slot_of.pop(circle_id, None)
        if slot is None:
            return False
        for box in self._entries[slot]:
            self._tree.delete(slot, box)
        self._circles[slot] = None
        self._entries[slot] = []
        self._radius[slot] = -1.0  # a stale slot can never pass `chord <= radius`
        self._free.append(slot)
        return True

    def clear(self) -> None:
        self._reset(_INITIAL_CAPACITY)

    def bulk_load(self, circles: Iterable[Circle]) -> None:
        """Add many circles; into an empty index the R-tree is packed in one pass (fast)."""
        unique = {c.circle_id: c for c in circles}  # the last copy of an id wins, as with upsert
        if len(self) > 0 or not unique:
            for circle in unique.values():
                self.upsert(circle)
            return
        self._reset(max(_INITIAL_CAPACITY, len(unique)))
        for slot, circle in enumerate(unique.values()):
            self._circles.append(None)
            self._entries.append([])
            self._fill(slot, circle)
        stream = ((slot, box, None) for slot, boxes in enumerate(self._entries) for box in boxes)
        self._tree = rtree_index.Index(stream)

    def query(self, lat: float, lon: float) -> list[tuple[Circle, float]]:
        """Circles holding (lat, lon) within their geodesic radius, with the distance in metres.

        Sorted by (subscriber_id, circle_id) so alerts come out in a stable order.
        """
        slots = set(self._tree.intersection((lon, lat, lon, lat)))
        if not slots:
            return []
        cand = np.fromiter(slots, dtype=np.intp, count=len(slots))
        within, dist = within_circles(
            lat, lon, self._xyz[cand], self._lat[cand], self._lon[cand], self._radius[cand]
        )
        hits = []
        for slot, d in zip(cand[within].tolist(), dist[within].tolist()):
            circle = self._circles[slot]
            if circle is not None:
                hits.append((circle, d))
        hits.sort(key=lambda h: (h[0].subscriber_id, h[0].circle_id))
        return hits
