"""A large import is checked in worker processes, block by block, while earlier blocks are
stored: what it stores and reports must be what reading the file line by line says, and a
later line for an e-mail must still win over an earlier one in another block."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from streams.adapters.db import offender_watches, subscribers, tracked_addresses
from streams.adapters.gazetteer import LocalGazetteer
from streams.adapters.maildir import MaildirSender
from streams.adapters.subscriber_import import check_lines
from streams.runtime import Runtime
from streams.services import importing
from streams.services.importing import IMPORT_BLOCK, import_subscribers
from streams.settings import load_settings

CITIES = [
    ("Columbia", "65201", 38.95, -92.33),
    ("St. Louis", "63101", 38.63, -90.20),
    ("Springfield", "65806", 37.21, -93.29),
]


def _good(rnd: random.Random, who: int) -> dict[str, Any]:
    addresses = []
    for i in range(rnd.randint(0, 3)):
        city, zip_, lat, lon = rnd.choice(CITIES)
        addresses.append(
            {
                "label": f"Place {i}",
                "street": f"{rnd.randint(1, 999)} Elm St",
                "city": city,
                "state": "MO",
                "zip": zip_,
                "radius": rnd.choice(["0.5mi", "1mi", "2mi"]),
                "lat": lat + rnd.uniform(-0.01, 0.01),
                "lon": lon + rnd.uniform(-0.01, 0.01),
            }
        )
    return {
        "email": f"Person{who}@Example.org",
        "confirmed": rnd.random() < 0.9,
        "addresses": addresses,
        "offenders": [f"MO-{rnd.randint(1, 40):04d}" for _ in range(rnd.randint(0, 3))],
    }


def write_file(path: Path, n: int, seed: int) -> tuple[dict[str, Any], set[int], int]:
    """n lines over several blocks: good lines (e-mails repeat far apart, so the same person
    appears in different blocks), lines that break a rule, blank lines. Returns what should
    be stored (the last good line of each e-mail, written apart from the importer), the
    numbers of the lines that should be rejected and how many lines are good."""
    rnd = random.Random(seed)
    raws: list[bytes] = []
    last: dict[str, dict[str, Any]] = {}
    bad: set[int] = set()
    good = 0
    for i in range(n):
        roll = rnd.random()
        if roll < 0.04:
            raws.append(b"   ")  # blank: skipped, neither stored nor rejected
            continue
        if roll < 0.12:
            raws.append(
                rnd.choice(
                    [
                        b"{not json",
                        json.dumps(_good(rnd, i) | {"confirmed": "yes"}).encode(),
                        json.dumps(_good(rnd, i) | {"email": "not an address"}).encode(),
                        "Jos\u00e9@example.org".encode("latin-1"),
                        json.dumps(
                            _good(rnd, i) | {"notes": "x" * 70_000}
                        ).encode(),  # longer than a line may be
                    ]
                )
            )
            bad.add(len(raws))
            continue
        doc = _good(rnd, rnd.randint(0, n // 3))
        raws.append(json.dumps(doc).encode())
        last[doc["email"].lower()] = doc
        good += 1
    path.write_bytes(b"\n".join(raws) + b"\n")
    return last, bad, good


def stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        subs = {r.id: r for r in conn.execute(select(subscribers))}
        places: dict[int, list[Any]] = {sid: [] for sid in subs}
        for r in conn.execute(select(tracked_addresses).order_by(tracked_addresses.c.id)):
            places[r.subscriber_id].append((r.label, r.street, r.city, r.radius_code, round(r.lat, 6)))
        watched: dict[int, set[str]] = {sid: set() for sid in subs}
        for r in conn.execute(select(offender_watches)):
            watched[r.subscriber_id].add(r.offender_id)
    return {s.email: (s.confirmed, places[sid], watched[sid]) for sid, s in subs.items()}


async def test_a_large_import_in_worker_processes_stores_the_last_line_of_each_person(
    engine: Engine, tmp_path: Path
) -> None:
    services = Runtime(
        settings=load_settings({"SOR_DATA_DIR": str(tmp_path)}),
        engine=engine,
        mail=MaildirSender(tmp_path / "maildir"),
        geocoder=LocalGazetteer(engine),
    )
    path = tmp_path / "subscribers.jsonl"
    last, bad, good = write_file(path, 4 * IMPORT_BLOCK + 137, seed=7)

    report = await import_subscribers(services, path, broker_url=None, workers=2)

    assert sorted(n for n, _ in report.rejected) == sorted(bad)
    assert all(reason.strip() for _, reason in report.rejected)
    assert report.imported == good
    expected = {
        email: (
            doc["confirmed"],
            [(a["label"], a["street"], a["city"], a["radius"], round(a["lat"], 6)) for a in doc["addresses"]],
            set(doc["offenders"]),
        )
        for email, doc in last.items()
    }
    assert stored(engine) == expected
    assert len(expected) > IMPORT_BLOCK  # the file did span several blocks of people


CRASH = b'"email": "crash@example.org"'


def check_lines_or_die(block: list[tuple[int, bytes | None]]) -> list[Any]:
    """In the worker process: the real check, except that a block holding the crash line
    kills the process, as the kernel's out-of-memory killer would."""
    if any(raw and CRASH in raw for _, raw in block):
        os._exit(9)
    return check_lines(block)


async def test_a_line_checking_process_that_dies_stops_the_import_with_what_came_before_stored(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = Runtime(
        settings=load_settings({"SOR_DATA_DIR": str(tmp_path)}),
        engine=engine,
        mail=MaildirSender(tmp_path / "maildir"),
        geocoder=LocalGazetteer(engine),
    )
    rnd = random.Random(3)
    docs = [_good(rnd, i) for i in range(3 * IMPORT_BLOCK)]
    crash_at = 2 * IMPORT_BLOCK + 17  # in the third block of lines
    docs[crash_at - 1]["email"] = "crash@example.org"
    bad = {11, 480, IMPORT_BLOCK + 3}  # rejected lines: the stored blocks no longer end with the checked ones
    for n in bad:
        docs[n - 1]["confirmed"] = "yes"
    path = tmp_path / "subscribers.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    monkeypatch.setattr(importing, "check_lines", check_lines_or_die)

    with pytest.raises(importing.ImportStopped) as stop:
        await import_subscribers(services, path, broker_url=None, workers=2)

    # The pool breaks as a whole: the stop is at the first block not yet taken, at the
    # latest the one with the crash line, and every good line before it is stored.
    found = re.search(
        r"at the block from line (\d+); the lines before it are stored\. Run the same import again",
        str(stop.value),
    )
    assert found, str(stop.value)
    first = int(found[1])
    assert first <= crash_at and (first - 1) % IMPORT_BLOCK == 0
    assert stored(engine) == {
        d["email"].lower(): (
            d["confirmed"],
            [(a["label"], a["street"], a["city"], a["radius"], round(a["lat"], 6)) for a in d["addresses"]],
            set(d["offenders"]),
        )
        for n, d in enumerate(docs[: first - 1], start=1)
        if n not in bad
    }
