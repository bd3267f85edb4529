"""One, two or three workers: the same registry day yields exactly the same alerts."""

from __future__ import annotations

import json
import random
import re
import time
import urllib.request

import pytest
from pyproj import Geod
from sqlalchemy import text

from bench import workload as statewide
from streams.adapters.broker import free_port
from streams.adapters.db import make_engine
from streams.domain.addresses import make_address
from streams.domain.circle_index import CircleIndex
from streams.domain.cells import cells_overlapping
from streams.domain.geometry import bounding_box
from streams.domain.matching import apply_event, proximity_alerts
from streams.domain.model import Circle, OffenderProfile, Offense, RegistryEvent
from streams.domain.radii import RADII
from tests.e2e.test_pipeline import event, profile

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
        subscribers.append({
            "email": f"subscriber{i}@example.org", "confirmed": True, "offenders": [],
            "addresses": [{"label": f"Place {i}", "street": f"{i + 1} Main St", "city": "Town", "state": "MO",
                           "zip": "63101", "radius": rng.choice(RADIUS_CODES), "lat": lat, "lon": lon}],
        })
    baseline, changes = [], []
    for j in range(40):
        oid = f"OFF-{j:03d}"
        lat, lon = near(rng.choice(CITIES), 8000)
        addr = [{"type": "home", "street": f"{j} Old Rd", "city": "Town", "state": "MO", "zip": "63101",
                 "lat": lat, "lon": lon}]
        baseline.append(event(oid, 1, profile(f"Last{j}", f"First{j}"), addr))
        lat2, lon2 = near(rng.choice(CITIES), 8000)
        addr2 = [{"type": rng.choice(["home", "work", "school"]), "street": f"{j} New Ave", "city": "Town",
                  "state": "MO", "zip": "63101", "lat": lat2, "lon": lon2}]
        changes.append(event(oid, 2, profile(f"Last{j}", f"First{j}"), addr2))
    return subscribers, baseline, changes


def expected_alerts(subscribers: list[dict], baseline: list[dict], changes: list[dict]) -> set[tuple]:
    """The oracle: the same rules run in-process over every circle at once."""
    index = CircleIndex()
    for n, s in enumerate(subscribers, start=1):
        a = s["addresses"][0]
        index.upsert(Circle(n, n, a["label"], "", a["lat"], a["lon"], RADII[a["radius"]][0], a["radius"]))
    states: dict = {}
    expected: set[tuple] = set()
    for ev in baseline + changes:
        p = ev["offender"]
        re_ev = RegistryEvent(
            event_id=ev["event_id"], offender_id=ev["offender_id"], revision=ev["revision"],
            occurred_at=ev["occurred_at"], kind="upsert", baseline=ev in baseline,
            offender=OffenderProfile(p["last_name"], p["first_name"], p["date_of_birth"], p["tier"],
                                     p["compliance"], p["juvenile"], (Offense(p["offenses"][0]["description"]),)),
            addresses=tuple(make_address(a) for a in ev["addresses"]),
        )
        out = apply_event(states.get(ev["offender_id"]), re_ev)
        states[ev["offender_id"]] = out.state
        for change in out.address_changes:
            for alert in proximity_alerts(change, index):
                expected.add((alert.subscriber_id, alert.offender_id, alert.kind, alert.tracked_address_id))
    return expected


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_same_alerts_whatever_the_number_of_workers(system, workers: int) -> None:
    subscribers, baseline, changes = workload()
    want = expected_alerts(subscribers, baseline, changes)
    assert len(want) >= 20  # the workload really exercises the join

    system.env["SOR_PARTITIONS"] = "6"
    system.run("subscribers", "import", str(system.write_jsonl("s.jsonl", subscribers)))
    system.run("registry", "publish", "--baseline", str(system.write_jsonl("b.jsonl", baseline)))
    for _ in range(workers):
        system.start_worker()
    system.wait_until("select count(*) from offenders", lambda n: n == len(baseline), timeout=120)
    # Every copy of every circle indexed somewhere before the day's changes arrive.
    copies = {
        (cell, n)
        for n, s in enumerate(subscribers, start=1)
        for cell in cells_overlapping(bounding_box(
            s["addresses"][0]["lat"], s["addresses"][0]["lon"], RADII[s["addresses"][0]["radius"]][0]))
    }
    deadline = time.monotonic() + 120
    seen: set[tuple[str, int]] = set()
    while time.monotonic() < deadline and not copies <= seen:
        seen = {(m.group(2), int(m.group(1))) for m in re.finditer(
            r'"circle_id": (\d+), "cell": "([^"]+)", "event": "tracked circle indexed"', system.worker_log())}
        time.sleep(0.5)
    assert copies <= seen, f"{len(copies - seen)} circle copies never indexed"

    system.run("registry", "publish", str(system.write_jsonl("c.jsonl", changes)))
    system.wait_until("select count(*) from offenders where revision = 2", lambda n: n == len(changes), timeout=120)
    system.wait_until("select count(*) from pending_alerts", lambda n: n >= len(want), timeout=120)
    time.sleep(2)  # a duplicate or a stray alert would show up now
    engine = make_engine(system.env["SOR_DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(text("select payload from pending_alerts")).scalars().all()
    engine.dispose()
    got = set()
    assert len(rows) == len(want)  # no alert twice
    for payload in rows:
        p = payload if isinstance(payload, dict) else json.loads(payload)
        got.add((p["subscriber_id"], p["offender_id"], p["kind"], p["tracked_address_id"]))
    assert got == want


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
        {"email": f"s{n}@example.org", "confirmed": True, "offenders": [],
         "addresses": [{"label": f"Place {cid}", "street": f"{cid} Main St", "city": "Town", "state": "MO",
                        "zip": "63101", "radius": code, "lat": round(lat, 6), "lon": round(lon, 6)}
                       for cid, _, lat, lon, _, code in rows[n:n + 5]]}
        for n in range(0, len(rows), 5)
    ]
    copies = sum(len(cells_overlapping(bounding_box(lat, lon, r))) for _, _, lat, lon, r, _ in rows)

    system.env["SOR_PARTITIONS"] = "12"
    system.run("subscribers", "import", str(system.write_jsonl("s.jsonl", subscribers)))
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
    print(f"\nstatewide balance: circles={len(rows)} copies={copies} "
          f"copies per worker={[int(h['sor_circle_copies_held']) for h in held]} unique per worker={unique}")
    # Each worker carries about a third of the join's work and state...
    assert all(abs(s - 1 / 3) <= 0.2 / 3 for s in share), share
    # ...and holds about as many distinct circles as each of the others.
    mean = sum(unique) / 3
    assert all(abs(u - mean) <= 0.2 * mean for u in unique), unique
