"""Everything running for real: the embedded broker, worker processes, SMTP, a database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from streams.adapters.broker import EmbeddedBroker, free_port
from streams.adapters.db import make_engine
from tests.conftest import database_urls
from tests.databases import at_head, drop_everything

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(free_port(), tmp_path / "broker.log")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(params=database_urls())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'e2e.db'}"
    url = os.environ["SOR_TEST_DATABASE_URL"]
    # As an operator installs a release on PostgreSQL: an empty database, then `db upgrade`.
    engine = make_engine(url)
    drop_everything(engine)
    at_head(engine)
    engine.dispose()
    return url


class System:
    """Runs `sor-notify` commands and workers the way an operator would."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env = env
        self.tmp = tmp
        self.workers: list[subprocess.Popen[bytes]] = []
        self.stopped: set[int] = set()  # workers a test stopped on purpose

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "streams.entrypoints.cli", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"sor-notify {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker-{len(self.workers)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.entrypoints.cli", "worker"],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(proc)
        return proc

    def stop_worker(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        self.stopped.add(proc.pid)
        proc.send_signal(sig)
        proc.wait(30)

    def write_jsonl(self, name: str, docs: list[dict]) -> Path:
        path = self.tmp / name
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        return path

    def worker_log(self) -> str:
        return "\n".join(
            (self.tmp / f"worker-{i}.log").read_text(errors="replace") for i in range(len(self.workers))
        )

    def stop(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()

    def wait_until(self, sql: str, predicate, timeout: float = 60.0, **params):
        engine = make_engine(self.env["SOR_DATABASE_URL"])
        deadline = time.monotonic() + timeout
        value = None
        try:
            while time.monotonic() < deadline:
                try:
                    with engine.connect() as conn:
                        value = conn.execute(text(sql), params).scalar()
                except Exception:  # table not created yet
                    value = None
                if value is not None and predicate(value):
                    return value
                if any(w.poll() is not None for w in self.workers if w.pid not in self.stopped):
                    raise AssertionError("a worker died:\n" + self.worker_log()[-4000:])
                time.sleep(0.2)
        finally:
            engine.dispose()
        raise AssertionError(f"timed out waiting: {sql} -> {value}\n" + self.worker_log()[-4000:])


@pytest.fixture
def system(
    broker: EmbeddedBroker, database_url: str, smtp_server, tmp_path: Path, dkim_key_file: Path
) -> Iterator[System]:
    catcher, smtp_port = smtp_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOR_")} | {
        "SOR_BROKER_URL": broker.bootstrap,
        "SOR_DATABASE_URL": database_url,
        "SOR_DATA_DIR": str(tmp_path / "data"),
        "SOR_SMTP_HOST": "127.0.0.1",
        "SOR_SMTP_PORT": str(smtp_port),
        "SOR_SMTP_STARTTLS": "false",
        "SOR_DKIM_PRIVATE_KEY_FILE": str(dkim_key_file),  # mail through a relay needs the operator's key
        "SOR_WORKER_WEB": "false",
        "SOR_SESSION_TIMEOUT_S": "6",
        "SOR_PARTITIONS": "2",
        "SOR_LOG_FORMAT": "json",
        "SOR_LOG_LEVEL": os.environ.get("SOR_LOG_LEVEL", "info"),
        "SOR_PUBLIC_URL": "https://notify.example.test",
        "SOR_SECRET_KEY": "e2e-secret-key-that-is-long-enough-0123456789",
        "SOR_WEB_PORT": str(free_port()),
        "SOR_WEB_METRICS_PORT": str(free_port()),
        # No SOR_SINGLE_RECORD_BATCHES: each process asks the broker how it counts offsets.
        "SOR_MAP_TILES_URL": "",
    }
    s = System(env, tmp_path)
    s.catcher = catcher  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        s.stop()
