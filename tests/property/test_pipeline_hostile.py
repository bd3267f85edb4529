"""Thousands of hostile registry messages through the real pipeline, good events among them:
every bad one is dead-lettered with its reason, the worker lives on, every good alert lands."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hypothesis import given
from hypothesis import strategies as st
from pyproj import Geod
from sqlalchemy import text

from streams.adapters.db import make_engine
from streams.adapters.dead_letters import InvalidEvent
from streams.adapters.event_codec import decode_registry_event
from streams.domain.event_identity import content_digest
from streams.domain.model import RegistryEvent
from tests.property.hostile import NASTY_TEXT, Hostile, property_settings, spoiled

ST_LOUIS = (38.6270, -90.1994)
GEOD = Geod(ellps="WGS84")
HOSTILE = 2_500  # drawn; a few are valid events after all (applied, not dead-lettered)
GOOD = 150
MAX_MESSAGE = 100_000  # what a Kafka topic takes by default is 1 MB; keep well under it
# Registry text that is legal but unkind: markup, right-to-left overrides, emoji, quotes.
LEGAL_TEXT = [t for t in NASTY_TEXT if "\x00" not in t and 0 < len(t) <= 100 and t.strip()]


def near(metres: float, azimuth: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(ST_LOUIS[1], ST_LOUIS[0], azimuth, metres)
    return lat, lon


def good_event(i: int, rng: random.Random) -> dict[str, Any]:
    """A first registration inside the watcher's 5-mile circle: exactly one moved-in alert."""
    lat, lon = near(rng.uniform(30, 7_500), rng.uniform(0, 360))
    oid = f"GOOD-{i:04d}"
    return {
        "schema": "registry-event/1",
        "event_id": f"{oid}-r1",
        "offender_id": oid,
        "revision": 1,
        "occurred_at": "2026-11-20T14:00:00Z",
        "kind": "upsert",
        "offender": {
            "last_name": rng.choice(LEGAL_TEXT),
            "first_name": f"Good {i}",
            "date_of_birth": "1975-03-09",
            "tier": 2,
            "compliance": "compliant",
            "juvenile": False,
            "offenses": [{"description": rng.choice(LEGAL_TEXT)}],
            "online_identifiers": [f"secret-handle-good-{i}"],
        },
        "addresses": [
            {
                "type": "home",
                "street": f"{i} Market St",
                "city": "St. Louis",
                "state": "MO",
                "zip": "63101",
                "lat": lat,
                "lon": lon,
            }
        ],
    }


def _classify(h: Hostile) -> tuple[str | None, RegistryEvent | None]:
    """(the reason the codec gives, as the worker runs the same one; or None and what is a
    valid event after all)."""
    try:
        ev = decode_registry_event(h.raw, h.key)
    except InvalidEvent as err:
        return err.reason, None
    return None, ev


async def _produce(bootstrap: str, items: list[tuple[bytes | None, bytes]]) -> None:
    # One record per batch: the embedded broker miscounts offsets of larger batches.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        enable_idempotence=False,
        max_batch_size=1,
        max_request_size=2 * MAX_MESSAGE,
    )
    await producer.start()
    try:
        sent = [await producer.send("registry-events", value=value, key=key) for key, value in items]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _read_dlq(
    bootstrap: str, expected: Counter[tuple[bytes, str]], system: Any, timeout: float = 150.0
) -> list[dict[str, Any]]:
    """The dead letters, read until every expected one is there (or the time is up).

    Not until as many as expected: conflicting duplicates are dead-lettered too, and counting
    them stopped the read before the last expected letters came, when the worker was slow.
    """
    consumer = AIOKafkaConsumer(
        "registry-events-dlq",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        seen: Counter[tuple[bytes, str]] = Counter()
        while expected - seen and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            got = [json.loads(m.value) for msgs in batch.values() for m in msgs]
            records += got
            seen.update((base64.b64decode(r["original_b64"]), r["reason"]) for r in got)
            assert all(w.poll() is None for w in system.workers), (
                "a worker died:\n" + system.worker_log()[-4000:]
            )
    finally:
        await consumer.stop()
    return records


def test_hostile_messages_are_dead_lettered_and_good_events_all_alert(system, event_pool, tally) -> None:
    t = tally("hostile pipeline")
    corpus: list[Hostile] = []

    @property_settings(HOSTILE)
    @given(st.data())
    def collect(data: st.DataObject) -> None:
        h = data.draw(spoiled(data.draw(st.sampled_from(event_pool))))
        if len(h.raw) <= MAX_MESSAGE:
            corpus.append(h)

    collect()
    expected: Counter[tuple[bytes, str]] = Counter()  # (original, reason) of what must be dead-lettered
    valid_ids: set[str] = set()  # offenders of the messages that are valid events after all
    valid_after_all = 0
    # Valid messages by event id: the generator reuses ids ("0") with other content, and of
    # such a group only the first applied stands; the others are conflicting duplicates.
    by_event_id: dict[str, list[tuple[bytes, str]]] = {}
    for h in corpus:
        reason, ev = _classify(h)
        if reason is None:
            assert ev is not None
            valid_after_all += 1
            valid_ids.add(ev.offender_id)
            by_event_id.setdefault(ev.event_id, []).append((h.raw, content_digest(ev)))
        else:
            expected[(h.raw, reason)] += 1
    hostile = sum(expected.values())

    system.run(
        "subscribers",
        "import",
        str(
            system.write_jsonl(
                "watcher.jsonl",
                [
                    {
                        "email": "watcher@example.org",
                        "confirmed": True,
                        "offenders": [],
                        "addresses": [
                            {
                                "label": "Home <script>x</script>",
                                "street": "1 Market St",
                                "city": "St. Louis",
                                "state": "MO",
                                "zip": "63101",
                                "radius": "5mi",
                                "lat": ST_LOUIS[0],
                                "lon": ST_LOUIS[1],
                            }
                        ],
                    }
                ],
            )
        ),
    )
    worker = system.start_worker()
    bootstrap = system.env["SOR_BROKER_URL"]
    rng = random.Random(20261120)
    # A first good event, to know the worker is up and the circle indexed.
    asyncio.run(_produce(bootstrap, [(b"GOOD-0000", json.dumps(good_event(0, rng)).encode())]))
    system.wait_until(
        "select count(*) from pending_alerts where offender_id = 'GOOD-0000'", lambda n: n == 1, timeout=90
    )

    goods = [good_event(i, rng) for i in range(1, GOOD + 1)]
    items: list[tuple[bytes | None, bytes]] = [(h.key, h.raw) for h in corpus]
    items += [
        (g["offender_id"].encode(), json.dumps(g, ensure_ascii=rng.random() < 0.5).encode()) for g in goods
    ]
    rng.shuffle(items)
    asyncio.run(_produce(bootstrap, items))

    alerts = system.wait_until(
        "select count(distinct offender_id) from pending_alerts where offender_id like 'GOOD-%'",
        lambda n: n == GOOD + 1,
        timeout=150,
    )
    dlq = asyncio.run(_read_dlq(bootstrap, expected, system))
    got = Counter((base64.b64decode(r["original_b64"]), r["reason"]) for r in dlq)
    rows = system.wait_until(
        "select count(*) from pending_alerts where offender_id like 'GOOD-%'", lambda n: True
    )

    assert worker.poll() is None, "the worker died:\n" + system.worker_log()[-4000:]
    log = system.worker_log()
    assert "Traceback" not in log, log[log.find("Traceback") - 2000 :][:6000]
    assert "secret-handle-good" not in log  # online identifiers never reach a log
    assert all(r["detail"].strip() for r in dlq)
    # A dead letter changes nothing: every offender and alert stored comes from a valid event.
    engine = make_engine(system.env["SOR_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(text("select offender_id from offenders")).scalars())
            alerted = set(conn.execute(text("select offender_id from pending_alerts")).scalars())
    finally:
        engine.dispose()
    good_ids = {f"GOOD-{i:04d}" for i in range(GOOD + 1)}
    assert good_ids <= stored and stored <= good_ids | valid_ids, stored - good_ids - valid_ids
    assert alerted <= good_ids | valid_ids, alerted - good_ids - valid_ids
    missing, unexpected = expected - got, got - expected
    conflicting = sum(n for (_, reason), n in unexpected.items() if reason == "conflicting_duplicate")
    conflicts = Counter(
        raw for (raw, reason), n in unexpected.items() if reason == "conflicting_duplicate" for _ in range(n)
    )
    unexpected = Counter({k: n for k, n in unexpected.items() if k[1] != "conflicting_duplicate"})
    assert not missing and not unexpected, (list(missing.items())[:5], list(unexpected.items())[:5])
    for group in by_event_id.values():
        in_group = sum(conflicts.pop(raw, 0) for raw in dict.fromkeys(raw for raw, _ in group))
        # Never the whole group, and only where the group says two different things.
        assert in_group <= len(group) - 1 and (in_group == 0 or len({d for _, d in group}) > 1), group
    assert not conflicts, "conflicting_duplicate for a message whose id nobody else used"
    lost, duplicates = GOOD + 1 - alerts, rows - alerts
    for (_, reason), n in expected.items():
        for _ in range(n):
            t.reject(reason)
    for _ in range(valid_after_all + GOOD + 1):
        t.accept()
    line = (
        f"hostile pipeline: hostile={hostile} dead-lettered={sum(got.values())} "
        f"valid-after-all={valid_after_all} (of them conflicting duplicates={conflicting}) "
        f"good={GOOD + 1} alerts={alerts} lost={lost} duplicates={duplicates}"
    )
    t.notes.append(line)
    assert lost == 0 and duplicates == 0
