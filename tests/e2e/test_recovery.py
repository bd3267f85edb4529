"""State survives a worker restart (changelogs) and a broker that lost everything (resync)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from streams.adapters import subscriber_store
from streams.adapters.broker import free_port
from streams.adapters.db import make_engine
from tests.e2e.conftest import REPO
from tests.e2e.readiness import indexed_copies
from tests.e2e.test_pipeline import ST_LOUIS, event, home, offset, profile


def _subscriber(label: str = "Home") -> dict:
    return {
        "email": "parent@example.org",
        "confirmed": True,
        "addresses": [
            {
                "label": label,
                "street": "1 Market St",
                "city": "St. Louis",
                "state": "MO",
                "zip": "63101",
                "radius": "1mi",
                "lat": ST_LOUIS[0],
                "lon": ST_LOUIS[1],
            }
        ],
        "offenders": [],
    }


def test_a_restarted_worker_keeps_circles_and_offender_state(system) -> None:
    system.run("subscribers", "import", str(system.write_jsonl("s.jsonl", [_subscriber()])))
    inside = offset(ST_LOUIS, 500)
    system.run(
        "registry",
        "publish",
        "--baseline",
        str(
            system.write_jsonl(
                "b.jsonl",
                [
                    event(
                        "OFF-1", 1, profile("Abbott", "Ray"), home("1 Near St", "St. Louis", "63101", inside)
                    ),
                ],
            )
        ),
    )
    first = system.start_worker()
    system.wait_until("select count(*) from offenders", lambda n: n == 1)
    deadline = time.monotonic() + 30
    while "tracked circles indexed" not in system.worker_log() and time.monotonic() < deadline:
        time.sleep(0.2)
    system.stop_worker(first)

    system.start_worker()  # no resync: everything must come back from the changelogs
    system.run(
        "registry",
        "publish",
        str(
            system.write_jsonl(
                "c.jsonl",
                [
                    # Same revision again under a new id: stale only if the state was recovered.
                    event(
                        "OFF-1",
                        1,
                        profile("Abbott", "Ray"),
                        home("1 Near St", "St. Louis", "63101", inside),
                        event_id="again",
                    ),
                    event(
                        "OFF-1", 2, profile("Abbott", "Ray"), home("1 Near St", "St. Louis", "63101", inside)
                    ),
                    # First sight inside the circle: found only if the circle was recovered.
                    event(
                        "OFF-2",
                        1,
                        profile("Baker", "Bo"),
                        home("2 Near St", "St. Louis", "63101", offset(ST_LOUIS, 700)),
                    ),
                ],
            )
        ),
    )
    system.wait_until("select count(*) from pending_alerts where offender_id = 'OFF-2'", lambda n: n == 1)
    system.wait_until("select revision from offenders where offender_id = 'OFF-1'", lambda r: r == 2)
    assert system.wait_until("select count(*) from pending_alerts", lambda n: True) == 1


def _up(env: dict, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streams.entrypoints.cli", "up", *(["--demo"] if env.get("_DEMO") else [])],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_up_demo_mails_digests_and_a_second_up_resyncs_a_fresh_broker(system, tmp_path) -> None:
    env = {k: v for k, v in system.env.items() if k != "SOR_BROKER_URL"}
    env["SOR_EMBEDDED_BROKER_PORT"] = str(free_port())
    log = open(tmp_path / "up.log", "wb")
    up = _up(env | {"_DEMO": "1"}, log)
    try:
        messages = system.catcher.wait_for(2, timeout=120)
        assert sorted(rcpt for _, (rcpt,) in system.catcher.envelopes) == [
            "commuter@example.com",
            "parent@example.com",
        ], (tmp_path / "up.log").read_text()[-3000:]
        parent = next(m for m in messages if m["To"] == "parent@example.com")
        text = parent.get_body(preferencelist=("plain",)).get_content()
        assert "Richard Doe" in text and "Dennis Coe" in text and "Walter Poe" in text
        assert "Young" not in text and "Martin Loe" not in text
    finally:
        _stop(up)
    assert not (tmp_path / "data" / "broker.addr").exists()

    # The embedded broker kept nothing; the next `up` must resync from the database.
    up = _up(env, log)
    try:
        # Publish once the restarted worker has restored its tables: the watch and the
        # circle can only have come from resync, since the new broker started empty.
        # Restored means: the parent's circles indexed (by the rebuild or one by one as the
        # resync's messages arrive) and the watch of MO-DEMO-0003 recorded.
        engine = make_engine(env["SOR_DATABASE_URL"])
        tracked = len(list(subscriber_store.active_circles(engine)))  # what resync sends
        engine.dispose()
        deadline, restored, second_run = time.monotonic() + 90, False, ""
        while time.monotonic() < deadline and not restored:
            second_run = "".join((tmp_path / "up.log").read_text().split("sor-notify is up")[2:])
            rebuilt = [int(n) for n in re.findall(r'"circles": (\d+), "partitions"', second_run)]
            one_by_one = {cid for _, cid in indexed_copies(second_run)}
            watch = re.search(
                r'"offender watch recorded"[^}]*MO-DEMO-0003|MO-DEMO-0003[^}]*"offender watch recorded"',
                second_run,
            )
            restored = max([len(one_by_one), *rebuilt]) >= tracked and watch is not None
            time.sleep(0.2)
        if not restored:  # what each partition holds and what the worker's group read of it
            status = subprocess.run(
                [sys.executable, "-m", "streams.entrypoints.cli", "status"],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
            )
            raise AssertionError(second_run[-3000:] + "\n" + status.stdout + status.stderr[-2000:])
        moved = [
            event(
                "MO-DEMO-0003",
                3,
                profile("Poe", "Walter"),
                home("9 Elm St", "Columbia", "65201", (38.9440, -92.3260)),
            )
        ]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "streams.entrypoints.cli",
                "registry",
                "publish",
                str(system.write_jsonl("later.jsonl", moved)),
            ],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        # Revision 3 of a watched offender now inside the parent's Columbia circle:
        # both the watch (offender_to_watchers) and the circle come from the resync.
        system.env["SOR_DATABASE_URL"] = env["SOR_DATABASE_URL"]
        system.wait_until(
            "select count(*) from pending_alerts where offender_id = 'MO-DEMO-0003' and digest_id is null",
            lambda n: n == 2,
            timeout=90,
        )
    finally:
        _stop(up)
