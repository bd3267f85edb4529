"""End to end through the broker: registry event published -> alert committed in a pending digest.

    .venv/bin/python -m bench.pipeline_latency                # PostgreSQL database `bench`
    .venv/bin/python -m bench.pipeline_latency --db sqlite    # SQLite in a temporary folder

Starts the embedded broker and ONE `sor-notify worker` process, loads a seeded workload
(bench.workload circles as subscribers' tracked addresses, written to the database, then
`sor-notify resync`; offenders by `sor-notify registry publish --baseline`), and sends
registry events that each move one offender to a new home address: a "moved out" for every
circle around the old home, a "moved in" for every circle around the new one, a watch alert
for everyone tracking the offender. Per run:

- burst: events published as fast as the producer goes; alert pairs committed per second
  from the first send to the last commit is the worker's maximum;
- steady at --rate (1,000/s): each event timed from its scheduled slot to the commit of the
  transaction that stored each of its alerts. Publishing stops early, and the run is marked
  not sustained, once the work waiting exceeds --max-backlog seconds of the burst rate;
- when the target was not sustained, steady again at --sustainable-share of the burst rate.

A probe in the worker process (bench.pipeline_common, `worker`) wraps `repository.record_alerts`
to note when each batch is committed, and times the waits for the broker's acks and each
database call; it changes nothing else. The expected alerts of every event come from the
tests' reference model (tests/reference_model.py: brute-force geodesic distance, none of the
pipeline's index or matching code), so lost or duplicated alerts show.
Repeated --runs times; medians reported. `--profile` samples the worker with py-spy in one
more burst; --fetch-wait-ms and --batched-producer are experiments (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bench import workload
from bench.pipeline_common import (
    REPO,
    base_env,
    bench_database,
    city_name,
    cpu_seconds,
    create_tables,
    describe_database,
    free_port,
    load_now,
    load_subscribers,
    machine,
    median,
    offender_id,
    percentile,
    pick_watches,
    print_profile,
    print_table,
    reference_places,
    reference_watchers,
    registry_event,
    start_py_spy,
    stop_processes,
    stop_py_spy,
    summarize_collapsed,
    worker_command,
    write_json,
)

TOPIC = "registry-events"


def read_new_lines(path: Path, pos: int) -> tuple[list[str], int]:
    """The complete lines written to `path` after byte `pos`, and the position after them."""
    if not path.exists():
        return [], pos
    with open(path, "rb") as f:
        f.seek(pos)
        chunk = f.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    return complete.decode().splitlines(), pos + len(complete)


class Probe:
    """Reads the worker's probe file: one line per committed batch of alerts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0

    def poll(self) -> list[dict[str, Any]]:
        lines, self.pos = read_new_lines(self.path, self.pos)
        return [json.loads(line) for line in lines if line]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="sor-bench-latency-"))
        self.procs: list[subprocess.Popen[Any]] = []
        self.broker: Any = None
        self.seq = 0  # events drawn so far (offender, revision and point follow from it)
        self.revisions: dict[str, int] = {}
        self.stages_pos = 0

    # --- set-up -------------------------------------------------------------------------

    def setup(self) -> dict[str, Any]:
        from sqlalchemy import func, select

        from streams.adapters.broker import EmbeddedBroker
        from streams.adapters.db import offenders

        a = self.args
        t_setup = time.monotonic()
        timings: dict[str, float] = {}
        self.db_url = bench_database(a.db, self.tmp)
        engine = create_tables(self.db_url)
        cs = workload.circles(a.circles, a.seed)
        self.offenders = [offender_id(i) for i in range(a.offenders)]
        watches = pick_watches(sorted(set(cs.subscriber_id.tolist())), self.offenders, a.watch_share, a.seed)
        n_subs, n_circles = load_subscribers(engine, cs, watches)
        timings["database"] = time.monotonic() - t_setup
        from tests.reference_model import Places

        # What each event must give comes from the reference model, apart from the pipeline.
        self.places, self.watchers = Places(reference_places(cs)), reference_watchers(watches)
        self.last_sent: dict[str, dict[str, Any]] = {}  # offender -> the last event the worker got
        # One point per event: the baseline, then every event of every phase.
        per_phase = int(a.rate * a.duration)
        need = a.offenders + a.runs * (2 * per_phase + a.burst) + a.warmup + a.burst + 10  # at most
        self.points = workload.events(need, a.seed)

        self.broker = EmbeddedBroker(free_port(), self.tmp / "broker.log")
        self.broker.start()
        self.metrics_port = free_port()
        self.env = base_env(
            SOR_BROKER_URL=self.broker.bootstrap,
            SOR_DATABASE_URL=self.db_url,
            SOR_DATA_DIR=str(self.tmp / "data"),
            SOR_PARTITIONS=str(a.partitions),
            SOR_WORKER_WEB="true",
            SOR_WORKER_WEB_PORT=str(self.metrics_port),
            SOR_LOG_FORMAT="json",
            SOR_LOG_LEVEL=a.log_level,
            SOR_SINGLE_RECORD_BATCHES="true",  # the embedded broker needs it (README)
            # As `up` on its embedded broker (which holds a first join for half of it).
            SOR_SESSION_TIMEOUT_S="10",
            SOR_SECRET_KEY="bench-secret-key-that-is-long-enough-0123456789",
            SOR_MAP_TILES_URL="",
        )
        t = time.monotonic()
        self.cli("resync")
        timings["resync"] = time.monotonic() - t
        baseline = [self.next_event(baseline=True) for _ in range(a.offenders)]
        for doc in baseline:
            self.expected_alerts(doc)  # none: only notes the event
        path = self.tmp / "baseline.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in baseline))
        t = time.monotonic()
        self.cli("registry", "publish", "--baseline", str(path))
        timings["baseline_publish"] = time.monotonic() - t
        t = time.monotonic()

        self.probe = Probe(self.tmp / "probe.jsonl")
        log = open(self.tmp / "worker.log", "wb")
        worker_env = dict(self.env)
        if a.batched_producer:
            # As against Apache Kafka: the worker's producer batches records. Tables are only
            # recovered at this worker's start, from changelogs written one record per batch.
            worker_env["SOR_SINGLE_RECORD_BATCHES"] = "false"
        if a.fetch_wait_ms:
            worker_env["SOR_BENCH_FETCH_WAIT_MS"] = str(a.fetch_wait_ms)
        self.worker = subprocess.Popen(
            worker_command(self.probe.path), env=worker_env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs.append(self.worker)
        deadline = time.monotonic() + a.setup_timeout
        while True:
            m = self.metrics()
            stored = 0
            with engine.connect() as conn:
                stored = conn.execute(select(func.count()).select_from(offenders)).scalar_one()
            if (
                m.get("sor_circles_held") == n_circles
                and m.get("sor_offenders_held") == a.offenders
                and stored == a.offenders
            ):
                break
            if self.worker.poll() is not None:
                raise SystemExit("the worker died:\n" + (self.tmp / "worker.log").read_text()[-3000:])
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker was not ready in {a.setup_timeout}s: {m} stored={stored}")
            time.sleep(1.0)
        engine.dispose()
        timings["worker_ready"] = time.monotonic() - t
        # Holding every circle is not yet idle: the index takes a circle from its first cell's
        # copy, and the copies for its other cells (~10 per circle here) are still queued on
        # tracked-circles. Measured before that backlog is read, a burst times the backlog
        # (at 100k circles, minutes of it). Wait until the worker has read every topic.
        t = time.monotonic()
        while self.total_lag() != 0:
            if self.worker.poll() is not None:
                raise SystemExit("the worker died:\n" + (self.tmp / "worker.log").read_text()[-3000:])
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker had not read its topics in {a.setup_timeout}s")
            time.sleep(2.0)
        timings["backlog_read"] = time.monotonic() - t
        timings["ready_after_resync"] = timings["worker_ready"] + timings["backlog_read"] + timings["resync"]
        return {
            "worker_rss_mb": rss_mb(self.worker.pid),
            "subscribers": n_subs,
            "circles": n_circles,
            "offenders": a.offenders,
            "watches": sum(len(v) for v in watches.values()),
            "setup_s": {k: round(v, 1) for k, v in timings.items()}
            | {"total": round(time.monotonic() - t_setup, 1)},
        }

    def import_subscribers(self, n: int) -> dict[str, Any]:
        """`sor-notify subscribers import` of n new subscribers (workload seed + 1, given
        coordinates: no geocoding) into the running system; timed from the command's start
        until the worker holds every circle, old and new, and has read every topic."""
        lines, new_circles = workload.import_lines(n, self.args.seed + 1)
        path = self.tmp / "import.jsonl"
        path.write_text("\n".join(lines) + "\n")
        held_before = self.metrics().get("sor_circles_held", 0)
        t = time.monotonic()
        self.cli("subscribers", "import", str(path))
        command_s = time.monotonic() - t
        deadline = t + self.args.setup_timeout
        while self.metrics().get("sor_circles_held", 0) < held_before + new_circles:
            if time.monotonic() > deadline:
                raise SystemExit(f"the imported circles were not all indexed in {self.args.setup_timeout}s")
            time.sleep(0.5)
        indexed_s = time.monotonic() - t
        while self.total_lag() != 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker had not read its topics in {self.args.setup_timeout}s")
            time.sleep(1.0)
        return {
            "subscribers": n,
            "circles": new_circles,
            "command_s": round(command_s, 1),
            "indexed_s": round(indexed_s, 1),
            "topics_read_s": round(time.monotonic() - t, 1),
            "worker_rss_mb": rss_mb(self.worker.pid),
        }

    def total_lag(self) -> int | None:
        """`sor-notify status --json`'s total lag: messages not yet read by the worker."""
        proc = subprocess.run(
            [sys.executable, "-m", "streams.entrypoints.cli", "status", "--json"],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout).get("total_lag")

    def cli(self, *args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "streams.entrypoints.cli", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise SystemExit(f"sor-notify {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")

    def metrics(self) -> dict[str, float]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
                text = r.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name, _, value = line.rpartition(" ")
            base = name.split("{", 1)[0]
            if base in {"sor_circles_held", "sor_offenders_held"}:
                out[base] = int(float(value))
            elif base == "sor_consumer_lag":
                out["lag"] = out.get("lag", 0) + float(value)
        return out

    def next_event(self, *, baseline: bool = False) -> dict[str, Any]:
        j = self.seq
        self.seq += 1
        oid = self.offenders[j % len(self.offenders)]
        rev = self.revisions.get(oid, 0) + 1
        self.revisions[oid] = rev
        p = self.points
        return registry_event(
            oid, rev, j, float(p.lat[j]), float(p.lon[j]), city_name(int(p.city[j])), baseline=baseline
        )

    # --- one phase ----------------------------------------------------------------------

    def expected_alerts(self, doc: dict[str, Any]) -> int:
        """How many alerts the pipeline must record for this event: the reference model's
        answer for it over the offender's last event sent (every one newer: no stale, no repeat)."""
        from tests.reference_model import event_alerts

        oid = doc["offender_id"]
        made = event_alerts(self.places, self.watchers, self.last_sent.get(oid), doc)
        self.last_sent[oid] = doc
        return len(made)

    def stats(self) -> dict[str, list[float]]:
        try:
            return json.loads(self.probe.path.with_name(self.probe.path.name + ".stats").read_text())
        except (OSError, ValueError):
            return {}

    def phase(
        self,
        name: str,
        n_events: int,
        rate: float | None,
        *,
        max_backlog_s: float | None = None,
        profile: Path | None = None,
    ) -> dict[str, Any]:
        docs = [self.next_event() for _ in range(n_events)]
        before, expected = [], {}
        for d in docs:
            before.append(self.last_sent.get(d["offender_id"]))
            expected[d["event_id"]] = self.expected_alerts(d)
        items = [
            (d["offender_id"].encode(), json.dumps(d, separators=(",", ":")).encode(), d["event_id"])
            for d in docs
        ]
        self.probe.poll()  # skip what earlier phases left
        spy = start_py_spy(self.worker.pid, profile) if profile else None
        cpu0, bcpu0 = cpu_seconds(self.worker.pid), cpu_seconds(self.broker.process.pid)
        stats0 = self.stats()
        load0 = load_now()
        state = {"recorded": {}, "committed": 0, "lat": [], "done": {}, "first": None, "last": None}

        def take(batches: list[dict[str, Any]], sched: dict[str, float]) -> None:
            for b in batches:
                mine = {e: c for e, c in b["events"].items() if e in expected}
                if not mine:
                    continue
                state["first"] = b["t"] if state["first"] is None else state["first"]
                state["last"] = b["t"]
                for e, c in mine.items():
                    state["recorded"][e] = state["recorded"].get(e, 0) + c
                    state["committed"] += c
                    state["lat"].append(np.full(c, b["t"] - sched[e]))
                    state["done"][e] = b["t"]

        sched: dict[str, float] = {}

        def progress() -> int:
            take(self.probe.poll(), sched)
            return state["committed"]

        publish_lag, aborted = asyncio.run(
            self.publish(items, rate, sched, expected, progress, max_backlog_s)
        )
        published = len(sched)
        # Events never sent did not move anyone: back to the last event sent.
        for d, prior in reversed(list(zip(docs[published:], before[published:]))):
            if prior is None:
                self.last_sent.pop(d["offender_id"], None)
            else:
                self.last_sent[d["offender_id"]] = prior
        want = sum(expected[e] for e in sched)
        deadline = time.monotonic() + self.args.drain_timeout
        while state["committed"] < want and time.monotonic() < deadline:
            take(self.probe.poll(), sched)
            time.sleep(0.05)
        stop_py_spy(spy)
        stage_ms = self.stage_latencies(sched, state["done"])
        if state["committed"] < want:
            status = subprocess.run(
                [sys.executable, "-m", "streams.entrypoints.cli", "status"],
                env=self.env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=120,
            )
            print(
                f"{name}: {want - state['committed']} alerts not committed after "
                f"{self.args.drain_timeout}s; `sor-notify status`:\n{status.stdout}",
                file=sys.stderr,
            )
        cpu1, bcpu1 = cpu_seconds(self.worker.pid), cpu_seconds(self.broker.process.pid)
        stats1 = self.stats()
        lat = np.concatenate(state["lat"]) * 1000 if state["lat"] else np.zeros(0)
        done = state["done"]
        per_event = np.array([done[e] - sched[e] for e in done]) * 1000
        start = min(sched.values())
        span = (state["last"] or start) - start
        recorded = state["recorded"]
        missing = [e for e in sched if recorded.get(e, 0) != expected[e]]
        committed = state["committed"]
        # Where the agents' time went: wall time per event in broker acks and database calls.
        breakdown = {}
        for k, (n1, t1) in stats1.items():
            n0, t0 = stats0.get(k, [0, 0.0])
            if n1 > n0:
                breakdown[k] = {
                    "calls": int(n1 - n0),
                    "ms_per_call": round(1000 * (t1 - t0) / (n1 - n0), 2),
                    "ms_per_event": round(1000 * (t1 - t0) / max(1, published), 2),
                }
        return {
            "phase": name,
            "events": published,
            "aborted": aborted,
            "rate_target": rate,
            "alerts_expected": want,
            "alerts_committed": committed,
            "events_incomplete": len(missing),
            "fanout_per_event": round(want / max(1, published), 1),
            "span_s": round(span, 2),
            "events_per_s": round(published / span, 1) if span else float("nan"),
            "alerts_per_s": round(committed / span, 1) if span else float("nan"),
            "p50_ms": round(percentile(lat.tolist(), 50), 1),
            "p99_ms": round(percentile(lat.tolist(), 99), 1),
            "max_ms": round(float(lat.max()), 1) if lat.size else float("nan"),
            "event_p99_ms": round(percentile(per_event.tolist(), 99), 1),
            "publisher_lag_max_ms": round(publish_lag * 1000, 1),
            "worker_cpu_s": round(cpu1 - cpu0, 1),
            "worker_cpu_pct": round(100 * (cpu1 - cpu0) / span, 0) if span else float("nan"),
            "broker_cpu_s": round(bcpu1 - bcpu0, 1),
            "load_1m": load0,
            "wall_breakdown": breakdown,
            "stages_ms": stage_ms,
        }

    def stage_latencies(self, sched: dict[str, float], done: dict[str, float]) -> dict[str, Any]:
        """p50/p99 of each leg, per event: scheduled -> its address changes sent (applied),
        -> the last of its alerts sent (matched), -> the last of its alerts committed."""
        applied: dict[str, float] = {}
        matched: dict[str, float] = {}
        path = self.probe.path.with_name(self.probe.path.name + ".stages")
        lines, self.stages_pos = read_new_lines(path, self.stages_pos)
        for line in lines:
            caller, eid, t = line.split(" ")
            if eid not in sched:
                continue
            if caller == "_apply_one":
                applied[eid] = float(t)
            elif caller == "match_address_change":
                matched[eid] = max(matched.get(eid, 0.0), float(t))
        legs = {
            "publish_to_applied": [applied[e] - sched[e] for e in applied],
            "applied_to_matched": [matched[e] - applied[e] for e in matched if e in applied],
            "matched_to_committed": [done[e] - matched[e] for e in done if e in matched],
        }
        return {
            k: {"p50": round(1000 * percentile(v, 50), 1), "p99": round(1000 * percentile(v, 99), 1)}
            for k, v in legs.items()
            if v
        }

    async def publish(
        self,
        items: list[tuple[bytes, bytes, str]],
        rate: float | None,
        sched: dict[str, float],
        expected: dict[str, int],
        progress: Any,
        max_backlog_s: float | None,
    ) -> tuple[float, bool]:
        """Send at `rate` per second (None: as fast as it goes); each event's time is its slot.

        With `max_backlog_s`, publishing stops early once the alerts not yet committed exceed
        that many seconds of the target rate: the worker is not keeping up, and a longer run
        only makes the backlog (and the time to drain it) grow.
        """
        from aiokafka import AIOKafkaProducer

        # As the project's own producers do against the embedded broker: one record per batch.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.broker.bootstrap,
            acks="all",
            linger_ms=0,
            enable_idempotence=False,
            max_batch_size=1,
        )
        await producer.start()
        lag = 0.0
        aborted = False
        sent_alerts = 0
        per_s = sum(expected.values()) / len(items) * rate if rate else 0.0
        next_check = time.monotonic() + 0.25
        try:
            futures = []
            t0 = time.time() + 0.05
            for i, (key, value, eid) in enumerate(items):
                if rate:
                    slot = t0 + i / rate
                    wait = slot - time.time()
                    if wait > 0.002:
                        await asyncio.sleep(wait)
                    lag = max(lag, time.time() - slot)
                else:
                    slot = time.time()
                sched[eid] = slot
                sent_alerts += expected[eid]
                futures.append(await producer.send(TOPIC, value=value, key=key))
                if max_backlog_s and time.monotonic() > next_check:
                    next_check = time.monotonic() + 0.25
                    if per_s and sent_alerts - progress() > max_backlog_s * per_s:
                        aborted = True
                        break
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return lag, aborted

    def close(self) -> None:
        stop_processes(self.procs)
        if self.broker is not None:
            self.broker.stop()
        if self.args.keep:
            print(f"kept: {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and its children (the probe runs the worker in-process)."""
    try:
        out = subprocess.run(
            ["ps", "-o", "rss=", "--ppid", str(pid), "-p", str(pid)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return round(sum(int(x) for x in out.split()) / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline_latency", description=__doc__.split("\n")[0])
    p.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    p.add_argument("--circles", type=int, default=5_000, help="tracked circles (bench.workload)")
    p.add_argument("--offenders", type=int, default=2_000)
    p.add_argument("--watch-share", type=float, default=0.1, help="share of subscribers tracking offenders")
    p.add_argument("--rate", type=float, default=1000.0, help="steady events per second")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of steady publishing per run")
    p.add_argument("--warmup", type=int, default=200, help="events sent before measuring (sizes the bursts)")
    p.add_argument(
        "--burst", type=int, default=5_000, help="at most this many events per burst (the maximum throughput)"
    )
    p.add_argument(
        "--burst-seconds",
        type=float,
        default=15.0,
        help="size bursts to last about this long at the warm-up's rate",
    )
    p.add_argument(
        "--max-backlog",
        type=float,
        default=5.0,
        help="stop a steady phase once this many seconds of work are waiting (not sustained)",
    )
    p.add_argument(
        "--sustainable-share",
        type=float,
        default=0.7,
        help="when the target rate is not sustained, also run at this share of the burst rate",
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument(
        "--batched-producer",
        action="store_true",
        help="the worker's producer batches records (SOR_SINGLE_RECORD_BATCHES=false, as on Apache "
        "Kafka): what the embedded broker's one-record-per-batch workaround costs",
    )
    p.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=0,
        help="experiment: the worker's consumers wait at most this long for records (faust asks 1500)",
    )
    p.add_argument("--log-level", default="info", help="the worker's SOR_LOG_LEVEL (production: info)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tag", default="", help="suffix of the results file name")
    p.add_argument(
        "--profile", action="store_true", help="py-spy the worker in one extra burst (not in the figures)"
    )
    p.add_argument("--setup-timeout", type=float, default=180.0)
    p.add_argument("--drain-timeout", type=float, default=60.0)
    p.add_argument(
        "--json", help="write every figure here (default: bench/results/pipeline_latency[-TAG].json)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, probe)")
    p.add_argument(
        "--setup-only",
        action="store_true",
        help="measure the start only: resync, worker ready, topics read, worker memory",
    )
    p.add_argument(
        "--import-subscribers",
        type=int,
        default=0,
        help="with --setup-only: then `subscribers import` this many new subscribers into the "
        "running system and time it until the worker holds every circle and has read its topics",
    )
    args = p.parse_args(argv)

    bench = Bench(args)
    started = machine()
    results: list[dict[str, Any]] = []
    profile = None
    try:
        setup = bench.setup()
        print(f"database: {describe_database(bench.db_url)}; workload: {json.dumps(setup)}", flush=True)
        if args.setup_only:
            if args.import_subscribers:
                setup["import"] = bench.import_subscribers(args.import_subscribers)
                print(f"import: {json.dumps(setup['import'])}", flush=True)
            saved = write_json(
                args.json,
                {
                    "machine_at_start": started,
                    "load_at_end": load_now(),
                    "args": vars(args),
                    "setup": setup,
                },
                "pipeline_start" + (f"-{args.tag}" if args.tag else ""),
            )
            print(f"figures written to {saved}")
            return 0
        warm = bench.phase("warm-up", args.warmup, None)
        # A burst long enough to measure, short enough to keep the run bounded on a slow machine.
        burst_events = max(200, min(args.burst, int(args.burst_seconds * warm["events_per_s"])))
        for r in range(1, args.runs + 1):
            burst = bench.phase(f"burst {r}", burst_events, None)
            results.append(burst)
            print(json.dumps(burst), flush=True)
            # Stop feeding a worker that cannot keep up once the backlog is worth
            # --max-backlog seconds of its burst throughput: bounded drain, bounded run.
            backlog_s = (
                args.max_backlog * burst["alerts_per_s"] / max(1.0, args.rate * burst["fanout_per_event"])
            )
            target = bench.phase(
                f"steady {r} @{args.rate:g}/s",
                int(args.rate * args.duration),
                args.rate,
                max_backlog_s=backlog_s,
            )
            target["sustained"] = not target["aborted"] and target["events_incomplete"] == 0
            results.append(target)
            print(json.dumps(target), flush=True)
            if not target["sustained"]:
                rate = max(1.0, float(int(args.sustainable_share * burst["events_per_s"])))
                below = bench.phase(
                    f"steady {r} @{rate:g}/s", int(rate * args.duration), rate, max_backlog_s=args.max_backlog
                )
                below["sustained"] = not below["aborted"] and below["events_incomplete"] == 0
                results.append(below)
                print(json.dumps(below), flush=True)
        if args.profile:
            out = bench.tmp / "burst.collapsed"
            bench.phase("profiled burst", burst_events, None, profile=out)
            profile = summarize_collapsed(
                out, focus=("streams/", "faust/", "aiokafka/", "sqlalchemy/", "structlog/")
            )
    finally:
        bench.close()

    bursts = [x for x in results if x["phase"].startswith("burst")]
    targets = [x for x in results if x["phase"].startswith("steady") and x["rate_target"] == args.rate]
    belows = [x for x in results if x["phase"].startswith("steady") and x["rate_target"] != args.rate]
    cols = [
        "phase",
        "events",
        "fanout_per_event",
        "alerts_committed",
        "events_incomplete",
        "events_per_s",
        "alerts_per_s",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "worker_cpu_pct",
        "load_1m",
    ]
    print()
    print_table(cols, [[x[c] for c in cols] for x in results])
    summary: dict[str, Any] = {
        "burst_alerts_per_s": median(x["alerts_per_s"] for x in bursts),
        "burst_events_per_s": median(x["events_per_s"] for x in bursts),
        "target_rate": args.rate,
        "target_sustained_runs": sum(1 for x in targets if x["sustained"]),
        "target_events_per_s": median(x["events_per_s"] for x in targets),
        "target_p50_ms": median(x["p50_ms"] for x in targets),
        "target_p99_ms": median(x["p99_ms"] for x in targets),
        "target_max_ms": median(x["max_ms"] for x in targets),
    }
    if belows:
        summary |= {
            "sustainable_rate": median(x["rate_target"] for x in belows),
            "sustainable_p50_ms": median(x["p50_ms"] for x in belows),
            "sustainable_p99_ms": median(x["p99_ms"] for x in belows),
            "sustainable_max_ms": median(x["max_ms"] for x in belows),
            "sustainable_alerts_per_s": median(x["alerts_per_s"] for x in belows),
        }
    breakdown: dict[str, list[float]] = {}
    for x in bursts:
        for k, v in x["wall_breakdown"].items():
            breakdown.setdefault(k, []).append(v["ms_per_call"])
    summary["burst_wall_ms_per_call"] = {k: median(v) for k, v in sorted(breakdown.items())}
    print(f"\nmedian of {args.runs} runs, one worker, {describe_database(bench.db_url)}:")
    for k, v in summary.items():
        print(f"  {k:26} {v}")
    if profile:
        print_profile("worker profile (py-spy, burst)", profile)
    saved = write_json(
        args.json,
        {
            "machine_at_start": started,
            "load_at_end": load_now(),
            "args": vars(args),
            "setup": setup,
            "results": results,
            "summary": summary,
            "profile": profile,
        },
        "pipeline_latency" + (f"-{args.tag}" if args.tag else ""),
    )
    print(f"figures written to {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
