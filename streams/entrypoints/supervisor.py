"""`sor-notify up` as a supervisor: its parts run as child processes, and when one of them dies
everything stops with a message naming it (a part is never left running without the others)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from streams.adapters.child_process import die_with_parent

logger = structlog.get_logger()

EXIT_PART_DIED = 1
# A part that exits while `up` is being stopped (Ctrl-C reaches the whole process group) is
# not a failure: this long is allowed for the stop signal to reach `up` too.
GRACE_S = 1.0


def start_part(*args: str) -> subprocess.Popen[bytes]:
    """`sor-notify ARGS` as a child of this process, with its environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "streams.entrypoints.cli", *args], preexec_fn=die_with_parent
    )


@dataclass
class Part:
    name: str  # as the operator knows it: "web site", "worker", "embedded broker"
    process: subprocess.Popen[bytes]
    stop: Callable[[], None] | None = None  # how to stop it; default SIGTERM, then SIGKILL


def _terminate(proc: subprocess.Popen[bytes], wait_s: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def supervise(parts: list[Part], *, poll_s: float = 0.25) -> int:
    """Run until asked to stop (SIGINT, SIGTERM: exit 0) or until a part dies (exit 1, after
    stopping the others). Parts are stopped in reverse order of start."""
    stopping: list[int] = []

    def asked(signum: int, _frame: object) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, asked) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            dead = next((p for p in parts if p.process.poll() is not None), None)
            if dead is not None:
                time.sleep(GRACE_S)
                if stopping:
                    break
                code = dead.process.returncode
                logger.error(
                    "a part of sor-notify up stopped: stopping the others", part=dead.name, exit_code=code
                )
                print(
                    f"sor-notify up: the {dead.name} stopped (exit code {code}); everything else was stopped "
                    "too. Its log lines above say why; start `sor-notify up` again once it is fixed.",
                    file=sys.stderr,
                )
                return EXIT_PART_DIED
            time.sleep(poll_s)
        return 0
    finally:
        for part in reversed(parts):
            part.stop() if part.stop else _terminate(part.process)
        for s, handler in previous.items():
            signal.signal(s, handler)
