"""Database calls off the event loop: the one way, waiting out an unreachable database when asked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

logger = structlog.get_logger()
T = TypeVar("T")

FIRST_RETRY_S = 0.5
LONGEST_RETRY_S = 30.0


async def call(
    engine: Engine, fn: Callable[..., T], *args: Any, wait_while_down: bool = False, **kw: Any
) -> T:
    """`fn(engine, *args, **kw)` in a worker thread.

    With `wait_while_down` (agents: a batch must not be acknowledged half done) an unreachable
    database is retried, backing off up to LONGEST_RETRY_S, for as long as it takes; without it
    (a web request, a command, a digest run that defers what it could not mark) the error is
    the caller's to answer.
    """
    delay = FIRST_RETRY_S
    while True:
        try:
            return await asyncio.to_thread(fn, engine, *args, **kw)
        except (OperationalError, InterfaceError) as exc:
            if not wait_while_down:
                raise
            logger.warning("database unreachable, retrying", error=type(exc).__name__, in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, LONGEST_RETRY_S)
