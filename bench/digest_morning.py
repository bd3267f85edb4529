"""The morning digest run as an operator meets it: subscribers imported, a day's moves through the
worker, then `sor-notify digest send` timed from the command's start to the first and last mail.

    .venv/bin/python -m bench.digest_morning --subscribers 10000,50000,100000
    .venv/bin/python -m bench.digest_morning --subscribers 10000 --db sqlite
    .venv/bin/python -m bench.digest_morning --subscribers 50000 --checkout /tmp/before --explain

For each size, from nothing: a fresh database and embedded broker, `sor-notify resync` (the
topics), `registry publish --baseline` of the offenders, `sor-notify worker`, `subscribers
import` of that many subscribers (bench.workload, coordinates given: no geocoding), then
`registry publish` of `--moves` offenders moving at once. Once the worker has stored every
alert the reference model (tests/reference_model.py) expects, the worker is stopped and
`sor-notify digest send` runs against an aiosmtpd server on loopback (its own process), which
notes when the first and the last message arrive. Nothing is analyzed or vacuumed by hand in
between: the run meets the tables as the pipeline left them, seconds after a bulk load.

`--checkout DIR` runs every command from another checkout of the project (a "before"), with
this one's bench code. `--explain` (PostgreSQL) logs the plan of every statement of the digest
run that took longer than `--explain-ms`, with auto_explain, and prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import workload
from bench.pipeline_common import (
    REPO,
    SmtpServer,
    base_env,
    bench_database,
    city_name,
    describe_database,
    dkim_key_file,
    free_port,
    load_now,
    machine,
    offender_id,
    print_profile,
    print_table,
    py_spy_available,
    registry_event,
    stop_processes,
    summarize_collapsed,
    write_json,
)

PG_LOG_DIR = Path("/var/log/postgresql")


def postgres_cpu_s() -> float | None:
    """CPU seconds of the local PostgreSQL server's processes: the postmaster, its live
    children, and (cutime/cstime) the backends it has reaped. None where it cannot be read."""
    pids = sorted(Path("/var/lib/postgresql").glob("*/main/postmaster.pid"))
    if not pids:
        return None
    try:
        master = int(pids[0].read_text().split()[0])
        tick = os.sysconf("SC_CLK_TCK")

        def fields(pid: int) -> list[str]:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

        f = fields(master)
        total = sum(int(x) for x in f[11:15])  # utime stime cutime cstime
        for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
            try:
                c = fields(int(child))
                total += int(c[11]) + int(c[12])
            except (OSError, ValueError):
                pass  # exited meanwhile: then counted in cutime
        return total / tick
    except (OSError, ValueError, IndexError):
        return None


class Morning:
    def __init__(self, args: argparse.Namespace, subscribers: int) -> None:
        self.args = args
        self.n = subscribers
        self.tmp = Path(tempfile.mkdtemp(prefix="sor-bench-morning-"))
        self.checkout = Path(args.checkout).resolve() if args.checkout else REPO
        self.procs: list[subprocess.Popen[Any]] = []
        self.broker: Any = None
        self.worker: subprocess.Popen[Any] | None = None

    def run(self) -> dict[str, Any]:
        from streams.adapters.broker import EmbeddedBroker

        a = self.args
        timings: dict[str, float] = {}
        self.db_url = bench_database(a.db, self.tmp)
        self.broker = EmbeddedBroker(free_port(), self.tmp / "broker.log")
        self.broker.start()
        self.smtp = SmtpServer.start()
        env = base_env(
            SOR_BROKER_URL=self.broker.bootstrap,
            SOR_DATABASE_URL=self.db_url,
            SOR_DATA_DIR=str(self.tmp / "data"),
            SOR_PARTITIONS=str(a.partitions),
            SOR_WORKER_WEB="false",
            SOR_LOG_FORMAT="json",
            SOR_LOG_LEVEL="info",
            SOR_SINGLE_RECORD_BATCHES="true",  # the embedded broker needs it (README)
            SOR_SESSION_TIMEOUT_S="10",
            SOR_SECRET_KEY="bench-secret-key-that-is-long-enough-0123456789",
            SOR_MAP_TILES_URL="",
            SOR_SMTP_HOST="127.0.0.1",
            SOR_SMTP_PORT=str(self.smtp.port),
            SOR_SMTP_STARTTLS="false",
            SOR_DKIM_PRIVATE_KEY_FILE=dkim_key_file(self.tmp),
            # Far from now: the worker's own daily run must not start while we measure.
            SOR_DIGEST_TIME=time.strftime("%H:%M", time.localtime(time.time() + 12 * 3600)),
        )
        env["PYTHONPATH"] = os.pathsep.join([str(self.checkout), str(REPO)])
        self.env = env

        t = time.monotonic()
        self.cli("resync")  # creates every topic (an empty database: nothing to re-publish)
        timings["topics"] = time.monotonic() - t

        offenders = [offender_id(i) for i in range(a.offenders)]
        n_moves = a.moves
        if n_moves > a.offenders:
            raise SystemExit(
                f"{n_moves} moves of {a.offenders} offenders: give more --offenders or fewer --moves"
            )
        points = workload.events(a.offenders + n_moves + 10, a.seed)
        baseline = []
        for i, oid in enumerate(offenders):
            doc = registry_event(
                oid,
                1,
                i,
                float(points.lat[i]),
                float(points.lon[i]),
                city_name(int(points.city[i])),
                baseline=True,
            )
            baseline.append(doc)
        t = time.monotonic()
        self.publish(baseline, "baseline.jsonl", "--baseline")
        timings["baseline_publish"] = time.monotonic() - t

        log = open(self.tmp / "worker.log", "wb")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "streams.entrypoints.cli", "worker"],
            env=env,
            cwd=self.checkout,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(self.worker)
        t = time.monotonic()
        self.wait_for("offenders stored", lambda: self.count("offenders") == a.offenders)
        timings["worker_ready"] = time.monotonic() - t

        lines, n_circles = workload.import_lines(self.n, a.seed + 1)
        path = self.tmp / "import.jsonl"
        path.write_text("\n".join(lines) + "\n")
        t = time.monotonic()
        self.cli("subscribers", "import", str(path))
        timings["import"] = time.monotonic() - t
        # The worker must hold every circle before the moves: otherwise a move misses some.
        # Its table is not visible from here; the topics read to the end are.
        self.wait_for("imported circles read", lambda: self.total_lag() == 0)
        timings["import_read"] = time.monotonic() - t

        from tests.reference_model import Reference, places_of, watchers_of

        # How many alerts the worker must store: the reference model's, for the import file's
        # circles and watches, the baseline and then the moves.
        imported = [json.loads(line) for line in lines]
        ref = Reference(places_of(imported), watchers_of(imported))
        for doc in baseline:
            ref.publish(doc)
        moves, expected = [], 0
        for j in range(n_moves):
            i = a.offenders + j
            oid = offenders[j % a.offenders]
            doc = registry_event(
                oid, 2, i, float(points.lat[i]), float(points.lon[i]), city_name(int(points.city[i]))
            )
            step = ref.step(doc)
            assert step.outcome == "applied", step.outcome
            expected += len(step.alerts)
            moves.append(doc)
        t = time.monotonic()
        self.publish(moves, "moves.jsonl")
        self.wait_for(f"{expected} alerts stored", lambda: self.count("pending_alerts") >= expected)
        timings["alerts"] = time.monotonic() - t
        stored = self.count("pending_alerts")
        if stored != expected:
            raise SystemExit(f"the worker stored {stored} alerts; the reference model expects {expected}")
        self.stop_worker()
        due = self.scalar(
            "select count(distinct p.subscriber_id) from pending_alerts p join subscribers s"
            " on s.id = p.subscriber_id where s.confirmed and s.status = 'active'"
        )

        explain = a.explain and not self.db_url.startswith("sqlite")
        if explain:
            self.explain_on()
        command = [sys.executable, "-m", "streams.entrypoints.cli", "digest", "send"]
        profile_out = self.tmp / "digest-send.collapsed"
        if a.profile:
            spy = py_spy_available()
            if spy is None:
                raise SystemExit("--profile needs py-spy: .venv/bin/pip install -e '.[bench]'")
            # --gil: the thread holding the GIL, i.e. what the one interpreter spends its time on.
            command = [
                spy,
                "record",
                "--format",
                "raw",
                "--rate",
                "200",
                "--gil",
                "--output",
                str(profile_out),
                "--",
                *command,
            ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        pg_before = postgres_cpu_s()
        t0 = time.time()
        try:
            proc = subprocess.run(
                command, env=env, cwd=self.checkout, capture_output=True, text=True, timeout=a.timeout
            )
        except subprocess.TimeoutExpired:
            proc = None  # stopped: what the mail server got by then is still a figure
            if not self.db_url.startswith("sqlite"):
                # The server goes on with a statement whose client is gone: end it, or it
                # keeps a core busy through whatever is measured next.
                self.scalar(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                    " where datname = current_database() and pid <> pg_backend_pid()"
                )
        t_end = time.time()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        delivered = self.smtp.stop()
        self.smtp = None
        pg_after = postgres_cpu_s()
        pg_cpu = round(pg_after - pg_before, 2) if pg_after is not None and pg_before is not None else None
        if proc is not None and proc.returncode != 0:
            raise SystemExit(f"digest send failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
        plans = self.explain_off() if explain else []
        sent = self.scalar("select count(*) from digests where status = 'sent'")
        if proc is None:
            got = delivered.get("messages") or 0
            print(
                f"digest send stopped after {a.timeout:.0f} s: {got} of {due} digests delivered", flush=True
            )
            return {
                "subscribers": self.n,
                "circles": n_circles,
                "moves": n_moves,
                "alerts": expected,
                "digests": due,
                "alerts_per_digest": round(expected / max(1, due), 1),
                "stopped_after_s": a.timeout,
                "delivered_by_then": got,
                "first_mail_s": round(delivered["first_at"] - t0, 2) if delivered.get("first_at") else None,
                "last_mail_s": None,
                "digests_per_s": None,
                "setup_s": {k: round(v, 1) for k, v in timings.items()},
                "load_1m": load_now(),
                "slow_statements": plans,
                "profile": None,
            }
        if delivered.get("messages") != due or sent != due:
            raise SystemExit(f"{due} digests due, {sent} marked sent, {delivered.get('messages')} delivered")
        first = delivered["first_at"] - t0
        last = delivered["last_at"] - t0
        return {
            "subscribers": self.n,
            "circles": n_circles,
            "moves": n_moves,
            "alerts": expected,
            "digests": due,
            "alerts_per_digest": round(expected / max(1, due), 1),
            "first_mail_s": round(first, 2),
            "last_mail_s": round(last, 2),
            "command_s": round(t_end - t0, 2),
            "command_cpu_s": round(cpu, 2),  # the digest run's own process
            "postgres_cpu_s": pg_cpu,  # every PostgreSQL process over the run (autovacuum too)
            "smtp_server_cpu_s": delivered.get("cpu_s"),  # the loopback aiosmtpd server (its whole life)
            "cpu_ms_per_digest": {
                "run": round(1000 * cpu / due, 3),
                "postgres": round(1000 * pg_cpu / due, 3) if pg_cpu is not None else None,
                "smtp_server": round(1000 * delivered["cpu_s"] / due, 3) if delivered.get("cpu_s") else None,
            },
            "digests_per_s": round(due / max(1e-9, last), 1),
            "digests_per_s_after_first": round((due - 1) / max(1e-9, last - first), 1),
            "setup_s": {k: round(v, 1) for k, v in timings.items()},
            "load_1m": load_now(),
            "slow_statements": plans,
            "profile": summarize_collapsed(profile_out, top=25, focus=("streams/",)) if a.profile else None,
        }

    # --- helpers --------------------------------------------------------------------------

    def cli(self, *args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "streams.entrypoints.cli", *args],
            env=self.env,
            cwd=self.checkout,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if proc.returncode != 0:
            raise SystemExit(f"sor-notify {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")

    def publish(self, docs: list[dict[str, Any]], name: str, *flags: str) -> None:
        path = self.tmp / name
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        self.cli("registry", "publish", *flags, str(path))

    def total_lag(self) -> int | None:
        proc = subprocess.run(
            [sys.executable, "-m", "streams.entrypoints.cli", "status", "--json"],
            env=self.env,
            cwd=self.checkout,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return json.loads(proc.stdout).get("total_lag") if proc.returncode == 0 else None

    def engine(self) -> Any:
        from streams.adapters.db import make_engine

        if not hasattr(self, "_engine"):
            self._engine = make_engine(self.db_url)
        return self._engine

    def scalar(self, sql: str) -> int:
        from sqlalchemy import text

        with self.engine().connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())

    def count(self, table: str) -> int:
        try:
            return self.scalar(f"select count(*) from {table}")
        except Exception:  # noqa: BLE001 - not created yet
            return -1

    def wait_for(self, what: str, done: Any) -> None:
        deadline = time.monotonic() + self.args.setup_timeout
        while not done():
            if self.worker is not None and self.worker.poll() is not None:
                raise SystemExit("the worker died:\n" + (self.tmp / "worker.log").read_text()[-3000:])
            if time.monotonic() > deadline:
                raise SystemExit(f"not done in {self.args.setup_timeout}s: {what}")
            time.sleep(1.0)

    def stop_worker(self) -> None:
        assert self.worker is not None
        self.worker.terminate()
        try:
            self.worker.wait(60)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait()
        self.worker = None
        # Leave the engine's connections closed: the run opens its own.
        self.engine().dispose()

    def explain_on(self) -> None:
        from sqlalchemy import create_engine, text

        db = self.db_url.rsplit("/", 1)[1]
        admin = create_engine(self.db_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for k, v in (
                ("session_preload_libraries", "auto_explain"),
                ("auto_explain.log_min_duration", f"{self.args.explain_ms}ms"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_buffers", "on"),
                ("auto_explain.log_nested_statements", "on"),
            ):
                conn.execute(text(f"alter database \"{db}\" set {k} = '{v}'"))
        admin.dispose()
        self.pg_log = max(PG_LOG_DIR.glob("postgresql-*-main.log"), key=lambda p: p.stat().st_mtime)
        self.pg_log_pos = self.pg_log.stat().st_size

    def explain_off(self) -> list[str]:
        from sqlalchemy import create_engine, text

        db = self.db_url.rsplit("/", 1)[1]
        admin = create_engine(self.db_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'alter database "{db}" reset all'))
        admin.dispose()
        with open(self.pg_log, "rb") as f:
            f.seek(self.pg_log_pos)
            logged = f.read().decode(errors="replace")
        plans, current = [], []
        for line in logged.splitlines():
            if " LOG:  duration:" in line and "plan:" in line:
                if current:
                    plans.append("\n".join(current))
                current = [line.split(" LOG:  ", 1)[1]]
            elif current and (line.startswith("\t") or line.startswith(" ")):
                current.append(line)
            elif current:
                plans.append("\n".join(current))
                current = []
        if current:
            plans.append("\n".join(current))
        return plans

    def close(self) -> None:
        if self.smtp is not None:
            self.smtp.stop()
        stop_processes(self.procs)
        if hasattr(self, "_engine"):
            self._engine.dispose()
        if self.broker is not None:
            self.broker.stop()
        if self.args.keep:
            print(f"kept: {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.digest_morning", description=__doc__.split("\n")[0])
    p.add_argument("--subscribers", default="10000,50000,100000", help="sizes, comma-separated")
    p.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    p.add_argument("--offenders", type=int, default=20_000, help="registered offenders (Missouri: ~20k)")
    p.add_argument(
        "--moves",
        type=int,
        default=4_000,
        help="offenders who move at once before the run (4,000: 5-15 changes a digest due)",
    )
    p.add_argument("--partitions", type=int, default=12)
    p.add_argument("--checkout", help="run the project from this checkout (default: this one)")
    p.add_argument(
        "--explain", action="store_true", help="PostgreSQL: log and print the slow statements' plans"
    )
    p.add_argument("--explain-ms", type=int, default=500)
    p.add_argument(
        "--profile", action="store_true", help="run `digest send` under py-spy (not in the figures)"
    )
    p.add_argument("--timeout", type=float, default=3000.0, help="seconds the digest run may take")
    p.add_argument("--setup-timeout", type=float, default=900.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tag", default="")
    p.add_argument(
        "--json", help="write every figure here (default: bench/results/digest_morning[-TAG].json)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.subscribers.split(",") if s.strip()]

    started = machine()
    results = []
    for n in sizes:
        m = Morning(args, n)
        try:
            r = m.run()
        finally:
            m.close()
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k not in ("slow_statements", "profile")}), flush=True)
        for plan in r["slow_statements"]:
            print(plan + "\n", flush=True)
        if r["profile"]:
            print_profile(f"digest send at {n} subscribers (py-spy, GIL holder)", r["profile"])
    cols = [
        "subscribers",
        "circles",
        "alerts",
        "digests",
        "alerts_per_digest",
        "first_mail_s",
        "last_mail_s",
        "digests_per_s",
        "load_1m",
    ]
    print(f"\n{describe_database(m.db_url)}; checkout {m.checkout}")
    print_table(cols, [[x[c] for c in cols] for x in results])
    saved = write_json(
        args.json,
        {
            "machine_at_start": started,
            "load_at_end": load_now(),
            "args": vars(args),
            "results": results,
        },
        "digest_morning" + (f"-{args.tag}" if args.tag else ""),
    )
    print(f"figures written to {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
