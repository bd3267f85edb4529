"""The tracked-circles backlog a worker reads after `up`'s resync, in process.

    python -m bench.circle_backlog --circles 1000000 --repeat 3

`resync` writes the table `cell_bucket_to_circles` straight to its changelog (the worker
restores it before anything else) and publishes the same circles on `tracked-circles` for
workers already running. A worker that restored the table then reads every one of those
messages, and each changes nothing. This times that read the way the agent
(`streams/agents/tracked_circles.py`) does it: decode the message as it crosses the wire,
read the entries it names from the table, `circle_batch.apply`, write what changed. The
broker and faust are left out, so the figure is the worker's own CPU per message.

Each repeat runs on a fresh copy of the table; the figure is the median. The run checks
that nothing changed (a no-op read must write nothing), and a JSON copy goes to
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any


def read_backlog(table: dict[str, Any], wire: list[tuple[str, bytes]]) -> tuple[float, int]:
    """Seconds to read every message as the agent does, and how many entries were written."""
    from streams.domain import circle_batch

    reader = getattr(circle_batch, "EntryReader", None)
    cache = reader() if reader else None
    written = 0
    t0 = time.perf_counter()
    for cell, raw in wire:
        change = circle_batch.decode(json.loads(raw))
        entries = {k: table.get(k) for k in circle_batch.keys_of(cell, change)}
        if cache is None:
            applied = circle_batch.apply(cell, change, entries, 0)
        else:
            applied = circle_batch.apply(cell, change, entries, 0, reader=cache)
        for key, entry in applied.entries.items():
            written += 1
            if entry is None:
                table.pop(key, None)
            else:
                table[key] = entry
    return time.perf_counter() - t0, written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--circles", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--label", default="now")
    args = p.parse_args(argv)

    from bench import workload
    from streams.domain import circle_batch

    circles = list(workload.circles(args.circles, args.seed).domain_circles())
    table = circle_batch.table_entries(circles, lambda cell: 0)
    wire = [
        (cell, json.dumps(v).encode()) for cell, v in circle_batch.messages(("upsert", c) for c in circles)
    ]
    copies = sum(len(v) for _, v in ((c, json.loads(w)["upsert"]) for c, w in wire))
    del circles
    times = []
    for _ in range(args.repeat):
        seconds, written = read_backlog(dict(table), wire)
        if written:
            raise SystemExit(f"a no-op backlog wrote {written} entries: the read is not idempotent")
        times.append(seconds)
    out = {
        "circles": args.circles,
        "messages": len(wire),
        "copies": copies,
        "entries": len(table),
        "seconds": times,
        "median_s": statistics.median(times),
        "us_per_copy": statistics.median(times) / copies * 1e6,
        "load_avg": os.getloadavg()[0],
    }
    print(json.dumps(out))
    from bench.pipeline_common import write_json

    write_json(None, out, f"circle_backlog-{args.label}-{args.circles}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
