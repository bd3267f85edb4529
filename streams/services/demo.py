"""`sor-notify up --demo`: fictional offenders and subscribers around real Missouri places."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import structlog

from streams import topics
from streams.adapters import repository
from streams.adapters.gazetteer_import import import_gazetteer
from streams.runtime import Runtime
from streams.services.digests import send_digests
from streams.services.importing import import_subscribers

logger = structlog.get_logger()

# Every person below is fictional; the places are real (coordinates approximate).
SUBSCRIBERS: list[dict[str, Any]] = [
    {
        "email": "parent@example.com",
        "confirmed": True,
        "addresses": [
            # No coordinates: mapped by the demo gazetteer, as a legacy line would be.
            {
                "label": "Home",
                "street": "1 Hitt Street",
                "city": "Columbia",
                "state": "MO",
                "zip": "65201",
                "radius": "0.5mi",
            },
            {
                "label": "School",
                "street": "5600 Clayton Ave",
                "city": "St. Louis",
                "state": "MO",
                "zip": "63110",
                "radius": "1mi",
                "lat": 38.6350,
                "lon": -90.2870,
            },
        ],
        "offenders": ["MO-DEMO-0003"],
    },
    {
        "email": "commuter@example.com",
        "confirmed": True,
        "addresses": [
            {
                "label": "Work",
                "street": "201 W Capitol Ave",
                "city": "Jefferson City",
                "state": "MO",
                "zip": "65101",
                "radius": "1mi",
                "lat": 38.5791,
                "lon": -92.1730,
            },
        ],
        "offenders": [],
    },
    {
        "email": "not-yet-confirmed@example.com",
        "confirmed": False,
        "addresses": [
            {
                "label": "Home",
                "street": "201 W Capitol Ave",
                "city": "Jefferson City",
                "state": "MO",
                "zip": "65101",
                "radius": "5mi",
                "lat": 38.5791,
                "lon": -92.1730,
            },
        ],
        "offenders": [],
    },
]


def _offender(
    last: str, first: str, offense: str, *, juvenile: bool = False, tier: int = 2
) -> dict[str, Any]:
    return {
        "last_name": last,
        "first_name": first,
        "date_of_birth": "1980-04-02",
        "tier": tier,
        "compliance": "compliant",
        "juvenile": juvenile,
        "sex": "M",
        "offenses": [{"description": offense, "code": "566.000"}],
        "online_identifiers": ["demo-handle-never-shown"],
    }


def _addr(
    kind: str, street: str, city: str, zip_: str, lat: float | None, lon: float | None
) -> dict[str, Any]:
    a: dict[str, Any] = {"type": kind, "street": street, "city": city, "state": "MO", "zip": zip_}
    if lat is not None:
        a |= {"lat": lat, "lon": lon}
    return a


def _event(
    oid: str, rev: int, kind: str = "upsert", offender: Any = None, addresses: Any = None
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "schema": "registry-event/1",
        "event_id": f"demo-{oid}-{rev}",
        "offender_id": oid,
        "revision": rev,
        "occurred_at": "2026-01-05T15:00:00Z",
        "kind": kind,
    }
    if kind == "upsert":
        ev["offender"] = offender
        ev["addresses"] = addresses
    return ev


DOE = _offender("Doe", "Richard", "Sexual assault")
ROE = _offender("Roe", "Thomas", "Statutory sodomy", tier=3)
POE = _offender("Poe", "Walter", "Sexual misconduct", tier=1)
YOUNG = _offender("Young", "Kyle", "Sexual misconduct", juvenile=True)
LOE = _offender("Loe", "Martin", "Child molestation", tier=3)

BASELINE = [
    _event(
        "MO-DEMO-0001",
        1,
        offender=DOE,
        addresses=[_addr("home", "1200 Main St", "Kansas City", "64105", 39.1000, -94.5830)],
    ),
    _event(
        "MO-DEMO-0002",
        1,
        offender=ROE,
        addresses=[_addr("work", "300 E High St", "Jefferson City", "65101", 38.5770, -92.1690)],
    ),
    _event(
        "MO-DEMO-0003",
        1,
        offender=POE,
        addresses=[_addr("home", "400 S Campbell Ave", "Springfield", "65806", 37.2060, -93.2930)],
    ),
    _event(
        "MO-DEMO-0006",
        1,
        offender=LOE,
        addresses=[_addr("home", "5800 Oakland Ave", "St. Louis", "63110", 38.6300, -90.2900)],
    ),
]
CHANGES = [
    # Moves into the Columbia "Home" circle: moved in (the registry sent no coordinates:
    # the worker geocodes the address with the gazetteer).
    _event(
        "MO-DEMO-0001",
        2,
        offender=DOE,
        addresses=[_addr("home", "900 Rollins Street", "Columbia", "65201", None, None)],
    ),
    # Work moves from near the Capitol to Springfield: moved out (and nobody watches him).
    _event(
        "MO-DEMO-0002",
        2,
        offender=ROE,
        addresses=[_addr("work", "1000 E Sunshine St", "Springfield", "65807", 37.1810, -93.2780)],
    ),
    # The tracked offender changes his home: a watch alert, wherever he lives.
    _event(
        "MO-DEMO-0003",
        2,
        offender=POE,
        addresses=[_addr("home", "2200 N Glenstone Ave", "Springfield", "65803", 37.2330, -93.2590)],
    ),
    # Juvenile adjudication near the Columbia home: never disclosed, no alert.
    _event(
        "MO-DEMO-0004",
        1,
        offender=YOUNG,
        addresses=[_addr("home", "950 Rollins St", "Columbia", "65201", 38.9425, -92.3265)],
    ),
    # First sight near the St. Louis school: moved in.
    _event(
        "MO-DEMO-0005",
        1,
        offender=_offender("Coe", "Dennis", "Sexual abuse"),
        addresses=[_addr("home", "1200 S Kingshighway Blvd", "St. Louis", "63110", 38.6290, -90.2800)],
    ),
    # Removed from the public registry: disappears, no alert.
    _event("MO-DEMO-0006", 2, kind="remove"),
]


# OpenAddresses-format points for the streets around the demo's places.
DEMO_GAZETTEER = Path(__file__).resolve().parents[1] / "demo" / "gazetteer.csv"


async def seed_demo(runtime: Runtime, broker_url: str) -> None:
    """Gazetteer, subscribers and the baseline load go in before the worker starts."""
    report = await runtime.db_once(import_gazetteer, DEMO_GAZETTEER, progress=False)
    logger.info("demo gazetteer loaded", inserted=report.inserted, unchanged=report.unchanged)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "subscribers.jsonl"
        path.write_text("\n".join(json.dumps(s) for s in SUBSCRIBERS) + "\n")
        await import_subscribers(runtime, path, broker_url)
    async with runtime.publisher(broker_url) as pub:
        await pub.send_many(
            topics.REGISTRY_EVENTS.name,
            [(e["offender_id"], json.dumps({**e, "baseline": True}).encode()) for e in BASELINE],
        )
    logger.info("demo seeded", subscribers=len(SUBSCRIBERS), baseline_events=len(BASELINE))


def register_demo_digest(graph: Any, runtime: Runtime, broker_url: str) -> None:
    """Once the worker holds the circles: publish the changes, then mail the digests."""

    @graph.app.task
    async def demo_changes_then_digest() -> None:
        expected_circles = sum(len(s["addresses"]) for s in SUBSCRIBERS if s["confirmed"])
        for _ in range(600):
            if len(runtime.circles) >= expected_circles:
                break
            await asyncio.sleep(0.1)
        async with runtime.publisher(broker_url) as pub:
            await pub.send_many(
                topics.REGISTRY_EVENTS.name,
                [(e["offender_id"], json.dumps(e).encode()) for e in CHANGES],
            )
        # Wait for the alerts to settle in the pending digests.
        last, stable = -1, 0
        for _ in range(120):
            await asyncio.sleep(0.5)
            count = await runtime.db(repository.count_pending_alerts)
            stable = stable + 1 if count == last and count > 0 else 0
            last = count
            if stable >= 4:
                break
        report = await send_digests(runtime)
        where = runtime.settings.smtp_host or str(runtime.settings.maildir / "new")
        logger.info("demo digests sent", sent=report.sent, to=where)
        print(f"\nDemo: {report.sent} digest e-mail(s) delivered to {where}\n", flush=True)
