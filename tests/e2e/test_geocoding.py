"""Registry addresses without coordinates are geocoded in the stream; outages are retried."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.test_pipeline import event, offset, profile

SPRINGFIELD = (37.2089, -93.2718)


class FakeNominatim:
    """Answers /search like Nominatim; the first `failures` requests get 503."""

    def __init__(self, failures: int, answer_at: tuple[float, float]) -> None:
        self.failures = failures
        self.answer_at = answer_at
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.requests.append(self.path)
                if len(outer.requests) <= outer.failures:
                    self.send_response(503)
                    self.end_headers()
                    return
                lat, lon = outer.answer_at
                body = json.dumps(
                    [
                        {
                            "place_id": 1,
                            "osm_type": "node",
                            "osm_id": 42,
                            "lat": str(lat),
                            "lon": str(lon),
                            "category": "place",
                            "type": "house",
                            "place_rank": 30,
                            "addresstype": "place",
                            "display_name": "1510, East Elm Street, Springfield, Missouri, 65806, United States",
                            "address": {
                                "house_number": "1510",
                                "road": "East Elm Street",
                                "city": "Springfield",
                                "state": "Missouri",
                                "ISO3166-2-lvl4": "US-MO",
                                "postcode": "65806",
                                "country_code": "us",
                            },
                        }
                    ]
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def nominatim() -> Iterator[FakeNominatim]:
    # Three 503s use up the geocoder's own retries: the event must go to the retry topic.
    service = FakeNominatim(failures=3, answer_at=offset(SPRINGFIELD, 300))
    yield service
    service.server.shutdown()


def test_an_outage_is_retried_and_a_regeocode_alerts_nobody(system, nominatim: FakeNominatim) -> None:
    system.env |= {
        "SOR_GEOCODERS": f"nominatim={nominatim.url}",
        "SOR_GEOCODE_RETRY_BASE_S": "1",
        "SOR_GEOCODE_MIN_INTERVAL_S": "0",
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
                                "street": "2 Main St",
                                "city": "Springfield",
                                "state": "MO",
                                "zip": "65806",
                                "radius": "1mi",
                                "lat": SPRINGFIELD[0],
                                "lon": SPRINGFIELD[1],
                            }
                        ],
                    }
                ],
            )
        ),
    )
    system.start_worker()
    no_coordinates = [
        {
            "type": "home",
            "street": "1510 East Elm Street",
            "city": "Springfield",
            "state": "MO",
            "zip": "65806",
        }
    ]
    system.run(
        "registry",
        "publish",
        str(
            system.write_jsonl(
                "e.jsonl",
                [
                    event("OFF-G", 1, profile("Geo", "Gus"), no_coordinates),
                ],
            )
        ),
    )
    system.wait_until("select count(*) from pending_alerts where offender_id = 'OFF-G'", lambda n: n == 1)
    assert "geocoder unavailable: event queued for retry" in system.worker_log()
    assert len(nominatim.requests) == 4  # 3 refused, then the retried event's one

    # Same address text again, spelled differently, still without coordinates: the stored
    # point is reused, nobody asks the geocoder, nobody is alerted.
    seen = len(nominatim.requests)
    system.run(
        "registry",
        "publish",
        str(
            system.write_jsonl(
                "again.jsonl",
                [
                    event(
                        "OFF-G", 2, profile("Geo", "Gus"), [{**no_coordinates[0], "street": "1510 E ELM ST"}]
                    ),
                ],
            )
        ),
    )
    system.wait_until("select revision from offenders where offender_id = 'OFF-G'", lambda r: r == 2)
    assert len(nominatim.requests) == seen
    assert system.wait_until("select count(*) from pending_alerts", lambda n: True) == 1
    assert "1510 East Elm" not in system.worker_log()  # addresses of private people stay out of logs
