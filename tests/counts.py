"""Counts a fault or property test reports (kills, events, e-mails, duplicates, lost).

`report(line)` prints the line and attaches it to the running test, so that the end of every
test run lists them all (see `pytest_terminal_summary` in tests/conftest.py).
"""

from __future__ import annotations

from typing import Any

current: Any = None  # the running test's node, set by an autouse fixture in tests/conftest.py


def report(line: str) -> None:
    print(line)
    if current is not None:
        current.user_properties.append(("counts", line))
