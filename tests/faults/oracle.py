"""A seeded registry day with heavy fan-out, and what each subscriber's digest must say.

The oracle runs the same domain rules in-process over every circle at once; the fault tests
compare the e-mails a real SMTP server received with it.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from email.message import EmailMessage
from urllib.parse import parse_qs, urlparse

from pyproj import Geod
from sqlalchemy import text

from streams.adapters import repository
from streams.adapters.event_codec import decode_registry_event, encode_registry_event
from streams.domain.circle_index import CircleIndex
from streams.domain.digest import build_digest
from streams.domain.matching import apply_event, proximity_alerts, watch_alerts
from streams.domain.model import Alert
from streams.domain.cells import cells_overlapping
from streams.domain.geometry import bounding_box
from streams.domain.radii import RADII
from tests.e2e.conftest import REPO
from tests.e2e.test_pipeline import event, profile

GEOD = Geod(ellps="WGS84")
CITIES = [(38.6270, -90.1994), (39.0997, -94.5786)]  # St. Louis, Kansas City
# Large radii dominate so one event lands in many circles (heavy fan-out).
RADIUS_WEIGHTS = {"1mi": 2, "2mi": 3, "3mi": 3, "5mi": 3, "half": 1}



def _near(rng: random.Random, city: tuple[float, float], max_m: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(city[1], city[0], rng.uniform(0, 360), max_m * rng.random() ** 0.5)
    return round(lat, 6), round(lon, 6)


def workload(
    rng: random.Random, subscribers_n: int, offenders_n: int, waves_n: int
) -> tuple[list[dict], list[dict], list[list[dict]]]:
    """Subscribers around two cities; offenders seen at baseline, then moving `waves_n` times."""
    radii = [code for code in RADII if code in RADIUS_WEIGHTS]
    weights = [RADIUS_WEIGHTS[c] for c in radii]
    subscribers = []
    for i in range(subscribers_n):
        addresses = []
        for k in range(rng.choice([1, 1, 2, 3])):
            lat, lon = _near(rng, rng.choice(CITIES), 9000)
            addresses.append({"label": f"Place {i}-{k}", "street": f"{i + 1}{k} Main St", "city": "Town",
                              "state": "MO", "zip": "63101", "radius": rng.choices(radii, weights)[0],
                              "lat": lat, "lon": lon})
        watched = rng.sample(range(offenders_n), rng.choice([0, 0, 1, 2]))
        subscribers.append({"email": f"subscriber{i}@example.org", "confirmed": True,
                            "offenders": [f"OFF-{j:04d}" for j in watched], "addresses": addresses})

    def addresses(j: int, rev: int) -> list[dict]:
        out = []
        for t in rng.sample(["home", "work", "school"], rng.choice([1, 1, 2])):
            lat, lon = _near(rng, rng.choice(CITIES), 12000)
            out.append({"type": t, "street": f"{j} Rev{rev} {t.title()} Ave", "city": "Town", "state": "MO",
                        "zip": "63101", "lat": lat, "lon": lon})
        return out

    baseline, waves = [], [[] for _ in range(waves_n)]
    for j in range(offenders_n):
        oid = f"OFF-{j:04d}"
        prof = profile(f"Last{j}", f"First{j}")
        baseline.append(event(oid, 1, prof, addresses(j, 1)))
        for w in range(waves_n):
            waves[w].append(event(oid, w + 2, prof, addresses(j, w + 2)))
    return subscribers, baseline, waves


def oracle_digests(engine, baseline: list[dict], waves: list[list[dict]]) -> tuple[dict[int, dict], set[str]]:
    """What each subscriber's digest must say, and the ids of the alerts behind it: the domain
    rules over every circle at once."""
    index = CircleIndex()
    for circle in repository.active_circles(engine):
        index.upsert(circle)
    watchers: dict[str, list[int]] = defaultdict(list)
    for sid, oid in repository.active_watches(engine):
        watchers[oid].append(sid)
    states: dict = {}
    alerts: dict[int, list[Alert]] = defaultdict(list)
    for doc in baseline + [ev for wave in waves for ev in wave]:
        raw = encode_registry_event(doc | ({"baseline": True} if doc in baseline else {}))
        ev = decode_registry_event(raw, doc["offender_id"].encode())
        out = apply_event(states.get(ev.offender_id), ev)
        states[ev.offender_id] = out.state
        for change in out.address_changes:
            for a in proximity_alerts(change, index):
                alerts[a.subscriber_id].append(a)
        if out.watch_change is not None:
            for a in watch_alerts(out.watch_change, watchers[ev.offender_id]):
                alerts[a.subscriber_id].append(a)
    want: dict[int, dict] = {}
    for sid, items in alerts.items():
        digest = build_digest(sid, items)
        if digest is None:
            continue
        want[sid] = {
            "proximity": Counter(
                (place.tracked_address_id, line.offender_id, line.direction)
                for place in digest.places for line in place.lines
            ),
            "watches": Counter(w.offender_id for w in digest.watches),
        }
    return want, {a.alert_id for items in alerts.values() for a in items}


def read_digest(msg: EmailMessage) -> dict:
    """The changes one digest e-mail lists, from its plain-text part."""
    body = msg.get_body(preferencelist=("plain",)).get_content()
    proximity: Counter = Counter()
    watches: Counter = Counter()
    direction, in_watches = None, False
    for line in body.splitlines():
        if "(moved in):" in line:
            direction = "in"
        elif "(moved out):" in line:
            direction = "out"
        elif line.startswith("OFFENDERS YOU TRACK"):
            in_watches, direction = True, None
        elif line.startswith("WHY YOU RECEIVED THIS"):
            in_watches = False
        m = re.search(r"Map: (\S+)", line)
        if m and direction:
            q = parse_qs(urlparse(m.group(1)).query)
            proximity[(int(q["tracked"][0]), q["offender"][0], direction)] += 1
        m = re.search(r"Registry record: \S+/offenders/(\S+)", line)
        if m and in_watches:
            watches[m.group(1)] += 1
    return {"proximity": proximity, "watches": watches}


def wait_for_circles(system, engine, timeout: float = 180.0) -> None:
    """Every copy of every active circle indexed by some worker."""
    copies = {
        (cell, c.circle_id)
        for c in repository.active_circles(engine)
        for cell in cells_overlapping(bounding_box(c.lat, c.lon, c.radius_m))
    }
    deadline = time.monotonic() + timeout
    seen: set = set()
    while time.monotonic() < deadline and not copies <= seen:
        seen = {(m.group(2), int(m.group(1))) for m in re.finditer(
            r'"circle_id": (\d+), "cell": "([^"]+)", "event": "tracked circle indexed"', system.worker_log())}
        time.sleep(0.5)
    assert copies <= seen, f"{len(copies - seen)} circle copies never indexed"


def recorded_alerts(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("select alert_id from pending_alerts")).scalars())


def wait_for_alerts(system, engine, expected: set[str], stall_s: float = 60.0) -> set[str]:
    """The ids of the alerts recorded, once they include every expected one or stop growing
    for `stall_s` seconds (compared by id: a count could hide a loss behind an extra)."""
    last, since = -1, time.monotonic()
    while True:
        got = recorded_alerts(engine)
        if expected <= got:
            return got
        if len(got) != last:
            last, since = len(got), time.monotonic()
        elif time.monotonic() - since > stall_s:
            return got
        if not system.workers or all(w.poll() is not None for w in system.workers):
            raise AssertionError("no worker left:\n" + system.worker_log()[-4000:])
        time.sleep(0.5)


def alert_difference(expected: set[str], recorded: set[str]) -> str:
    return f"{len(expected - recorded)} expected alerts never recorded, {len(recorded - expected)} unexpected"


def digest_run(system, *, kill_after: float | None) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.entrypoints.cli", "digest", "send"],
        env=system.env | {"SOR_DIGEST_STALE_AFTER_S": "0"}, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if kill_after is not None:
        time.sleep(kill_after)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            return 1
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return 0


def _by_recipient(messages: list[EmailMessage]) -> dict[str, list[EmailMessage]]:
    by_rcpt: dict[str, list[EmailMessage]] = defaultdict(list)
    for m in messages:
        by_rcpt[str(m["To"])].append(m)
    return by_rcpt


def digest_ids(messages: list[EmailMessage]) -> dict[str, list[str]]:
    """Recipients who got more than one e-mail, with the Message-IDs they got (a failure's
    evidence: the same id twice is one digest sent again, different ids two digests)."""
    return {
        rcpt: [str(m["Message-ID"]) for m in msgs]
        for rcpt, msgs in _by_recipient(messages).items() if len(msgs) > 1
    }


def mail_check(subscribers: list[dict], want: dict[int, dict], messages: list[EmailMessage]) -> dict[str, int]:
    """Duplicates, lost and unexpected digest lines, comparing the mail with the oracle."""
    by_rcpt = _by_recipient(messages)
    ids = {s["email"]: n for n, s in enumerate(subscribers, start=1)}
    got = {ids[rcpt]: read_digest(msgs[0]) for rcpt, msgs in by_rcpt.items()}
    lost = sum(
        sum((want[s][k] - got.get(s, {}).get(k, Counter())).values())
        for s in want for k in ("proximity", "watches")
    )
    extra = sum(
        sum((got[s][k] - want.get(s, {}).get(k, Counter())).values())
        for s in got for k in ("proximity", "watches")
    )
    return {
        "e-mails": len(messages),
        "duplicates": sum(len(v) - 1 for v in by_rcpt.values()),
        "lost": lost,
        "unexpected": extra,
        "missing digests": len(set(want) - set(got)),
    }
