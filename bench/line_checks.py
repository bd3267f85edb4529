"""What checking one input costs in process: an import line, a registry event.

    python -m bench.line_checks --lines 50000 --events 20000 --repeat 3

Import lines are the ones `bench.pipeline_latency --import-subscribers N` imports (workload
seed 2, 1-5 addresses with coordinates); events are the bench's registry upserts
(`bench/pipeline_common.registry_event`). Each is checked the way the product does it at the
edge: `subscriber_import.parse_subscriber_line` (JSON, schema, e-mail syntax, address
normalization) and `event_codec.decode_registry_event` (JSON, schema, key, the event built).
The figure is the median of the repeats, in µs per item; every item must pass, and a JSON copy
goes to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=50_000)
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--label", default="now")
    args = p.parse_args(argv)

    from bench import workload
    from bench.pipeline_common import registry_event
    from streams.adapters.event_codec import decode_registry_event
    from streams.adapters.subscriber_import import parse_subscriber_line

    lines, _ = workload.import_lines(args.lines, args.seed + 1)
    ev = workload.events(args.events, args.seed)
    events = [
        (oid.encode(), json.dumps(registry_event(oid, 1, i, lat, lon, "Columbia")).encode())
        for i, (lat, lon) in enumerate(zip(ev.lat.tolist(), ev.lon.tolist()))
        for oid in (f"MO-{i:06d}",)
    ]
    line_s, event_s = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for text in lines:
            parse_subscriber_line(text)
        line_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for key, raw in events:
            decode_registry_event(raw, key)
        event_s.append(time.perf_counter() - t0)
    out = {
        "lines": len(lines),
        "events": len(events),
        "line_seconds": line_s,
        "event_seconds": event_s,
        "us_per_line": statistics.median(line_s) / len(lines) * 1e6,
        "us_per_event": statistics.median(event_s) / len(events) * 1e6,
        "load_avg": os.getloadavg()[0],
    }
    print(json.dumps(out))
    from bench.pipeline_common import write_json

    write_json(None, out, f"line_checks-{args.label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
