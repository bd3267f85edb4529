"""Under CI=true a skipped test fails the run and a missing PostgreSQL URL stops it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SUITE = """
import pytest

def test_runs():
    assert 1 + 1 == 2

@pytest.mark.skipif(True, reason="chromium is not installed")
def test_needs_a_browser():
    pass
"""


def _pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_suite.py").write_text(SUITE)
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "SOR_TEST_DATABASE_URL")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.ci_rule",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env={**base, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skip_is_only_a_skip_on_a_developers_machine(tmp_path: Path) -> None:
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 skipped" in proc.stdout


def test_under_ci_a_skip_fails_the_run_and_says_why(tmp_path: Path) -> None:
    proc = _pytest(tmp_path, CI="true", SOR_TEST_DATABASE_URL="postgresql+psycopg://x@127.0.0.1/none")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # A skipif mark decides at set-up, so pytest counts the failure as an error there.
    assert "1 passed, 1 error" in proc.stdout
    assert "skipped under CI=true, where no test may skip: chromium is not installed" in proc.stdout


def test_under_ci_a_missing_database_url_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    proc = _pytest(tmp_path, CI="1")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "CI=true: SOR_TEST_DATABASE_URL is not set" in proc.stderr
    assert "passed" not in proc.stdout
