"""What a pending alert's payload size costs PostgreSQL: µs per alert stored, full against small.

    .venv/bin/python -m bench.alert_payload_size --alerts 20000 --runs 3 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

The alerts agent stores each alert's whole JSON (~700 bytes: the offender and the address
repeated in every alert of a change). This asks what storing only an alert's own fields
(~250 bytes, the shared part kept once elsewhere) would save, before building it: the same
COPY into a staging table and INSERT ... SELECT ... ON CONFLICT DO NOTHING the writer issues,
into two scratch tables shaped like `pending_alerts` (with and without its three secondary
indexes), dropped afterwards. Prints µs per alert for each of the four, per run, then the
medians as JSON with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

_TABLE = (
    "(alert_id varchar(32) primary key, subscriber_id int not null, offender_id varchar(100) not null, "
    "kind varchar(16) not null, payload jsonb not null, created_at timestamptz not null default now(), "
    "digest_id int)"
)


def payloads(n: int) -> tuple[list[str], list[str]]:
    from bench.record_alerts import _alerts

    alerts = _alerts(1, 1, 0, n)
    full = [json.dumps(a.to_dict()) for a in alerts]
    own = [
        json.dumps(
            {
                "content": "c" * 32,
                "alert_id": a.alert_id,
                "subscriber_id": a.subscriber_id,
                "tracked_address_id": a.tracked_address_id,
                "tracked_label": a.tracked_label,
                "tracked_one_line": a.tracked_one_line,
                "distance_m": a.distance_m,
                "band": a.band,
            }
        )
        for a in alerts
    ]
    return full, own


def store(conn: Any, table: str, texts: list[str]) -> float:
    cur = conn.cursor()
    t = time.perf_counter()
    cur.execute(
        "CREATE TEMPORARY TABLE IF NOT EXISTS bench_stage (alert_id text, subscriber_id integer, "
        "offender_id text, kind text, payload jsonb) ON COMMIT DELETE ROWS"
    )
    with cur.copy("COPY bench_stage FROM STDIN") as copy:
        for i, text in enumerate(texts):
            copy.write_row((uuid.uuid4().hex, 1, f"MO-B{i}", "moved_in", text))
    cur.execute(
        f"INSERT INTO {table} (alert_id, subscriber_id, offender_id, kind, payload) "
        "SELECT alert_id, subscriber_id, offender_id, kind, payload FROM bench_stage ON CONFLICT DO NOTHING"
    )
    conn.commit()
    return (time.perf_counter() - t) / len(texts) * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.alert_payload_size", description=__doc__.split("\n")[0])
    p.add_argument("--alerts", type=int, default=20000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--database-url", required=True, help="a PostgreSQL URL (not the test suite's `test`)")
    a = p.parse_args(argv)
    u = make_url(a.database_url)
    if u.get_backend_name() != "postgresql" or u.database == "test":
        p.error("a PostgreSQL database other than `test` (the test suite drops it), e.g. `bench`")
    full, own = payloads(a.alerts)
    cases = {
        "full, indexed": ("bench_payload_indexed", full),
        "own fields, indexed": ("bench_payload_indexed", own),
        "full, primary key only": ("bench_payload_bare", full),
        "own fields, primary key only": ("bench_payload_bare", own),
    }
    results: dict[str, list[float]] = {k: [] for k in cases}
    load_before = os.getloadavg()
    conn = psycopg.connect(u.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        with conn.cursor() as cur:
            for table in ("bench_payload_indexed", "bench_payload_bare"):
                cur.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} {_TABLE}")
            for column in ("subscriber_id", "offender_id", "digest_id"):
                cur.execute(f"CREATE INDEX ON bench_payload_indexed ({column})")
        conn.commit()
        for run in range(a.runs):
            for name, (table, texts) in cases.items():
                results[name].append(store(conn, table, texts))
            print(
                f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.1f} µs" for k, v in results.items()), flush=True
            )
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_payload_indexed; DROP TABLE IF EXISTS bench_payload_bare")
        conn.commit()
        conn.close()
    print(
        json.dumps(
            {
                "benchmark": "alert_payload_size",
                "alerts": a.alerts,
                "runs": a.runs,
                "bytes_per_payload": {
                    "full": round(statistics.mean(map(len, full))),
                    "own fields": round(statistics.mean(map(len, own))),
                },
                "median_us_per_alert": {k: round(statistics.median(v), 1) for k, v in results.items()},
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
