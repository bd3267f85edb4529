"""The geo join in process (the worker's CircleIndex) against PostGIS, same data, same run.

    python -m bench.geo_join --circles 100000 --events 2000 --repeat 3

In process: the index is built the way the worker builds it (bulk_load of Circle values) and
queried the way the agent queries it, one event at a time: `match` is the join itself (circle
ids, subscriber ids and distances, as arrays: what PostGIS returns too), `query` the same
answer as the Circle values `matching.proximity_alerts` reads, and, for scale, "alerts" is
the agent's whole pure step, `proximity_alerts` (the join and one Alert value per pair).

PostGIS (database `bench`, schemas `postgis` and `geo_join`; never `test`): the same circles
and events, with
- "point GiST": a GiST index on the centre `geography(Point)`, per event
  `ST_DWithin(centre, p, radius_m)` exact on the spheroid; the index is reached through
  `ST_DWithin(centre, p, 5 miles)` since a per-row radius cannot drive it;
- "box GiST": a GiST index on a `geography` polygon of each circle's conservative box, per
  event `cover && p AND ST_DWithin(centre, p, radius_m)`;
- one set-based join of all events against all circles, with each index.
Per-event queries are prepared statements over the Unix socket, one round trip each; the set
join aggregates on the server (count, sum of distances). Parallel workers and JIT are off so
every figure is one process.

Both engines must return the same (event, circle) pairs: the run stops if they do not.
Figures are medians of --repeat runs; a JSON copy goes to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import workload
from streams.domain.circle_index import CircleIndex
from streams.domain.matching import proximity_alerts
from streams.domain.model import Address, AddressChange, OffenderSummary
from streams.domain.radii import MAX_RADIUS_M

RESULTS = Path(__file__).parent / "results"
DEFAULT_DSN = "host=/var/run/postgresql dbname=bench user=postgres"
MIN_SECONDS = 1.0  # each timed in-process run loops over the events until this long


def _timed(fn: Callable[[], int], min_seconds: float = 0.0) -> tuple[float, float, int, int]:
    """(wall s, cpu s, loops, result of the last call) of calling fn until min_seconds."""
    loops, w0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        out = fn()
        loops += 1
        wall = time.perf_counter() - w0
        if wall >= min_seconds:
            return wall, time.process_time() - c0, loops, out


def _rates(runs: list[tuple[float, float, int, int]], events: int) -> dict[str, Any]:
    ev = [events * loops / wall for wall, _, loops, _ in runs]
    pairs = [out * loops / wall for wall, _, loops, out in runs]
    cpu = [c / w for w, c, _, _ in runs]
    return {
        "events_per_s": statistics.median(ev),
        "pairs_per_s": statistics.median(pairs),
        "pairs": runs[0][3],
        "cpu_per_wall": statistics.median(cpu),
        "runs_events_per_s": ev,
    }


# -- in process ------------------------------------------------------------------------------


def _address_change(i: int, lat: float, lon: float) -> AddressChange:
    address = Address(
        "home",
        f"{i} Main St",
        "Columbia",
        "MO",
        "65201",
        lat=lat,
        lon=lon,
        normalized=f"{i} MAIN ST COLUMBIA MO 65201",
        precision="address_point",
    )
    who = OffenderSummary(f"MO{i}", f"Offender {i}", "offense", 2, "compliant")
    return AddressChange(f"e{i}", f"MO{i}", "2024-06-01T12:00:00Z", "in", address, who)


def in_process(cs: workload.CircleSet, ev: workload.EventSet, repeat: int) -> tuple[dict, set]:
    index = CircleIndex()
    circles = list(cs.domain_circles())
    t = time.perf_counter()
    index.bulk_load(circles)
    build_s = time.perf_counter() - t
    del circles
    pts = list(zip(ev.lat.tolist(), ev.lon.tolist()))

    def query() -> int:
        return sum(len(index.query(lat, lon)) for lat, lon in pts)

    def match() -> int:
        return sum(len(index.match(lat, lon).circle_id) for lat, lon in pts)

    changes = [_address_change(i, lat, lon) for i, (lat, lon) in enumerate(pts)]

    def alerts() -> int:
        return sum(len(proximity_alerts(c, index)) for c in changes)

    out: dict[str, Any] = {"build_s": build_s}
    kinds = [("match", match), ("query", query), ("alerts", alerts)]
    if not hasattr(index, "match"):  # the index before this benchmark had no `match`
        kinds = kinds[1:]
    for name, fn in kinds:
        fn()  # warm
        out[name] = _rates([_timed(fn, MIN_SECONDS) for _ in range(repeat)], len(pts))
    distance: dict[tuple[int, int], float] = {}
    for i, (lat, lon) in enumerate(pts):
        distance.update(((i, c.circle_id), d) for c, d in index.query(lat, lon))
    out["distance_m"] = distance
    return out, set(distance)


# -- PostGIS ---------------------------------------------------------------------------------

POINT = "ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography"
PER_EVENT = {
    "point GiST": (
        "SELECT circle_id, ST_Distance(centre, q.p) FROM circles, (SELECT {p} AS p) q "
        "WHERE ST_DWithin(centre, q.p, {max_r}) AND ST_DWithin(centre, q.p, radius_m)"
    ),
    "box GiST": (
        "SELECT circle_id, ST_Distance(centre, q.p) FROM circles, (SELECT {p} AS p) q "
        "WHERE cover && q.p AND ST_DWithin(centre, q.p, radius_m)"
    ),
}
SET_JOIN = {
    "point GiST": ("ST_DWithin(c.centre, e.geog, {max_r}) AND ST_DWithin(c.centre, e.geog, c.radius_m)"),
    "box GiST": "c.cover && e.geog AND ST_DWithin(c.centre, e.geog, c.radius_m)",
}


def connect(dsn: str) -> Any:
    import psycopg

    conn = psycopg.connect(dsn, autocommit=True)
    if conn.info.dbname != "bench":
        raise SystemExit(f"refusing to run outside database bench (got {conn.info.dbname!r})")
    conn.execute("CREATE SCHEMA IF NOT EXISTS postgis")
    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis SCHEMA postgis")
    conn.execute("CREATE SCHEMA IF NOT EXISTS geo_join")
    conn.execute("SET search_path = geo_join, postgis")
    conn.execute("SET max_parallel_workers_per_gather = 0")
    conn.execute("SET jit = off")
    return conn


def load_postgis(conn: Any, cs: workload.CircleSet, ev: workload.EventSet) -> dict[str, float]:
    from streams.domain.geometry import bounding_boxes

    times: dict[str, float] = {}
    conn.execute("DROP TABLE IF EXISTS circles, events")
    conn.execute(
        "CREATE TABLE circles (circle_id bigint PRIMARY KEY, subscriber_id bigint NOT NULL, "
        "lat float8, lon float8, radius_m float8 NOT NULL, "
        "min_lon float8, min_lat float8, max_lon float8, max_lat float8)"
    )
    conn.execute("CREATE TABLE events (event_id int PRIMARY KEY, lat float8, lon float8)")
    min_lon, min_lat, max_lon, max_lat = bounding_boxes(cs.lat, cs.lon, cs.radius_m)
    t = time.perf_counter()
    with conn.cursor() as cur:
        with cur.copy("COPY circles FROM STDIN") as copy:
            for row in zip(
                cs.circle_id.tolist(),
                cs.subscriber_id.tolist(),
                cs.lat.tolist(),
                cs.lon.tolist(),
                cs.radius_m.tolist(),
                min_lon.tolist(),
                min_lat.tolist(),
                max_lon.tolist(),
                max_lat.tolist(),
            ):
                copy.write_row(row)
        with cur.copy("COPY events FROM STDIN") as copy:
            for row in zip(range(len(ev)), ev.lat.tolist(), ev.lon.tolist()):
                copy.write_row(row)
    times["copy_s"] = time.perf_counter() - t
    t = time.perf_counter()
    conn.execute(
        "ALTER TABLE circles ADD COLUMN centre geography(Point, 4326), "
        "ADD COLUMN cover geography(Polygon, 4326)"
    )
    # float8 columns print with full precision, so centres are the same doubles as in process.
    conn.execute(
        "UPDATE circles SET centre = ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography, "
        "cover = ST_MakeEnvelope(min_lon, min_lat, max_lon, max_lat, 4326)::geography"
    )
    conn.execute("ALTER TABLE events ADD COLUMN geog geography(Point, 4326)")
    conn.execute("UPDATE events SET geog = ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography")
    times["geography_s"] = time.perf_counter() - t
    t = time.perf_counter()
    conn.execute("CREATE INDEX circles_centre ON circles USING gist (centre)")
    times["point_gist_s"] = time.perf_counter() - t
    t = time.perf_counter()
    conn.execute("CREATE INDEX circles_cover ON circles USING gist (cover)")
    times["box_gist_s"] = time.perf_counter() - t
    conn.execute("CREATE INDEX events_geog ON events USING gist (geog)")
    conn.execute("VACUUM ANALYZE circles")
    conn.execute("VACUUM ANALYZE events")
    return times


def postgis_per_event(
    conn: Any, sql: str, pts: list[tuple[float, float]], repeat: int
) -> tuple[dict[str, Any], dict[int, dict[int, float]]]:
    found: dict[int, dict[int, float]] = {}

    def run() -> int:
        n = 0
        with conn.cursor() as cur:
            for i, (lat, lon) in enumerate(pts):
                cur.execute(sql, (lon, lat), prepare=True)
                rows = cur.fetchall()
                found[i] = dict(rows)
                n += len(rows)
        return n

    run()  # warm: pages in cache, statement prepared
    return _rates([_timed(run) for _ in range(repeat)], len(pts)), found


def postgis_set_join(conn: Any, cond: str, n_events: int, repeat: int) -> tuple[dict, str]:
    sql = f"SELECT count(*), sum(ST_Distance(c.centre, e.geog)) FROM events e JOIN circles c ON {cond}"

    def run() -> int:
        return int(conn.execute(sql).fetchone()[0])

    run()
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql).fetchall())
    return _rates([_timed(run) for _ in range(repeat)], n_events), plan


def set_join_pairs(conn: Any, cond: str) -> dict[tuple[int, int], float]:
    rows = conn.execute(
        f"SELECT e.event_id, c.circle_id, ST_Distance(c.centre, e.geog) FROM events e "
        f"JOIN circles c ON {cond}"
    ).fetchall()
    return {(e, c): d for e, c, d in rows}


# -- the run ---------------------------------------------------------------------------------


def compare(name: str, ours: set, theirs: set, limit: int = 10) -> None:
    if ours == theirs:
        return
    only_ours, only_theirs = sorted(ours - theirs), sorted(theirs - ours)
    print(
        f"MISMATCH ({name}): {len(only_ours)} pairs only in process, {len(only_theirs)} only in PostGIS",
        file=sys.stderr,
    )
    for p in only_ours[:limit]:
        print("  in process only:", p, file=sys.stderr)
    for p in only_theirs[:limit]:
        print("  PostGIS only:", p, file=sys.stderr)
    raise SystemExit(f"the engines disagree ({name}): the comparison would be worthless")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.geo_join", description=__doc__.split("\n")[0])
    p.add_argument("--circles", type=int, default=100_000)
    p.add_argument("--events", type=int, default=2_000)
    p.add_argument("--pg-events", type=int, help="events for PostGIS per-event runs (default all)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tag", default="", help="suffix of the results file name")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dsn", default=DEFAULT_DSN, help="libpq DSN of database bench")
    p.add_argument("--no-postgis", action="store_true", help="the in-process side only")
    args = p.parse_args(argv)

    cs, ev = workload.circles(args.circles, args.seed), workload.events(args.events, args.seed)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    result: dict[str, Any] = {
        "circles": args.circles,
        "events": args.events,
        "seed": args.seed,
        "repeat": args.repeat,
        "started": started,
        "load_before": os.getloadavg(),
        "python": platform.python_version(),
    }
    ours, our_pairs = in_process(cs, ev, args.repeat)
    our_dist = ours.pop("distance_m")
    result["in_process"] = ours
    counts = np.bincount([e for e, _ in our_pairs], minlength=len(ev))
    large = ev.in_cities()
    result["matches_per_event"] = {
        "all": workload.summary(counts),
        "large_cities": workload.summary(counts[large]),
    } | {c: workload.summary(counts[ev.in_cities((c,))]) for c in workload.LARGE_CITIES}
    print(
        f"{args.circles} circles, {args.events} events (seed {args.seed}); matches per event: "
        f"mean {counts.mean():.1f}, large cities mean {counts[large].mean():.1f}"
    )
    print(f"in process: build {ours['build_s']:.2f} s")
    for k in ("match", "query", "alerts"):
        if k not in ours:
            continue
        r = ours[k]
        print(f"  {k:10s} {r['events_per_s']:10.0f} events/s {r['pairs_per_s']:12.0f} pairs/s")

    if not args.no_postgis:
        conn = connect(args.dsn)
        result["postgis_version"] = conn.execute("SELECT postgis_full_version()").fetchone()[0]
        result["postgresql_version"] = conn.execute("SHOW server_version").fetchone()[0]
        result["postgis_load"] = load_postgis(conn, cs, ev)
        n_pg = min(args.pg_events or len(ev), len(ev))
        pts = list(zip(ev.lat.tolist(), ev.lon.tolist()))[:n_pg]
        max_r = repr(float(MAX_RADIUS_M))
        pg: dict[str, Any] = {"per_event_events": n_pg}
        for name, template in PER_EVENT.items():
            sql = template.format(p=POINT, max_r=max_r)
            rates, found = postgis_per_event(conn, sql, pts, args.repeat)
            pg[f"per_event {name}"] = rates
            theirs = {(i, c) for i, rows in found.items() for c in rows}
            compare(f"per event, {name}", {q for q in our_pairs if q[0] < n_pg}, theirs)
            print(
                f"PostGIS per event, {name}: {rates['events_per_s']:.0f} events/s "
                f"{rates['pairs_per_s']:.0f} pairs/s"
            )
        for name, template in SET_JOIN.items():
            cond = template.format(max_r=max_r)
            rates, plan = postgis_set_join(conn, cond, len(ev), args.repeat)
            pg[f"set join {name}"] = rates | {"plan": plan}
            theirs_d = set_join_pairs(conn, cond)
            compare(f"set join, {name}", our_pairs, set(theirs_d))
            delta = max((abs(our_dist[k] - d) for k, d in theirs_d.items()), default=0.0)
            pg[f"set join {name}"]["max_distance_difference_m"] = delta
            print(
                f"PostGIS set join, {name}: {rates['events_per_s']:.0f} events/s "
                f"{rates['pairs_per_s']:.0f} pairs/s (distances differ by at most {delta:.2e} m)"
            )
        result["postgis"] = pg
        result["same_pairs"] = True
        conn.close()
        base = pg["per_event point GiST"]["events_per_s"]
        best = pg["per_event box GiST"]["events_per_s"]
        for k in ("match", "query"):
            if k not in ours:
                continue
            mine = ours[k]["events_per_s"]
            joined = pg["set join box GiST"]["events_per_s"]
            print(
                f"ratio {k}: {mine / base:.0f}x point GiST per event, {mine / best:.0f}x box "
                f"GiST per event, {mine / joined:.1f}x box GiST set join"
            )

    result["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"geo_join-{args.circles}{'-' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
