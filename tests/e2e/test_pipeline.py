"""From registry events on a real broker to digest e-mails on a real SMTP server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import dkim
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pyproj import Geod

from streams.adapters.dkim_keys import record_value
from streams.settings import read_dkim_key

ST_LOUIS = (38.6270, -90.1994)
GEOD = Geod(ellps="WGS84")


def offset(origin: tuple[float, float], metres: float, azimuth: float = 45.0) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(origin[1], origin[0], azimuth, metres)
    return lat, lon


def profile(last: str, first: str, *, juvenile: bool = False) -> dict:
    return {
        "last_name": last,
        "first_name": first,
        "date_of_birth": "1975-03-09",
        "tier": 2,
        "compliance": "compliant",
        "juvenile": juvenile,
        "offenses": [{"description": f"Offense of {last}"}],
        "online_identifiers": [f"secret-handle-{last.lower()}"],
    }


def home(street: str, city: str, zip_: str, at: tuple[float, float]) -> list[dict]:
    return [
        {
            "type": "home",
            "street": street,
            "city": city,
            "state": "MO",
            "zip": zip_,
            "lat": at[0],
            "lon": at[1],
        }
    ]


def event(
    oid: str,
    rev: int,
    prof: dict | None,
    addrs: list | None,
    *,
    kind: str = "upsert",
    event_id: str | None = None,
) -> dict:
    ev = {
        "schema": "registry-event/1",
        "event_id": event_id or f"{oid}-r{rev}",
        "offender_id": oid,
        "revision": rev,
        "occurred_at": "2026-11-20T14:00:00Z",
        "kind": kind,
    }
    if kind == "upsert":
        ev |= {"offender": prof, "addresses": addrs}
    return ev


async def _produce_raw(bootstrap: str, items: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait("registry-events", value=value, key=key)
    finally:
        await producer.stop()


async def _read_dlq(bootstrap: str, expected: int) -> list[dict]:
    consumer = AIOKafkaConsumer(
        "registry-events-dlq",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[dict] = []
    try:
        for _ in range(60):
            batch = await consumer.getmany(timeout_ms=500)
            records += [json.loads(m.value) for msgs in batch.values() for m in msgs]
            if len(records) >= expected:
                break
    finally:
        await consumer.stop()
    return records


def test_registry_events_become_one_digest_per_subscriber(system) -> None:
    far = (39.2000, -94.8000)
    near = offset(ST_LOUIS, 800)  # inside 1 mi, outside 1/4 mi
    subscribers = system.write_jsonl(
        "subscribers.jsonl",
        [
            {
                "email": "Parent@Example.org",
                "confirmed": True,
                "addresses": [
                    {
                        "label": "Home",
                        "street": "1 Market St",
                        "city": "St. Louis",
                        "state": "MO",
                        "zip": "63101",
                        "radius": "1mi",
                        "lat": ST_LOUIS[0],
                        "lon": ST_LOUIS[1],
                    }
                ],
                "offenders": ["OFF-W"],
            },
            {
                "email": "pending@example.org",
                "confirmed": False,
                "addresses": [
                    {
                        "label": "Home",
                        "street": "1 Market St",
                        "city": "St. Louis",
                        "state": "MO",
                        "zip": "63101",
                        "radius": "5mi",
                        "lat": ST_LOUIS[0],
                        "lon": ST_LOUIS[1],
                    }
                ],
                "offenders": ["OFF-W"],
            },
            {
                "email": "too-many@example.org",
                "confirmed": True,
                "addresses": [],
                "offenders": ["A", "B", "C", "D", "E", "F"],
            },
        ],
    )
    imported = system.run("subscribers", "import", str(subscribers), check=False)
    assert imported.returncode == 1  # one bad line, reported, the good ones imported
    assert ":3: rejected" in imported.stderr and "imported 2 subscribers" in imported.stdout

    baseline = system.write_jsonl(
        "baseline.jsonl",
        [
            event("OFF-1", 1, profile("Abbott", "Ray"), home("10 Far Rd", "Kansas City", "64105", far)),
            event(
                "OFF-W",
                1,
                profile("Watts", "Sam"),
                home("400 S Campbell Ave", "Springfield", "65806", (37.206, -93.293)),
            ),
            event(
                "OFF-OUT",
                1,
                profile("Outlaw", "Lee"),
                home("20 Near St", "St. Louis", "63101", offset(ST_LOUIS, 300)),
            ),
        ],
    )
    system.run("registry", "publish", "--baseline", str(baseline))
    system.start_worker()
    # Baseline recorded, nobody alerted.
    system.wait_until("select count(*) from offenders", lambda n: n == 3)

    changes = system.write_jsonl(
        "changes.jsonl",
        [
            event("OFF-1", 2, profile("Abbott", "Ray"), home("800 Olive St", "St. Louis", "63101", near)),
            event(
                "OFF-W",
                2,
                profile("Watts", "Sam"),
                home("2200 N Glenstone Ave", "Springfield", "65803", (37.233, -93.259)),
            ),
            event(
                "OFF-OUT",
                2,
                profile("Outlaw", "Lee"),
                home("1 Hitt St", "Columbia", "65201", (38.9467, -92.3252)),
            ),
            event(
                "OFF-J",
                1,
                profile("Junior", "Jay", juvenile=True),
                home("30 Near St", "St. Louis", "63101", offset(ST_LOUIS, 100)),
            ),
            event(
                "OFF-R",
                1,
                profile("Removed", "Ron"),
                home("40 Near St", "St. Louis", "63101", offset(ST_LOUIS, 200)),
            ),
            # the same event again, and an older revision: both ignored
            event("OFF-1", 2, profile("Abbott", "Ray"), home("800 Olive St", "St. Louis", "63101", near)),
            event(
                "OFF-1",
                1,
                profile("Abbott", "Ray"),
                home("1 Other St", "St. Louis", "63101", ST_LOUIS),
                event_id="OFF-1-old",
            ),
        ],
    )
    system.run("registry", "publish", str(changes))
    asyncio.run(
        _produce_raw(
            system.env["SOR_BROKER_URL"],
            [
                (b"OFF-X", b"{not json"),
                (
                    b"OFF-Y",
                    json.dumps(event("OFF-Y", 1, profile("Y", "Y"), []))
                    .replace('"tier": 2', '"tier": 7')
                    .encode(),
                ),
            ],
        )
    )

    # moved in (OFF-1), watch (OFF-W), moved out (OFF-OUT) for the parent; OFF-R pending too.
    system.wait_until(
        "select count(distinct offender_id) from pending_alerts"
        " where offender_id in ('OFF-1','OFF-W','OFF-OUT','OFF-R')",
        lambda n: n == 4,
    )
    removal = system.write_jsonl("removal.jsonl", [event("OFF-R", 2, None, None, kind="remove")])
    system.run("registry", "publish", str(removal))
    system.wait_until(
        "select count(*) from offenders where offender_id = 'OFF-R' and removed", lambda n: n == 1
    )

    sent = system.run("digest", "send")
    assert "1 sent" in sent.stdout
    messages = system.catcher.wait_for(1)
    assert len(messages) == 1
    msg = messages[0]
    assert system.catcher.envelopes[0][1] == ["parent@example.org"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<https://notify.example.test/unsubscribe/")
    # Signed by `digest send` with the operator's key: verifies against the record it publishes.
    record = record_value(read_dkim_key(Path(system.env["SOR_DKIM_PRIVATE_KEY_FILE"])))
    assert dkim.verify(system.catcher.raw[0], dnsfunc=lambda name, timeout=5: record.encode())
    text_part = msg.get_body(preferencelist=("plain",)).get_content()
    html_part = msg.get_body(preferencelist=("html",)).get_content()
    for body in (text_part, html_part):
        assert "Ray Abbott" in body and "800 Olive St" in body  # moved in
        assert "Lee Outlaw" in body  # moved out
        assert "Sam Watts" in body and "2200 N Glenstone Ave" in body  # offender watch
        assert "Junior" not in body  # juvenile: never disclosed
        assert "Removed" not in body and "Ron" not in body  # removed before the digest
        assert "secret-handle" not in body  # online identifiers never shown
        assert "1 Other St" not in body  # stale revision ignored
    assert "within 1/2 mi" in text_part
    assert "https://notify.example.test/offenders/OFF-1" in text_part

    # The same period is never mailed twice.
    again = system.run("digest", "send")
    assert "0 sent" in again.stdout
    assert len(system.catcher.wait_for(2, timeout=2)) == 1

    dlq = asyncio.run(_read_dlq(system.env["SOR_BROKER_URL"], 2))
    assert sorted(r["reason"] for r in dlq) == ["bad_json", "schema_violation"]
    assert all("original_b64" in r for r in dlq)
    assert "secret-handle" not in system.worker_log()
    assert "parent@example.org" not in system.worker_log().lower()

    # An operator can follow any event through the logs: each line about one names it.
    lines = [json.loads(ln) for ln in system.worker_log().splitlines() if ln.startswith("{")]
    about_events = [
        ln
        for ln in lines
        if ln["event"] in {"registry event applied", "registry event ignored", "address change matched"}
    ]
    assert {ln["event"] for ln in about_events} == {
        "registry event applied",
        "registry event ignored",
        "address change matched",
    }
    for ln in about_events:
        assert {"event_id", "offender_id", "topic", "partition", "offset"} <= ln.keys(), ln
    dead = [ln for ln in lines if ln["event"] == "registry event dead-lettered"]
    assert len(dead) == 2 and all({"topic", "partition", "offset", "reason"} <= ln.keys() for ln in dead)
