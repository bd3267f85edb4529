"""The site's background work while it runs: the account requests the forms queued, one at a
time, and every FLUSH_EVERY_S the settings notices that are due."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from streams.web.account_requests import AccountRequest

logger = structlog.get_logger()

# Far more than a site this size sees in the time one request takes; when full (a flood, or a
# mail server that hangs) a request is dropped and logged, the page still answering the same.
QUEUE_SIZE = 1000
FLUSH_EVERY_S = 30.0  # how late after its delay a settings notice may go out
SHUTDOWN_DRAIN_S = 20.0  # within a container's grace period; what is left is logged (counted)


class AccountWork:
    def __init__(
        self,
        handle: Callable[[AccountRequest, datetime], Awaitable[None]],
        flush: Callable[[datetime], Awaitable[int]],
        clock: Callable[[], datetime],
        size: int = QUEUE_SIZE,
    ) -> None:
        self._handle = handle
        self._flush = flush
        self._clock = clock
        self._queue: asyncio.Queue[AccountRequest] = asyncio.Queue(size)
        self._in_hand: asyncio.Future[Any] | None = None

    def offer(self, req: AccountRequest) -> bool:
        """Queue `req` (no waiting, no database); False when it was dropped."""
        try:
            self._queue.put_nowait(req)
        except asyncio.QueueFull:
            logger.warning(
                "account request dropped: the queue is full", kind=req.kind, queued=self._queue.qsize()
            )
            return False
        return True

    async def run(self) -> None:
        """Until cancelled (`stop`). Starts with the notices that fell due while the site was down."""
        await self._shielded(self._flush_now())
        flushed = time.monotonic()
        while True:
            wait = max(0.0, FLUSH_EVERY_S - (time.monotonic() - flushed))
            try:
                req = await asyncio.wait_for(self._queue.get(), wait)
            except TimeoutError:
                await self._shielded(self._flush_now())
                flushed = time.monotonic()
            else:
                await self._shielded(self._take(req))

    async def stop(self, running: asyncio.Task[None]) -> None:
        """End `run` without cutting short what it has in hand, then carry out what is queued."""
        running.cancel()
        with suppress(asyncio.CancelledError):
            await running
        if self._in_hand is not None:
            await asyncio.gather(self._in_hand, return_exceptions=True)
        try:
            await asyncio.wait_for(self.drain(), SHUTDOWN_DRAIN_S)
        except TimeoutError:
            logger.warning("account requests not carried out at shutdown", count=self._queue.qsize())

    async def drain(self) -> None:
        """Carry out everything queued, here and now."""
        while True:
            try:
                req = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await self._take(req)

    async def idle(self) -> None:
        """Wait until every queued request is carried out (for tests and `sent_mail`)."""
        await self._queue.join()

    async def flush(self, at: datetime) -> int:
        """Send the settings notices due at `at`; how many went."""
        return await self._flush(at)

    async def _take(self, req: AccountRequest) -> None:
        try:
            await self._handle(req, self._clock())
        except Exception as exc:  # noqa: BLE001 - logged without the address; the next one goes on
            logger.warning("account request failed", kind=req.kind, error=type(exc).__name__)
        finally:
            self._queue.task_done()

    async def _flush_now(self) -> None:
        try:
            await self.flush(self._clock())
        except Exception as exc:  # noqa: BLE001 - the notices stay recorded; the next round retries
            logger.warning("settings notices not sent", error=type(exc).__name__)

    async def _shielded(self, work: Coroutine[Any, Any, None]) -> None:
        # Cancelling `run` must not cut a request between its link and its e-mail, or a notice
        # between its sending and its rows' removal: `stop` waits for this instead.
        self._in_hand = asyncio.ensure_future(work)
        await asyncio.shield(self._in_hand)


ACCOUNT_WORK = web.AppKey("account_work", AccountWork)


def queue_request(request: web.Request, req: AccountRequest) -> None:
    """Hand `req` to the background work; the page answers without waiting for it."""
    request.app[ACCOUNT_WORK].offer(req)
