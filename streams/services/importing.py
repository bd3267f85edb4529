"""`subscribers import`: the legacy migration path, one subscriber per JSON line."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from streams.adapters import subscriber_store
from streams.adapters.subscriber_import import (
    CheckedLine,
    ImportedAddress,
    ImportedSubscriber,
    InvalidLine,
    check_lines,
    read_blocks,
)
from streams.domain.geocoding import GeocodeQuery, GeocodeResult, GeocoderUnavailable
from streams.runtime import Runtime
from streams.services.publishing import publish_subscriber_changes

logger = structlog.get_logger()


# Subscribers stored per transaction (and lines checked per task in a worker process).
IMPORT_BLOCK = 500
# A smaller file is checked in process: starting the worker processes would cost more.
POOL_FROM_BYTES = 1 << 20


def default_workers(path: Path) -> int:
    """Processes that check lines: one per core (at most 4) for a large file, else none."""
    if path.stat().st_size < POOL_FROM_BYTES:
        return 0
    return min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


async def checked_blocks(path: Path, workers: int) -> AsyncIterator[list[CheckedLine]]:
    """The file's lines checked, block by block and in file order.

    With workers, blocks are checked in that many processes, two blocks per process ahead of
    the one the caller holds, so that checking overlaps geocoding and storing."""
    blocks = read_blocks(path, IMPORT_BLOCK)
    if workers < 1:
        for block in blocks:
            yield check_lines(block)
        return
    loop = asyncio.get_running_loop()
    # spawn, not fork: the parent holds threads (the database's) and an event loop.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    ahead: deque[tuple[int, asyncio.Future[list[CheckedLine]]]] = deque()

    async def next_block() -> list[CheckedLine]:
        first, future = ahead.popleft()
        try:
            return await future
        except BrokenProcessPool:
            raise ImportStopped(
                f"a process checking the file's lines stopped unexpectedly (out of memory?) at the "
                f"block from line {first}; the lines before it are stored. Run the same import "
                "again: lines already stored are updated in place, never duplicated."
            ) from None

    try:
        for block in blocks:
            ahead.append((block[0][0], loop.run_in_executor(pool, check_lines, block)))
            if len(ahead) > 2 * workers:
                yield await next_block()
        while ahead:
            yield await next_block()
    finally:
        for _, future in ahead:  # blocks not taken: their results or errors are not wanted
            if future.done() and not future.cancelled():
                future.exception()
            else:
                future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


class ImportStopped(RuntimeError):
    """The import could not go on (a line-checking process died); what came before is stored."""


@dataclass
class ImportReport:
    imported: int = 0
    confirmed: int = 0
    published: bool = False
    rejected: list[tuple[int, str]] = field(default_factory=list)


async def import_subscribers(
    runtime: Runtime, path: Path, broker_url: str | None, *, workers: int | None = None
) -> ImportReport:
    """Good lines are stored (and published when a broker runs); bad ones are reported.

    Lines are checked in `workers` processes (default_workers when None) while the previous
    block is geocoded and stored; blocks are stored one after another, in file order."""
    report = ImportReport()
    changes: list[subscriber_store.SubscriberChange] = []
    block: list[ImportedSubscriber] = []
    storing: asyncio.Task[None] | None = None
    stopped: ImportStopped | None = None

    async def store(items: list[ImportedSubscriber]) -> None:
        # One transaction per block of lines; the order of the file is kept.
        for item, change in zip(items, await runtime.db(subscriber_store.upsert_subscribers, items)):
            report.imported += 1
            if item.confirmed:
                report.confirmed += 1
            else:
                # Unconfirmed subscribers get nothing: withdraw anything published before.
                change = replace(
                    change,
                    circles=[],
                    removed_circles=[*change.removed_circles, *change.circles],
                    watches=[],
                    removed_watches=[*change.removed_watches, *change.watches],
                )
            changes.append(change)

    async def flush() -> None:
        # The previous block's transaction ends before this one starts.
        nonlocal storing
        if storing is not None:
            await storing
            storing = None
        if block:
            storing = asyncio.create_task(store(list(block)))
            block.clear()

    try:
        async for checked in checked_blocks(path, default_workers(path) if workers is None else workers):
            for n, item in checked:
                if isinstance(item, InvalidLine):
                    report.rejected.append((n, str(item)))
                    continue
                try:
                    item = await locate_subscriber(runtime, item)
                except InvalidLine as err:
                    report.rejected.append((n, str(err)))
                    continue
                block.append(item)
                if len(block) >= IMPORT_BLOCK:
                    await flush()
    except ImportStopped as err:
        stopped = err  # every line before the stop is still stored and published, as it says
    except BaseException:
        if storing is not None:
            # Failed: the block being stored still ends (committed or rolled back).
            await asyncio.gather(storing, return_exceptions=True)
        raise
    await flush()  # the last block
    if storing is not None:
        await storing
    if broker_url and changes:
        async with runtime.publisher(broker_url) as pub:
            # All of them at once: circles batched by cell across subscribers.
            await publish_subscriber_changes(pub, changes)
        report.published = True
    logger.info(
        "subscribers imported",
        imported=report.imported,
        rejected=len(report.rejected),
        stopped=stopped is not None,
    )
    if stopped is not None:
        raise stopped
    return report


async def locate_subscriber(runtime: Runtime, sub: ImportedSubscriber) -> ImportedSubscriber:
    """Geocode tracked addresses that came without coordinates; refuse anything coarse."""
    located: list[ImportedAddress] = []
    for i, a in enumerate(sub.addresses):
        if a.lat is not None:
            located.append(a)
            continue
        query = GeocodeQuery(a.street, a.city, a.state, a.zip)
        try:
            answer = await asyncio.wait_for(
                runtime.geocoder.geocode(query), runtime.settings.geocode_timeout_s
            )
        except (TimeoutError, GeocoderUnavailable):
            raise InvalidLine(
                f"addresses[{i}]: the geocoder is unavailable right now; import this line again later"
            ) from None
        if isinstance(answer, GeocodeResult) and answer.supports_proximity:
            located.append(replace(a, lat=answer.lat, lon=answer.lon, precision=answer.precision))
            continue
        if isinstance(answer, GeocodeResult):
            message = (
                f"could only be placed at {answer.precision.replace('_', ' ')} level, "
                "not exactly enough for a radius"
            )
            suggestions: tuple = ()
        else:
            message, suggestions = answer.message, answer.suggestions
        hint = (
            " Addresses that can be mapped nearby: " + "; ".join(s.one_line for s in suggestions[:3]) + "."
            if suggestions
            else ""
        )
        if hint and not message.endswith((".", "?", "!")):
            message += "."
        raise InvalidLine(f"addresses[{i}]: {message}{hint}")
    return replace(sub, addresses=tuple(located))
