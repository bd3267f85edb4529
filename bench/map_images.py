"""What one digest map picture costs: drawn and encoded, per distinct map, in this process.

    .venv/bin/python -m bench.map_images --maps 200 --runs 3

Circles from bench.workload (seed 1), each with 1-3 offender addresses inside it, so every
picture is a distinct one (the cache of a run never helps here). Prints medians over runs of
the mean wall and CPU time a picture (draw, palette, PNG) and its mean size, with the load average.
Where the checkout draws the base layer in tiles kept a process (map_tiles.TileCache), each run
says how many tiles it drew: the first run pays for them (a new process), later ones reuse them;
`--fresh-tiles` starts every run with none.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from bench import workload
from streams.adapters import map_images
from streams.domain.digest_map import MapPoint, MapSpec
from streams.domain.geometry import GEOD

RESULTS = Path(__file__).resolve().parent / "results"


def specs(n: int, seed: int) -> list[MapSpec]:
    cs = workload.circles(n, seed=seed)
    rnd = random.Random(seed)
    out = []
    for _cid, _sid, lat, lon, radius, _code in cs.rows():
        points = []
        for _ in range(rnd.randint(1, 3)):
            plon, plat, _ = GEOD.fwd(lon, lat, rnd.uniform(0, 360), radius * rnd.uniform(0.1, 1.0))
            points.append(
                MapPoint(float(plat), float(plon), rnd.choice(("home", "work", "school")), rnd.random() < 0.8)
            )
        out.append(MapSpec(float(lat), float(lon), float(radius), tuple(points)))
    return out


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--maps", type=int, default=200)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fresh-tiles", action="store_true", help="every run starts with no tiles kept")
    args = p.parse_args()
    try:
        from streams.adapters import map_tiles
    except ImportError:  # a checkout that draws each picture whole
        map_tiles = None  # type: ignore[assignment]
    todo = specs(args.maps, args.seed)
    map_images.png(todo[0])  # fonts and the base layer's files read once, as a run does
    rows = []
    for run in range(1, args.runs + 1):
        if map_tiles is not None and (args.fresh_tiles or run == 1):
            map_tiles.TILES = map_tiles.TileCache()
        drawn0 = map_tiles.TILES.drawn if map_tiles is not None else 0
        load0, sizes = load(), []
        t, cpu = time.perf_counter(), time.process_time()
        for spec in todo:
            sizes.append(len(map_images.png(spec)))
        ms = 1000 * (time.perf_counter() - t) / len(todo)
        cpu_ms = 1000 * (time.process_time() - cpu) / len(todo)
        rows.append(
            {
                "run": run,
                "ms_a_map": round(ms, 2),
                "cpu_ms_a_map": round(cpu_ms, 2),
                "mean_kb": round(sum(sizes) / len(sizes) / 1024, 1),
                "load_1m": load0,
                "tiles_drawn": map_tiles.TILES.drawn - drawn0 if map_tiles is not None else None,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    summary = {
        "maps": args.maps,
        "fresh_tiles": args.fresh_tiles,
        "median_ms_a_map": statistics.median(r["ms_a_map"] for r in rows),
        "median_cpu_ms_a_map": statistics.median(r["cpu_ms_a_map"] for r in rows),
        "runs": rows,
    }
    print(json.dumps(summary))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "map_images.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
