"""The web site under concurrent load: p50/p99 and requests per second of its main pages.

    .venv/bin/python -m bench.pipeline_web                # PostgreSQL database `bench`
    .venv/bin/python -m bench.pipeline_web --db sqlite    # SQLite in a temporary folder

Runs the site in its own process (the app `sor-notify web` serves, `streams.web.app.init_app`,
with one difference: the per-client search limit of 60 a minute is lifted, or every search
after the 60th would be answered 429 from this one loopback address). The database holds a
seeded workload: bench.workload circles as subscribers' tracked addresses, offenders stored
as the worker stores them (search index included). Each client is a logged-in subscriber
with five tracked addresses and five tracked offenders; its session is created directly in
the database, so no password is hashed (argon2id's deliberate cost is not measured).

Then, page by page, `--clients` concurrent clients (aiohttp) request it for `--seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path
from typing import Any

from bench import workload
from bench.pipeline_common import (
    LAST_NAMES,
    REPO,
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
    print_profile,
    print_table,
    registry_event,
    site_env,
    start_py_spy,
    stop_process,
    stop_py_spy,
    summarize_collapsed,
    wait_port,
    write_json,
)


def serve() -> None:
    """The site as `sor-notify web` runs it (no broker: nothing here publishes), search unlimited."""
    from aiohttp import web

    from streams.bootstrap import build_runtime
    from streams.logs import configure_logging
    from streams.settings import load_settings
    from streams.web.app import init_app
    from streams.web.security import DEFAULT_LIMITS, Limit, RateLimiter

    settings = load_settings(os.environ)
    configure_logging(settings.log_format, settings.log_level)
    runtime = build_runtime(settings)
    limits = dict(DEFAULT_LIMITS) | {"search:client": Limit(10**9, 60)}
    app = init_app(runtime, limiter=RateLimiter(limits=limits))
    web.run_app(app, host=settings.web_host, port=settings.web_port, access_log=None, print=None)


def seed(engine: Any, args: argparse.Namespace) -> dict[str, Any]:
    from streams.adapters import repository
    from streams.adapters.event_codec import decode_registry_event
    from streams.domain.matching import apply_event

    cs = workload.circles(args.circles, args.seed)
    offenders = [offender_id(i) for i in range(args.offenders)]
    # The clients: subscribers with the most tracked addresses, each tracking five offenders.
    per_sub: dict[int, int] = {}
    for s in cs.subscriber_id.tolist():
        per_sub[s] = per_sub.get(s, 0) + 1
    users = sorted(per_sub, key=lambda s: (-per_sub[s], s))[: args.clients]
    watches = {s: [offenders[(i * 5 + k) % len(offenders)] for k in range(5)] for i, s in enumerate(users)}
    n_subs, n_circles = load_subscribers(engine, cs, watches)
    points = workload.events(args.offenders, args.seed)
    for j, oid in enumerate(offenders):
        doc = registry_event(
            oid, 1, j, float(points.lat[j]), float(points.lon[j]), city_name(int(points.city[j]))
        )
        ev = decode_registry_event(json.dumps(doc).encode(), oid)
        repository.save_offender_state(engine, apply_event(None, ev).state)
    return {
        "subscribers": n_subs,
        "circles": n_circles,
        "offenders": args.offenders,
        "clients": users,
        "tracked_per_client": [per_sub[s] for s in users],
    }


def sessions_for(engine: Any, users: list[int]) -> list[str]:
    from datetime import datetime

    from streams.web import sessions

    return [sessions.create(engine, sid, datetime.now(UTC)).raw_id for sid in users]


PAGES: dict[str, Any] = {
    "home": lambda i, n: "/",
    "search": lambda i, n: f"/offenders/search?last_name={LAST_NAMES[n % len(LAST_NAMES)]}",
    "notifications": lambda i, n: "/notifications",
    "offender": lambda i, n: f"/offenders/{offender_id((i * 7919 + n * 31) % OFFENDERS[0])}",
    "faq": lambda i, n: "/faq",
}
OFFENDERS = [1]


async def load_page(
    base: str, page: str, cookies: list[str], seconds: float, warmup: float
) -> dict[str, Any]:
    import aiohttp

    path_of = PAGES[page]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sizes: list[int] = []
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client(i: int, cookie: str) -> None:
            n = 0
            headers = {"Cookie": f"sor_session={cookie}"}
            while True:
                t = time.perf_counter()
                if t >= stop_at:
                    return
                async with http.get(base + path_of(i, n), headers=headers, allow_redirects=False) as r:
                    body = await r.read()
                done = time.perf_counter()
                n += 1
                if t >= measure_from:
                    latencies.append(done - t)
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    sizes.append(len(body))

        await asyncio.gather(*(client(i, c) for i, c in enumerate(cookies)))
    ms = [x * 1000 for x in latencies]
    return {
        "page": page,
        "requests": len(ms),
        "rps": round(len(ms) / seconds, 1),
        "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1) if ms else float("nan"),
        "ok": statuses.get(200, 0),
        "statuses": statuses,
        "kb": round(sum(sizes) / max(1, len(sizes)) / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline_web", description=__doc__.split("\n")[0])
    p.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    p.add_argument("--circles", type=int, default=20_000)
    p.add_argument("--offenders", type=int, default=3_000)
    p.add_argument("--clients", type=int, default=20, help="concurrent clients, each logged in")
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds per page per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--pages", default=",".join(PAGES))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tag", default="", help="suffix of the results file name")
    p.add_argument(
        "--profile", action="store_true", help="py-spy the site during one more round (not in the figures)"
    )
    p.add_argument("--json", help="write every figure here (default: bench/results/pipeline_web[-TAG].json)")
    args = p.parse_args(argv)
    OFFENDERS[0] = args.offenders
    pages = [x for x in args.pages.split(",") if x]

    tmp = Path(tempfile.mkdtemp(prefix="sor-bench-web-"))
    started = machine()
    server = None
    results: list[dict[str, Any]] = []
    profile = None
    try:
        url = bench_database(args.db, tmp)
        engine = create_tables(url)
        t = time.monotonic()
        info = seed(engine, args)
        info["seed_s"] = round(time.monotonic() - t, 1)
        cookies = sessions_for(engine, info.pop("clients"))
        engine.dispose()
        print(f"database: {describe_database(url)}; workload: {json.dumps(info)}", flush=True)
        port = free_port()
        env = site_env(url, tmp / "data", port, SOR_LOG_LEVEL="info")
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.pipeline_web", "serve"],
            env=env,
            cwd=REPO,
            stdout=open(tmp / "web.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        for r in range(1, args.runs + 1):
            for page in pages:
                load0 = load_now()
                cpu0 = cpu_seconds(server.pid)
                res = asyncio.run(load_page(base, page, cookies, args.seconds, args.warmup))
                res |= {
                    "run": r,
                    "server_cpu_pct": round(
                        100 * (cpu_seconds(server.pid) - cpu0) / (args.seconds + args.warmup)
                    ),
                    "load_1m": load0,
                }
                results.append(res)
                print(json.dumps(res), flush=True)
        if args.profile:
            out = tmp / "web.collapsed"
            spy = start_py_spy(server.pid, out)
            for page in pages:
                asyncio.run(load_page(base, page, cookies, args.seconds / 2, 0))
            stop_py_spy(spy)
            profile = summarize_collapsed(
                out, focus=("streams/", "aiohttp/", "jinja2/", "sqlalchemy/", "psycopg/")
            )
    finally:
        stop_process(server)
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    summary = {}
    for page in pages:
        mine = [x for x in results if x["page"] == page]
        summary[page] = {k: median(x[k] for x in mine) for k in ("rps", "p50_ms", "p99_ms", "max_ms")}
        summary[page]["non_200"] = sum(x["requests"] - x["ok"] for x in mine)
        rows.append(
            [
                page,
                summary[page]["rps"],
                summary[page]["p50_ms"],
                summary[page]["p99_ms"],
                summary[page]["max_ms"],
                summary[page]["non_200"],
                median(x["kb"] for x in mine),
            ]
        )
    print(
        f"\nmedian of {args.runs} runs, {args.clients} concurrent logged-in clients, {describe_database(url)}:"
    )
    print_table(["page", "rps", "p50_ms", "p99_ms", "max_ms", "non-200", "kb"], rows)
    if profile:
        print_profile("site profile (py-spy, every page)", profile)
    saved = write_json(
        args.json,
        {
            "machine_at_start": started,
            "load_at_end": load_now(),
            "args": vars(args),
            "workload": info,
            "results": results,
            "summary": summary,
            "profile": profile,
        },
        "pipeline_web" + (f"-{args.tag}" if args.tag else ""),
    )
    print(f"figures written to {saved}")
    return 0 if all(s["non_200"] == 0 for s in summary.values()) else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        sys.exit(main())
