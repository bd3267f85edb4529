"""A batch agent that fails stops the worker, so that nothing it held is acknowledged."""

from __future__ import annotations

import logging
import os
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import structlog

logger = structlog.get_logger()

EXIT_AGENT_FAILED = 70  # EX_SOFTWARE


@contextmanager
def stop_on_failure(agent: str) -> Iterator[None]:
    """Around the body of a batch agent's loop.

    faust's `take` and `take_events` acknowledge the batch they handed out when their generator
    is closed, also after the loop body raised; faust then restarts the agent on the next batch.
    The failed batch would count as processed and its offsets be committed: notifications
    quietly missing. Stopping the process at once leaves the batch unacknowledged; the
    supervisor (compose, Kubernetes, systemd) starts the worker again and the batch is read
    again, harmlessly since every effect is idempotent. A bug that fails every time shows as a
    worker that keeps restarting, with this line in its log.

    The line names the exception's type and where it was raised, never its message (it could
    quote a value).
    """
    try:
        yield
    except Exception as exc:
        frames = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)]
        logger.critical(
            "agent failed: stopping the worker so that its batch is read again",
            agent=agent, error=type(exc).__name__, frames=frames[-8:],
        )
        logging.shutdown()
        os._exit(EXIT_AGENT_FAILED)
