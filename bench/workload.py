"""A seeded Missouri workload: tracked circles and offender addresses clustered around real cities.

Import it:

    from bench import workload
    cs = workload.circles(1_000_000, seed=1)   # CircleSet of numpy columns, circle_id 1..n
    ev = workload.events(10_000, seed=1)       # EventSet: lat, lon, city
    for circle_id, subscriber_id, lat, lon, radius_m, radius_code in cs.rows(): ...
    for c in cs.domain_circles(): ...          # streams.domain.model.Circle objects

or run it (`python -m bench.workload --help`) to write CSV files or print how many circles an
event falls inside. The same (n, seed) always gives the same data, on any machine: only numpy's
PCG64 generator and fixed tables below are used. Circles and events use separate streams of one
seed, and `circles(n, seed)[:m]` is not `circles(m, seed)`: ask for the size you want.

How it is drawn: each point picks a city with probability proportional to its population (the
2020 census, incorporated cities of 10k+), or, with probability RURAL_SHARE, lands anywhere in
the state (a coarse outline of Missouri); around a city it is normally distributed with a
standard deviation of SPREAD_KM_PER_SQRT_THOUSAND * sqrt(population / 1000) km, redrawn until
it falls inside Missouri. Radii are the eight offered ones, 1 mile the most common
(RADIUS_WEIGHTS). SPREAD was tuned so that at 1M circles an event in Kansas City or St. Louis
falls inside about 300 circles (the README of bench/ has the measured figures).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from streams.domain.model import Circle
from streams.domain.radii import RADII, RADIUS_CODES

# (name, lat, lon, population 2020). Centres are the cities' usual map points.
CITIES: tuple[tuple[str, float, float, int], ...] = (
    ("Kansas City", 39.0997, -94.5786, 508_090),
    ("St. Louis", 38.6270, -90.1994, 301_578),
    ("Springfield", 37.2090, -93.2923, 169_176),
    ("Columbia", 38.9517, -92.3341, 126_254),
    ("Independence", 39.0911, -94.4155, 123_011),
    ("Lee's Summit", 38.9108, -94.3822, 101_108),
    ("O'Fallon", 38.8106, -90.6998, 91_316),
    ("St. Joseph", 39.7675, -94.8467, 72_473),
    ("St. Charles", 38.7881, -90.4974, 70_493),
    ("Blue Springs", 39.0169, -94.2816, 58_603),
    ("St. Peters", 38.7875, -90.6299, 57_732),
    ("Florissant", 38.7892, -90.3226, 52_533),
    ("Joplin", 37.0842, -94.5133, 51_762),
    ("Chesterfield", 38.6631, -90.5771, 49_999),
    ("Wentzville", 38.8114, -90.8529, 44_372),
    ("Jefferson City", 38.5767, -92.1735, 43_228),
    ("Cape Girardeau", 37.3059, -89.5181, 39_540),
    ("Wildwood", 38.5828, -90.6629, 35_417),
    ("University City", 38.6559, -90.3093, 35_065),
    ("Ballwin", 38.5950, -90.5462, 31_103),
    ("Liberty", 39.2461, -94.4191, 30_167),
    ("Raytown", 39.0087, -94.4636, 30_012),
    ("Kirkwood", 38.5834, -90.4068, 29_461),
    ("Maryland Heights", 38.7131, -90.4298, 28_284),
    ("Gladstone", 39.2039, -94.5547, 27_063),
    ("Grandview", 38.8858, -94.5330, 26_006),
    ("Hazelwood", 38.7714, -90.3709, 25_535),
    ("Belton", 38.8120, -94.5319, 23_953),
    ("Webster Groves", 38.5926, -90.3573, 23_899),
    ("Nixa", 37.0434, -93.2944, 23_257),
    ("Sedalia", 38.7045, -93.2283, 21_725),
    ("Ozark", 37.0209, -93.2060, 21_284),
    ("Arnold", 38.4328, -90.3776, 20_858),
    ("Rolla", 37.9514, -91.7713, 19_943),
    ("Warrensburg", 38.7628, -93.7360, 19_337),
    ("Farmington", 37.7809, -90.4218, 18_217),
    ("Kirksville", 40.1948, -92.5833, 17_530),
    ("Hannibal", 39.7084, -91.3585, 17_108),
    ("Sikeston", 36.8767, -89.5879, 16_291),
    ("Poplar Bluff", 36.7570, -90.3929, 16_225),
    ("Carthage", 37.1765, -94.3102, 15_522),
    ("Lebanon", 37.6806, -92.6638, 15_013),
    ("Washington", 38.5581, -91.0121, 14_586),
    ("Moberly", 39.4184, -92.4382, 13_783),
    ("Marshall", 39.1231, -93.1969, 13_006),
    ("Branson", 36.6437, -93.2185, 12_638),
    ("Fulton", 38.8467, -91.9480, 12_600),
    ("Neosho", 36.8689, -94.3677, 12_590),
    ("West Plains", 36.7281, -91.8524, 12_184),
    ("Mexico", 39.1697, -91.8829, 11_469),
    ("Maryville", 40.3461, -94.8725, 10_633),
)
CITY_NAMES: tuple[str, ...] = tuple(c[0] for c in CITIES)
LARGE_CITIES: tuple[str, ...] = ("Kansas City", "St. Louis")
RURAL = -1  # the `city` of a point of the statewide scatter

RURAL_SHARE = 0.12
SPREAD_KM_PER_SQRT_THOUSAND = 3.8

# Share of each offered radius among tracked circles; 1 mile the most common.
RADIUS_WEIGHTS: dict[str, float] = {
    "500ft": 0.05,
    "1000ft": 0.08,
    "0.25mi": 0.12,
    "0.5mi": 0.18,
    "1mi": 0.30,
    "2mi": 0.14,
    "3mi": 0.08,
    "5mi": 0.05,
}
# Circles per subscriber (each tracks 1 to 5 addresses).
PER_SUBSCRIBER_WEIGHTS = (0.50, 0.25, 0.12, 0.08, 0.05)

# A coarse outline of Missouri (lon, lat), for the rural scatter and to keep city spreads
# from running into Kansas, Illinois or Arkansas.
MISSOURI_OUTLINE = shapely.Polygon(
    [
        (-95.77, 40.58),
        (-91.73, 40.61),
        (-91.42, 40.38),
        (-91.49, 40.05),
        (-91.36, 39.71),
        (-90.95, 39.35),
        (-90.68, 39.05),
        (-90.20, 38.86),
        (-90.17, 38.63),
        (-90.35, 38.22),
        (-90.05, 37.98),
        (-89.52, 37.31),
        (-89.45, 37.00),
        (-89.13, 36.98),
        (-89.53, 36.59),
        (-89.70, 36.00),
        (-90.37, 36.00),
        (-90.15, 36.50),
        (-94.62, 36.50),
        (-94.62, 39.10),
        (-94.60, 39.15),
        (-94.88, 39.40),
        (-94.95, 39.90),
        (-95.31, 40.00),
        (-95.77, 40.58),
    ]
)
shapely.prepare(MISSOURI_OUTLINE)

_LABELS = ("Home", "Work", "School", "Daycare", "Parents")
_STREETS = ("Main St", "Elm St", "Oak Ave", "Grand Blvd", "Broadway", "Walnut St", "Maple Dr")


@dataclass(frozen=True)
class CircleSet:
    """Tracked circles as numpy columns; row i is circle `circle_id[i]`."""

    circle_id: np.ndarray  # int64, 1..n
    subscriber_id: np.ndarray  # int64
    lat: np.ndarray  # float64
    lon: np.ndarray  # float64
    radius_m: np.ndarray  # float64, one of the eight offered radii
    radius_code: np.ndarray  # str, the radius code of streams.domain.radii
    city: np.ndarray  # int16: index into CITIES, or RURAL

    def __len__(self) -> int:
        return len(self.circle_id)

    def rows(self) -> Iterator[tuple[int, int, float, float, float, str]]:
        """(circle_id, subscriber_id, lat, lon, radius_m, radius_code) as Python values."""
        return zip(
            self.circle_id.tolist(),
            self.subscriber_id.tolist(),
            self.lat.tolist(),
            self.lon.tolist(),
            self.radius_m.tolist(),
            self.radius_code.tolist(),
        )

    def domain_circles(self) -> Iterator[Circle]:
        """The same rows as the worker holds them, with a label and a one-line address."""
        cities = self.city.tolist()
        for (cid, sid, lat, lon, r, code), city in zip(self.rows(), cities):
            town = "Rural Route" if city == RURAL else CITY_NAMES[city]
            one_line = f"{100 + cid % 9900} {_STREETS[cid % 7]}, {town}, MO {63000 + cid % 2000}"
            yield Circle(cid, sid, _LABELS[cid % 5], one_line, lat, lon, r, code)


@dataclass(frozen=True)
class EventSet:
    """Offender address points as numpy columns."""

    lat: np.ndarray  # float64
    lon: np.ndarray  # float64
    city: np.ndarray  # int16: index into CITIES, or RURAL

    def __len__(self) -> int:
        return len(self.lat)

    def in_cities(self, names: tuple[str, ...] = LARGE_CITIES) -> np.ndarray:
        """Mask of the events drawn around the named cities."""
        return np.isin(self.city, [CITY_NAMES.index(n) for n in names])


def _points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pops = np.array([c[3] for c in CITIES], dtype=float)
    weights = np.append(pops / pops.sum() * (1 - RURAL_SHARE), RURAL_SHARE)
    pick = rng.choice(len(weights), size=n, p=weights)
    city = np.where(pick == len(CITIES), RURAL, pick).astype(np.int16)
    lat, lon = np.empty(n), np.empty(n)
    todo = np.arange(n)
    c_lat = np.array([c[1] for c in CITIES])
    c_lon = np.array([c[2] for c in CITIES])
    sigma_km = SPREAD_KM_PER_SQRT_THOUSAND * np.sqrt(pops / 1000.0)
    min_lon, min_lat, max_lon, max_lat = MISSOURI_OUTLINE.bounds
    while todo.size:
        k = city[todo]
        rural = k == RURAL
        kk = np.where(rural, 0, k)
        north_km = rng.normal(size=todo.size) * sigma_km[kk]
        east_km = rng.normal(size=todo.size) * sigma_km[kk]
        la = c_lat[kk] + north_km / 111.132
        lo = c_lon[kk] + east_km / (111.320 * np.cos(np.radians(c_lat[kk])))
        la = np.where(rural, rng.uniform(min_lat, max_lat, todo.size), la)
        lo = np.where(rural, rng.uniform(min_lon, max_lon, todo.size), lo)
        inside = shapely.contains_xy(MISSOURI_OUTLINE, lo, la)
        lat[todo[inside]], lon[todo[inside]] = la[inside], lo[inside]
        todo = todo[~inside]
    return lat, lon, city


def circles(n: int, seed: int = 1) -> CircleSet:
    """n tracked circles, circle ids 1..n, subscribers tracking 1 to 5 each."""
    rng = np.random.default_rng([seed, 0])
    lat, lon, city = _points(rng, n)
    codes = np.array(RADIUS_CODES)
    code = codes[rng.choice(len(codes), size=n, p=[RADIUS_WEIGHTS[c] for c in RADIUS_CODES])]
    radius = np.array([RADII[c][0] for c in code.tolist()]) if n else np.zeros(0)
    per_sub = rng.choice(5, size=n, p=PER_SUBSCRIBER_WEIGHTS) + 1  # at most n subscribers
    subscriber = np.repeat(np.arange(1, n + 1, dtype=np.int64), per_sub)[:n]
    # Shuffled so a subscriber's circles are not all neighbours in id order.
    subscriber = subscriber[rng.permutation(n)]
    return CircleSet(np.arange(1, n + 1, dtype=np.int64), subscriber, lat, lon, radius, code, city)


def events(n: int, seed: int = 1) -> EventSet:
    """n offender address points, drawn like the circles (same cities, same spread)."""
    rng = np.random.default_rng([seed, 1])
    lat, lon, city = _points(rng, n)
    return EventSet(lat, lon, city)


def import_lines(n: int, seed: int) -> tuple[list[str], int]:
    """n lines of a `subscribers import` file (subscribers of circles(seed), at most 5 addresses
    each, with coordinates: no geocoding) and how many circles they track."""
    per_sub: dict[int, list[Circle]] = defaultdict(list)
    for c in circles(int(n * 2.2) + 10, seed).domain_circles():
        per_sub[c.subscriber_id].append(c)
    chosen = sorted(per_sub)[:n]
    if len(chosen) < n:
        raise SystemExit(f"the workload gave {len(chosen)} subscribers, not {n}")
    lines = []
    for sid in chosen:
        addresses = []
        for c in per_sub[sid][:5]:
            street, city, rest = c.one_line.split(", ")
            addresses.append(
                {
                    "label": c.label,
                    "street": street,
                    "city": city,
                    "state": "MO",
                    "zip": rest.split()[-1],
                    "radius": c.radius_code,
                    "lat": c.lat,
                    "lon": c.lon,
                }
            )
        lines.append(
            json.dumps(
                {
                    "email": f"import-{sid}@example.org",
                    "confirmed": True,
                    "addresses": addresses,
                    "offenders": [],
                }
            )
        )
    return lines, sum(min(5, len(per_sub[s])) for s in chosen)


def match_counts(cs: CircleSet, ev: EventSet) -> np.ndarray:
    """How many circles each event falls inside (exact geodesic), via the real CircleIndex."""
    from streams.domain.circle_index import CircleIndex

    index = CircleIndex()
    index.bulk_load(cs.domain_circles())
    return np.array([len(index.query(la, lo)) for la, lo in zip(ev.lat.tolist(), ev.lon.tolist())])


def summary(counts: np.ndarray) -> dict[str, float]:
    if counts.size == 0:
        return {"events": 0}
    return {
        "events": int(counts.size),
        "mean": float(counts.mean()),
        "p50": float(np.percentile(counts, 50)),
        "p99": float(np.percentile(counts, 99)),
        "max": float(counts.max()),
    }


def _write_csv(path: Path, header: list[str], rows: Iterator[tuple]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.workload", description=__doc__.split("\n")[0])
    p.add_argument("--circles", type=int, default=100_000)
    p.add_argument("--events", type=int, default=2_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out-dir", type=Path, help="write circles.csv and events.csv here")
    p.add_argument(
        "--stats",
        action="store_true",
        help="print how many circles an event falls inside (all, large cities)",
    )
    args = p.parse_args(argv)
    cs, ev = circles(args.circles, args.seed), events(args.events, args.seed)
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        _write_csv(
            args.out_dir / "circles.csv",
            ["circle_id", "subscriber_id", "lat", "lon", "radius_m", "radius_code"],
            cs.rows(),
        )
        _write_csv(
            args.out_dir / "events.csv",
            ["lat", "lon", "city"],
            zip(
                ev.lat.tolist(),
                ev.lon.tolist(),
                ["rural" if c == RURAL else CITY_NAMES[c] for c in ev.city.tolist()],
            ),
        )
        print(f"wrote {len(cs)} circles and {len(ev)} events to {args.out_dir}")
    if args.stats:
        counts = match_counts(cs, ev)
        large = ev.in_cities()
        print(f"circles={len(cs)} seed={args.seed}")
        groups = [("all events", np.ones(len(ev), bool)), ("large cities", large)]
        groups += [(f"  {c}", ev.in_cities((c,))) for c in LARGE_CITIES]
        for name, mask in groups:
            s = summary(counts[mask])
            print(
                f"  {name}: "
                + " ".join(f"{k}={v:.0f}" if k != "mean" else f"{k}={v:.1f}" for k, v in s.items())
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
