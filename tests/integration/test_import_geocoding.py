"""`subscribers import` maps lines without coordinates, and refuses to guess the rest."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from streams.adapters.db import tracked_addresses
from streams.adapters.gazetteer import LocalGazetteer
from streams.adapters.gazetteer_import import import_gazetteer
from streams.adapters.mail import MaildirSender
from streams.bootstrap import Services
from streams.services.demo import DEMO_GAZETTEER
from streams.services.importing import import_subscribers
from streams.settings import load_settings


def _line(street: str, n: int) -> str:
    return json.dumps({
        "email": f"person{n}@example.org", "confirmed": True, "offenders": [],
        "addresses": [{"label": "Home", "street": street, "city": "Columbia", "state": "MO",
                       "zip": "65201", "radius": "1mi"}],
    })


async def test_lines_without_coordinates_are_geocoded_or_refused_with_suggestions(engine, tmp_path: Path) -> None:
    import_gazetteer(engine, DEMO_GAZETTEER, progress=False)
    services = Services(
        settings=load_settings({"SOR_DATA_DIR": str(tmp_path)}),
        engine=engine,
        mail=MaildirSender(tmp_path / "maildir"),
        geocoder=LocalGazetteer(engine),
    )
    path = tmp_path / "subscribers.jsonl"
    path.write_text("\n".join([
        _line("1 Hitt Street", 1),          # in the gazetteer
        _line("9999 Hitt St", 2),           # the street exists, the number does not
        _line("1 Nowhere Lane", 3),         # no such street
        _line("PO Box 12", 4),              # not a place
    ]) + "\n")

    report = await import_subscribers(services, path, bootstrap=None)

    assert report.imported == 1
    reasons = dict(report.rejected)
    assert set(reasons) == {2, 3, 4}
    assert "9999" in reasons[2] and "nearby" in reasons[2] and "Hitt St" in reasons[2]
    assert "Nowhere" in reasons[3] or "street" in reasons[3].lower()
    assert "PO" in reasons[4] or "street address" in reasons[4].lower()
    with engine.connect() as conn:
        row = conn.execute(select(tracked_addresses)).one()
    assert row.precision == "address_point"
    assert abs(row.lat - 38.9467) < 0.001 and abs(row.lon - -92.3252) < 0.001
