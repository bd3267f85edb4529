"""The broker loses everything, the database goes away for a while: nothing is lost either way."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

import pytest
from sqlalchemy import create_engine, text

from streams.adapters.db import make_engine
from tests.conftest import database_urls
from tests.counts import report
from tests.e2e.conftest import REPO
from tests.faults.oracle import (
    alert_difference,
    check_import_numbering,
    digest_run,
    mail_check,
    recorded_alerts,
    reference_day,
    wait_for_alerts,
    wait_for_circles,
    workload,
)


def _publish(system, name: str, docs: list[dict], *, baseline: bool = False) -> subprocess.Popen:
    args = ["registry", "publish", *(["--baseline"] if baseline else []), str(system.write_jsonl(name, docs))]
    return subprocess.Popen(
        [sys.executable, "-m", "streams.entrypoints.cli", *args],
        env=system.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _start(system, subscribers: list[dict], baseline: list[dict], offenders: int) -> None:
    system.env["SOR_PARTITIONS"] = "4"
    system.run("subscribers", "import", str(system.write_jsonl("s.jsonl", subscribers)))
    assert _publish(system, "b.jsonl", baseline, baseline=True).wait(120) == 0
    system.start_worker()
    system.start_worker()
    system.wait_until("select count(*) from offenders", lambda n: n == offenders, timeout=180)


def test_a_broker_that_lost_everything_is_restored_by_resync(system, broker) -> None:
    """The embedded broker keeps nothing: it dies mid-wave, comes back empty, and `resync` plus
    the registry sending the unconfirmed wave again give every subscriber exactly their alerts."""
    rng = random.Random(11)
    subscribers, baseline, waves = workload(rng, 30, 150, 3)
    _start(system, subscribers, baseline, 150)
    engine = make_engine(system.env["SOR_DATABASE_URL"])
    check_import_numbering(engine, subscribers)
    ref = reference_day(subscribers, baseline, waves)
    want, expected = ref.digests(), ref.alerts()
    wave0 = reference_day(subscribers, baseline, waves[:1]).alerts()
    wait_for_circles(system, subscribers)

    # The broker dies in the middle of the first wave: its first half matched and stored, the
    # second half sent but not yet read (the workers frozen meanwhile). Whatever the broker
    # held is gone.
    half = len(waves[0]) // 2
    first_half = reference_day(subscribers, baseline, [waves[0][:half]]).alerts()
    assert _publish(system, "w0a.jsonl", waves[0][:half]).wait(120) == 0
    assert wait_for_alerts(system, engine, first_half) == first_half
    live = [w for w in system.workers if w.poll() is None]
    for w in live:
        w.send_signal(signal.SIGSTOP)
    assert _publish(system, "w0b.jsonl", waves[0][half:]).wait(120) == 0
    broker.stop()
    for w in live:  # they were talking to a broker that no longer exists
        system.stopped.add(w.pid)
        w.send_signal(signal.SIGKILL)
        w.wait(30)
    before = recorded_alerts(engine).total()
    broker.start()

    # The operator's recovery: resync from the database, start the workers; the registry
    # sends again what it cannot know was processed.
    system.run("resync")
    system.start_worker()
    system.start_worker()
    for w, wave in enumerate(waves):
        assert _publish(system, f"again{w}.jsonl", wave).wait(120) == 0
    system.wait_until(
        f"select count(*) from offenders where revision = {len(waves) + 1}", lambda n: n == 150, timeout=300
    )
    recorded = wait_for_alerts(system, engine, expected)
    engine.dispose()
    assert recorded == expected, alert_difference(expected, recorded)
    digest_run(system)

    check = mail_check(subscribers, want, system.catcher.messages)
    report(
        f"broker lost everything: alerts before the loss={before} of the first wave's {wave0.total()} "
        f"alerts={expected.total()} " + " ".join(f"{k}={v}" for k, v in check.items())
    )
    # The broker died mid-wave: some of the first wave's alerts were stored, not all.
    assert 0 < before < wave0.total()
    assert check["duplicates"] == check["lost"] == check["unexpected"] == check["missing digests"] == 0


@pytest.mark.parametrize("database_url", database_urls()[1:], indirect=True)
def test_the_workers_wait_out_a_database_outage(system) -> None:
    """PostgreSQL refuses every connection for a while in the middle of a wave."""
    rng = random.Random(12)
    subscribers, baseline, waves = workload(rng, 20, 80, 2)
    _start(system, subscribers, baseline, 80)
    engine = make_engine(system.env["SOR_DATABASE_URL"])
    check_import_numbering(engine, subscribers)
    ref = reference_day(subscribers, baseline, waves)
    want, expected = ref.digests(), ref.alerts()
    wait_for_circles(system, subscribers)
    engine.dispose()

    url = urlparse(system.env["SOR_DATABASE_URL"].replace("postgresql+psycopg", "postgresql"))
    dbname = url.path.lstrip("/")
    admin = create_engine(
        system.env["SOR_DATABASE_URL"].rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
    )

    def outage(seconds: float) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'alter database "{dbname}" allow_connections false'))
            conn.execute(
                text(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = :db and pid <> pg_backend_pid()"
                ),
                {"db": dbname},
            )
            time.sleep(seconds)
            conn.execute(text(f'alter database "{dbname}" allow_connections true'))

    down = threading.Thread(target=outage, args=(8.0,))
    try:
        publisher = _publish(system, "w0.jsonl", waves[0])
        time.sleep(0.5)
        down.start()
        assert publisher.wait(120) == 0
        assert _publish(system, "w1.jsonl", waves[1]).wait(120) == 0
        down.join()
    finally:
        down.join()
        with admin.connect() as conn:
            conn.execute(text(f'alter database "{dbname}" allow_connections true'))
        admin.dispose()

    engine = make_engine(system.env["SOR_DATABASE_URL"])
    system.wait_until(
        f"select count(*) from offenders where revision = {len(waves) + 1}", lambda n: n == 80, timeout=300
    )
    recorded = wait_for_alerts(system, engine, expected)
    engine.dispose()
    assert "database unreachable, retrying" in system.worker_log()  # the outage was felt
    assert recorded == expected, alert_difference(expected, recorded)
    assert all(w.poll() is None for w in system.workers)  # and nobody died of it
    digest_run(system)
    check = mail_check(subscribers, want, system.catcher.messages)
    report("database outage: " + " ".join(f"{k}={v}" for k, v in check.items()))
    assert check["duplicates"] == check["lost"] == check["unexpected"] == check["missing digests"] == 0
