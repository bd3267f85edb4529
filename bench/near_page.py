"""The near-an-address page and GET /api/near under 50 concurrent clients: requests per second and p99 (wrk).

    .venv/bin/python -m bench.near_page                  # SQLite in a temporary folder
    .venv/bin/python -m bench.near_page --db postgresql  # PostgreSQL database SOR_BENCH_DATABASE

Seeds --offenders registrants (default 20,000, about Missouri's registry) spread over the state
as bench.workload spreads offenders (its cities, its rural rest), each with a home address placed
exactly, as the worker stores them (search index included), and the demo gazetteer. Runs the
site in its own process, the app `sor-notify web` serves (`streams.web.app.init_app`) with one
difference: the per-client limit `near:client` of 60 a minute is lifted, or every request after
the 60th from this one loopback address would be answered 429. Then, for each case, Debian's
`wrk` (one thread, --connections, default 50) asks for --seconds, rotating over the demo
gazetteer's 912 address points as centres: /near?lat=&lon= (the location button), /api/near, and
/near with the address typed (geocoded by the gazetteer on each request).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import workload
from bench.pipeline_common import (
    REPO,
    bench_database,
    city_name,
    cpu_seconds,
    create_tables,
    describe_database,
    free_port,
    load_now,
    machine,
    median,
    offender_id,
    print_table,
    registry_event,
    site_env,
    stop_process,
    wait_port,
    write_json,
)

GAZETTEER = REPO / "streams" / "demo" / "gazetteer.csv"


def serve() -> None:
    """The site as `sor-notify web` runs it, the near limit lifted."""
    from aiohttp import web

    from streams.bootstrap import build_runtime
    from streams.logs import configure_logging
    from streams.settings import load_settings
    from streams.web.app import init_app
    from streams.web.security import DEFAULT_LIMITS, Limit, RateLimiter

    settings = load_settings(os.environ)
    configure_logging(settings.log_format, settings.log_level)
    runtime = build_runtime(settings)
    limits = dict(DEFAULT_LIMITS) | {"near:client": Limit(10**9, 60)}
    app = init_app(runtime, limiter=RateLimiter(limits=limits), account_work=False)
    web.run_app(app, host=settings.web_host, port=settings.web_port, access_log=None, print=None)


def seed(engine: Any, n: int, seed_: int) -> None:
    from streams.adapters import repository
    from streams.adapters.event_codec import decode_registry_event
    from streams.adapters.gazetteer_import import import_gazetteer
    from streams.domain.matching import apply_event
    from streams.services.demo import DEMO_GAZETTEER

    import_gazetteer(engine, DEMO_GAZETTEER, progress=False)
    points = workload.events(n, seed_)
    batch = []
    for j in range(n):
        oid = offender_id(j)
        doc = registry_event(
            oid, 1, j, float(points.lat[j]), float(points.lon[j]), city_name(int(points.city[j]))
        )
        batch.append(apply_event(None, decode_registry_event(json.dumps(doc).encode(), oid)).state)
        if len(batch) == 1000 or j == n - 1:
            repository.save_offender_states(engine, batch)
            batch = []


def centres() -> list[dict[str, str]]:
    with GAZETTEER.open(newline="") as f:
        return list(csv.DictReader(f))


def paths_for(case: str, radius: str) -> list[str]:
    out = []
    for row in centres():
        if case == "near-typed":
            q = {"street": f"{row['NUMBER']} {row['STREET']}", "city": row["CITY"], "state": "MO"}
            q |= {"zip": row["POSTCODE"], "radius": radius}
            out.append("/near?" + urlencode(q))
        else:
            path = "/api/near" if case == "api" else "/near"
            out.append(f"{path}?" + urlencode({"lat": row["LAT"], "lon": row["LON"], "radius": radius}))
    return out


def wrk_script(paths: list[str], folder: Path) -> Path:
    script = folder / "paths.lua"
    listed = ",\n".join(json.dumps(p) for p in paths)
    script.write_text(
        "local paths = {\n" + listed + "\n}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n"
    )
    return script


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(base: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pct = dict(re.findall(r"^\s*(50|75|90|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.M))
    if "99" not in pct:
        raise RuntimeError(f"no latency percentiles in wrk's output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": round(_ms(pct["50"]), 1),
        "p90_ms": round(_ms(pct["90"]), 1),
        "p99_ms": round(_ms(pct["99"]), 1),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def listed_counts(base: str, radius: str) -> dict[str, float]:
    """How many each centre's answer holds in all and lists (the work a request does)."""
    totals, listed = [], []
    for row in centres()[::8]:
        q = urlencode({"lat": row["LAT"], "lon": row["LON"], "radius": radius})
        with urllib.request.urlopen(f"{base}/api/near?{q}") as r:
            body = json.loads(r.read())
        totals.append(body["count"])
        listed.append(body["listed"])
    return {"median_in_radius": median(totals), "max_in_radius": max(totals), "median_listed": median(listed)}


CASES = [("near", "1mi"), ("near", "5mi"), ("api", "1mi"), ("api", "5mi"), ("near-typed", "1mi")]


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["serve"]:
        serve()
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.near_page", description=__doc__.split("\n")[0])
    p.add_argument("--db", choices=["postgresql", "sqlite"], default="sqlite")
    p.add_argument("--offenders", type=int, default=20_000)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cases", default=",".join(f"{c}:{r}" for c, r in CASES))
    p.add_argument("--tag", default="")
    p.add_argument("--json", help="write every figure here (default: bench/results/near_page[-TAG].json)")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    cases = [tuple(c.split(":")) for c in args.cases.split(",") if c]

    tmp = Path(tempfile.mkdtemp(prefix="sor-bench-near-"))
    started = machine()
    server = None
    results: list[dict[str, Any]] = []
    counts: dict[str, Any] = {}
    try:
        url = bench_database(args.db, tmp)
        engine = create_tables(url)
        t = time.monotonic()
        seed(engine, args.offenders, args.seed)
        seed_s = round(time.monotonic() - t, 1)
        engine.dispose()
        print(
            f"database: {describe_database(url)}; {args.offenders} registrants seeded in {seed_s} s",
            flush=True,
        )
        port = free_port()
        env = site_env(url, tmp / "data", port)
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.near_page", "serve"],
            env=env,
            cwd=REPO,
            stdout=open(tmp / "web.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        t = time.monotonic()
        with urllib.request.urlopen(f"{base}/api/near?lat=38.9467&lon=-92.3252&radius=1mi") as r:
            r.read()  # the first request builds the index
        counts["index_build_s"] = round(time.monotonic() - t, 2)
        for radius in ("1mi", "5mi"):
            counts[radius] = listed_counts(base, radius)
        print(f"answers: {json.dumps(counts)}", flush=True)
        for r in range(1, args.runs + 1):
            for case, radius in cases:
                script = wrk_script(paths_for(case, radius), tmp)
                load0, cpu0 = load_now(), cpu_seconds(server.pid)
                res = run_wrk(base, script, args.connections, args.seconds)
                cpu_s = cpu_seconds(server.pid) - cpu0
                res |= {
                    "case": f"{case} {radius}",
                    "run": r,
                    "server_cpu_pct": round(100 * cpu_s / args.seconds),
                    # What a request costs the site, whatever else shares the machine.
                    "cpu_ms_per_request": round(1000 * cpu_s / max(1, res["requests"]), 3),
                    "load_1m": load0,
                }
                results.append(res)
                print(json.dumps(res), flush=True)
    finally:
        stop_process(server)
        shutil.rmtree(tmp, ignore_errors=True)

    rows, summary = [], {}
    for case, radius in cases:
        name = f"{case} {radius}"
        mine = [x for x in results if x["case"] == name]
        keys = ("rps", "p50_ms", "p99_ms", "server_cpu_pct", "cpu_ms_per_request", "load_1m")
        summary[name] = {k: median(x[k] for x in mine) for k in keys}
        summary[name]["non_2xx"] = sum(x["non_2xx"] for x in mine)
        s = summary[name]
        rows.append(
            [
                name,
                s["rps"],
                s["p50_ms"],
                s["p99_ms"],
                s["server_cpu_pct"],
                s["cpu_ms_per_request"],
                s["load_1m"],
            ]
            + [s["non_2xx"]]
        )
    print(
        f"\nmedian of {args.runs} runs, {args.connections} connections (wrk -t1), {describe_database(url)}:"
    )
    print_table(["case", "rps", "p50_ms", "p99_ms", "server_cpu_%", "cpu_ms/req", "load_1m", "non-2xx"], rows)
    saved = write_json(
        args.json,
        {
            "machine_at_start": started,
            "load_at_end": load_now(),
            "args": vars(args),
            "answers": counts,
            "results": results,
            "summary": summary,
        },
        "near_page" + (f"-{args.tag}" if args.tag else ""),
    )
    print(f"figures written to {saved}")
    return 0 if all(s["non_2xx"] == 0 for s in summary.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
