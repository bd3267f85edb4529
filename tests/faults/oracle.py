"""A seeded registry day with heavy fan-out, and what each subscriber's digest must say.

What must happen comes from the reference model (tests/reference_model.py), written apart
from the pipeline's rules; the fault tests compare the alerts stored and the e-mails a real
SMTP server received with it.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from email.message import EmailMessage
from typing import Any

from pyproj import Geod
from sqlalchemy import text

from streams.domain.radii import RADII
from tests.digest_reading import digest_lines, text_of
from tests.e2e.conftest import REPO
from tests.e2e.readiness import wait_for_circles as _wait_for_copies
from tests.e2e.test_pipeline import event, profile
from tests.reference_model import Line, Reference, places_of, radius_metres, watchers_of

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
            addresses.append(
                {
                    "label": f"Place {i}-{k}",
                    "street": f"{i + 1}{k} Main St",
                    "city": "Town",
                    "state": "MO",
                    "zip": "63101",
                    "radius": rng.choices(radii, weights)[0],
                    "lat": lat,
                    "lon": lon,
                }
            )
        watched = rng.sample(range(offenders_n), rng.choice([0, 0, 1, 2]))
        subscribers.append(
            {
                "email": f"subscriber{i}@example.org",
                "confirmed": True,
                "offenders": [f"OFF-{j:04d}" for j in watched],
                "addresses": addresses,
            }
        )

    def addresses(j: int, rev: int) -> list[dict]:
        out = []
        for t in rng.sample(["home", "work", "school"], rng.choice([1, 1, 2])):
            lat, lon = _near(rng, rng.choice(CITIES), 12000)
            out.append(
                {
                    "type": t,
                    "street": f"{j} Rev{rev} {t.title()} Ave",
                    "city": "Town",
                    "state": "MO",
                    "zip": "63101",
                    "lat": lat,
                    "lon": lon,
                }
            )
        return out

    baseline, waves = [], [[] for _ in range(waves_n)]
    for j in range(offenders_n):
        oid = f"OFF-{j:04d}"
        prof = profile(f"Last{j}", f"First{j}")
        baseline.append(event(oid, 1, prof, addresses(j, 1)))
        for w in range(waves_n):
            waves[w].append(event(oid, w + 2, prof, addresses(j, w + 2)))
    return subscribers, baseline, waves


def reference_day(subscribers: list[dict], baseline: list[dict], waves: list[list[dict]]) -> Reference:
    """The reference model after the baseline load and the waves, in publishing order."""
    ref = Reference(places_of(subscribers), watchers_of(subscribers))
    for doc in baseline:
        ref.publish(doc | {"baseline": True})
    for wave in waves:
        for doc in wave:
            ref.publish(doc)
    return ref


def check_import_numbering(engine, subscribers: list[dict]) -> None:
    """The reference numbers subscribers and tracked addresses in file order, as an import into
    an empty database does: make sure this one did."""
    with engine.connect() as conn:
        subs = conn.execute(text("select id, email from subscribers order by id")).all()
        tracked = conn.execute(
            text("select id, subscriber_id, label from tracked_addresses order by id")
        ).all()
    assert [(r.id, r.email) for r in subs] == [(n, s["email"]) for n, s in enumerate(subscribers, start=1)]
    assert [(r.id, r.subscriber_id, r.label) for r in tracked] == [
        (p.circle_id, p.subscriber_id, p.label) for p in places_of(subscribers)
    ]


def wait_for_circles(system, subscribers: list[dict], timeout: float = 180.0) -> None:
    """Every copy of every tracked circle indexed by some worker."""
    _wait_for_copies(
        system,
        [
            (n, a["lat"], a["lon"], radius_metres(a["radius"]))
            for n, a in enumerate((a for s in subscribers for a in s["addresses"]), start=1)
        ],
        timeout,
    )


def _alert_key(payload: Any) -> tuple[Any, ...]:
    p = payload if isinstance(payload, dict) else json.loads(payload)
    return (
        p["subscriber_id"],
        p["offender_id"],
        p["kind"],
        p["event_id"],
        p.get("tracked_address_id"),
        (p.get("address") or {}).get("street"),
    )


def recorded_alerts(engine) -> Counter:
    """The alerts stored, in the reference model's terms, each with how many rows hold it."""
    with engine.connect() as conn:
        return Counter(
            _alert_key(p) for p in conn.execute(text("select payload from pending_alerts")).scalars()
        )


def wait_for_alerts(system, engine, expected: Counter, stall_s: float = 60.0) -> Counter:
    """The alerts stored, once they include every expected one or stop growing for `stall_s`
    seconds (compared alert by alert: a count could hide a loss behind an extra)."""
    last, since = -1, time.monotonic()
    while True:
        got = recorded_alerts(engine)
        if not expected - got:
            return got
        if got.total() != last:
            last, since = got.total(), time.monotonic()
        elif time.monotonic() - since > stall_s:
            return got
        if not system.workers or all(w.poll() is not None for w in system.workers):
            raise AssertionError("no worker left:\n" + system.worker_log()[-4000:])
        time.sleep(0.5)


def alert_difference(expected: Counter, recorded: Counter) -> str:
    lost, extra = expected - recorded, recorded - expected
    return (
        f"{lost.total()} expected alerts never recorded (e.g. {list(lost)[:3]}), "
        f"{extra.total()} unexpected or repeated (e.g. {list(extra)[:3]})"
    )


def digest_run(system, *, kill_between_mails: bool = False) -> int | None:
    """`sor-notify digest send`; with `kill_between_mails`, SIGKILLed the moment it names the
    recipient of its second e-mail (the first accepted and marked sent, the second not begun).
    Returns the e-mails accepted when it was killed, None if it ran to the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.entrypoints.cli", "digest", "send"],
        env=system.env | {"SOR_DIGEST_STALE_AFTER_S": "0"},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    at_kill: list[int] = []

    def kill(accepted: int) -> None:
        if accepted >= 1 and not at_kill:
            at_kill.append(accepted)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)

    if kill_between_mails:
        before = len(system.catcher.messages)
        system.catcher.on_recipient = lambda n: kill(n - before)
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        system.catcher.on_recipient = None
    if kill_between_mails:
        assert at_kill, f"the digest run ended before its second e-mail:\n{out}"
        return at_kill[0]
    assert proc.returncode == 0, out
    return None


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
        for rcpt, msgs in _by_recipient(messages).items()
        if len(msgs) > 1
    }


def mail_check(
    subscribers: list[dict], want: dict[int, set[Line]], messages: list[EmailMessage]
) -> dict[str, int]:
    """Duplicates, lost and unexpected digest lines, comparing the mail with the reference."""
    by_rcpt = _by_recipient(messages)
    ids = {s["email"]: n for n, s in enumerate(subscribers, start=1)}
    got = {ids[rcpt]: digest_lines(text_of(msgs[0])) for rcpt, msgs in by_rcpt.items()}
    lost = sum((Counter(want[s]) - got.get(s, Counter())).total() for s in want)
    extra = sum((got[s] - Counter(want.get(s, ()))).total() for s in got)
    return {
        "e-mails": len(messages),
        "duplicates": sum(len(v) - 1 for v in by_rcpt.values()),
        "lost": lost,
        "unexpected": extra,
        "missing digests": len(set(want) - set(got)),
    }
