"""The registry office reuses an event id with other content: nothing changes, the subscriber
still hears the real move, and the operator sees the repeat in the DLQ, counted and explained."""

from __future__ import annotations

import json

from streams.adapters.broker import free_port
from tests.e2e.test_metrics import scrape_until, value
from tests.e2e.test_operations import _dlq, _wait_for
from tests.e2e.test_pipeline import ST_LOUIS, event, home, offset, profile

CONFLICTS = "sor_registry_events_dead_lettered_total"


def test_a_repeated_event_id_with_other_content_changes_nothing(system) -> None:
    port = free_port()
    system.env |= {"SOR_WORKER_WEB": "true", "SOR_WORKER_WEB_PORT": str(port)}
    base = f"http://127.0.0.1:{port}"
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
                                "radius": "5mi",
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
    system.start_worker()
    scrape_until(system, base, lambda s: value(s, "sor_circles_held") == 1)

    # Morning: the registry loads the offender, home 300 m from the tracked address.
    original = event(
        "OFF-1",
        3,
        profile("Abbott", "Ray"),
        home("20 Near St", "St. Louis", "63101", offset(ST_LOUIS, 300)),
        event_id="E",
    )
    system.run("registry", "publish", "--baseline", str(system.write_jsonl("baseline.jsonl", [original])))
    system.wait_until("select revision from offenders where offender_id = 'OFF-1'", lambda r: r == 3)

    # Later: the same event id with another home and revision 4 (a hand-edited re-send).
    repeat = event(
        "OFF-1",
        4,
        profile("Abbott", "Ray"),
        home("900 Other Ave", "St. Louis", "63101", offset(ST_LOUIS, 2000)),
        event_id="E",
    )
    system.run("registry", "publish", str(system.write_jsonl("repeat.jsonl", [repeat])))
    listing = _wait_for(lambda: _dlq(system), lambda d: d["total"] == 1)
    [entry] = listing["entries"]
    assert entry["reason"] == "conflicting_duplicate"
    assert "revision 3" in entry["detail"] and "new event_id" in entry["detail"]
    scrape_until(system, base, lambda s: value(s, CONFLICTS, reason="conflicting_duplicate") == 1)
    # Never applied: the offender is where the registry first put them.
    assert (
        system.wait_until("select revision from offenders where offender_id = 'OFF-1'", lambda r: True) == 3
    )

    # Then a real move, far outside the circle.
    system.run(
        "registry",
        "publish",
        str(
            system.write_jsonl(
                "move.jsonl",
                [
                    event(
                        "OFF-1",
                        4,
                        profile("Abbott", "Ray"),
                        home("1 Hitt St", "Columbia", "65201", (38.9467, -92.3252)),
                        event_id="F",
                    ),
                ],
            )
        ),
    )
    system.wait_until("select revision from offenders where offender_id = 'OFF-1'", lambda r: r == 4)
    system.wait_until("select count(*) from pending_alerts where offender_id = 'OFF-1'", lambda n: n >= 1)

    assert "1 sent" in system.run("digest", "send").stdout
    [msg] = system.catcher.wait_for(1)
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert text.count("Ray Abbott") == 1, text
    moved_out = text[text.index("No longer registers this address nearby (moved out):") :]
    assert "Ray Abbott" in moved_out and "20 Near St" in moved_out
    assert "moved in" not in text.replace("(moved in)", "") and "900 Other Ave" not in text
    assert "Registered a home, work or school address nearby" not in text

    # The operator cannot push the repeat through as it is, nor under the same id.
    as_is = system.run("dlq", "replay", entry["id"], check=False)
    assert as_is.returncode == 2 and "--file" in as_is.stderr and "new event_id" in as_is.stderr
    same_id = system.tmp / "same-id.json"
    same_id.write_text(json.dumps(dict(repeat, revision=5)))
    refused = system.run("dlq", "replay", entry["id"], "--file", str(same_id), check=False)
    assert refused.returncode == 2 and "conflicting_duplicate" in refused.stderr
    renamed = system.tmp / "renamed.json"
    renamed.write_text(json.dumps(dict(repeat, revision=5, event_id="E-fixed")))
    assert "E-fixed" in system.run("dlq", "replay", entry["id"], "--file", str(renamed)).stdout
    system.wait_until("select revision from offenders where offender_id = 'OFF-1'", lambda r: r == 5)

    log = system.worker_log()
    conflict_lines = [
        json.loads(ln) for ln in log.splitlines() if ln.startswith("{") and "conflicting_duplicate" in ln
    ]
    assert conflict_lines and all(
        ln["event_id"] == "E" and ln["offender_id"] == "OFF-1" for ln in conflict_lines
    )
    assert "secret-handle" not in log and "parent@example.org" not in log.lower()
