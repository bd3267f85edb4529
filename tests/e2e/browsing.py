"""What every browser test shares: Debian's chromium, where pictures go, and the site run as
`sor-notify web` in a process of its own for the length of a `with` block."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from streams.adapters.broker import free_port
from tests.e2e.conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed: run `apt-get install chromium` "
    "(the test drives the system browser and never downloads one)",
)
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@contextmanager
def running_site(env: dict[str, str], log: Path, port: int, *, stop_within: float = 20) -> Iterator[None]:
    """`sor-notify web` with `env`, its output in `log`, listening on `port` inside the block."""
    ARTIFACTS.mkdir(exist_ok=True)
    with open(log, "wb") as out:
        web = subprocess.Popen(
            [sys.executable, "-m", "streams.entrypoints.cli", "web"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_port(port)
            yield
        finally:
            web.terminate()
            web.wait(stop_within)


def watch_requests(page: Any, base: str) -> tuple[list[str], list[str]]:
    """Two lists the page fills as it runs: requests for anything not on `base` (an offline map
    must make none), and what the browser refused under the Content-Security-Policy."""
    elsewhere: list[str] = []
    refused: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith(base) or r.url.startswith("data:") else elsewhere.append(r.url),
    )
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    return elsewhere, refused


def _site_env(tmp_path: Path, port: int) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SOR_")} | {
        "SOR_DATABASE_URL": f"sqlite:///{tmp_path / 'map.db'}",
        "SOR_DATA_DIR": str(tmp_path / "data"),
        "SOR_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SOR_SECRET_KEY": "e2e-secret-key-that-is-long-enough-0123456789",
        "SOR_WEB_PORT": str(port),
        "SOR_WEB_METRICS_PORT": str(free_port()),
        "SOR_LOG_FORMAT": "json",
        "SOR_MAP_TILES_URL": "",  # no tiles: what a map shows with no network
    }


def _cli(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streams.entrypoints.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def offline_site(tmp_path: Path) -> tuple[int, str, dict[str, str]]:
    """A site's port, address and environment on an SQLite database of its own, upgraded, with
    no map tiles (what a map shows with no network)."""
    port = free_port()
    env = _site_env(tmp_path, port)
    _cli(env, "db", "upgrade")
    return port, f"http://127.0.0.1:{port}", env
