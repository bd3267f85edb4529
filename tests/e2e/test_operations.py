"""Operator commands on a running pipeline: status with lag, and the DLQ fix-and-replay path."""

from __future__ import annotations

import asyncio
import json
import time

from streams.adapters.broker import free_port
from tests.e2e.test_pipeline import ST_LOUIS, _produce_raw, event, home, offset, profile


def _dlq(system) -> dict:
    return json.loads(system.run("dlq", "list", "--json").stdout)


def _wait_for(fetch, predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    value = fetch()
    while not predicate(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value: {value}")
        time.sleep(0.5)
        value = fetch()
    return value


def test_dlq_fix_and_replay_and_status(system) -> None:
    system.run(
        "subscribers",
        "import",
        str(
            system.write_jsonl(
                "s.jsonl",
                [
                    {
                        "email": "parent@example.org",
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
                        "offenders": [],
                    },
                ],
            )
        ),
    )
    near = offset(ST_LOUIS, 600)
    system.run(
        "registry",
        "publish",
        str(
            system.write_jsonl(
                "good.jsonl",
                [
                    event(
                        "OFF-1",
                        1,
                        profile("Abbott", "Ray"),
                        home("10 Far Rd", "Kansas City", "64105", (39.2, -94.8)),
                    ),
                    event(
                        "OFF-2",
                        1,
                        profile("Baker", "Bo"),
                        home("20 Near St", "St. Louis", "63101", offset(ST_LOUIS, 300)),
                    ),
                ],
            )
        ),
    )
    broken = event("OFF-Y", 1, profile("Yates", "Yul"), home("600 Olive St", "St. Louis", "63101", near))
    broken["offender"]["tier"] = 7
    asyncio.run(
        _produce_raw(
            system.env["SOR_BROKER_URL"],
            [
                (b"OFF-X", b'{not json "online_identifiers": ["secret-handle-x"]'),
                (b"OFF-Y", json.dumps(broken).encode()),
            ],
        )
    )
    system.start_worker()
    system.wait_until("select count(*) from offenders", lambda n: n == 2)
    system.wait_until("select count(*) from pending_alerts where offender_id = 'OFF-2'", lambda n: n == 1)

    # dlq list: both dead letters with their reasons, never the events themselves.
    listing = _wait_for(lambda: _dlq(system), lambda d: d["total"] == 2)
    by_reason = {e["reason"]: e for e in listing["entries"]}
    assert set(by_reason) == {"bad_json", "schema_violation"}
    assert "tier" in by_reason["schema_violation"]["detail"]
    assert by_reason["schema_violation"]["source"]["key"] == "OFF-Y"
    assert all("original_b64" not in e and e["replayed_at"] is None for e in listing["entries"])
    table = system.run("dlq", "list").stdout
    assert "bad_json" in table and "schema_violation" in table and "2 dead letters" in table
    for secret in ("secret-handle", "not json", "Yates", "600 Olive St"):
        assert secret not in table and secret not in json.dumps(listing)
    bad_id, invalid_id = by_reason["bad_json"]["id"], by_reason["schema_violation"]["id"]

    # dlq show: the original, as received, clearly marked as such.
    shown = system.run("dlq", "show", invalid_id).stdout
    assert "schema_violation" in shown and "BEGIN ORIGINAL EVENT" in shown and "END ORIGINAL EVENT" in shown
    assert '"tier": 7' in shown and "secret-handle-yates" in shown and "600 Olive St" in shown
    assert "{not json" in system.run("dlq", "show", bad_id).stdout
    unknown = system.run("dlq", "show", "1:999", check=False)
    assert unknown.returncode == 2 and "no DLQ entry 1:999" in unknown.stderr
    garbled = system.run("dlq", "show", "first", check=False)
    assert garbled.returncode == 2 and "PARTITION:OFFSET" in garbled.stderr

    # A replay that would be dead-lettered again is refused, with the reason.
    as_received = system.run("dlq", "replay", bad_id, check=False)
    assert (
        as_received.returncode == 2 and "refused" in as_received.stderr and "bad_json" in as_received.stderr
    )
    still_wrong = dict(broken, offender=dict(broken["offender"], tier=8))
    wrong_file = system.tmp / "still-wrong.json"
    wrong_file.write_text(json.dumps(still_wrong, indent=2))
    refused = system.run("dlq", "replay", invalid_id, "--file", str(wrong_file), check=False)
    assert refused.returncode == 2
    assert "schema_violation" in refused.stderr and "tier" in refused.stderr
    assert "secret-handle" not in refused.stderr
    missing = system.run("dlq", "replay", invalid_id, "--file", str(system.tmp / "nope.json"), check=False)
    assert missing.returncode == 2 and "no such file" in missing.stderr

    # The operator's fix: a corrected event from a file produces its alert.
    fixed_file = system.tmp / "fixed.json"
    fixed_file.write_text(json.dumps(dict(broken, offender=dict(broken["offender"], tier=2)), indent=2))
    replayed = system.run("dlq", "replay", invalid_id, "--file", str(fixed_file))
    assert f"replayed DLQ entry {invalid_id}" in replayed.stdout and "OFF-Y-r1" in replayed.stdout
    system.wait_until("select count(*) from pending_alerts where offender_id = 'OFF-Y'", lambda n: n == 1)
    assert (
        system.wait_until(
            "select count(*) from offenders where offender_id = 'OFF-Y' and not removed", lambda n: n == 1
        )
        == 1
    )

    # The same entry twice: refused, unless forced (and then the workers ignore the repeat).
    again = system.run("dlq", "replay", invalid_id, "--file", str(fixed_file), check=False)
    assert again.returncode == 2
    assert "already replayed" in again.stderr and "--force" in again.stderr
    forced = system.run("dlq", "replay", invalid_id, "--file", str(fixed_file), "--force")
    assert "already at revision 1" in forced.stderr  # the operator is told it will be ignored
    relisted = _dlq(system)["entries"]
    assert [e["replayed_as"] for e in relisted if e["id"] == invalid_id] == ["OFF-Y-r1"]
    assert [e["replayed_at"] for e in relisted if e["id"] == bad_id] == [None]
    assert "yes, as OFF-Y-r1" in system.run("dlq", "list").stdout
    assert "replayed:         yes" in system.run("dlq", "show", invalid_id).stdout

    # status: every topic, caught up once the workers have processed everything.
    status = _wait_for(
        lambda: json.loads(system.run("status", "--json").stdout), lambda s: s["total_lag"] == 0
    )
    registry = [p for p in status["partitions"] if p["topic"] == "registry-events"]
    assert len(registry) == 2  # SOR_PARTITIONS
    # 2 good + 2 bad + the replay and the forced repeat
    assert sum(p["end_offset"] for p in registry) == 6
    assert all(p["lag"] == 0 and p["committed"] == p["end_offset"] for p in registry if p["end_offset"])
    dlq_rows = [p for p in status["partitions"] if p["topic"] == "registry-events-dlq"]
    assert sum(p["end_offset"] for p in dlq_rows) == 2 and all(p["lag"] is None for p in dlq_rows)
    db = status["database"]
    assert (db["subscribers"], db["subscribers_confirmed"], db["tracked_addresses"]) == (1, 1, 1)
    assert (db["offenders"], db["offenders_public"], db["offenders_removed"]) == (3, 3, 0)
    assert db["pending_alerts"] == 2  # OFF-2 and the replayed OFF-Y; the forced repeat added none
    assert status["last_digest"]["period"] is None
    from streams.adapters.schema_migrations import head_revision

    assert status["schema_revision"] == head_revision()  # the database is this release's

    system.run("digest", "send")
    text = system.run("status").stdout
    for topic in (
        "registry-events",
        "registry-events-dlq",
        "alerts",
        "sor-notify-offender_to_state-changelog",
    ):
        assert f"\n{topic} " in text
    assert "total lag: 0" in text
    assert f"Database (schema revision {head_revision()})" in text
    assert "pending alerts" in text and "1 sent" in text and "last digest mailed: 20" in text
    assert json.loads(system.run("status", "--json").stdout)["database"]["pending_alerts"] == 0

    # With the broker gone: a message the operator can act on; status still shows the database.
    down = system.env | {"SOR_BROKER_URL": f"127.0.0.1:{free_port()}"}
    original_env, system.env = system.env, down
    try:
        listed = system.run("dlq", "list", check=False)
        assert listed.returncode == 2 and "unreachable" in listed.stderr and "sor-notify up" in listed.stderr
        st = system.run("status", check=False)
        assert st.returncode == 2 and "offsets and lag unavailable" in st.stderr
        assert "offenders" in st.stdout and "3 public" in st.stdout
    finally:
        system.env = original_env
