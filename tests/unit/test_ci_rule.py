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


# Whole modules skipped while pytest collects them: no test report, only a collection one.
SKIPPED_MODULES = {
    "test_module_skip.py": """
import pytest

pytest.skip("docker-compose is not installed", allow_module_level=True)

def test_never_runs():
    pass
""",
    "test_importorskip.py": """
import pytest

no_such_module = pytest.importorskip("no_such_module")

def test_never_runs():
    pass
""",
}
CI_ENV = {"CI": "true", "SOR_TEST_DATABASE_URL": "postgresql+psycopg://x@127.0.0.1/none"}


def _pytest(
    tmp_path: Path, files: dict[str, str] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    for name, text in (files or {"test_suite.py": SUITE}).items():
        (tmp_path / name).write_text(text)
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


def test_a_module_skipped_at_collection_is_only_a_skip_on_a_developers_machine(tmp_path: Path) -> None:
    proc = _pytest(tmp_path, {"test_ok.py": "def test_runs():\n    assert True\n", **SKIPPED_MODULES})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 2 skipped" in proc.stdout


def test_under_ci_a_module_skipped_at_collection_fails_the_run_and_says_why(tmp_path: Path) -> None:
    proc = _pytest(
        tmp_path, {"test_ok.py": "def test_runs():\n    assert True\n", **SKIPPED_MODULES}, **CI_ENV
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "skipped at collection under CI=true" in proc.stdout
    assert (
        "FAILED test_module_skip.py: skipped under CI=true, where no test may skip: "
        "docker-compose is not installed"
    ) in proc.stdout
    assert (
        "FAILED test_importorskip.py: skipped under CI=true, where no test may skip: "
        "could not import 'no_such_module'"
    ) in proc.stdout


def test_under_ci_each_kind_of_collection_skip_fails_alone(tmp_path: Path) -> None:
    for name, text in SKIPPED_MODULES.items():
        where = tmp_path / name.removesuffix(".py")
        where.mkdir()
        proc = _pytest(where, {name: text}, **CI_ENV)
        # Nothing else ran: a failure, not pytest's "no tests ran" (5).
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"FAILED {name}: skipped under CI=true" in proc.stdout
