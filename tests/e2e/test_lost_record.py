"""A record lost between the broker's fetch and the stream is noticed and read again."""

from __future__ import annotations

import json

from sqlalchemy import text

from streams.adapters.db import make_engine
from tests.e2e.conftest import REPO
from tests.e2e.test_operations import _wait_for
from tests.e2e.test_pipeline import ST_LOUIS, event, home, offset, profile


def test_a_registry_event_lost_after_its_fetch_is_read_again(system) -> None:
    """Faust takes a hole in a partition's offsets for compaction and commits past it; in CI
    one registry event vanished like that and its move never reached anyone."""
    system.env |= {
        "SOR_PARTITIONS": "1",  # every event in one partition, at the offset it was published
        "PYTHONPATH": str(REPO / "tests" / "e2e" / "lossy_fetch"),
        "SOR_TEST_DROP_RECORD": "registry-events:0:7",  # OFF-2 moving into the circle, below
    }
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
                        "offenders": [],
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
                    }
                ],
            )
        ),
    )
    far = offset(ST_LOUIS, 20_000)
    system.run(
        "registry",
        "publish",
        "--baseline",
        str(
            system.write_jsonl(
                "b.jsonl",
                [
                    event(
                        f"OFF-{n}",
                        1,
                        profile(f"Last{n}", f"First{n}"),
                        home(f"{n} Far Rd", "Town", "63101", far),
                    )
                    for n in range(6)  # offsets 0-5
                ],
            )
        ),
    )
    system.run(
        "registry",
        "publish",
        str(
            system.write_jsonl(
                "moves.jsonl",
                [
                    event(
                        f"OFF-{n}",
                        2,
                        profile(f"Last{n}", f"First{n}"),
                        home(f"{n} Near St", "St. Louis", "63101", offset(ST_LOUIS, 300 + 100 * n)),
                    )
                    for n in range(1, 5)  # offsets 6-9: all four move inside
                ],
            )
        ),
    )
    system.start_worker()

    system.wait_until("select count(*) from offenders where revision = 2", lambda n: n == 4, timeout=90)
    # Every topic read to its end and committed: whatever the day makes is stored by now, so
    # the alerts are counted once nothing more can arrive.
    _wait_for(
        lambda: json.loads(system.run("status", "--json").stdout), lambda s: s["total_lag"] == 0, timeout=90
    )
    engine = make_engine(system.env["SOR_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            alerts = conn.execute(
                text("select offender_id, kind from pending_alerts order by offender_id")
            ).all()
    finally:
        engine.dispose()
    # One "moved in" for each of the four moves, the one read again (OFF-2) included, none twice.
    assert [tuple(a) for a in alerts] == [(f"OFF-{n}", "moved_in") for n in range(1, 5)]
    log = system.worker_log()
    assert '"records lost between fetch and stream: partition read again"' in log
    assert '"expected": 7' in log and '"topic": "registry-events"' in log
