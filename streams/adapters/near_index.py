"""Who is registered near a point, from memory: the public points in numpy columns, rebuilt as the registry changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import structlog
from sqlalchemy import func, select

from streams.adapters.db import offenders
from streams.adapters.offender_search import public_states
from streams.adapters.registry_freshness import registry_as_of
from streams.adapters.sql import Bind, reading
from streams.domain.geometry import GEOD, bounding_box
from streams.domain.model import ALERTING_TYPES, Address, OffenderState

logger = structlog.get_logger()

# How often the registry is asked whether it changed (a cheap query); a change is picked up
# by the first request after that, and rebuilt while the old points go on answering.
REFRESH_S = 5.0

# What a point is shown as: built once per point when the index is built, never per request.
Describe = Callable[[OffenderState, Address], Any]
Run = Callable[..., Awaitable[Any]]  # fn(engine, *args) off the loop (Runtime.db_once)


@dataclass(frozen=True)
class RegistryVersion:
    """What changes whenever a registry record does: the index is rebuilt when it moves."""

    as_of: datetime | None  # registry_freshness.registry_as_of: the pages' "registry data as of"
    records_updated: Any  # the newest offenders.updated_at (also records saved by no event)


def registry_version(bind: Bind) -> RegistryVersion:
    with reading(bind) as conn:
        updated = conn.execute(select(func.max(offenders.c.updated_at), func.count())).one()
    return RegistryVersion(registry_as_of(bind), tuple(updated))


@dataclass(frozen=True)
class NearFound:
    """The points within a circle, nearest first (ties: offender id, then address type)."""

    views: list[Any]  # Describe's value of each point found
    distances_m: np.ndarray
    people: int  # distinct offenders among them


class NearSnapshot:
    """The public points of one registry version; read-only once built, so shared freely."""

    def __init__(
        self,
        version: RegistryVersion,
        lat: np.ndarray,
        lon: np.ndarray,
        who: np.ndarray,
        kind: np.ndarray,
        views: Sequence[Any],
    ) -> None:
        order = np.argsort(lat, kind="stable")  # the box's latitude band is one slice
        self.version = version
        self.lat, self.lon = lat[order], lon[order]
        self.who, self.kind = who[order], kind[order]
        self.views = [views[i] for i in order]

    def __len__(self) -> int:
        return len(self.lat)

    def within(self, lat: float, lon: float, radius_m: float) -> NearFound:
        """The points within radius_m of (lat, lon), decided as the alerts decide: WGS84
        geodesic distance from the centre to the point (Geod.inv), inclusive at the radius.
        The box only narrows the search."""
        min_lon, min_lat, max_lon, max_lat = bounding_box(lat, lon, radius_m)
        lo = int(np.searchsorted(self.lat, min_lat, side="left"))
        hi = int(np.searchsorted(self.lat, max_lat, side="right"))
        lons = self.lon[lo:hi]
        box = (lons >= min_lon) & (lons <= max_lon)
        # Near the antimeridian the box runs past +/-180: look on the other side too.
        if min_lon < -180:
            box |= lons >= min_lon + 360
        if max_lon > 180:
            box |= lons <= max_lon - 360
        rows = np.flatnonzero(box) + lo
        if rows.size == 0:
            return NearFound([], np.zeros(0), 0)
        n = rows.size
        d = np.asarray(
            GEOD.inv(np.full(n, lon), np.full(n, lat), self.lon[rows], self.lat[rows])[2], dtype=float
        )
        inside = d <= radius_m
        rows, d = rows[inside], d[inside]
        order = np.lexsort((self.kind[rows], self.who[rows], d))
        rows, d = rows[order], d[order]
        return NearFound([self.views[i] for i in rows], d, int(np.unique(self.who[rows]).size))


def build_snapshot(bind: Bind, describe: Describe) -> NearSnapshot:
    """Every public home, work and school address placed exactly enough for "within 500 ft"
    (the alerts' points), read once through the one rule of what the public may see."""
    version = registry_version(bind)
    lat: list[float] = []
    lon: list[float] = []
    who: list[str] = []
    kind: list[str] = []
    views: list[Any] = []
    for state in public_states(bind):
        for a in state.addresses:
            if a.type in ALERTING_TYPES and a.locates:
                assert a.lat is not None and a.lon is not None  # locates
                lat.append(a.lat)
                lon.append(a.lon)
                who.append(state.offender_id)
                kind.append(a.type)
                views.append(describe(state, a))
    ids = sorted(set(who))
    rank = {oid: i for i, oid in enumerate(ids)}
    kinds = sorted(ALERTING_TYPES)
    return NearSnapshot(
        version,
        np.array(lat, dtype=float),
        np.array(lon, dtype=float),
        np.array([rank[o] for o in who], dtype=np.int64),
        np.array([kinds.index(k) for k in kind], dtype=np.int64),
        views,
    )


class NearIndex:
    """The current snapshot, and the registry's "as of", each asked of the database at most
    once every `interval_s` (by `clock`, seconds)."""

    def __init__(
        self,
        describe: Describe,
        interval_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.describe = describe
        self.interval_s = interval_s
        self.clock = clock
        self._snapshot: NearSnapshot | None = None
        self._version: RegistryVersion | None = None
        self._checked_at = -float("inf")
        self._first: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None

    async def snapshot(self, run: Run) -> NearSnapshot:
        """The points to answer from: built on first use (the callers then wait for it), later
        rebuilt in the background when the registry has changed."""
        if self._snapshot is None:
            self._first = self._first or asyncio.Lock()
            async with self._first:
                if self._snapshot is None:
                    self._use(await run(build_snapshot, self.describe))
        else:
            self._check_when_due(run)
        assert self._snapshot is not None
        return self._snapshot

    async def as_of(self, run: Run) -> datetime | None:
        """When the newest registry event was applied, as of the last check."""
        if self._version is None:
            self._version = await run(registry_version)
            self._checked_at = self.clock()
        else:
            self._check_when_due(run)
        return self._version.as_of

    async def warm(self, run: Run) -> None:
        """Build the points before the first request asks (the site's start); a failure only
        leaves it to the first request."""
        try:
            await self.snapshot(run)
        except Exception as exc:  # noqa: BLE001 - the first request builds it instead
            logger.warning("near index not built at start", error=type(exc).__name__)

    async def idle(self) -> None:
        """Wait for a check or rebuild under way (tests; a clean shutdown)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def _use(self, snap: NearSnapshot) -> None:
        self._snapshot, self._version, self._checked_at = snap, snap.version, self.clock()

    def _check_when_due(self, run: Run) -> None:
        if self.clock() - self._checked_at < self.interval_s or (self._task and not self._task.done()):
            return
        self._checked_at = self.clock()
        self._task = asyncio.get_running_loop().create_task(self._refresh(run))

    async def _refresh(self, run: Run) -> None:
        try:
            version = await run(registry_version)
            self._version = version
            if self._snapshot is not None and version != self._snapshot.version:
                self._use(await run(build_snapshot, self.describe))
        except Exception as exc:  # noqa: BLE001 - the old points go on answering; the next check retries
            logger.warning("near index not refreshed", error=type(exc).__name__)
