"""The statistics page: the one pass that counts the registry, and the page served from its cache.

    .venv/bin/python -m bench.statistics_page --db sqlite               # SQLite in a temporary folder
    .venv/bin/python -m bench.statistics_page --registrants 20000       # PostgreSQL database `bench`

Seeds `--registrants` public records as the registry agent stores them (each with its applied
event, so "registry as of" is set), spread over Missouri's counties with a heavy tail (a few
counties hold most, as St. Louis and Kansas City do): a third name their county as the bare
name, a third with "County", a third no county but a point. Then, in this process,
`count_registrants` once (the cost of a recount, paid once per registry update); then the site
in its own process (bench.pipeline_web's `serve`) under `--clients` concurrent clients: the
first request (a cold cache: it counts) and `--seconds` of cached requests of /statistics and
/statistics.csv.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.pipeline_common import (
    REPO,
    bench_database,
    create_tables,
    describe_database,
    free_port,
    machine,
    site_env,
    stop_process,
    wait_port,
    write_json,
)
from bench.pipeline_web import PAGES, load_page

PAGES["statistics"] = lambda i, n: "/statistics"
PAGES["statistics_csv"] = lambda i, n: "/statistics.csv"
COMPLIANCE = ["compliant"] * 8 + ["noncompliant", "absconded", "incarcerated"]


def seed(engine: Any, n: int, seed_: int) -> None:
    from streams.adapters import repository
    from streams.adapters.registrant_statistics import missouri_counties
    from streams.domain.model import Address, OffenderProfile, OffenderState, Offense, SeenEvent

    rng = random.Random(seed_)
    counties = missouri_counties()
    weights = [rng.paretovariate(1.0) for _ in counties]
    states, applied = [], []
    for i in range(n):
        c = rng.choices(counties, weights)[0]
        x0, y0, x1, y1 = c.bbox
        lon, lat = (x0 + x1) / 2, (y0 + y1) / 2
        while not c.contains(lon, lat):  # a point inside the county
            lon, lat = rng.uniform(x0, x1), rng.uniform(y0, y1)
        county = [c.name, f"{c.name} {'City' if c.id == '29510' else 'County'}", None][i % 3]
        p = OffenderProfile(
            f"Last{i}", "First", "1970-01-01", 1 + i % 3, rng.choice(COMPLIANCE), False, (Offense("Offense"),)
        )
        home = Address("home", f"{i} Main St", "Town", "MO", "65000", county=county, lat=lat, lon=lon)
        oid = f"STAT-{i:06d}"
        states.append(OffenderState(oid, 1, False, p, (home,), (SeenEvent(f"{oid}-e1", None),)))
        applied.append(repository.AppliedEvent(f"{oid}-e1", oid, 1, "0" * 64))
    for start in range(0, n, 1000):
        repository.save_offender_states(engine, states[start : start + 1000], applied[start : start + 1000])


async def first_request(base: str) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        t = time.perf_counter()
        async with http.get(base + "/statistics") as r:
            await r.read()
            assert r.status == 200, r.status
        return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    if argv is None and sys.argv[1:2] == ["serve"]:
        from bench.pipeline_web import serve

        serve()
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", default="postgresql", choices=["postgresql", "sqlite"])
    p.add_argument("--registrants", type=int, default=20_000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="default: bench/results/statistics_page-<db>-<registrants>.json")
    args = p.parse_args(argv)

    from streams.adapters.registrant_statistics import count_registrants

    tmp = Path(tempfile.mkdtemp(prefix="sor-bench-stats-"))
    doc: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    server = None
    try:
        url = bench_database(args.db, tmp)
        engine = create_tables(url)
        t = time.perf_counter()
        seed(engine, args.registrants, args.seed)
        doc["seed_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        count_registrants(engine)
        doc["count_s"] = round(time.perf_counter() - t, 2)
        engine.dispose()
        print(f"database: {describe_database(url)}; {args.registrants} registrants; count {doc['count_s']} s")
        port = free_port()
        env = site_env(url, tmp / "data", port)
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.statistics_page", "serve"],
            env=env,
            cwd=REPO,
            stdout=open(tmp / "web.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        doc["first_request_s"] = round(asyncio.run(first_request(base)), 2)
        print(f"first request (counts): {doc['first_request_s']} s", flush=True)
        doc["pages"] = []
        for page in ("statistics", "statistics_csv"):
            res = asyncio.run(load_page(base, page, [""] * args.clients, args.seconds, args.warmup))
            doc["pages"].append(res)
            print(res, flush=True)
    finally:
        stop_process(server)
        shutil.rmtree(tmp, ignore_errors=True)
    print(write_json(args.json, doc, f"statistics_page-{args.db}-{args.registrants}"))


if __name__ == "__main__":
    main()
