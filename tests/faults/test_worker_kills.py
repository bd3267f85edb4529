"""Workers killed with SIGKILL again and again: every alert still reaches its digest, once.

A registry day of several thousand events with heavy fan-out is published in waves while
workers are killed at random moments (mid-batch, and again while the group is still
rebalancing after the previous kill) and replaced. Then the digest run itself is killed
and re-run. The e-mails a real SMTP server received are compared with what an in-process
reference model (tests/reference_model.py, apart from the pipeline's rules) says each
subscriber must read.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from streams.adapters.db import make_engine
from tests.counts import report
from tests.e2e.conftest import REPO
from tests.faults.oracle import (
    alert_difference,
    check_import_numbering,
    digest_ids,
    digest_run,
    mail_check,
    reference_day,
    wait_for_alerts,
    wait_for_circles,
    workload,
)

SUBSCRIBERS = int(os.environ.get("SOR_FAULT_SUBSCRIBERS", "50"))
OFFENDERS = int(os.environ.get("SOR_FAULT_OFFENDERS", "400"))
WAVES = int(os.environ.get("SOR_FAULT_WAVES", "5"))  # non-baseline revisions per offender
KILLS = int(os.environ.get("SOR_FAULT_KILLS", "10"))
SEED = int(os.environ.get("SOR_FAULT_SEED", "20261122"))


class Killer:
    """Kills workers with SIGKILL at random moments and starts replacements."""

    def __init__(self, system, rng: random.Random) -> None:
        self.system = system
        self.rng = rng
        self.kills = 0

    def live(self) -> list[subprocess.Popen]:
        return [w for w in self.system.workers if w.poll() is None and w.pid not in self.system.stopped]

    def kill_one(self, *, replace: bool = True) -> None:
        victim = self.rng.choice(self.live())
        self.system.stopped.add(victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        self.kills += 1
        if replace:
            self.system.start_worker()

    def rampage(self, budget: int) -> None:
        """Spend `budget` kills at random moments, some of them while the group is rebalancing."""
        done = 0
        while done < budget:
            time.sleep(self.rng.uniform(1.0, 4.0))
            self.kill_one()
            done += 1
            if self.rng.random() < 0.4 and done < budget:
                # Again before the group has settled: the replacement is still joining.
                time.sleep(self.rng.uniform(0.2, 2.0))
                self.kill_one()
                done += 1


def test_sigkilled_workers_lose_and_duplicate_nothing(system) -> None:
    rng = random.Random(SEED)
    subscribers, baseline, waves = workload(rng, SUBSCRIBERS, OFFENDERS, WAVES)
    system.env["SOR_PARTITIONS"] = "6"
    system.env["SOR_SESSION_TIMEOUT_S"] = "6"
    system.run("subscribers", "import", str(system.write_jsonl("s.jsonl", subscribers)))
    engine = make_engine(system.env["SOR_DATABASE_URL"])
    check_import_numbering(engine, subscribers)
    ref = reference_day(subscribers, baseline, waves)
    want, expected_alerts = ref.digests(), ref.alerts()
    expected_lines = sum(len(lines) for lines in want.values())
    events = sum(len(w) for w in waves)
    assert expected_alerts.total() > 10 * events  # heavy fan-out, not a trickle

    system.run("registry", "publish", "--baseline", str(system.write_jsonl("b.jsonl", baseline)))
    system.start_worker()
    system.start_worker()
    system.wait_until("select count(*) from offenders", lambda n: n == OFFENDERS, timeout=300)
    wait_for_circles(system, subscribers)

    killer = Killer(system, rng)
    for w, wave in enumerate(waves):
        publisher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.entrypoints.cli",
                "registry",
                "publish",
                str(system.write_jsonl(f"w{w}.jsonl", wave)),
            ],
            env=system.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        budget = max(1, (KILLS - killer.kills + len(waves) - w - 1) // (len(waves) - w))
        killer.rampage(budget)
        out, _ = publisher.communicate(timeout=300)
        assert publisher.returncode == 0, out
    while len(killer.live()) < 2:
        system.start_worker()

    system.wait_until(
        f"select count(*) from offenders where revision = {WAVES + 1}", lambda n: n == OFFENDERS, timeout=600
    )
    # Every alert recorded (each once: alert ids are the table's key) before the digests go.
    recorded = wait_for_alerts(system, engine, expected_alerts)
    engine.dispose()
    assert recorded == expected_alerts, alert_difference(expected_alerts, recorded)

    # The digest run killed mid-way (between its first and second e-mail), then run again until done.
    mails_at_kill = digest_run(system, kill_between_mails=True)
    digest_run(system)
    digest_run(system)  # nothing left: must send nothing more

    check = mail_check(subscribers, want, system.catcher.messages)
    report(
        f"worker kills: kills={killer.kills} digest-run killed after {mails_at_kill} of {len(want)} e-mails "
        f"events={events} alerts={expected_alerts.total()} recorded={recorded.total()} "
        f"digest lines={expected_lines} " + " ".join(f"{k}={v}" for k, v in check.items())
    )
    assert killer.kills >= KILLS
    assert mails_at_kill is not None and 0 < mails_at_kill < len(want)  # the kill landed mid-send
    assert check["duplicates"] == check["lost"] == check["unexpected"] == check["missing digests"] == 0, (
        check,
        digest_ids(system.catcher.messages),
    )
