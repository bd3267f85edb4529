"""`repository.record_alerts` of one large batch: alerts stored per second, new and redelivered.

    .venv/bin/python -m bench.record_alerts --alerts 5000 --runs 5                 # SQLite (temporary file)
    .venv/bin/python -m bench.record_alerts --alerts 5000 --runs 5 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench          # PostgreSQL

What `tests/integration/test_repository.py::test_record_alerts_takes_thousands_at_once` does,
timed here instead of bounded there. Per run: one subscriber with one tracked address, then
- "new": `record_alerts` of --alerts proximity alerts none of which is stored yet (one
  transaction, the multi-row INSERT ... ON CONFLICT DO NOTHING the alerts agent issues);
- "redelivered": the same batch again, every alert already stored (nothing is added).
Building the Alert values is outside the timing. With --as-agent the alerts are one address
change's (one offender, event and address) in alert-batch messages decoded from the wire,
stored as this checkout's alerts agent stores a take: decoding and encoding are timed. Each run
checks the counts (all new, then 0)
and removes what it wrote (its subscriber, address and alerts) before the next, so every run
starts from the same table; nothing else in the database is touched. A PostgreSQL database
named `test` is refused: the test suite drops it.

Prints one line per run and a last line of JSON with the medians (alerts/s) and the load
average before and after; --json writes that JSON to a file as well.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlalchemy.engine import make_url


def _alerts(subscriber_id: int, tracked_address_id: int, run: int, n: int) -> list[Any]:
    """n proximity alerts shaped like the matcher's (tests/integration/conftest.py's builder)."""
    from streams.domain.model import Address, Alert, alert_id_for
    from streams.domain.radii import proximity_band

    out = []
    for i in range(n):
        oid = f"MO-B{i}"
        street = f"{i} Olive St"
        address = Address(
            "home",
            street,
            "St. Louis",
            "MO",
            "63101",
            lat=38.63,
            lon=-90.19,
            normalized=f"{street}, ST LOUIS, MO 63101".upper(),
        ).to_dict()
        out.append(
            Alert(
                alert_id=alert_id_for("bench.record_alerts", run, i),
                subscriber_id=subscriber_id,
                offender_id=oid,
                kind="moved_in",
                event_id=f"{oid}-e{run}",
                occurred_at=f"2026-11-20T14:{i % 60:02d}:00Z",
                offender={
                    "offender_id": oid,
                    "name": "X Y",
                    "main_offense": "Sexual assault",
                    "tier": 2,
                    "compliance": "compliant",
                },
                tracked_address_id=tracked_address_id,
                tracked_label="Home",
                tracked_one_line="1 Market St, St. Louis, MO 63101",
                address=address,
                distance_m=800.0,
                band=proximity_band(800.0),
                revision=1,
            )
        )
    return out


def _one_change(alerts: list[Any]) -> list[Any]:
    """The alerts as one address change's: one offender, event and address, sent as the
    geo join sends them (alert batches of at most MAX_ROWS, decoded from the wire)."""
    import dataclasses

    from streams.domain.alert_batch import batch_of

    first = alerts[0]
    same = [
        dataclasses.replace(
            a,
            offender_id=first.offender_id,
            offender=first.offender,
            event_id=first.event_id,
            occurred_at=first.occurred_at,
            address=first.address,
            distance_m=800.0 + i / 7,
        )
        for i, a in enumerate(alerts)
    ]
    return [json.loads(json.dumps(part.to_dict())) for _, part in batch_of(same).by_partition(1)]


def _store_as_agent(engine: Any, messages: list[Any]) -> int:
    """What this checkout's alerts agent does with the messages of one take."""
    from streams.adapters import alert_writer

    if hasattr(alert_writer, "record_alert_messages"):
        return alert_writer.record_alert_messages(engine, messages)[1]
    from streams.domain.alert_batch import alert_rows  # before 2026-12-05: rows, encoded whole

    return alert_writer.record_alert_rows(engine, [row for m in messages for row in alert_rows(m)])


def _encode_as_agent(messages: list[Any]) -> int:
    """Only the decoding and encoding of `_store_as_agent`, no database: how many alerts."""
    from streams.domain import alert_batch

    if hasattr(alert_batch, "stored_alerts"):
        return len([a for m in messages for a in alert_batch.stored_alerts(m)])
    from streams.adapters.alert_writer import _encode  # before 2026-12-05: each row encoded whole

    return len([(r["alert_id"], _encode(r)) for m in messages for r in alert_batch.alert_rows(m)])


def one_run(engine: Any, run: int, n: int, as_agent: bool = False) -> dict[str, Any]:
    from streams.adapters import repository, subscriber_store
    from streams.adapters.db import pending_alerts, subscribers
    from streams.adapters.subscriber_import import ImportedAddress, ImportedSubscriber
    from streams.domain.addresses import normalize_address

    home = ImportedAddress(
        "Home",
        "1 Market St",
        "St. Louis",
        "MO",
        "63101",
        "1mi",
        38.6270,
        -90.1994,
        normalize_address("1 Market St", "St. Louis", "MO", "63101"),
    )
    sub = subscriber_store.upsert_subscriber(
        engine,
        ImportedSubscriber(f"bench-record-alerts-{os.getpid()}-{run}@bench.invalid", True, (home,), ()),
    )
    alerts = _alerts(sub.subscriber_id, sub.circles[0].circle_id, run, n)
    extra: dict[str, Any] = {}
    if as_agent:
        messages = _one_change(alerts)
        store = lambda: _store_as_agent(engine, messages)  # noqa: E731
        t = time.perf_counter()
        assert _encode_as_agent(messages) == n
        extra["encode_us_per_alert"] = (time.perf_counter() - t) / n * 1e6
    else:
        store = lambda: repository.record_alerts(engine, alerts)  # noqa: E731
    try:
        t0 = time.perf_counter()
        added = store()
        t1 = time.perf_counter()
        again = store()
        t2 = time.perf_counter()
        if (added, again) != (n, 0):
            raise SystemExit(f"run {run}: record_alerts added {added} then {again}, expected {n} then 0")
    finally:
        with engine.begin() as conn:
            conn.execute(delete(pending_alerts).where(pending_alerts.c.subscriber_id == sub.subscriber_id))
            conn.execute(delete(subscribers).where(subscribers.c.id == sub.subscriber_id))  # cascades
    return {
        "new_s": t1 - t0,
        "redelivered_s": t2 - t1,
        "new_per_s": n / (t1 - t0),
        "redelivered_per_s": n / (t2 - t1),
    } | extra


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.record_alerts", description=__doc__.split("\n")[0])
    p.add_argument("--alerts", type=int, default=5000, help="alerts in the batch")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in a temporary folder)")
    p.add_argument(
        "--as-agent",
        action="store_true",
        help="one address change's alerts as the alerts agent stores them: alert-batch "
        "messages as decoded from the wire (decoding and encoding timed too)",
    )
    p.add_argument("--json", type=Path, help="also write the summary JSON here")
    args = p.parse_args(argv)
    if args.alerts < 1 or args.runs < 1:
        p.error("--alerts and --runs must be at least 1")

    from bench.pipeline_common import create_tables

    with tempfile.TemporaryDirectory(prefix="bench-record-alerts-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        u = make_url(url)
        if u.get_backend_name() != "sqlite" and u.database == "test":
            p.error("database `test` belongs to the test suite (it drops it); use another, e.g. `bench`")
        database = (
            "SQLite (temporary file)" if not args.database_url else u.render_as_string(hide_password=True)
        )
        engine = create_tables(url)  # every table of the project, as the services make them
        try:
            load_before = os.getloadavg()
            print(f"database: {database}; {args.alerts} alerts per batch, {args.runs} runs", flush=True)
            runs = []
            for run in range(args.runs):
                r = one_run(engine, run, args.alerts, args.as_agent)
                runs.append(r)
                print(
                    f"run {run + 1}: new {r['new_per_s']:,.0f} alerts/s ({r['new_s']:.3f} s), "
                    f"redelivered {r['redelivered_per_s']:,.0f} alerts/s ({r['redelivered_s']:.3f} s)",
                    flush=True,
                )
            load_after = os.getloadavg()
        finally:
            engine.dispose()

    summary = {
        "benchmark": "record_alerts",
        "database": database,
        "alerts": args.alerts,
        "as_agent": args.as_agent,
        "runs": args.runs,
        "median_new_per_s": round(statistics.median(r["new_per_s"] for r in runs)),
        "median_redelivered_per_s": round(statistics.median(r["redelivered_per_s"] for r in runs)),
        "runs_new_per_s": [round(r["new_per_s"]) for r in runs],
        **(
            {
                "median_encode_us_per_alert": round(
                    statistics.median(r["encode_us_per_alert"] for r in runs), 2
                )
            }
            if args.as_agent
            else {}
        ),
        "runs_redelivered_per_s": [round(r["redelivered_per_s"]) for r in runs],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(summary), flush=True)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
