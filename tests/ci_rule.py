"""Under `CI=true` nothing the suite needs may be missing in silence.

On a developer's machine a test that needs Debian's Chromium or docker-compose skips with a
message saying what to install, and the PostgreSQL half of the database tests runs only when
`SOR_TEST_DATABASE_URL` is set. In CI either would hide a broken install step behind a green
run, so there a skip is a failure and a missing database URL stops the run before it starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import pytest

TRUE = frozenset({"1", "true", "yes", "on"})


def ci_requested(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").strip().lower() in TRUE


def missing_in_ci(environ: Mapping[str, str]) -> list[str]:
    """What a CI run must have that a developer's run may go without."""
    missing = []
    if not environ.get("SOR_TEST_DATABASE_URL"):
        missing.append(
            "SOR_TEST_DATABASE_URL is not set, so every PostgreSQL test would be left out: set it "
            "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) or unset CI"
        )
    return missing


def pytest_sessionstart(session: pytest.Session) -> None:
    if ci_requested(os.environ):
        missing = missing_in_ci(os.environ)
        if missing:
            raise pytest.UsageError("CI=true: " + "; ".join(missing))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and ci_requested(os.environ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"  # reported as an error when the skip came from a skipif mark
        report.longrepr = f"skipped under CI=true, where no test may skip: {reason}"
