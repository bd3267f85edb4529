"""Index build and rebuild time after a rebalance, and resident memory per tracked circle.

    python -m bench.rebuild --circles 1000000 --repeat 3 [--profile]

Each repeat runs in a fresh subprocess, twice:
- "worker": the table `cell_bucket_to_circles` as the worker holds it (a dict of
  "cell/bucket" -> {"partition", "buckets", "circles"}, as `resync` writes it: one copy per
  0.1-degree cell a circle's box touches), then exactly what `tracked_circles.rebuild_index`
  does after a rebalance: `CellCircles.rebuild` of the owned copies' circle values (a count of copies and one
  `Circle` per circle, then `CircleIndex.clear` and `bulk_load`). Timed a first time (into an empty
  holder) and a second time (replacing a full one, as on a later rebalance).
- "index": `CircleIndex.bulk_load` alone from a list of Circle values, and again after
  `clear`.
Resident memory per circle is the process's RSS after minus before, over the circles held,
with the input (table, Circle list) alive on both sides so only what the structure keeps is
counted; the C heap is trimmed (malloc_trim) before each reading. Figures are medians; a JSON
copy goes to bench/results/.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def rss_bytes() -> int:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the reading is only less tight
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def table_contents(n: int, seed: int, partitions: int = 8) -> dict[str, dict[str, Any]]:
    """The worker's cell_bucket_to_circles table for the workload's n circles."""
    from bench import workload
    from streams.domain import circle_batch

    return circle_batch.table_entries(
        workload.circles(n, seed).domain_circles(), lambda cell: hash(cell) % partitions
    )


def child_worker(n: int, seed: int, profile: bool) -> dict[str, Any]:
    from streams.domain import circle_batch
    from streams.domain.cell_circles import CellCircles

    table = table_contents(n, seed)
    owned = set(range(8))
    holder = CellCircles()
    before = rss_bytes()
    out: dict[str, Any] = {"table_entries": len(table)}
    profiler = None
    for attempt in ("first", "again"):
        if profile and attempt == "again":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.001)
            profiler.start()
        t0 = time.perf_counter()
        # As tracked_circles.rebuild_index does.
        holder.rebuild(
            row for v in table.values() if v["partition"] in owned for row in circle_batch.entry_rows(v)
        )
        out[f"{attempt}_total_s"] = time.perf_counter() - t0
        if attempt == "first":
            out["rss_per_circle"] = (rss_bytes() - before) / len(holder)
    if profiler is not None:
        profiler.stop()
        out["profile"] = profiler.output_text(unicode=False, color=False)
    out["circles"] = len(holder)
    return out


def child_index(n: int, seed: int, profile: bool) -> dict[str, Any]:
    from bench import workload
    from streams.domain.circle_index import CircleIndex

    circles = list(workload.circles(n, seed).domain_circles())
    index = CircleIndex()
    before = rss_bytes()
    t = time.perf_counter()
    index.bulk_load(circles)
    out: dict[str, Any] = {"bulk_load_s": time.perf_counter() - t}
    out["rss_per_circle"] = (rss_bytes() - before) / len(index)
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    t = time.perf_counter()
    index.clear()
    index.bulk_load(circles)
    out["rebuild_s"] = time.perf_counter() - t
    if profiler is not None:
        profiler.stop()
        out["profile"] = profiler.output_text(unicode=False, color=False)
    out["circles"] = len(index)
    return out


def run_child(kind: str, n: int, seed: int, profile: bool) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "bench.rebuild",
        "--child",
        kind,
        "--circles",
        str(n),
        "--seed",
        str(seed),
    ] + (["--profile"] if profile else [])
    done = subprocess.run(
        cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent
    )
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__.split("\n")[0])
    p.add_argument("--circles", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tag", default="", help="suffix of the results file name")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="pyinstrument the second rebuild")
    p.add_argument("--child", choices=("worker", "index"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        fn = child_worker if args.child == "worker" else child_index
        print(json.dumps(fn(args.circles, args.seed, args.profile)))
        return 0

    result: dict[str, Any] = {
        "circles": args.circles,
        "seed": args.seed,
        "repeat": args.repeat,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load_before": os.getloadavg(),
    }
    for kind in ("index", "worker"):
        runs = [run_child(kind, args.circles, args.seed, args.profile and i == 0) for i in range(args.repeat)]
        profile = runs[0].pop("profile", None)
        summary = {
            k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], (int, float))
        }
        summary["runs"] = runs
        result[kind] = summary
        shown = ", ".join(
            f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items() if k != "runs"
        )
        print(f"{kind}: {shown}")
        if profile:
            print(profile)
            result[kind]["profile"] = profile
    result["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"rebuild-{args.circles}{'-' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
