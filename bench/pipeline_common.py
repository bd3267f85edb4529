"""Helpers the pipeline benchmarks share: the bench database, a loopback SMTP server, percentiles."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# The test suite drops database `test`; the benchmarks only ever touch their own.
PG_SERVER = os.environ.get("SOR_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
# Another name lets two benches run side by side; never `test` (the test suite's).
PG_DATABASE = os.environ.get("SOR_BENCH_DATABASE", "bench")


def bench_database(kind: str, tmp: Path) -> str:
    """A fresh, empty bench database: PostgreSQL `bench` (created if missing) or SQLite in `tmp`."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}"
    if kind != "postgresql":
        raise SystemExit(f"--db {kind!r}: expected postgresql or sqlite")
    if PG_DATABASE == "test":
        raise SystemExit("SOR_BENCH_DATABASE=test: that database belongs to the test suite; name another")
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if (
                conn.execute(text("select 1 from pg_database where datname = :d"), {"d": PG_DATABASE}).first()
                is None
            ):
                conn.execute(text(f'create database "{PG_DATABASE}"'))
    finally:
        admin.dispose()
    url = f"{PG_SERVER}/{PG_DATABASE}"
    assert url.rsplit("/", 1)[1] == PG_DATABASE != "test"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("drop schema public cascade"))
            conn.execute(text("create schema public"))
    finally:
        engine.dispose()
    return url


def create_tables(url: str) -> Any:
    """An engine on `url` with every table of the project (by the migrations, as
    `sor-notify db upgrade` makes them)."""
    from streams.adapters.db import make_engine
    from streams.adapters.schema_migrations import upgrade

    engine = make_engine(url)
    upgrade(engine)
    return engine


def describe_database(url: str) -> str:
    return (
        "SQLite (temporary file)"
        if url.startswith("sqlite")
        else f"PostgreSQL database `{PG_DATABASE}` on 127.0.0.1"
    )


def stop_processes(procs: Iterable[subprocess.Popen[Any]], grace: float = 20.0) -> None:
    """Terminate every process still running, then wait for each (killed after `grace` s)."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def base_env(**sor: str) -> dict[str, str]:
    """This process's environment without any SOR_ setting, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOR_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env | sor


BENCH_SECRET_KEY = "bench-secret-key-that-is-long-enough-0123456789"


def site_env(url: str, data_dir: Path, port: int, **more: str) -> dict[str, str]:
    """The environment of a bench's site process on `port`: the database at `url`, no map
    tiles, warnings only, JSON logs; `more` adds or overrides SOR_ settings."""
    return (
        base_env(
            SOR_DATABASE_URL=url,
            SOR_DATA_DIR=str(data_dir),
            SOR_WEB_HOST="127.0.0.1",
            SOR_WEB_PORT=str(port),
            SOR_WEB_METRICS_PORT=str(free_port()),
            SOR_LOG_FORMAT="json",
            SOR_LOG_LEVEL="warning",
            SOR_MAP_TILES_URL="",
            SOR_SECRET_KEY=BENCH_SECRET_KEY,
        )
        | more
    )


def stop_process(server: subprocess.Popen[bytes] | None) -> None:
    """Ctrl-C a bench's child process (the site shuts down as it would for an operator); killed
    if it has not stopped within 20 s."""
    if server is None or server.poll() is not None:
        return
    server.send_signal(signal.SIGINT)
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def dkim_key_file(folder: Path) -> str:
    """An operator's DKIM key (RSA 2048) in `folder`: mail through SMTP is signed, as in production."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dkim.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    return str(path)


# --- a loopback SMTP server in its own process ---------------------------------------------


class _Counter:
    """Accepts every message and keeps only a count: the server is the peer, not what we measure."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.first_at: float | None = None  # wall clock (time.time) of the first and last message
        self.last_at: float | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        self.messages += 1
        self.bytes += len(envelope.content)
        self.last_at = time.time()
        if self.first_at is None:
            self.first_at = self.last_at
        return "250 Message accepted for delivery"


def _serve_smtp(port: int) -> None:
    from aiosmtpd.controller import Controller

    counter = _Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.05)
    controller.stop()
    import resource

    use = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "messages": counter.messages,
                "bytes": counter.bytes,
                "first_at": counter.first_at,
                "last_at": counter.last_at,
                "cpu_s": round(use.ru_utime + use.ru_stime, 2),
            }
        ),
        flush=True,
    )


@dataclass
class SmtpServer:
    """aiosmtpd on loopback in a child process (so it does not share our GIL)."""

    port: int
    process: subprocess.Popen[str]

    @classmethod
    def start(cls) -> SmtpServer:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.pipeline_common", "smtp", str(port)],
            cwd=REPO,
            env=base_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            proc.kill()
            raise RuntimeError("the loopback SMTP server did not start")
        return cls(port, proc)

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=20)
        return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


# --- the workload in the database and on the wire -------------------------------------------

FIRST_NAMES = ("James", "Mary", "Robert", "Linda", "Michael", "Susan", "David", "Karen", "John", "Lisa")
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Moore",
    "Taylor",
    "Anderson",
    "Thomas",
    "Jackson",
    "White",
    "Harris",
    "Martin",
    "Thompson",
    "Garcia",
    "Clark",
    "Lewis",
)
STREETS = (
    "Main St",
    "Elm St",
    "Oak Ave",
    "Grand Blvd",
    "Broadway",
    "Walnut St",
    "Maple Dr",
    "Cherry St",
    "Pine St",
)


def subscriber_email(subscriber_id: int) -> str:
    return f"subscriber{subscriber_id}@bench.example"


def load_subscribers(engine: Any, cs: Any, watches: dict[int, list[str]]) -> tuple[int, int]:
    """Subscribers, their tracked addresses (id = workload circle id) and offender watches, in bulk.

    The workload's circles go in as rows the web site or `subscribers import` would have
    written; `sor-notify resync` then carries them to the stream, as after a restart.
    """
    from streams.adapters.db import offender_watches, subscribers, tracked_addresses, utcnow

    now = utcnow()
    subs = sorted(set(cs.subscriber_id.tolist()) | set(watches))
    address_rows = []
    for c in cs.domain_circles():
        street, city, rest = c.one_line.split(", ")
        address_rows.append(
            {
                "id": c.circle_id,
                "subscriber_id": c.subscriber_id,
                "label": c.label,
                "street": street,
                "city": city,
                "state": "MO",
                "zip": rest.split()[-1],
                "normalized": "",
                "radius_code": c.radius_code,
                "lat": c.lat,
                "lon": c.lon,
                "precision": "provided",
                "created_at": now,
            }
        )
    with engine.begin() as conn:
        for i in range(0, len(subs), 5000):
            conn.execute(
                subscribers.insert(),
                [
                    {
                        "id": s,
                        "email": subscriber_email(s),
                        "confirmed": True,
                        "status": "active",
                        "created_at": now,
                    }
                    for s in subs[i : i + 5000]
                ],
            )
        for i in range(0, len(address_rows), 5000):
            conn.execute(tracked_addresses.insert(), address_rows[i : i + 5000])
        watch_rows = [
            {"subscriber_id": s, "offender_id": o, "created_at": now}
            for s, oids in watches.items()
            for o in oids
        ]
        if watch_rows:
            conn.execute(offender_watches.insert(), watch_rows)
        if engine.dialect.name == "postgresql":
            # Explicit ids: move the sequences past them for whatever inserts next.
            for table in ("subscribers", "tracked_addresses"):
                conn.exec_driver_sql(
                    f"select setval(pg_get_serial_sequence('{table}', 'id'), (select max(id) from {table}))"
                )
    return len(subs), len(address_rows)


def pick_watches(
    subscriber_ids: Sequence[int], offender_ids: Sequence[str], share: float, seed: int
) -> dict[int, list[str]]:
    """A share of subscribers track one to three offenders each."""
    import numpy as np

    rng = np.random.default_rng([seed, 7])
    out: dict[int, list[str]] = {}
    for s in subscriber_ids:
        if rng.random() < share:
            k = int(rng.integers(1, 4))
            out[s] = sorted({offender_ids[int(i)] for i in rng.integers(0, len(offender_ids), k)})
    return out


def offender_id(i: int) -> str:
    return f"MO-{100000 + i}"


def registry_event(
    oid: str, revision: int, seq: int, lat: float, lon: float, city: str, *, baseline: bool = False
) -> dict[str, Any]:
    """An upsert giving the offender one home address; `seq` makes the address text new."""
    n = int(oid.rsplit("-", 1)[1])
    doc: dict[str, Any] = {
        "schema": "registry-event/1",
        "event_id": f"{oid}-r{revision}",
        "offender_id": oid,
        "revision": revision,
        "occurred_at": "2026-11-20T14:00:00Z",
        "kind": "upsert",
        "offender": {
            "last_name": LAST_NAMES[n % len(LAST_NAMES)],
            "first_name": FIRST_NAMES[n % len(FIRST_NAMES)],
            "date_of_birth": "1975-03-09",
            "tier": 1 + n % 3,
            "compliance": "compliant",
            "juvenile": False,
            "offenses": [{"description": "Statutory offense"}],
        },
        "addresses": [
            {
                "type": "home",
                "street": f"{100 + seq % 9900} {STREETS[(seq // 9900) % len(STREETS)]}",
                "city": city,
                "state": "MO",
                "zip": f"{63000 + n % 2000}",
                "lat": round(lat, 6),
                "lon": round(lon, 6),
            }
        ],
    }
    if baseline:
        doc["baseline"] = True
    return doc


def city_name(code: int) -> str:
    from bench import workload

    return "Rural" if code == workload.RURAL else workload.CITY_NAMES[code]


def reference_places(cs: Any) -> list[Any]:
    """The workload's circles as the reference model (tests/reference_model.py) takes them:
    what the benchmarks check the pipeline's alerts against."""
    from tests.reference_model import Place, radius_metres

    return [Place(cid, sid, "", lat, lon, radius_metres(code)) for cid, sid, lat, lon, _, code in cs.rows()]


def reference_watchers(watches: dict[int, list[str]]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for s, oids in watches.items():
        for o in oids:
            out.setdefault(o, set()).add(s)
    return out


def alert_key(a: Any) -> tuple[Any, ...]:
    """An alert in the reference model's terms (see Reference.alerts)."""
    return (
        a.subscriber_id,
        a.offender_id,
        a.kind,
        a.event_id,
        a.tracked_address_id,
        (a.address or {}).get("street") if a.tracked_address_id is not None else None,
    )


class WorkerRules:
    """The pipeline's own rules run in this process, to seed a database with the offender
    states and pending alerts the worker would have stored. Not an oracle: what the seeded
    alerts must be is checked against the reference model."""

    def __init__(self, circles: Iterable[Any], watches: dict[int, list[str]]) -> None:
        from streams.domain.circle_index import CircleIndex

        self.index = CircleIndex()
        self.index.bulk_load(list(circles))
        self.watchers: dict[str, list[int]] = {}
        for s, oids in sorted(watches.items()):
            for o in oids:
                self.watchers.setdefault(o, []).append(s)
        self.states: dict[str, Any] = {}

    def apply(self, doc: dict[str, Any]) -> list[Any]:
        """The alerts one event gives (and the offender's new state kept)."""
        from streams.adapters.event_codec import decode_registry_event
        from streams.domain.matching import apply_event, proximity_alerts, watch_alerts

        ev = decode_registry_event(json.dumps(doc).encode(), doc["offender_id"])
        outcome = apply_event(self.states.get(ev.offender_id), ev)
        assert outcome.status == "applied", outcome.status
        self.states[ev.offender_id] = outcome.state
        alerts = [a for change in outcome.address_changes for a in proximity_alerts(change, self.index)]
        if outcome.watch_change is not None:
            alerts += watch_alerts(outcome.watch_change, self.watchers.get(ev.offender_id, []))
        return alerts


# --- the worker, with a probe on the alert commits --------------------------------------------


def _run_probed_worker(probe_path: str) -> int:
    """`sor-notify worker`, with every record_alerts call timed after its commit.

    Also adds up the wall time the agents spend waiting for the broker's acks (`deliver`)
    and in each database call, per caller, into `<probe>.stats` once a second: where an
    event's time goes, which a CPU profile of an asyncio process cannot show.
    """
    import collections
    import threading

    from streams import runtime
    from streams.adapters import repository
    from streams.agents import address_changes, registry_events
    from streams.entrypoints.cli import main

    out = open(probe_path, "a", buffering=1)
    stats: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])

    # The alerts agent stores the messages it reads through alert_writer.record_alert_messages
    # since 2026-12-05, their rows through alert_writer.record_alert_rows (batches) before
    # that, and Alert values through repository.record_alerts before 2026-12-04: the probe
    # wraps whichever this checkout's agent calls, so one bench measures them all.
    try:
        from streams.adapters import alert_writer
    except ImportError:
        alert_writer = None
    if alert_writer is not None and hasattr(alert_writer, "record_alert_messages"):
        target, name = alert_writer, "record_alert_messages"
    else:
        target, name = (alert_writer, "record_alert_rows") if alert_writer else (repository, "record_alerts")
    original_record = getattr(target, name)

    def events_of(items: list[Any]) -> collections.Counter:
        per_event: collections.Counter = collections.Counter()
        for a in items:
            if not isinstance(a, dict):
                per_event[a.event_id] += 1  # an Alert
            elif a.get("schema") == "alert-batch/1":  # a batch message: its event once or a column
                common, columns = a["common"], a["columns"]
                if "event_id" in common:
                    per_event[common["event_id"]] += len(columns["alert_id"])
                else:
                    per_event.update(columns["event_id"])
            else:
                per_event[a["event_id"]] += 1  # a row, or a one-alert message
        return per_event

    def record_alerts(bind: Any, alerts: Any) -> Any:
        alerts = list(alerts)
        started = time.time()
        result = original_record(bind, alerts)
        done = time.time()  # it returns once its transaction is committed
        received, new = result if isinstance(result, tuple) else (len(alerts), result)
        out.write(
            json.dumps({"t0": started, "t": done, "n": received, "new": new, "events": events_of(alerts)})
            + "\n"
        )
        return result

    original_deliver = registry_events.deliver

    stages = open(probe_path + ".stages", "a", buffering=1)

    async def deliver(sends: Any) -> None:
        frame = sys._getframe(1)
        caller = frame.f_code.co_name
        # The event this wait belongs to, to follow it stage by stage.
        holder = frame.f_locals.get("ev") or frame.f_locals.get("change")
        t = time.perf_counter()
        try:
            await original_deliver(sends)
        finally:
            s = stats[f"deliver:{caller}"]
            s[0] += 1
            s[1] += time.perf_counter() - t
            if holder is not None and hasattr(holder, "event_id"):
                stages.write(f"{caller} {holder.event_id} {time.time()}\n")

    original_db = runtime.Runtime.db

    async def db(self: Any, fn: Any, *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return await original_db(self, fn, *args)
        finally:
            s = stats[f"db:{getattr(fn, '__name__', fn)}"]
            s[0] += 1
            s[1] += time.perf_counter() - t

    def dump() -> None:
        path = Path(probe_path + ".stats")
        while True:
            time.sleep(0.5)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(dict(stats)))
            tmp.replace(path)

    fetch_wait = os.environ.get("SOR_BENCH_FETCH_WAIT_MS")
    if fetch_wait:
        # Experiment only (pipeline_latency --fetch-wait-ms): faust's aiokafka driver asks for
        # fetch_max_wait_ms=1500, and the embedded broker holds an empty fetch about that long
        # even after records arrive, so each topic hop waits for it.
        import aiokafka

        original_init = aiokafka.AIOKafkaConsumer.__init__

        def consumer_init(self: Any, *args: Any, **kw: Any) -> None:
            kw["fetch_max_wait_ms"] = int(fetch_wait)
            original_init(self, *args, **kw)

        aiokafka.AIOKafkaConsumer.__init__ = consumer_init  # type: ignore[method-assign]

    setattr(target, name, record_alerts)
    for agent in (registry_events, address_changes):  # each imports it from agents.batching
        agent.deliver = deliver  # type: ignore[attr-defined]
    runtime.Runtime.db = db  # type: ignore[method-assign]
    threading.Thread(target=dump, daemon=True).start()
    return main(["worker"])


def worker_command(probe_path: Path) -> list[str]:
    return [sys.executable, "-m", "bench.pipeline_common", "worker", str(probe_path)]


# --- figures ------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of unsorted values; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if v == v]
    return statistics.median(vals) if vals else float("nan")


def machine() -> dict[str, Any]:
    """What the figures were taken on, and how busy it was at the start."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def load_now() -> float:
    return round(os.getloadavg()[0], 2)


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [list(map(str, header))] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, r in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


RESULTS = Path(__file__).parent / "results"


def write_json(path: str | None, doc: dict[str, Any], default_name: str) -> Path:
    """Every figure of a run, to `path` or bench/results/<default_name>.json."""
    out = Path(path) if path else RESULTS / f"{default_name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return out


# --- profiling ----------------------------------------------------------------------------


def py_spy_available() -> str | None:
    exe = Path(sys.executable).with_name("py-spy")
    return str(exe) if exe.exists() else None


def start_py_spy(pid: int, out: Path, *, rate: int = 200, gil: bool = True) -> subprocess.Popen[bytes] | None:
    """Sample a running process into collapsed stacks (py-spy's raw format); None without py-spy.

    `gil`: only the thread holding the GIL is sampled. One interpreter runs the event loop and
    every `to_thread` database call, so that is the CPU the process can still give.
    """
    exe = py_spy_available()
    if exe is None:
        return None
    args = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--rate",
        str(rate),
        "--output",
        str(out),
        "--nonblocking",
    ]
    if gil:
        args.append("--gil")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    if proc.poll() is not None:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        print(f"py-spy could not attach: {err.strip()[:300]}", file=sys.stderr)
        return None
    return proc


def stop_py_spy(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/module.py:123)".
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def summarize_collapsed(path: Path, top: int = 15, focus: Sequence[str] = ()) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    if not path.exists():
        return {}
    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for f in set(frames):
            incl_counts[f] = incl_counts.get(f, 0) + count

    def share(d: dict[str, int], keep: Any = lambda _k: True) -> list[tuple[str, float]]:
        items = sorted(((k, v) for k, v in d.items() if keep(k)), key=lambda kv: -kv[1])[:top]
        return [(k, round(100 * v / total, 1)) for k, v in items]

    return {
        "samples": total,
        "self_pct": share(self_counts),
        "inclusive_pct": share(incl_counts, lambda k: not focus or any(f in k for f in focus)),
    }


def print_profile(title: str, summary: dict[str, Any]) -> None:
    if not summary:
        return
    print(f"\n{title}: {summary['samples']} samples")
    print("  self time:")
    for name, pct in summary["self_pct"]:
        print(f"    {pct:5.1f}%  {name}")
    print("  inclusive:")
    for name, pct in summary["inclusive_pct"]:
        print(f"    {pct:5.1f}%  {name}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "smtp":
        _serve_smtp(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "worker":
        sys.exit(_run_probed_worker(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m bench.pipeline_common smtp PORT | worker PROBE_FILE")
