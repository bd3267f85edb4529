"""The public search under a surge: one `sor-notify web` process, ~20,000 registrants, wrk at 50 connections.

    .venv/bin/python -m bench.web_surge                       # SQLite in a temporary folder
    .venv/bin/python -m bench.web_surge --db postgresql       # PostgreSQL (SOR_BENCH_DATABASE, default `bench`)
    .venv/bin/python -m bench.web_surge --paths search,/faq   # other endpoints, one measurement each
    .venv/bin/python -m bench.web_surge --site-repo /work/wt-base   # the site of another checkout

Seeds `--registrants` public records (Missouri's size) as the registry agent stores them, plus
juvenile and removed ones the search must never show: a few hundred surnames, aliases, one to
three addresses (home, work, school, temporary) in Missouri cities with their counties and
ZIPs. Then starts the site as an operator does (`sor-notify web`, nothing lifted) with
SOR_WEB_TRUSTED_PROXIES=127.0.0.1/32: wrk stands in for the reverse proxy on loopback and
sends a different X-Forwarded-For on every request, so the per-client search limit (60 a
minute) counts many clients, as it would behind nginx, instead of answering 429 to one.

Each `--paths` item is measured on its own, `--runs` times, for `--seconds` at `--connections`:
`search` (names, cities, ZIPs, counties and streets of the loaded data, a different query per
request), `api-near` (`/api/near?lat=&lon=&radius=` around loaded points), a literal path, or
`@FILE` (one path a line). Errors are every answer that is not 2xx (wrk's count and the site's
own sor_web_requests_total) and socket errors. Reported per run: requests/s, p50/p99, errors,
the 1-minute load average, the site's CPU; then medians.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.pipeline_common import (
    REPO,
    bench_database,
    cpu_seconds,
    describe_database,
    free_port,
    load_now,
    machine,
    median,
    print_profile,
    print_table,
    site_env,
    start_py_spy,
    stop_process,
    stop_py_spy,
    summarize_collapsed,
    wait_port,
    write_json,
)
from streams.adapters.db import make_engine

# fmt: off
SURNAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker",
    "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams",
    "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips",
    "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales",
    "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly",
    "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James",
    "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers",
    "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman",
    "Butler", "Henderson", "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan",
    "Patterson", "Alexander", "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole",
    "Hayes", "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford",
    "Castro", "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy",
    "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson",
    "Simpson", "Porter", "Hunter", "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz",
    "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar",
    "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens",
    "Soto", "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins", "Arnold",
    "Pierce", "Vazquez", "Hansen", "Peters", "Santos", "Hart", "Bradley", "Knight", "Elliott", "Cunningham",
    "Duncan", "Armstrong", "Hudson", "Carroll", "Lane", "Riley", "Andrews", "Alvarado", "Ray", "Delgado",
    "Berry", "Perkins", "Hoffman", "Johnston", "Matthews", "Pena", "Richards", "Contreras", "Willis",
    "Carpenter", "Lawrence", "Sandoval", "O'Brien", "DeLaCruz", "Van", "Buren", "St.", "John", "McAllister",
    "O'Neal",
)
# fmt: on
# fmt: off
FIRST = (
    "James", "Mary", "Robert", "Linda", "Michael", "Susan", "David", "Karen", "John", "Lisa", "William",
    "Daniel", "Joseph", "Thomas", "Charles", "Christopher", "Matthew", "Anthony", "Mark", "Donald", "Steven",
    "Paul", "Andrew", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Jason", "Edward",
    "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen", "Larry", "Justin", "Scott",
    "Brandon", "Benjamin", "Samuel", "Gregory", "Frank", "Raymond", "Patrick",
)
# fmt: on
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
    "Locust St",
    "Olive St",
    "Washington Ave",
    "Jefferson St",
    "Market St",
    "Chestnut St",
    "Cedar Ln",
    "Hickory Rd",
    "Highway 61",
    "Route 66",
    "Saint Charles Rock Rd",
    "Mount Vernon Ave",
    "Fort Zumwalt Dr",
)
# (city, county, first ZIP, ZIPs, weight): the big metros hold most, as on Missouri's registry.
CITIES = (
    ("St. Louis", "St. Louis City", 63101, 40, 14),
    ("Florissant", "St. Louis County", 63031, 3, 6),
    ("Kansas City", "Jackson", 64101, 60, 14),
    ("Independence", "Jackson", 64050, 6, 5),
    ("Springfield", "Greene", 65801, 10, 9),
    ("Columbia", "Boone", 65201, 4, 5),
    ("St. Charles", "St. Charles County", 63301, 3, 4),
    ("O'Fallon", "St. Charles", 63366, 2, 3),
    ("St. Joseph", "Buchanan", 64501, 7, 4),
    ("Joplin", "Jasper", 64801, 3, 4),
    ("Jefferson City", "Cole", 65101, 3, 3),
    ("Cape Girardeau", "Cape Girardeau", 63701, 2, 3),
    ("Sedalia", "Pettis", 65301, 2, 2),
    ("Rolla", "Phelps", 65401, 1, 2),
    ("Poplar Bluff", "Butler", 63901, 1, 2),
    ("Hannibal", "Marion", 63401, 1, 2),
    ("Kirksville", "Adair", 63501, 1, 1),
    ("Festus", "Jefferson", 63028, 1, 2),
    ("Lebanon", "Laclede", 65536, 1, 2),
    ("Sikeston", "Scott", 63801, 1, 2),
    ("Warrensburg", "Johnson", 64093, 1, 1),
    ("West Plains", "Howell", 65775, 1, 2),
    ("Nevada", "Vernon", 64772, 1, 1),
    ("Mount Vernon", "Lawrence", 65712, 1, 1),
    ("Fort Leonard Wood", "Pulaski", 65473, 1, 1),
)
TYPES = ("home", "home", "home", "work", "school", "temporary")
COMPLIANCE = ["compliant"] * 8 + ["noncompliant", "absconded", "incarcerated"]


def _address(rng: random.Random, type_: str) -> Any:
    from streams.domain.model import Address

    city, county, zip0, nzip, _ = rng.choices(CITIES, [c[4] for c in CITIES])[0]
    lat = 37.0 + rng.random() * 3.5
    lon = -94.5 + rng.random() * 4.5
    street = f"{rng.randint(1, 9999)} {rng.choice(STREETS)}"
    county_text = rng.choice(
        [county, county if "County" in county or "City" in county else f"{county} County"]
    )
    return Address(
        type_,
        street,
        city,
        "MO",
        f"{zip0 + rng.randrange(nzip)}",
        county=county_text,
        lat=lat,
        lon=lon,
        precision="address_point",
    )


def registrants(n: int, seed: int) -> list[Any]:
    """`n` public records, and n/50 juvenile and n/30 removed ones besides."""
    from streams.domain.model import Alias, OffenderProfile, OffenderState, Offense, SeenEvent

    rng = random.Random(seed)
    out = []
    total = n + n // 50 + n // 30
    for i in range(total):
        juvenile = n <= i < n + n // 50
        removed = i >= n + n // 50
        aliases = tuple(
            Alias(rng.choice(SURNAMES), rng.choice(FIRST)) for _ in range(rng.choice([0, 0, 0, 1, 2]))
        )
        p = OffenderProfile(
            rng.choice(SURNAMES),
            rng.choice(FIRST),
            f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
            rng.choice([1, 2, 3]),
            rng.choice(COMPLIANCE),
            juvenile,
            (Offense("Statutory offense", "566.030"),),
            middle_name=rng.choice([None, "Lee", "Ann", "Ray"]),
            suffix=rng.choice([None] * 12 + ["Jr.", "III"]),
            aliases=aliases,
            photo_url=f"https://photos.registry.example/{i}.jpg" if i % 4 else None,
        )
        addrs = tuple(_address(rng, t) for t in ["home"] + rng.sample(TYPES, rng.choice([0, 0, 1, 2])))
        oid = f"MO-{i:06d}"
        out.append(
            OffenderState(oid, 1, removed, None if removed else p, addrs, (SeenEvent(f"{oid}-e1", None),))
        )
    return out


def seed_database(engine: Any, states: list[Any]) -> None:
    from streams.adapters import repository

    for start in range(0, len(states), 1000):
        chunk = states[start : start + 1000]
        applied = [repository.AppliedEvent(f"{s.offender_id}-e1", s.offender_id, 1, "0" * 64) for s in chunk]
        repository.save_offender_states(engine, chunk, applied)


def search_paths(states: list[Any], count: int, seed: int) -> list[str]:
    """Queries a surge asks: a street or ZIP near home, a name heard, a city, a county."""
    rng = random.Random(seed)
    public = [s for s in states if s.is_public]
    out = []
    for _ in range(count):
        s = rng.choice(public)
        p, a = s.profile, rng.choice(s.addresses)
        kind = rng.choices(
            ["last", "last_first", "prefix", "city", "zip", "county", "street_city"],
            [30, 15, 5, 10, 20, 10, 10],
        )[0]
        q = {
            "last": {"last_name": p.last_name},
            "last_first": {"last_name": p.last_name, "first_name": p.first_name},
            "prefix": {"last_name": p.last_name[:3]},
            "city": {"city": a.city, "address_type": rng.choice(["", "home"])},
            "zip": {"zip": a.zip},
            "county": {"county": a.county, "address_type": "home"},
            "street_city": {"street": a.street.split(" ", 1)[1].split()[0], "city": a.city},
        }[kind]
        out.append("/offenders/search?" + urlencode(q))
    return out


def near_paths(states: list[Any], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pts = [a for s in states if s.is_public for a in s.addresses]
    radii = ["500ft", "1000ft", "0.25mi", "0.5mi", "1mi", "2mi", "3mi", "5mi"]
    return [
        "/api/near?" + urlencode({"lat": f"{a.lat:.5f}", "lon": f"{a.lon:.5f}", "radius": rng.choice(radii)})
        for a in (rng.choice(pts) for _ in range(count))
    ]


def paths_for(item: str, states: list[Any], seed: int) -> list[str]:
    if item == "search":
        return search_paths(states, 5000, seed)
    if item == "api-near":
        return near_paths(states, 5000, seed)
    if item.startswith("@"):
        return [x.strip() for x in Path(item[1:]).read_text().splitlines() if x.strip()]
    if item.startswith("/"):
        return [item]
    raise SystemExit(f"--paths {item!r}: expected search, api-near, /a/path or @file")


LUA = r"""
local paths = {%(paths)s}
local n = 0
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  math.randomseed(%(seed)d + id)
end
request = function()
  n = n + 1
  local i = (n * 7919 + (id or 0) * 104729) %% #paths + 1
  -- A different client on every request: 10.x.y.z behind the proxy (many clients, as in a surge).
  local xff = string.format("10.%%d.%%d.%%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format("GET", paths[i], {["X-Forwarded-For"] = xff})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\"requests\": %%d, \"duration_us\": %%d, \"p50_us\": %%d, \"p99_us\": %%d, \"max_us\": %%d, " ..
    "\"non_2xx_3xx\": %%d, \"socket_errors\": %%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def _lua(paths: list[str], seed: int) -> str:
    quoted = ",".join(json.dumps(p) for p in paths)  # JSON strings are valid Lua strings here (ASCII)
    return LUA % {"paths": quoted, "seed": seed}


CLI = "import sys; from streams.entrypoints.cli import main; sys.exit(main([%s]))"
_REQ = re.compile(
    r'^sor_web_requests_total\{method="(\w+)",route="([^"]*)",status="(\d+)"\} ([0-9.e+]+)$', re.M
)


def site_statuses(metrics_port: int) -> dict[str, float]:
    """Requests the site answered so far, by status (its own counter)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for _m, _route, status, value in _REQ.findall(text):
        out[status] = out.get(status, 0) + float(value)
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            kb = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        return round(kb / 1024, 1)
    except (OSError, StopIteration):
        return float("nan")


def run_wrk(base: str, lua: Path, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "30s",
        "-s",
        str(lua),
        base,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.web_surge", description=__doc__.split("\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--registrants", type=int, default=20_000)
    p.add_argument("--paths", default="search", help="comma-separated: search, api-near, /a/path, @file")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of load before each measured run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--site-repo", default=str(REPO), help="run the site from this checkout (a baseline)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the site during one more run per item (not in the figures)",
    )
    p.add_argument("--tag", default="")
    p.add_argument("--json", help="default: bench/results/web_surge-<db>[-TAG].json")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the site on the way out
    tmp = Path(tempfile.mkdtemp(prefix="sor-bench-surge-"))
    doc: dict[str, Any] = {"machine": machine(), "args": vars(args), "runs": []}
    server = None
    try:
        url = bench_database(args.db, tmp)
        port, metrics_port = free_port(), free_port()
        env = site_env(
            url,
            tmp / "data",
            port,
            SOR_WEB_METRICS_PORT=str(metrics_port),
            SOR_WEB_TRUSTED_PROXIES="127.0.0.1/32",
        )
        env["PYTHONPATH"] = str(Path(args.site_repo).resolve())
        # The schema of the site's own release (`sor-notify db upgrade`): a baseline checkout
        # refuses a database at a revision it does not know.
        subprocess.run(
            [sys.executable, "-c", CLI % "'db', 'upgrade'"], env=env, cwd=args.site_repo, check=True
        )
        engine = make_engine(url)
        states = registrants(args.registrants, args.seed)
        t = time.perf_counter()
        seed_database(engine, states)
        doc["seed_s"] = round(time.perf_counter() - t, 1)
        engine.dispose()
        targets = {item: paths_for(item, states, args.seed) for item in args.paths.split(",") if item}
        print(
            f"database: {describe_database(url)}; {len(states)} records ({args.registrants} public); "
            f"seeded in {doc['seed_s']} s; site from {args.site_repo}",
            flush=True,
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLI % "'web'",
            ],
            env=env,
            cwd=args.site_repo,
            stdout=open(tmp / "web.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise SystemExit(
                    f"the site exited ({server.returncode}): {(tmp / 'web.log').read_text()[-2000:]}"
                )
            try:
                wait_port(port, 1)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
        base = f"http://127.0.0.1:{port}"
        # The first search waits for what the site loads at its start (a search index): timed
        # apart, so the runs measure the site as it serves, not as it starts.
        t = time.perf_counter()
        with urllib.request.urlopen(base + next(iter(targets.values()))[0], timeout=600) as r:
            r.read()
        doc["first_request_s"] = round(time.perf_counter() - t, 2)
        doc["site_rss_mb_at_start"] = rss_mb(server.pid)
        print(
            f"first request: {doc['first_request_s']} s; site RSS {doc['site_rss_mb_at_start']} MB",
            flush=True,
        )
        for item, paths in targets.items():
            lua = tmp / "surge.lua"
            lua.write_text(_lua(paths, args.seed))
            if args.warmup:
                run_wrk(base, lua, args, args.warmup)
            for r in range(1, args.runs + 1):
                load0 = load_now()
                cpu0, st0 = cpu_seconds(server.pid), site_statuses(metrics_port)
                w = run_wrk(base, lua, args, args.seconds)
                cpu1, st1 = cpu_seconds(server.pid), site_statuses(metrics_port)
                statuses = {
                    k: int(st1.get(k, 0) - st0.get(k, 0)) for k in st1 if st1.get(k, 0) != st0.get(k, 0)
                }
                seconds = w["duration_us"] / 1e6
                res = {
                    "paths": item,
                    "run": r,
                    "rps": round(w["requests"] / seconds, 1),
                    "p50_ms": round(w["p50_us"] / 1000, 1),
                    "p99_ms": round(w["p99_us"] / 1000, 1),
                    "max_ms": round(w["max_us"] / 1000, 1),
                    "errors": w["non_2xx_3xx"]
                    + w["socket_errors"]
                    + sum(v for k, v in statuses.items() if not k.startswith("2")),
                    "site_statuses": statuses,
                    "site_cpu_pct": round(100 * (cpu1 - cpu0) / seconds),
                    "load_1m_before": load0,
                    "load_1m_after": load_now(),
                    "requests": w["requests"],
                }
                doc["runs"].append(res)
                print(json.dumps(res), flush=True)
            if args.profile:
                out = tmp / "site.collapsed"
                spy = start_py_spy(server.pid, out)
                run_wrk(base, lua, args, args.seconds)
                stop_py_spy(spy)
                doc.setdefault("profile", {})[item] = prof = summarize_collapsed(
                    out, top=25, focus=("streams/", "aiohttp/", "jinja2/", "sqlalchemy/", "markupsafe/")
                )
                print_profile(f"site profile ({item})", prof)
    finally:
        stop_process(server)
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    doc["summary"] = {}
    for item in targets:
        mine = [x for x in doc["runs"] if x["paths"] == item]
        s = {
            k: median(x[k] for x in mine)
            for k in ("rps", "p50_ms", "p99_ms", "max_ms", "site_cpu_pct", "load_1m_after")
        }
        s["errors"] = sum(x["errors"] for x in mine)
        doc["summary"][item] = s
        rows.append(
            [item, s["rps"], s["p50_ms"], s["p99_ms"], s["errors"], s["site_cpu_pct"], s["load_1m_after"]]
        )
    print(
        f"\nmedian of {args.runs} runs of {args.seconds:g} s, {args.connections} connections, {describe_database(url)}:"
    )
    print_table(["paths", "rps", "p50_ms", "p99_ms", "errors", "site_cpu_%", "load_1m"], rows)
    doc["load_at_end"] = load_now()
    saved = write_json(args.json, doc, f"web_surge-{args.db}" + (f"-{args.tag}" if args.tag else ""))
    print(f"figures written to {saved}")
    return 0 if all(s["errors"] == 0 for s in doc["summary"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
