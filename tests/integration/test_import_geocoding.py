"""`subscribers import` maps lines without coordinates, and refuses to guess the rest."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from streams.adapters.db import tracked_addresses
from streams.adapters.gazetteer import LocalGazetteer
from streams.adapters.gazetteer_import import import_gazetteer
from streams.adapters.maildir import MaildirSender
from streams.runtime import Runtime
from streams.services.demo import DEMO_GAZETTEER
from streams.services.importing import import_subscribers
from streams.settings import load_settings


def _line(street: str, n: int) -> str:
    return json.dumps(
        {
            "email": f"person{n}@example.org",
            "confirmed": True,
            "offenders": [],
            "addresses": [
                {
                    "label": "Home",
                    "street": street,
                    "city": "Columbia",
                    "state": "MO",
                    "zip": "65201",
                    "radius": "1mi",
                }
            ],
        }
    )


async def test_lines_without_coordinates_are_geocoded_or_refused_with_suggestions(
    engine, tmp_path: Path
) -> None:
    import_gazetteer(engine, DEMO_GAZETTEER, progress=False)
    services = Runtime(
        settings=load_settings({"SOR_DATA_DIR": str(tmp_path)}),
        engine=engine,
        mail=MaildirSender(tmp_path / "maildir"),
        geocoder=LocalGazetteer(engine),
    )
    path = tmp_path / "subscribers.jsonl"
    path.write_text(
        "\n".join(
            [
                _line("1 Hitt Street", 1),  # in the gazetteer
                _line("9999 Hitt St", 2),  # the street exists, the number does not
                _line("1 Nowhere Lane", 3),  # no such street
                _line("PO Box 12", 4),  # not a place
            ]
        )
        + "\n"
    )

    report = await import_subscribers(services, path, broker_url=None)

    assert report.imported == 1
    # The report carries only the text shown to whoever runs the import: assert all of it.
    assert report.rejected == [
        (
            2,
            "addresses[0]: There is no 9999 Hitt St in Columbia 65201; the street's mapped numbers run "
            "from 1 to 42. Addresses that can be mapped nearby: 42 HITT ST, COLUMBIA, MO 65201; "
            "41 HITT ST, COLUMBIA, MO 65201; 40 HITT ST, COLUMBIA, MO 65201.",
        ),
        (3, "addresses[0]: There is no Nowhere Ln in Columbia 65201 in our map data; check the street name."),
        (
            4,
            "addresses[0]: 'PO Box 12' is a box or route address, which has no place on a map; enter the "
            "street address where the person lives.",
        ),
    ]
    with engine.connect() as conn:
        row = conn.execute(select(tracked_addresses)).one()
    assert row.precision == "address_point"
    assert abs(row.lat - 38.9467) < 0.001 and abs(row.lon - -92.3252) < 0.001
