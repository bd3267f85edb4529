"""A mutable grid index of tracked circles, held in numpy columns, decided by the geodesic test."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from operator import attrgetter
from typing import NamedTuple

import numpy as np

from streams.domain.geometry import bounding_boxes, circles_holding, ecef
from streams.domain.model import Circle

# Grid cells are CELL_DEG on a side in latitude and longitude (~3.3 km by ~2.6 km in
# Missouri). A circle is filed in every cell its conservative box touches, so the cell of a
# point lists every circle that may hold it; smaller cells file wide circles many times,
# larger ones hand the exact test more circles that are too far.
CELL_DEG = 0.03
_NX = round(360 / CELL_DEG)
# A cell's key is row * _NX + column; keys stay below 2^32 for _radix_order.
assert (round(180 / CELL_DEG) + 1) * _NX < 2**32
# A circle touching more cells than this (only near a pole) is kept in one list that every
# query reads instead.
MAX_CELLS = 1024
_EMPTY = np.zeros(0, dtype=np.int32)


class Matches(NamedTuple):
    """The circles holding a point, as arrays."""

    circle_id: np.ndarray  # int64
    subscriber_id: np.ndarray  # int64
    distance_m: np.ndarray  # float64, WGS84 geodesic


class Labelled(NamedTuple):
    """The circles holding a point as plain lists, with what an alert shows of each."""

    circle_id: list[int]
    subscriber_id: list[int]
    label: list[str]
    one_line: list[str]
    distance_m: list[float]


def _cell_ranges(
    lat: np.ndarray, lon: np.ndarray, radius_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, ix0, ix1, iy0, iy1): inclusive cell ranges holding each circle's box.

    A box running past the antimeridian gives a second range on the other side, so a point
    there, whose cell comes from its own longitude, still finds the circle.
    """
    min_lon, min_lat, max_lon, max_lat = bounding_boxes(lat, lon, radius_m)
    row = np.arange(len(lat))
    west = min_lon < -180.0
    east = max_lon > 180.0
    parts = [(row, np.maximum(min_lon, -180.0), np.minimum(max_lon, 180.0), min_lat, max_lat)]
    if west.any():
        parts.append(
            (row[west], min_lon[west] + 360.0, np.full(west.sum(), 180.0), min_lat[west], max_lat[west])
        )
    if east.any():
        parts.append(
            (row[east], np.full(east.sum(), -180.0), max_lon[east] - 360.0, min_lat[east], max_lat[east])
        )
    rows, lo_lon, hi_lon, lo_lat, hi_lat = (np.concatenate(x) for x in zip(*parts))
    return (rows, _column(lo_lon), _column(hi_lon), _row(lo_lat), _row(hi_lat))


def _column(lon: np.ndarray) -> np.ndarray:
    # Longitude 180 is filed with the cells just west of it, not wrapped onto -180: a box
    # ending there holds no point of its circle on its edge, and one running past it has a
    # second range from -180.
    return np.clip(np.floor((lon + 180.0) / CELL_DEG), 0, _NX - 1).astype(np.int64)


def _row(lat: np.ndarray) -> np.ndarray:
    return np.floor((lat + 90.0) / CELL_DEG).astype(np.int64)


def _cell_keys(ix0: np.ndarray, ix1: np.ndarray, iy0: np.ndarray, iy1: np.ndarray) -> np.ndarray:
    """Every cell key of each range, concatenated (row-major within a range)."""
    nx, ny = ix1 - ix0 + 1, iy1 - iy0 + 1
    counts = nx * ny
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    o = np.arange(total) - first
    nx_r = np.repeat(nx, counts)
    ix = np.repeat(ix0, counts) + o % nx_r
    iy = np.repeat(iy0, counts) + o // nx_r
    cells: np.ndarray = iy * _NX + ix
    return cells


def _column_of(circles: list[Circle], name: str, dtype: type) -> np.ndarray:
    return np.fromiter(map(attrgetter(name), circles), dtype, len(circles))


def _radix_order(keys: np.ndarray) -> np.ndarray:
    """argsort of cell keys (all below 2^32): two stable 16-bit passes, numpy's radix sort."""
    low = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    high = np.argsort((keys[low] >> 16).astype(np.uint16), kind="stable")
    return low[high]


class CircleIndex:
    """Circles keyed by circle_id; grid cells find candidates, numpy arrays decide.

    Every per-circle value lives in slot-indexed numpy columns (slots reused through a
    free-list); the only per-circle Python object is the UTF-8 of its label and one-line
    address. A cell holds an int32 array of the slots filed there, so a point inside
    hundreds of circles is tested in one vectorized call. Circles come back as `Circle`
    values built on demand (query, get), or as arrays (match).

    circle_id -> slot is a sorted array (from the last bulk load or compaction) plus a dict
    of the ids placed since, which keeps a million ids in ~12 bytes each instead of a dict's
    ~100.
    """

    def __init__(self) -> None:
        self._reset(0)

    # -- storage ---------------------------------------------------------------------------

    def _reset(self, capacity: int) -> None:
        self._alloc(capacity)
        self._text: list[bytes | None] = []
        self._free: list[int] = []
        self._count = 0
        self._codes: list[str] = []
        self._code_of: dict[str, int] = {}
        self._cells: dict[int, np.ndarray] = {}
        self._wide = _EMPTY
        self._base_ids: np.ndarray = np.zeros(0, dtype=np.int64)
        self._base_slots: np.ndarray = np.zeros(0, dtype=np.int32)
        self._recent: dict[int, int] = {}
        # At least every radius held (never lowered by a removal): lets the within test skip
        # its check for lines too long for the short-line formula.
        self._max_radius = 0.0

    def _alloc(self, capacity: int) -> None:
        # Typed as plain arrays: bulk_load replaces them with columns taken in another order.
        self._id: np.ndarray = np.zeros(capacity, dtype=np.int64)
        self._sub: np.ndarray = np.zeros(capacity, dtype=np.int64)
        self._lat: np.ndarray = np.zeros(capacity)
        self._lon: np.ndarray = np.zeros(capacity)
        self._radius: np.ndarray = np.zeros(capacity)
        self._xyz: np.ndarray = np.zeros((capacity, 3))
        self._code: np.ndarray = np.zeros(capacity, dtype=np.uint16)
        self._label_len: np.ndarray = np.zeros(capacity, dtype=np.int32)

    _COLUMNS = ("_id", "_sub", "_lat", "_lon", "_radius", "_xyz", "_code", "_label_len")

    def _grow(self) -> None:
        old = {name: getattr(self, name) for name in self._COLUMNS}
        size = len(self._id)
        self._alloc(max(64, size + size // 2))
        for name, col in old.items():
            getattr(self, name)[:size] = col

    def _code_index(self, code: str) -> int:
        k = self._code_of.get(code)
        if k is None:
            k = self._code_of[code] = len(self._codes)
            self._codes.append(code)
        return k

    def _slot(self, circle_id: int) -> int | None:
        slot = self._recent.get(circle_id)
        if slot is not None:
            return slot
        pos = int(np.searchsorted(self._base_ids, circle_id))
        if pos < len(self._base_ids) and self._base_ids[pos] == circle_id:
            slot = int(self._base_slots[pos])
            # The base may name a slot since freed, or reused by another circle.
            if self._text[slot] is not None and self._id[slot] == circle_id:
                return slot
        return None

    def _compact_ids(self) -> None:
        live = np.array([s for s, t in enumerate(self._text) if t is not None], dtype=np.int64)
        ids = self._id[live]
        order = np.argsort(ids, kind="stable")
        self._base_ids, self._base_slots = ids[order], live[order].astype(np.int32)
        self._recent = {}

    def _new_slot(self, circle_id: int) -> int:
        """A free slot, now counted as holding `circle_id` (the caller fills it)."""
        if self._free:
            slot = self._free.pop()
        else:
            slot = len(self._text)
            if slot >= len(self._id):
                self._grow()
            self._text.append(None)
        self._recent[circle_id] = slot
        self._count += 1
        return slot

    def _fill(self, slot: int, circle: Circle) -> None:
        self._id[slot] = circle.circle_id
        self._sub[slot] = circle.subscriber_id
        self._lat[slot], self._lon[slot] = circle.lat, circle.lon
        self._radius[slot] = circle.radius_m
        self._xyz[slot] = ecef(circle.lat, circle.lon)
        self._code[slot] = self._code_index(circle.radius_code)
        self._label_len[slot] = len(circle.label)
        self._max_radius = max(self._max_radius, float(circle.radius_m))
        self._text[slot] = (circle.label + circle.one_line).encode()

    def _circle(self, slot: int) -> Circle:
        return self._build(np.array([slot]))[0]

    # -- cells -----------------------------------------------------------------------------

    def _file(self, slot: int) -> None:
        _, ix0, ix1, iy0, iy1 = _cell_ranges(
            self._lat[slot : slot + 1], self._lon[slot : slot + 1], self._radius[slot : slot + 1]
        )
        cells = int(((ix1 - ix0 + 1) * (iy1 - iy0 + 1)).sum())
        if cells > MAX_CELLS:
            self._wide = np.append(self._wide, np.int32(slot))
            return
        one = np.array([slot], dtype=np.int32)
        for key in _cell_keys(ix0, ix1, iy0, iy1).tolist():
            held = self._cells.get(key)
            self._cells[key] = one if held is None else np.concatenate((held, one))

    def _unfile(self, slot: int) -> None:
        # One cell of slack each way: the box is recomputed, and a last-bit difference in it
        # must not leave the slot filed in a cell nobody looks at again.
        _, ix0, ix1, iy0, iy1 = _cell_ranges(
            self._lat[slot : slot + 1], self._lon[slot : slot + 1], self._radius[slot : slot + 1]
        )
        if self._wide.size:
            self._wide = self._wide[self._wide != slot]
        if int(((ix1 - ix0 + 3) * (iy1 - iy0 + 3)).sum()) > 4 * MAX_CELLS:
            return
        for key in _cell_keys(ix0 - 1, ix1 + 1, iy0 - 1, iy1 + 1).tolist():
            held = self._cells.get(key)
            if held is None:
                continue
            kept = held[held != slot]
            if len(kept) == len(held):
                continue
            if len(kept):
                self._cells[key] = kept
            else:
                del self._cells[key]

    # -- the mapping -----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def __contains__(self, circle_id: object) -> bool:
        return isinstance(circle_id, (int, np.integer)) and self._slot(int(circle_id)) is not None

    def get(self, circle_id: int) -> Circle | None:
        slot = self._slot(circle_id)
        return None if slot is None else self._circle(slot)

    def circles(self) -> Iterator[Circle]:
        live = np.array([s for s, t in enumerate(self._text) if t is not None], dtype=np.int64)
        for start in range(0, len(live), 4096):
            yield from self._build(live[start : start + 4096])

    def upsert(self, circle: Circle) -> None:
        slot = self._slot(circle.circle_id)
        if slot is not None:
            self._unfile(slot)
        else:
            slot = self._new_slot(circle.circle_id)
        self._fill(slot, circle)
        self._file(slot)
        if len(self._recent) > max(4096, len(self._base_ids) // 4):
            self._compact_ids()

    def holds(self, circle: Circle) -> bool:
        """Whether exactly this circle (same id, place, radius, subscriber, label, address) is held."""
        slot = self._slot(circle.circle_id)
        if slot is None:
            return False
        return (
            self._lat[slot] == circle.lat
            and self._lon[slot] == circle.lon
            and self._radius[slot] == circle.radius_m
            and self._sub[slot] == circle.subscriber_id
            and self._codes[self._code[slot]] == circle.radius_code
            and int(self._label_len[slot]) == len(circle.label)
            and self._text[slot] == (circle.label + circle.one_line).encode()
        )

    def upsert_many(self, circles: Iterable[Circle]) -> None:
        """`upsert` of each (the last of an id wins), with the circles not held yet filed in
        their cells together: one vectorised pass instead of ~30 numpy calls per circle (an
        import of 100k circles into a running worker spent 23 s filing them one by one)."""
        unique = {c.circle_id: c for c in circles}
        new: list[int] = []
        for circle in unique.values():
            if self._slot(circle.circle_id) is not None:
                self.upsert(circle)
                continue
            slot = self._new_slot(circle.circle_id)
            self._fill(slot, circle)
            new.append(slot)
        if new:
            self._file_many(np.array(new, dtype=np.int64))
        if len(self._recent) > max(4096, len(self._base_ids) // 4):
            self._compact_ids()

    def _file_many(self, slots: np.ndarray) -> None:
        """`_file` for many slots at once."""
        rows, ix0, ix1, iy0, iy1 = _cell_ranges(self._lat[slots], self._lon[slots], self._radius[slots])
        counts = (ix1 - ix0 + 1) * (iy1 - iy0 + 1)
        per_slot = np.bincount(rows, weights=counts, minlength=len(slots))
        wide = per_slot > MAX_CELLS
        if wide.any():
            self._wide = np.concatenate((self._wide, slots[wide].astype(np.int32)))
            keep = ~wide[rows]
            rows, ix0, ix1, iy0, iy1, counts = (a[keep] for a in (rows, ix0, ix1, iy0, iy1, counts))
        keys = _cell_keys(ix0, ix1, iy0, iy1)
        owners = slots[np.repeat(rows, counts)].astype(np.int32)
        order = np.argsort(keys, kind="stable")
        keys, owners = keys[order], owners[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        for key, part in zip(keys[starts].tolist(), np.split(owners, starts[1:])):
            held = self._cells.get(key)
            self._cells[key] = part if held is None else np.concatenate((held, part))

    def remove(self, circle_id: int) -> bool:
        slot = self._slot(circle_id)
        if slot is None:
            return False
        self._unfile(slot)
        self._recent.pop(circle_id, None)
        self._text[slot] = None
        self._free.append(slot)
        self._count -= 1
        return True

    def clear(self) -> None:
        self._reset(0)

    def bulk_load(self, circles: Iterable[Circle]) -> None:
        """Add many circles; into an empty index every column and cell is built in one pass."""
        unique = {c.circle_id: c for c in circles}  # the last copy of an id wins, as with upsert
        if self._count > 0 or not unique:
            for circle in unique.values():
                self.upsert(circle)
            return
        cs = list(unique.values())
        del unique
        n = len(cs)
        self._reset(0)

        # Read in the order given (the values sit in memory in about that order), then put
        # the slots in the order of the centres' cells: the circles one query reads are then
        # close together instead of scattered over the whole of every column.
        ids = _column_of(cs, "circle_id", np.int64)
        subs = _column_of(cs, "subscriber_id", np.int64)
        lat, lon = _column_of(cs, "lat", np.float64), _column_of(cs, "lon", np.float64)
        radius = _column_of(cs, "radius_m", np.float64)
        codes = list(map(attrgetter("radius_code"), cs))
        for name in sorted(set(codes)):
            self._code_index(name)
        code = np.fromiter(map(self._code_of.__getitem__, codes), np.uint16, n)
        labels = list(map(attrgetter("label"), cs))
        label_len = np.fromiter(map(len, labels), np.int32, n)
        text = [(a + b).encode() for a, b in zip(labels, map(attrgetter("one_line"), cs))]
        del cs, codes, labels
        order = _radix_order(_row(lat) * _NX + _column(lon))
        self._id, self._sub, self._lat, self._lon, self._radius, self._code = (
            col.take(order) for col in (ids, subs, lat, lon, radius, code)
        )
        self._label_len = label_len.take(order)
        self._text = list(map(text.__getitem__, order.tolist()))
        del text
        self._max_radius = float(self._radius.max())
        self._xyz = np.column_stack(ecef(self._lat, self._lon))
        self._count = n
        order = np.argsort(self._id, kind="stable")
        self._base_ids, self._base_slots = self._id[order], order.astype(np.int32)
        self._file_all()

    def _file_all(self) -> None:
        rows, ix0, ix1, iy0, iy1 = _cell_ranges(self._lat, self._lon, self._radius)
        counts = (ix1 - ix0 + 1) * (iy1 - iy0 + 1)
        # A circle split at the antimeridian counts both of its parts.
        per_row = np.bincount(rows, weights=counts, minlength=len(self._lat))
        wide = per_row[rows] > MAX_CELLS
        self._wide = np.unique(rows[wide]).astype(np.int32)
        rows, ix0, ix1, iy0, iy1 = rows[~wide], ix0[~wide], ix1[~wide], iy0[~wide], iy1[~wide]
        keys = _cell_keys(ix0, ix1, iy0, iy1)
        slots = np.repeat(rows, ((ix1 - ix0 + 1) * (iy1 - iy0 + 1))).astype(np.int32)
        order = _radix_order(keys)
        keys, slots = keys[order], slots[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else _EMPTY
        ends = np.r_[starts[1:], len(keys)]
        # Views into one array: a cell costs its slots and one small array header.
        self._cells = {
            k: slots[a:b] for k, a, b in zip(keys[starts].tolist(), starts.tolist(), ends.tolist())
        }

    # -- the geo join ----------------------------------------------------------------------

    def _candidates(self, lat: float, lon: float) -> np.ndarray | None:
        ix = min(max(math.floor((lon + 180.0) / CELL_DEG), 0), _NX - 1)
        iy = math.floor((lat + 90.0) / CELL_DEG)
        held = self._cells.get(iy * _NX + ix)
        if self._wide.size:
            held = self._wide if held is None else np.concatenate((held, self._wide))
        return held

    def _hits(self, lat: float, lon: float) -> tuple[np.ndarray, np.ndarray]:
        cand = self._candidates(lat, lon)
        if cand is None:
            return _EMPTY, np.zeros(0)
        pos, dist = circles_holding(
            lat,
            lon,
            self._xyz,
            self._lat,
            self._lon,
            self._radius,
            rows=cand,
            max_radius_m=self._max_radius,
        )
        slots = cand.take(pos)
        order = np.lexsort((self._id.take(slots), self._sub.take(slots)))
        return slots.take(order), dist.take(order)

    def query(self, lat: float, lon: float) -> list[tuple[Circle, float]]:
        """Circles holding (lat, lon) within their geodesic radius, with the distance in metres.

        Sorted by (subscriber_id, circle_id) so alerts come out in a stable order.
        """
        slots, dist = self._hits(lat, lon)
        return list(zip(self._build(slots), dist.tolist()))

    def _labels(self, slots: np.ndarray) -> tuple[list[str], list[str]]:
        """(labels, one-line addresses) of the circles in `slots`."""
        texts = self._text
        text = [texts[s].decode() for s in slots.tolist()]
        cut = self._label_len.take(slots).tolist()
        return [t[:k] for t, k in zip(text, cut)], [t[k:] for t, k in zip(text, cut)]

    def _build(self, slots: np.ndarray) -> list[Circle]:
        codes = self._codes
        return list(
            map(
                Circle,
                self._id.take(slots).tolist(),
                self._sub.take(slots).tolist(),
                *self._labels(slots),
                self._lat.take(slots).tolist(),
                self._lon.take(slots).tolist(),
                self._radius.take(slots).tolist(),
                [codes[c] for c in self._code.take(slots).tolist()],
            )
        )

    def labelled(self, lat: float, lon: float) -> Labelled:
        """What query finds, as columns: the fields of an alert batch, no Circle built."""
        slots, dist = self._hits(lat, lon)
        return Labelled(
            self._id.take(slots).tolist(),
            self._sub.take(slots).tolist(),
            *self._labels(slots),
            dist.tolist(),
        )

    def match(self, lat: float, lon: float) -> Matches:
        """What query finds, as arrays: no Circle is built."""
        slots, dist = self._hits(lat, lon)
        return Matches(self._id.take(slots), self._sub.take(slots), dist)
