"""`up`, `worker` and the site take their settings from SOR_* alone, `up` never outlives its
parts, and an external broker that miscounts batch offsets is found out at start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from streams.adapters.broker import free_port
from streams.adapters.broker_probe import batch_end_offset_moves
from tests.e2e.conftest import REPO
from tests.e2e.test_operations import _wait_for
from tests.e2e.test_pipeline import ST_LOUIS, event, home, offset, profile


def hostile_faust_environment(site_port: int) -> dict[str, str]:
    """Every plain variable faust reads, set as a hosting platform or a careless shell might."""
    from faust.types.settings import Settings

    env = {p.env_name: "hostile" for p in Settings.SETTINGS.values() if p.env_name}
    env |= {
        "WEB_PORT": str(site_port),
        "WEB_BIND": "0.0.0.0",
        "WEB_HOST": "evil.example",
        "BROKER_URL": "kafka://127.0.0.1:1",
        "BROKER": "kafka://127.0.0.1:1",
        "STORE": "rocksdb://",
        "APP_STORE": "rocksdb://",
        "DATADIR": "/proc/hostile",
        "APP_DATADIR": "/proc/hostile",
        "TOPIC_PARTITIONS": "3",
        "PROCESSING_GUARANTEE": "exactly_once",
        "APP_WEB_ENABLED": "false",
        "CONSUMER_AUTO_OFFSET_RESET": "latest",
        "BROKER_SESSION_TIMEOUT": "1",
        "FAUST_WEB_PORT": str(site_port),
        "F_WEB_PORT": str(site_port),
        "FAUST_DATADIR": "/proc/hostile",
        "FAUST_LOOP": "eventlet",
        "FAUST_DEBUG": "1",
        "F_WEB_BIND": "8.8.8.8",
    }
    return env


def _faust_conf(env: dict[str, str]) -> dict[str, str]:
    """The worker's faust configuration, built the way `sor-notify worker` builds it (but for
    reply_to, a random name per process)."""
    script = (
        "import json, os\n"
        "from streams.entrypoints.isolation import drop_library_variables\n"
        "drop_library_variables(os.environ)\n"
        "from faust.types.settings import Settings\n"
        "from streams.app import create_app\n"
        "from streams.settings import load_settings\n"
        "g = create_app(load_settings(os.environ), '127.0.0.1:9092', single_record_batches=True)\n"
        "print(json.dumps({k: repr(getattr(g.app.conf, k)) for k in Settings.SETTINGS\n"
        "                  if k not in ('env', 'id_format', 'reply_to')}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_faust_variables_in_the_environment_change_nothing(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SOR_")} | {
        "SOR_DATA_DIR": str(tmp_path),
        "SOR_WORKER_WEB_PORT": "6077",
        "SOR_WEB_PORT": "8099",
        "SOR_SECRET_KEY": "a-test-secret-key-that-is-long-enough-0123456789",
    }
    clean = _faust_conf(base)
    hostile = _faust_conf(base | hostile_faust_environment(8099))
    differs = {k: (clean[k], hostile[k]) for k in clean if clean[k] != hostile[k]}
    assert not differs, differs
    assert clean["web_port"] == "6077" and clean["topic_partitions"] == "12"


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, ConnectionError, OSError):
        return 0


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out[int(entry.name)] = cmdline
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start_up(system, tmp_path: Path, extra: dict[str, str]) -> tuple[subprocess.Popen, dict[str, int], Path]:
    site_port, worker_port = int(system.env["SOR_WEB_PORT"]), free_port()
    env = (
        {k: v for k, v in system.env.items() if k != "SOR_BROKER_URL"}
        | {
            "SOR_EMBEDDED_BROKER_PORT": str(free_port()),
            "SOR_WORKER_WEB": "true",
            "SOR_WORKER_WEB_PORT": str(worker_port),
            "SOR_WEB_HOST": "127.0.0.1",
        }
        | extra
    )
    log_path = tmp_path / "up.log"
    up = subprocess.Popen(
        [sys.executable, "-m", "streams.entrypoints.cli", "up"],
        env=env,
        cwd=REPO,
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (
        _get(f"http://127.0.0.1:{site_port}/readyz") == 200
        and _get(f"http://127.0.0.1:{worker_port}/readyz") == 200
    ):
        assert up.poll() is None, log_path.read_text()[-4000:]
        assert time.monotonic() < deadline, "not ready:\n" + log_path.read_text()[-4000:]
        time.sleep(0.3)
    parts = {}
    for pid, cmd in _children(up.pid).items():
        if "tansu" in cmd or " broker " in cmd:
            parts["embedded broker"] = pid
        elif cmd.rstrip().endswith(" worker"):
            parts["worker"] = pid
        elif cmd.rstrip().endswith(" web"):
            parts["web site"] = pid
    assert set(parts) == {"embedded broker", "worker", "web site"}, _children(up.pid)
    return up, parts, log_path


@pytest.mark.parametrize("victim", ["web site", "worker"])
def test_up_stops_everything_when_a_part_dies(system, tmp_path: Path, victim: str) -> None:
    # With faust's own variables exported: the worker's web server must not take the site's port.
    hostile = hostile_faust_environment(int(system.env["SOR_WEB_PORT"]))
    up, parts, log_path = _start_up(system, tmp_path, hostile)
    try:
        os.kill(parts[victim], signal.SIGKILL)
        code = up.wait(60)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    log = log_path.read_text()
    assert code == 1, log[-3000:]
    assert f"sor-notify up: the {victim} stopped (exit code -9)" in log
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in parts.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [name for name, pid in parts.items() if _alive(pid)], log[-3000:]
    assert not (Path(system.env["SOR_DATA_DIR"]) / "broker.addr").exists()
    assert "environment variables meant for faust ignored" in log


def test_up_killed_outright_leaves_no_part_behind(system, tmp_path: Path) -> None:
    up, parts, _ = _start_up(system, tmp_path, {})
    os.kill(up.pid, signal.SIGKILL)
    up.wait(10)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in parts.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [name for name, pid in parts.items() if _alive(pid)]


def test_an_external_broker_that_miscounts_batches_is_found_out(system) -> None:
    bootstrap = system.env["SOR_BROKER_URL"]  # a Tansu the project did not start
    assert "SOR_SINGLE_RECORD_BATCHES" not in system.env
    # The precondition: this broker really miscounts a two-record batch.
    assert asyncio.run(batch_end_offset_moves(bootstrap)) == (2, 1)

    events = [
        event(
            f"OFF-{i}",
            1,
            profile(f"Name{i}", "Ray"),
            home(f"{i} Near St", "St. Louis", "63101", offset(ST_LOUIS, 100 + i)),
        )
        for i in range(40)
    ]
    published = system.run("registry", "publish", str(system.write_jsonl("e.jsonl", events)))
    assert "misreports end offsets of multi-record batches" in published.stdout + published.stderr
    system.start_worker()
    system.wait_until("select count(*) from offenders", lambda n: n == 40)
    status = _wait_for(
        lambda: json.loads(system.run("status", "--json").stdout), lambda s: s["total_lag"] == 0
    )
    registry = [p for p in status["partitions"] if p["topic"] == "registry-events"]
    assert sum(p["end_offset"] for p in registry) == 40  # what was sent, not less
    assert "misreports end offsets of multi-record batches" in system.worker_log()

    # SOR_SINGLE_RECORD_BATCHES still overrides what the broker showed: no probe then.
    system.env["SOR_SINGLE_RECORD_BATCHES"] = "true"
    forced = system.run("registry", "publish", str(system.write_jsonl("f.jsonl", events[:1])))
    assert "misreports" not in forced.stdout + forced.stderr and "counts multi-record" not in forced.stderr
