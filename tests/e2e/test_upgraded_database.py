"""The pipeline on a database release 0.1 made: `db upgrade`, then what the demo's parent tracks
still alerts them, through the broker, the worker and a real SMTP server."""

from __future__ import annotations

from pyproj import Geod
from sqlalchemy import text

from streams.adapters.db import make_engine
from tests.databases import load_release_01

GEOD = Geod(ellps="WGS84")


def test_a_release_01_database_upgraded_runs_the_pipeline_and_mails_the_digest(system) -> None:
    url = system.env["SOR_DATABASE_URL"]
    load_release_01(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        home = conn.execute(
            text(
                "SELECT t.lat, t.lon, s.email FROM tracked_addresses t JOIN subscribers s ON s.id = t.subscriber_id "
                "WHERE t.label = 'Home' AND t.radius_code = '0.5mi' AND s.confirmed"
            )
        ).one()
        revision = conn.execute(
            text(
                "SELECT revision FROM offenders WHERE offender_id = 'MO-DEMO-0002' AND NOT removed AND NOT juvenile"
            )
        ).scalar_one()
        before = conn.execute(text("SELECT count(*) FROM pending_alerts")).scalar_one()
    engine.dispose()

    upgraded = system.run("db", "upgrade")
    assert "recorded as 0001_baseline" in upgraded.stdout
    system.run("topics")
    system.run("resync")  # the circles and watches of 0.1's subscribers, from the database
    system.start_worker()

    lon, lat, _ = GEOD.fwd(home.lon, home.lat, 120.0, 300.0)  # 300 m from home, inside half a mile
    moved = system.write_jsonl(
        "moved.jsonl",
        [
            {
                "schema": "registry-event/1",
                "event_id": "MO-DEMO-0002-after-upgrade",
                "offender_id": "MO-DEMO-0002",
                "revision": revision + 1,
                "occurred_at": "2030-01-01T10:00:00Z",
                "kind": "upsert",
                "offender": {
                    "last_name": "Upgrade",
                    "first_name": "Uma",
                    "date_of_birth": "1970-01-01",
                    "tier": 2,
                    "compliance": "compliant",
                    "juvenile": False,
                    "offenses": [{"description": "Offense after the upgrade"}],
                    "online_identifiers": [],
                },
                "addresses": [
                    {
                        "type": "home",
                        "street": "77 Upgrade Ln",
                        "city": "Columbia",
                        "state": "MO",
                        "zip": "65201",
                        "lat": lat,
                        "lon": lon,
                    }
                ],
            }
        ],
    )
    system.run("registry", "publish", str(moved))
    system.wait_until("SELECT count(*) FROM pending_alerts", lambda n: n > before, timeout=90)

    sent = system.run("digest", "send", "--period", "2030-01-01")
    assert "1 sent" in sent.stdout
    [message] = system.catcher.wait_for(1)
    assert system.catcher.envelopes[0][1] == [home.email]
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "Uma Upgrade" in body and "77 Upgrade Ln" in body
