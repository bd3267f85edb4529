"""A batch agent that fails stops the worker instead of letting faust acknowledge its batch."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import REPO

SCRIPT = """
from streams.logs import configure_logging
from streams.agents.batching import stop_on_failure

configure_logging("json", "info")


def record(batch):
    raise ValueError("row for ann@example.org refused")  # a message that quotes a value


with stop_on_failure("record_alert"):
    record([1, 2, 3])
print("the batch would have been acknowledged")
"""


def test_a_failing_batch_stops_the_worker_with_a_line_that_says_where() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 70  # EX_SOFTWARE: the supervisor restarts it, the batch is read again
    assert "would have been acknowledged" not in done.stdout
    assert '"agent failed: stopping the worker so that its batch is read again"' in done.stderr
    assert '"agent": "record_alert"' in done.stderr and '"error": "ValueError"' in done.stderr
    assert "<string>" in done.stderr and "record" in done.stderr  # where it was raised
    assert "ann@example.org" not in done.stderr and "refused" not in done.stderr  # never the message
