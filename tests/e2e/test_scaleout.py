"""One, two or three workers: the same registry day yields exactly the same alerts."""

from __future__ import annotations

import json
import random
import re
import time
import urllib.request
from collections import Counter

import pytest
from jsonschema import Draft202012Validator
from pyproj import Geod
from sqlalchemy import text

from bench import workload as statewide
from streams.adapters.broker import free_port
from streams.adapters.db import make_engine
from streams.domain.radii import RADII
from tests.e2e.conftest import REPO
from tests.e2e.readiness import wait_for_circles
from tests.e2e.test_operations import _wait_for
from tests.e2e.test_pipeline import event, profile
from tests.e2e.topic_reading import read_topic
from tests.on_radius import distance_m, point_on_radius
from tests.reference_model import (
    Reference,
    cells_of_circle,
    places_of,
    radius_metres,
    watchers_of,
)

GEOD = Geod(ellps="WGS84")
CITIES = [(38.6270, -90.1994), (39.0997, -94.5786), (37.2090, -93.2923), (38.9517, -92.3341)]
RADIUS_CODES = list(RADII)


def workload(seed: int = 7) -> tuple[list[dict], list[dict], list[dict]]:
    """Subscribers around four cities; offenders seen at baseline, then moving about."""
    rng = random.Random(seed)

    def near(city: tuple[float, float], max_m: float) -> tuple[float, float]:
        lon, lat, _ = GEOD.fwd(city[1], city[0], rng.uniform(0, 360), rng.uniform(0, max_m))
        return round(lat, 6), round(lon, 6)

    subscribers = []
    for i in range(30):
        lat, lon = near(rng.choice(CITIES), 6000)
        subscribers.append(
            {
                "email": f"subscriber{i}@example.org",
                "confirmed": True,
                "offenders": [],
                "addresses": [
                    {
                        "label": f"Place {i}",
                        "street": f"{i + 1} Main St",
                        "city": "Town",
                        "state": "MO",
                        "zip": "63101",
                        "radius": rng.choice(RADIUS_CODES),
                        "lat": lat,
                        "lon": lon,
                    }
                ],
            }
        )
    baseline, changes = [], []
    for j in range(40):
        oid = f"OFF-{j:03d}"
        lat, lon = near(rng.choice(CITIES), 8000)
        addr = [
            {
                "type": "home",
                "street": f"{j} Old Rd",
                "city": "Town",
                "state": "MO",
                "zip": "63101",
                "lat": lat,
                "lon": lon,
            }
        ]
        baseline.append(event(oid, 1, profile(f"Last{j}", f"First{j}"), addr))
        lat2, lon2 = near(rng.choice(CITIES), 8000)
        addr2 = [
            {
                "type": rng.choice(["home", "work", "school"]),
                "street": f"{j} New Ave",
                "city": "Town",
                "state": "MO",
                "zip": "63101",
                "lat": lat2,
                "lon": lon2,
            }
        ]
        changes.append(event(oid, 2, profile(f"Last{j}", f"First{j}"), addr2))
    return subscribers, baseline, changes


def boundary_cases(subscribers: list[dict]) -> tuple[list[dict], list[dict]]:
    """Offenders who settle a centimetre inside or outside a subscriber's radius (where a radius
    a little short or long parts ways), where Geod.fwd at the radius lands (a few ulps one side
    or the other: EDGE-04 ends 6e-11 m past it, EDGE-05 1e-9 m inside), or exactly on it
    (EDGE-06 and EDGE-07: Geod.inv from the centre gives the radius to the last bit, where `<`
    and `<=` part ways)."""
    baseline, changes = [], []
    for j, (s, d) in enumerate(zip(subscribers[:8], (-0.01, 0.01, -0.01, 0.01, 0.0, 0.0, None, None))):
        a = s["addresses"][0]
        radius = radius_metres(a["radius"])
        if d is None:
            lat, lon = point_on_radius(a["lat"], a["lon"], radius, seed=j)
            assert distance_m(a["lat"], a["lon"], lat, lon) == radius  # on it, not within a tolerance
        else:
            lon, lat, _ = GEOD.fwd(a["lon"], a["lat"], 40.0 * j, radius + d)
        oid = f"EDGE-{j:02d}"
        far = {
            "type": "home",
            "street": f"{j} Far Rd",
            "city": "Town",
            "state": "MO",
            "zip": "63101",
            "lat": 36.6,
            "lon": -89.6,
        }
        baseline.append(event(oid, 1, profile(f"Edge{j}", f"First{j}"), [far]))
        changes.append(
            event(
                oid,
                2,
                profile(f"Edge{j}", f"First{j}"),
                [far | {"street": f"{j} Edge St", "lat": lat, "lon": lon}],
            )
        )
    return baseline, changes


def expected_alerts(subscribers: list[dict], baseline: list[dict], changes: list[dict]) -> Counter:
    """The reference model's alerts for the day."""
    ref = Reference(places_of(subscribers), watchers_of(subscribers))
    for ev in baseline:
        ref.publish(ev | {"baseline": True})
    for ev in changes:
        ref.publish(ev)
    return ref.alerts()


ALERT_BATCH = Draft202012Validator(json.loads((REPO / "schemas" / "alert-batch.schema.json").read_text()))


def produced_alerts(system) -> Counter:
    """How many times the workers produced each alert id, from the alerts topic itself: every
    message an alert batch as its schema says, each in the partition of its subscribers."""
    out: Counter = Counter()
    partitions = int(system.env.get("SOR_PARTITIONS", "12"))
    for partition, raw in read_topic(system.env["SOR_BROKER_URL"], "alerts", with_partition=True):
        batch = json.loads(raw)
        ALERT_BATCH.validate(batch)
        columns = batch["columns"]
        assert len({len(c) for c in columns.values()}) == 1, columns
        assert {sid % partitions for sid in columns["subscriber_id"]} == {partition}
        out.update(columns["alert_id"])
    return out


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_same_alerts_whatever_the_number_of_workers(system, workers: int) -> None:
    subscribers, baseline, changes = workload()
    edge_baseline, edge_changes = boundary_cases(subscribers)
    baseline, changes = baseline + edge_baseline, changes + edge_changes
    want = expected_alerts(subscribers, baseline, changes)
    assert want.total() >= 20  # the workload really exercises the join
    # Each edge offender against the circle it was placed on: in by a centimetre, not out by
    # one, and in when exactly on the radius.
    edges = {k[1] for k in want if k[1].startswith("EDGE-") and k[0] == int(k[1][5:]) + 1}
    assert edges - {"EDGE-04", "EDGE-05"} == {"EDGE-00", "EDGE-02", "EDGE-06", "EDGE-07"}

    system.env["SOR_PARTITIONS"] = "6"
    system.run("subscribers", "import", str(system.write_jsonl("s.jsonl", subscribers)))
    system.run("registry", "publish", "--baseline", str(system.write_jsonl("b.jsonl", baseline)))
    for _ in range(workers):
        system.start_worker()
    system.wait_until("select count(*) from offenders", lambda n: n == len(baseline), timeout=120)
    # Every copy of every circle indexed somewhere before the day's changes arrive.
    wait_for_circles(
        system,
        [
            (
                n,
                s["addresses"][0]["lat"],
                s["addresses"][0]["lon"],
                radius_metres(s["addresses"][0]["radius"]),
            )
            for n, s in enumerate(subscribers, start=1)
        ],
        timeout=120,
    )

    system.run("registry", "publish", str(system.write_jsonl("c.jsonl", changes)))
    system.wait_until(
        "select count(*) from offenders where revision = 2", lambda n: n == len(changes), timeout=120
    )
    # Done when the group has committed everything the broker holds (a straggler would be lag).
    _wait_for(
        lambda: json.loads(system.run("status", "--json").stdout),
        lambda st: st["total_lag"] == 0,
        timeout=120,
    )
    engine = make_engine(system.env["SOR_DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(text("select alert_id, payload from pending_alerts")).all()
    engine.dispose()
    got = Counter()
    for _, payload in rows:
        p = payload if isinstance(payload, dict) else json.loads(payload)
        got[
            (
                p["subscriber_id"],
                p["offender_id"],
                p["kind"],
                p["event_id"],
                p["tracked_address_id"],
                p["address"]["street"],
            )
        ] += 1
    assert got == want
    produced = produced_alerts(system)
    assert set(produced) == {alert_id for alert_id, _ in rows}
    assert [i for i, n in produced.items() if n > 1] == []  # each alert produced once, not only stored once


def _gauges(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(sor_circle\w*_held) (\S+)$", body, re.M)}


# How circles spread over workers has nothing to do with the database: one run, on SQLite.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_three_workers_each_hold_a_third_of_a_statewide_workload(system) -> None:
    """Circles spread over Missouri as people are: three workers share them about evenly."""
    circles = statewide.circles(6000, seed=5)
    rows = list(circles.rows())
    subscribers = [
        {
            "email": f"s{n}@example.org",
            "confirmed": True,
            "offenders": [],
            "addresses": [
                {
                    "label": f"Place {cid}",
                    "street": f"{cid} Main St",
                    "city": "Town",
                    "state": "MO",
                    "zip": "63101",
                    "radius": code,
                    "lat": round(lat, 6),
                    "lon": round(lon, 6),
                }
                for cid, _, lat, lon, _, code in rows[n : n + 5]
            ],
        }
        for n in range(0, len(rows), 5)
    ]

    system.env["SOR_PARTITIONS"] = "12"
    system.run("subscribers", "import", str(system.write_jsonl("s.jsonl", subscribers)))
    # The copies the import routed, from the topic itself; each circle's cells as the
    # reference says any right box gives them (every cell it reaches, none far past it).
    routed: dict[int, set[str]] = {}
    sent: dict[int, tuple[float, float, float, str]] = {}
    for key, raw in read_topic(system.env["SOR_BROKER_URL"], "tracked-circles", with_key=True):
        batch = json.loads(raw)
        assert batch["delete"] == []  # a first import drops nothing
        for c in batch["upsert"]:
            routed.setdefault(c["circle_id"], set()).add(key.decode())
            sent[c["circle_id"]] = (c["lat"], c["lon"], c["radius_m"], c["radius_code"])
    assert len(sent) == len(rows)
    for cid, (lat, lon, r, code) in sent.items():
        assert r == radius_metres(code)
        must, may = cells_of_circle(lat, lon, r)
        assert must <= routed[cid] <= may, (cid, must - routed[cid], routed[cid] - may)
    copies = sum(len(cells) for cells in routed.values())
    ports = []
    for _ in range(3):
        ports.append(free_port())
        system.env |= {"SOR_WORKER_WEB": "true", "SOR_WORKER_WEB_PORT": str(ports[-1])}
        system.start_worker()

    # Settled: every copy held exactly once across the workers, and it stays so.
    deadline, held, steady_since = time.monotonic() + 240, [], None
    while time.monotonic() < deadline:
        try:
            held = [_gauges(p) for p in ports]
        except OSError:  # a worker's web server not up yet
            held = []
        if held and sum(h.get("sor_circle_copies_held", 0) for h in held) == copies:
            steady_since = steady_since or time.monotonic()
            if time.monotonic() - steady_since > 5:
                break
        else:
            steady_since = None
        time.sleep(0.5)
    assert held and sum(h["sor_circle_copies_held"] for h in held) == copies, (held, copies)

    unique = [h["sor_circles_held"] for h in held]
    share = [h["sor_circle_copies_held"] / copies for h in held]
    print(
        f"\nstatewide balance: circles={len(rows)} copies={copies} "
        f"copies per worker={[int(h['sor_circle_copies_held']) for h in held]} unique per worker={unique}"
    )
    # Each worker carries about a third of the join's work and state...
    assert all(abs(s - 1 / 3) <= 0.2 / 3 for s in share), share
    # ...and holds about as many distinct circles as each of the others.
    mean = sum(unique) / 3
    assert all(abs(u - mean) <= 0.2 * mean for u in unique), unique
