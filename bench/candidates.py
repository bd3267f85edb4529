"""Finding candidate circles: an R-tree (libspatialindex, through rtree) against the grid
that `CircleIndex` uses, same circles, same events, same run.

    python -m bench.candidates --circles 100000 1000000 --events 2000

Both sides get the same conservative boxes (`geometry.bounding_boxes`). For each event, one at
a time as the worker does: the R-tree's `intersection` (ids as a numpy array) and its
`intersection_v`; the grid's one-cell lookup; then the whole join (`CircleIndex.match`: grid
lookup plus the exact geodesic test) and the same exact test fed with the R-tree's candidates.
Both joins must return the (event, circle) pairs tests/reference_model.py gives, checked every run. Also the build from
numpy columns and the resident memory each structure adds per circle. A JSON copy goes to
bench/results/. Needs the `bench` extra (rtree).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.rebuild import rss_bytes

RESULTS = Path(__file__).parent / "results"


def _per_event(fn: Callable[[int], Any], n_events: int, min_s: float = 1.0) -> float:
    """Seconds per event, looping over the events until at least min_s has passed."""
    done, start = 0, time.perf_counter()
    while True:
        for i in range(n_events):
            fn(i)
        done += n_events
        elapsed = time.perf_counter() - start
        if elapsed >= min_s:
            return elapsed / done


def run(n: int, n_events: int, seed: int) -> dict[str, Any]:
    import rtree.index

    from bench import workload
    from streams.domain.circle_index import CircleIndex
    from streams.domain.geometry import bounding_boxes, circles_holding
    from tests.reference_model import Place, Places

    cs = workload.circles(n, seed)
    ev = workload.events(n_events, seed)
    lat, lon = ev.lat.tolist(), ev.lon.tolist()
    circles = cs.domain_circles()

    before = rss_bytes()
    t = time.perf_counter()
    grid = CircleIndex()
    grid.bulk_load(circles)
    grid_build = time.perf_counter() - t
    grid_rss = rss_bytes() - before

    # The R-tree holds the grid's slots, so its candidates feed the same exact test.
    slots = np.arange(len(grid), dtype=np.int64)
    min_lon, min_lat, max_lon, max_lat = bounding_boxes(grid._lat, grid._lon, grid._radius)
    mins = np.ascontiguousarray(np.column_stack((min_lon, min_lat)))
    maxs = np.ascontiguousarray(np.column_stack((max_lon, max_lat)))
    before = rss_bytes()
    t = time.perf_counter()
    tree = rtree.index.Index((slots, mins, maxs))
    tree_build = time.perf_counter() - t
    tree_rss = rss_bytes() - before

    def tree_candidates(i: int) -> np.ndarray:
        return np.fromiter(tree.intersection((lon[i], lat[i], lon[i], lat[i])), np.int64)

    def tree_candidates_v(i: int) -> np.ndarray:
        p = np.array([[lon[i], lat[i]]])
        return tree.intersection_v(p, p)[0]

    def grid_candidates(i: int) -> Any:
        return grid._candidates(lat[i], lon[i])

    def tree_match(i: int) -> tuple[np.ndarray, np.ndarray]:
        cand = tree_candidates(i)
        pos, dist = circles_holding(
            lat[i],
            lon[i],
            grid._xyz,
            grid._lat,
            grid._lon,
            grid._radius,
            rows=cand,
            max_radius_m=grid._max_radius,
        )
        return grid._id.take(cand.take(pos)), dist

    def grid_match(i: int) -> Any:
        return grid.match(lat[i], lon[i])

    pairs_tree = {(i, int(c)) for i in range(n_events) for c in tree_match(i)[0]}
    pairs_grid = {(i, int(c)) for i in range(n_events) for c in grid_match(i).circle_id}
    # Both joins against the one reference (tests/reference_model.py: geodesic distance to
    # every circle, written apart from the code), not only against each other.
    ref = Places(Place(cid, sub, "", la, lo, r) for cid, sub, la, lo, r, _ in cs.rows())
    pairs_ref = {(i, p.circle_id) for i in range(n_events) for p in ref.holding(lat[i], lon[i])}
    assert pairs_grid == pairs_ref, "the grid's join disagrees with the reference model"
    assert pairs_tree == pairs_ref, "the R-tree's join disagrees with the reference model"
    cand_tree = statistics.fmean(len(tree_candidates(i)) for i in range(n_events))
    cand_grid = statistics.fmean(
        len(grid_candidates(i) if grid_candidates(i) is not None else ()) for i in range(n_events)
    )
    us = {
        name: _per_event(fn, n_events) * 1e6
        for name, fn in (
            ("rtree_intersection", tree_candidates),
            ("rtree_intersection_v", tree_candidates_v),
            ("grid_lookup", grid_candidates),
            ("rtree_join", tree_match),
            ("grid_join", grid_match),
        )
    }
    return {
        "circles": n,
        "events": n_events,
        "seed": seed,
        "pairs": len(pairs_grid),
        "candidates_per_event": {"rtree": cand_tree, "grid": cand_grid},
        "us_per_event": us,
        "build_s": {"rtree": tree_build, "grid_index": grid_build},
        "rss_per_circle": {"rtree": tree_rss / n, "grid_index": grid_rss / n},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.candidates", description=__doc__.split("\n")[0])
    p.add_argument("--circles", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    import os

    out = []
    for n in args.circles:
        r = run(n, args.events, args.seed) | {"load_1min": os.getloadavg()[0]}
        out.append(r)
        us = r["us_per_event"]
        print(
            f"{n:>9} circles  pairs {r['pairs']}  candidates rtree {r['candidates_per_event']['rtree']:.0f} "
            f"grid {r['candidates_per_event']['grid']:.0f}  | us/event: "
            + "  ".join(f"{k} {v:.1f}" for k, v in us.items())
            + f"  | build s: rtree {r['build_s']['rtree']:.2f} grid {r['build_s']['grid_index']:.2f}"
            + f"  | B/circle: rtree {r['rss_per_circle']['rtree']:.0f} grid {r['rss_per_circle']['grid_index']:.0f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "candidates.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
