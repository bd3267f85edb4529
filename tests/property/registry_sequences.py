"""Random registry days: per-offender sequences of valid events, exact replays, conflicting
repeats, stale and equal revisions, removals, juvenile flags and baseline loads, interleaved."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any

from pyproj import Geod

from tests.reference_model import Place, places_of, watchers_of

GEOD = Geod(ellps="WGS84")
ST_LOUIS = (38.6270, -90.1994)
HALF_MILE, TWO_MILES, FIVE_MILES = 804.672, 3218.688, 8046.72


def _at(origin: tuple[float, float], metres: float, azimuth: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(origin[1], origin[0], azimuth, metres)
    return lat, lon


SCHOOL = _at(ST_LOUIS, 2500, 90)


@dataclass(frozen=True)
class Subscriber:
    email: str
    addresses: tuple[dict[str, Any], ...]  # subscriber-import form
    offenders: tuple[str, ...]


def subscribers(offender_ids: list[str]) -> list[Subscriber]:
    """Three subscribers: two circles, one large circle and a watch, watches only."""

    def place(label: str, at: tuple[float, float], radius: str) -> dict[str, Any]:
        return {
            "label": label,
            "street": f"1 {label} St",
            "city": "St. Louis",
            "state": "MO",
            "zip": "63101",
            "radius": radius,
            "lat": at[0],
            "lon": at[1],
        }

    return [
        Subscriber("one@example.org", (place("Home", ST_LOUIS, "0.5mi"), place("School", SCHOOL, "2mi")), ()),
        Subscriber("two@example.org", (place("Office", ST_LOUIS, "5mi"),), tuple(offender_ids[:2])),
        Subscriber("three@example.org", (), tuple(offender_ids[1:5])),
    ]


def places(subs: list[Subscriber]) -> list[Place]:
    """The circles as the reference model numbers and measures them."""
    return places_of({"addresses": s.addresses} for s in subs)


def watchers(subs: list[Subscriber]) -> dict[str, set[int]]:
    return watchers_of({"offenders": s.offenders} for s in subs)


def locations(rng: random.Random, n: int = 24) -> list[tuple[str, tuple[float, float]]]:
    """Streets, each at one point: inside, a centimetre either side of a radius, or far."""
    spots = []
    for k in range(n):
        r = rng.random()
        if r < 0.3:
            centre, d = ST_LOUIS, rng.choice([HALF_MILE, FIVE_MILES]) + rng.choice([-0.01, 0.01])
        elif r < 0.4:
            centre, d = SCHOOL, TWO_MILES + rng.choice([-0.01, 0.01])
        elif r < 0.8:
            centre, d = ST_LOUIS, rng.uniform(10, 9000)
        else:
            centre, d = ST_LOUIS, rng.uniform(20_000, 200_000)
        spots.append((f"{100 + k} Elm St", _at(centre, d, rng.uniform(0, 360))))
    return spots


def _addresses(rng: random.Random, spots: list[tuple[str, tuple[float, float]]]) -> list[dict[str, Any]]:
    chosen = rng.sample(spots, rng.choice([0, 1, 1, 2, 2, 3]))
    return [
        {
            "type": rng.choice(["home", "home", "work", "school", "temporary"]),
            "street": street,
            "city": "St. Louis",
            "state": "MO",
            "zip": "63101",
            "lat": at[0],
            "lon": at[1],
        }
        for street, at in chosen
    ]


def offender_sequence(
    rng: random.Random, oid: str, index: int, steps: int, spots: list[tuple[str, tuple[float, float]]]
) -> list[dict[str, Any]]:
    revision, sent, out = 0, [], []
    for step in range(steps):
        r = rng.random()
        if sent and r < 0.12:  # the same message again: the latest, or an older one
            ev = sent[-1] if rng.random() < 0.5 else rng.choice(sent)
            out.append(copy.deepcopy(ev))
            continue
        if sent and r < 0.24:  # an id reused with other content: the latest, or an older one
            ev = copy.deepcopy(sent[-1] if rng.random() < 0.5 else rng.choice(sent))
            change = rng.choice(["revision", "addresses", "baseline"])
            if change == "revision":
                ev["revision"] = revision + rng.choice([1, 2])
            elif change == "addresses" and ev["kind"] == "upsert":
                ev["addresses"] = _addresses(rng, spots) + [
                    {
                        "type": "home",
                        "street": f"{900 + step} Repeat Ave",
                        "city": "St. Louis",
                        "state": "MO",
                        "zip": "63101",
                        "lat": ST_LOUIS[0],
                        "lon": ST_LOUIS[1],
                    }
                ]
            else:
                ev["baseline"] = not ev.get("baseline", False)
            out.append(ev)
            continue
        ev: dict[str, Any] = {
            "schema": "registry-event/1",
            "event_id": f"{oid}-s{step}",
            "offender_id": oid,
            "occurred_at": f"2026-12-04T{8 + step // 6:02d}:{step % 6 * 10:02d}:00Z",
        }
        if sent and r < 0.32:  # stale or equal revision, under a new id
            ev["revision"] = rng.randint(1, max(revision, 1))
        else:
            revision += rng.choice([1, 1, 2])
            ev["revision"] = revision
        if sent and rng.random() < 0.15:
            ev["kind"] = "remove"
        else:
            ev["kind"] = "upsert"
            ev["offender"] = {
                "last_name": f"Offender{index}",
                "first_name": "Ray",
                "date_of_birth": "1970-01-01",
                "tier": 2,
                "compliance": "compliant",
                "juvenile": rng.random() < 0.1,
                "offenses": [{"description": "Offense"}],
            }
            ev["addresses"] = _addresses(rng, spots)
            if (not sent and rng.random() < 0.5) or rng.random() < 0.05:
                ev["baseline"] = True
        sent.append(ev)
        out.append(ev)
    return out


def registry_day(
    rng: random.Random, offenders: int, steps: int
) -> tuple[list[str], list[list[dict[str, Any]]]]:
    """Offender ids and their sequences (each in its own order)."""
    spots = locations(rng)
    ids = [f"MO-{i:03d}" for i in range(offenders)]
    return ids, [offender_sequence(rng, oid, i, rng.randint(1, steps), spots) for i, oid in enumerate(ids)]


def interleave(rng: random.Random, sequences: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One stream, each offender's events in their order."""
    queues = [list(s) for s in sequences if s]
    out = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out
