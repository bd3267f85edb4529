"""Remote geocoders against a real loopback HTTP service; their cache on a real database; the chain.

Pacing and retries run on a virtual clock: every wait the geocoder asks for is recorded and moves
virtual time on at once, so the tests assert the exact delays instead of measuring wall time.
The HTTP requests still go to a real aiohttp server on loopback.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import structlog
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import Engine

from streams.adapters.geocode_cache import CachedGeocoder, ChainGeocoder, geocode_cache, purge_expired
from streams.adapters.remote_geocoder import MonotonicClock, RemoteGeocoder, backoff_jitter
from streams.bootstrap import geocoder_for
from streams.domain.geocoding import (
    ADDRESS_POINT,
    INTERPOLATED,
    STREET,
    ZIP_CENTROID,
    GeocodeFailure,
    GeocodeQuery,
    GeocodeResult,
    GeocoderUnavailable,
    Suggestion,
)
from streams.settings import load_settings

ELM = GeocodeQuery("1510 E Elm St", "Springfield", "MO", "65806")
ELM_SPELLED_OUT = GeocodeQuery("1510 East Elm Street", "Springfield", "MO", "65806-1234")
ARC_PATH = "/arcgis/rest/services/World/GeocodeServer/findAddressCandidates"


# --- virtual time -----------------------------------------------------------------------------


class VirtualClock:
    """now() and sleep() for the geocoder: a sleep records the delay asked for and moves time on.

    Waits are taken one after another (the pacer serializes its callers with a lock anyway), and
    time does not move while a request is on the wire.
    """

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is

    def advance(self, seconds: float) -> None:
        """Time passing while the geocoder is not waiting (the caller busy elsewhere)."""
        self.t += seconds


def exactly(values: list[float]) -> Any:
    return pytest.approx(values, rel=0, abs=1e-9)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


# --- a scripted geocoding service on loopback ------------------------------------------------


@dataclass
class Reply:
    body: Any = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    at: float  # on the virtual clock
    path: str
    params: dict[str, str]
    headers: dict[str, str]


class FakeService:
    """Answers each request with the next scripted reply (then with `default`) and records it."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.url = ""
        self.replies: list[Reply] = []
        self.default = Reply([])
        self.requests: list[Seen] = []
        self.release = asyncio.Event()

    def script(self, *replies: Reply | Any) -> None:
        self.replies.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Seen(self.clock.now(), request.path, dict(request.query), dict(request.headers)))
        reply = self.replies.pop(0) if self.replies else self.default
        if reply.delay:
            try:
                await asyncio.wait_for(self.release.wait(), reply.delay)
            except TimeoutError:
                pass
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)


@pytest.fixture
async def service(clock: VirtualClock) -> AsyncIterator[FakeService]:
    svc = FakeService(clock)
    app = web.Application()
    app.router.add_get("/{tail:.*}", svc.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    svc.url = f"http://{host}:{port}"
    try:
        yield svc
    finally:
        svc.release.set()  # let slow answers finish so the server stops at once
        await runner.cleanup()


@pytest.fixture
async def make_geocoder(
    service: FakeService, clock: VirtualClock
) -> AsyncIterator[Callable[..., RemoteGeocoder]]:
    made: list[RemoteGeocoder] = []

    def _make(kind: str = "nominatim", url: str | None = None, **kw: Any) -> RemoteGeocoder:
        # Jitter pinned at its top (1.0) so a back-off is exactly backoff * 2**(k-1).
        opts: dict[str, Any] = dict(
            timeout=0.3, retries=2, backoff=0.01, min_interval=0.0, clock=clock, jitter=lambda: 1.0
        )
        geocoder = RemoteGeocoder(kind, url or service.url, **{**opts, **kw})
        made.append(geocoder)
        return geocoder

    yield _make
    for geocoder in made:
        await geocoder.aclose()


# --- what the services answer -------------------------------------------------------------


def nominatim(
    lat: float = 37.2089,
    lon: float = -93.2718,
    *,
    category: str = "place",
    type_: str = "house",
    addresstype: str = "place",
    osm_type: str = "node",
    rank: int = 30,
    house_number: str | None = "1510",
    state: str = "Missouri",
    iso: str | None = "US-MO",
    postcode: str | None = "65806",
    city: str = "Springfield",
) -> dict[str, Any]:
    """One place of Nominatim's /search?format=jsonv2&addressdetails=1."""
    address = {
        "road": "East Elm Street",
        "city": city,
        "county": "Greene County",
        "state": state,
        "ISO3166-2-lvl4": iso,
        "postcode": postcode,
        "country": "United States",
        "country_code": "us",
        "house_number": house_number,
    }
    return {
        "place_id": 1,
        "licence": "Data © OpenStreetMap contributors, ODbL 1.0.",
        "osm_type": osm_type,
        "osm_id": 42,
        "lat": str(lat),
        "lon": str(lon),
        "category": category,
        "type": type_,
        "place_rank": rank,
        "importance": 0.1,
        "addresstype": addresstype,
        "name": "",
        "display_name": f"{house_number or ''} East Elm Street, {city}, {state}, {postcode}, United States",
        "address": {k: v for k, v in address.items() if v is not None},
        "boundingbox": [str(lat - 0.0001), str(lat + 0.0001), str(lon - 0.0001), str(lon + 0.0001)],
    }


def pelias(*features: dict[str, Any]) -> dict[str, Any]:
    return {"geocoding": {"version": "0.2"}, "type": "FeatureCollection", "features": list(features)}


def pelias_feature(
    lat: float = 37.2089,
    lon: float = -93.2718,
    *,
    layer: str = "address",
    accuracy: str = "point",
    match_type: str = "exact",
    housenumber: str = "1510",
    region_a: str = "MO",
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {
            "layer": layer,
            "name": "1510 E Elm St",
            "source": "openaddresses",
            "accuracy": accuracy,
            "match_type": match_type,
            "confidence": 1,
            "housenumber": housenumber,
            "street": "E Elm St",
            "postalcode": "65806",
            "locality": "Springfield",
            "region": "Missouri",
            "region_a": region_a,
            "country_a": "USA",
            "label": "1510 E Elm St, Springfield, MO, USA",
        },
    }


def arcgis(*candidates: dict[str, Any]) -> dict[str, Any]:
    return {"spatialReference": {"wkid": 4326, "latestWkid": 4326}, "candidates": list(candidates)}


def arcgis_candidate(
    addr_type: str = "PointAddress",
    score: float = 100,
    *,
    lat: float = 37.2089,
    lon: float = -93.2718,
    region_abbr: str = "MO",
    add_num: str = "1510",
) -> dict[str, Any]:
    return {
        "address": "1510 E Elm St, Springfield, Missouri, 65806",
        "location": {"x": lon, "y": lat},
        "score": score,
        "attributes": {
            "Addr_type": addr_type,
            "Score": score,
            "AddNum": add_num,
            "City": "Springfield",
            "Region": "Missouri",
            "RegionAbbr": region_abbr,
            "Postal": "65806",
            "Country": "USA",
            "Match_addr": "1510 E Elm St, Springfield, Missouri, 65806",
        },
    }


# --- Nominatim: how exactly the answer places the house -----------------------------------------


async def test_a_house_hit_is_an_address_point_asked_as_a_structured_query(service, make_geocoder) -> None:
    service.script([nominatim()])
    result = await make_geocoder().geocode(ELM)
    assert isinstance(result, GeocodeResult)
    assert (result.lat, result.lon, result.precision, result.source) == (
        37.2089,
        -93.2718,
        ADDRESS_POINT,
        "nominatim",
    )
    assert result.supports_proximity
    [seen] = service.requests
    assert seen.path == "/search"
    assert {
        k: seen.params.get(k) for k in ("street", "city", "state", "postalcode", "country", "addressdetails")
    } == {
        "street": "1510 E Elm St",
        "city": "Springfield",
        "state": "Missouri",
        "postalcode": "65806",
        "country": "us",
        "addressdetails": "1",
    }
    assert "q" not in seen.params
    assert seen.headers["User-Agent"] == "sor-notify/0.1"


@pytest.mark.parametrize(
    ("place", "precision"),
    [
        (
            nominatim(category="building", type_="house", addresstype="building", osm_type="way"),
            ADDRESS_POINT,
        ),
        # TIGER and OSM interpolation lines: a place=house whose OSM object is a way.
        (nominatim(osm_type="way"), INTERPOLATED),
        (
            nominatim(
                category="highway",
                type_="residential",
                addresstype="road",
                osm_type="way",
                rank=26,
                house_number=None,
            ),
            STREET,
        ),
        (
            nominatim(category="place", type_="postcode", addresstype="postcode", rank=21, house_number=None),
            ZIP_CENTROID,
        ),
        # A house found, but not this house number: it only tells us the street.
        (nominatim(house_number="1512"), STREET),
    ],
    ids=["building", "interpolated", "street", "postcode", "other-number"],
)
async def test_nominatim_precision(service, make_geocoder, place, precision) -> None:
    service.script([place])
    result = await make_geocoder().geocode(ELM)
    assert isinstance(result, GeocodeResult)
    assert result.precision == precision
    assert result.supports_proximity is (precision in {ADDRESS_POINT, INTERPOLATED})


async def test_a_city_level_answer_is_not_found_and_says_so(service, make_geocoder) -> None:
    service.script(
        [
            nominatim(
                category="boundary",
                type_="administrative",
                addresstype="city",
                osm_type="relation",
                rank=16,
                house_number=None,
            )
        ]
    )
    failure = await make_geocoder().geocode(ELM)
    assert isinstance(failure, GeocodeFailure)
    assert failure.reason == "not_found"
    assert "city level" in failure.message


async def test_no_answer_is_not_found_with_advice(service, make_geocoder) -> None:
    service.script([])
    failure = await make_geocoder().geocode(ELM)
    assert failure == GeocodeFailure(
        "not_found",
        "The map service could not find this address; check the spelling or try a nearby address.",
    )


async def test_an_answer_in_another_state_is_outside_state(service, make_geocoder) -> None:
    service.script(
        [nominatim(39.1, -94.6, state="Kansas", iso="US-KS", postcode="66101", city="Kansas City")]
    )
    failure = await make_geocoder().geocode(ELM)
    assert isinstance(failure, GeocodeFailure)
    assert failure.reason == "outside_state"


async def test_an_in_state_answer_is_chosen_over_an_out_of_state_one(service, make_geocoder) -> None:
    service.script([nominatim(39.1, -94.6, state="Kansas", iso="US-KS"), nominatim(osm_type="way")])
    result = await make_geocoder().geocode(ELM)
    assert isinstance(result, GeocodeResult)
    assert (result.lat, result.precision) == (37.2089, INTERPOLATED)


async def test_a_question_about_another_state_never_reaches_the_service(service, make_geocoder) -> None:
    failure = await make_geocoder().geocode(GeocodeQuery("1 Main St", "Kansas City", "KS", "66101"))
    assert isinstance(failure, GeocodeFailure) and failure.reason == "outside_state"
    assert service.requests == []


async def test_the_same_street_in_another_town_is_not_this_address(service, make_geocoder) -> None:
    service.script([nominatim(37.08, -94.51, postcode="64801", city="Joplin")])
    failure = await make_geocoder().geocode(ELM)
    assert isinstance(failure, GeocodeFailure)
    assert failure.reason == "not_found"
    assert "different town" in failure.message


async def test_a_url_with_a_path_prefix_is_kept(service, make_geocoder) -> None:
    service.script([nominatim()])
    await make_geocoder(url=f"{service.url}/nominatim/").geocode(ELM)
    assert service.requests[0].path == "/nominatim/search"


# --- Pelias and ArcGIS -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        (pelias_feature(), ADDRESS_POINT),
        (pelias_feature(match_type="interpolated"), INTERPOLATED),
        (pelias_feature(accuracy="centroid"), INTERPOLATED),
        (pelias_feature(layer="street", accuracy="centroid", housenumber=""), STREET),
        (pelias_feature(layer="postalcode", accuracy="centroid", housenumber=""), ZIP_CENTROID),
        (pelias_feature(layer="locality", accuracy="centroid", housenumber=""), "not_found"),
        (pelias_feature(region_a="KS"), "outside_state"),
    ],
    ids=["point", "interpolated", "centroid", "street", "postalcode", "locality", "kansas"],
)
async def test_pelias(service, make_geocoder, feature, expected) -> None:
    service.script(pelias(feature))
    answer = await make_geocoder("pelias", api_key="k-123").geocode(ELM)
    assert (answer.precision if isinstance(answer, GeocodeResult) else answer.reason) == expected
    [seen] = service.requests
    assert seen.path == "/v1/search"
    assert seen.params["text"] == "1510 E Elm St, Springfield, MO 65806"
    assert (seen.params["api_key"], seen.params["boundary.country"]) == ("k-123", "USA")


async def test_pelias_with_nothing_is_not_found(service, make_geocoder) -> None:
    service.script(pelias())
    failure = await make_geocoder("pelias").geocode(ELM)
    assert isinstance(failure, GeocodeFailure) and failure.reason == "not_found"


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (arcgis_candidate("PointAddress"), ADDRESS_POINT),
        (arcgis_candidate("StreetAddress", 97.5), INTERPOLATED),
        (arcgis_candidate("StreetName", 90), STREET),
        (arcgis_candidate("StreetInt", 90), STREET),
        (arcgis_candidate("Postal", 100), ZIP_CENTROID),
        (arcgis_candidate("PointAddress", 72), "not_found"),
        (arcgis_candidate("Locality", 100), "not_found"),
        (arcgis_candidate("PointAddress", region_abbr="IL"), "outside_state"),
    ],
    ids=[
        "point",
        "street-address",
        "street-name",
        "intersection",
        "postal",
        "low-score",
        "locality",
        "illinois",
    ],
)
async def test_arcgis(service, make_geocoder, candidate, expected) -> None:
    service.script(arcgis(candidate))
    answer = await make_geocoder("arcgis").geocode(ELM)
    assert (answer.precision if isinstance(answer, GeocodeResult) else answer.reason) == expected
    [seen] = service.requests
    assert seen.path == ARC_PATH
    assert seen.params["singleLine"] == "1510 E Elm St, Springfield, MO 65806"
    assert "Addr_type" in seen.params["outFields"]


async def test_arcgis_self_hosted_locator_and_api_key(service, make_geocoder) -> None:
    service.script(arcgis(arcgis_candidate()))
    url = f"{service.url}/server/rest/services/Missouri/GeocodeServer"
    result = await make_geocoder("arcgis", url=url, api_key="esri-key").geocode(ELM)
    assert isinstance(result, GeocodeResult) and result.source == "arcgis"
    [seen] = service.requests
    assert seen.path == "/server/rest/services/Missouri/GeocodeServer/findAddressCandidates"
    assert (seen.params["token"], seen.params["forStorage"]) == ("esri-key", "true")


# --- temporary trouble ------------------------------------------------------------------------


async def test_a_slow_service_is_retried_then_unavailable(service, make_geocoder, clock) -> None:
    service.default = Reply([nominatim()], delay=1.0)
    with pytest.raises(GeocoderUnavailable):
        await make_geocoder(retries=1).geocode(ELM)
    assert len(service.requests) == 2
    assert clock.sleeps == exactly([0.01])


async def test_429_is_retried_and_succeeds(service, make_geocoder, clock) -> None:
    service.script(Reply({"error": "Too many requests"}, status=429), [nominatim()])
    result = await make_geocoder().geocode(ELM)
    assert isinstance(result, GeocodeResult) and result.precision == ADDRESS_POINT
    assert len(service.requests) == 2
    assert clock.sleeps == exactly([0.01])  # no Retry-After: the plain back-off


async def test_retry_after_is_honoured(service, make_geocoder, clock) -> None:
    service.script(Reply({"error": "slow down"}, status=429, headers={"Retry-After": "1"}), [nominatim()])
    result = await make_geocoder().geocode(ELM)
    assert isinstance(result, GeocodeResult)
    # The second request starts exactly when the service said: the 0.01 s back-off, then the
    # pacer holds the rest of the second.
    assert [seen.at for seen in service.requests] == exactly([0.0, 1.0])
    assert clock.sleeps == exactly([0.01, 0.99])


async def test_a_long_retry_after_gives_up_at_once_for_every_caller(service, make_geocoder, clock) -> None:
    service.script(
        Reply({"error": "come back later"}, status=429, headers={"Retry-After": "120"}), [nominatim()]
    )
    geocoder = make_geocoder(max_retry_after=30)
    with pytest.raises(GeocoderUnavailable):
        await geocoder.geocode(ELM)
    with pytest.raises(GeocoderUnavailable):
        await geocoder.geocode(ELM_SPELLED_OUT)
    assert len(service.requests) == 1
    assert clock.sleeps == []  # nobody waited
    # 31 s before the end of the hold-off is still more than max_retry_after: refused at once.
    clock.advance(89)
    with pytest.raises(GeocoderUnavailable):
        await geocoder.geocode(ELM)
    assert len(service.requests) == 1 and clock.sleeps == []
    # 20 s before it, a caller waits those 20 s and is answered.
    clock.advance(11)
    assert isinstance(await geocoder.geocode(ELM), GeocodeResult)
    assert clock.sleeps == exactly([20.0])
    assert [seen.at for seen in service.requests] == exactly([0.0, 120.0])


async def test_server_errors_until_the_retries_run_out(service, make_geocoder, clock) -> None:
    service.default = Reply({"error": "boom"}, status=500)
    with pytest.raises(GeocoderUnavailable):
        await make_geocoder(retries=3, backoff=0.5).geocode(ELM)
    assert len(service.requests) == 4
    # The back-off doubles from `backoff` (jitter at its top here) and ends with the last failure.
    assert clock.sleeps == exactly([0.5, 1.0, 2.0])
    assert [seen.at for seen in service.requests] == exactly([0.0, 0.5, 1.5, 3.5])


async def test_the_back_off_is_scaled_by_the_jitter(service, make_geocoder, clock) -> None:
    service.default = Reply({"error": "boom"}, status=500)
    factors = iter([0.5, 1.0, 0.75])
    with pytest.raises(GeocoderUnavailable):
        await make_geocoder(retries=3, backoff=0.5, jitter=lambda: next(factors)).geocode(ELM)
    assert clock.sleeps == exactly([0.5 * 0.5, 1.0 * 1.0, 2.0 * 0.75])


async def test_the_default_jitter_keeps_each_back_off_between_half_and_all_of_its_step(
    service, make_geocoder, clock
) -> None:
    service.default = Reply({"error": "boom"}, status=500)
    with pytest.raises(GeocoderUnavailable):
        await make_geocoder(retries=10, backoff=0.5, jitter=backoff_jitter).geocode(ELM)
    factors = [slept / (0.5 * 2**k) for k, slept in enumerate(clock.sleeps)]
    assert len(factors) == 10
    assert all(0.5 <= f <= 1.0 for f in factors)
    assert len(set(factors)) > 1  # callers that failed together do not retry in step


async def test_a_503_then_an_answer(service, make_geocoder, clock) -> None:
    service.script(Reply("", status=503), Reply("", status=502), [nominatim()])
    result = await make_geocoder().geocode(ELM)
    assert isinstance(result, GeocodeResult)
    assert len(service.requests) == 3
    assert clock.sleeps == exactly([0.01, 0.02])


async def test_a_refused_key_is_unavailable_without_retrying(service, make_geocoder, clock) -> None:
    service.default = Reply({"error": "forbidden"}, status=403)
    with pytest.raises(GeocoderUnavailable):
        await make_geocoder().geocode(ELM)
    assert len(service.requests) == 1
    assert clock.sleeps == []


async def test_connection_refused_is_unavailable(make_geocoder, clock) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GeocoderUnavailable):
        await make_geocoder(url=f"http://127.0.0.1:{port}", retries=1).geocode(ELM)
    assert clock.sleeps == exactly([0.01])  # retried once, after the back-off


async def test_concurrent_callers_are_spaced_by_min_interval(service, make_geocoder, clock) -> None:
    service.default = Reply([nominatim()])
    geocoder = make_geocoder(min_interval=0.2)
    answers = await asyncio.gather(
        geocoder.geocode(ELM), geocoder.geocode(ELM_SPELLED_OUT), geocoder.geocode(ELM)
    )
    assert all(isinstance(a, GeocodeResult) for a in answers)
    assert len(service.requests) == 3
    # The first goes at once; each of the others waits its 0.2 s turn after the one before.
    assert clock.sleeps == exactly([0.2, 0.2])


async def test_requests_one_after_another_are_spaced_from_the_previous_start(
    service, make_geocoder, clock
) -> None:
    service.default = Reply([nominatim()])
    geocoder = make_geocoder(min_interval=1.0)
    await geocoder.geocode(ELM)
    await geocoder.geocode(ELM)  # at once: waits the full interval
    clock.advance(0.4)
    await geocoder.geocode(ELM)  # 0.4 s later: waits only the rest
    clock.advance(5.0)
    await geocoder.geocode(ELM)  # long after: no wait
    assert clock.sleeps == exactly([1.0, 0.6])
    assert [seen.at for seen in service.requests] == exactly([0.0, 1.0, 2.0, 7.0])


async def test_the_settings_build_remote_geocoders_on_the_real_clock(service, engine, tmp_path) -> None:
    settings = load_settings(
        {
            "SOR_DATA_DIR": str(tmp_path),
            "SOR_GEOCODERS": f"nominatim={service.url}",
            "SOR_GEOCODE_MIN_INTERVAL_S": "0",
        }
    )
    service.default = Reply([nominatim()])
    chain = geocoder_for(settings, engine)
    remote = chain.geocoders[-1].inner  # the cached remote after the (empty) gazetteer
    try:
        assert isinstance(remote.clock, MonotonicClock)
        answer = await chain.geocode(ELM)
        assert isinstance(answer, GeocodeResult) and answer.source == "nominatim"
        assert len(service.requests) == 1
    finally:
        await remote.aclose()


async def test_logs_name_a_hash_not_the_address(service, make_geocoder) -> None:
    service.script(Reply("", status=500), [nominatim()])
    with structlog.testing.capture_logs() as logs:
        await make_geocoder().geocode(ELM)
    assert {entry["event"] for entry in logs} >= {"geocoder request failed", "geocoded"}
    assert all(entry.get("qhash") for entry in logs)
    text = repr(logs).upper()
    assert "ELM" not in text and "1510" not in text and "SPRINGFIELD" not in text


# --- the cache ----------------------------------------------------------------------------


def cached(geocoder: RemoteGeocoder, engine: Engine, **kw: Any) -> CachedGeocoder:
    return CachedGeocoder(geocoder, engine, "nominatim", **kw)


async def test_a_second_spelling_is_answered_from_the_cache(service, make_geocoder, engine) -> None:
    service.script([nominatim()])
    geocoder = cached(make_geocoder(), engine)
    first = await geocoder.geocode(ELM)
    second = await geocoder.geocode(ELM_SPELLED_OUT)
    assert isinstance(first, GeocodeResult) and first.source == "nominatim"
    assert isinstance(second, GeocodeResult) and second.source == "cache:nominatim"
    assert (second.lat, second.lon, second.precision, second.matched) == (
        first.lat,
        first.lon,
        first.precision,
        first.matched,
    )
    assert len(service.requests) == 1
    with engine.connect() as conn:
        [row] = conn.execute(select(geocode_cache)).mappings().all()
    assert row["source"] == "nominatim"
    assert row["expires_at"] - row["created_at"] == timedelta(days=180)


async def test_failures_are_cached_briefly(service, make_geocoder, engine) -> None:
    service.script([])
    geocoder = cached(make_geocoder(), engine)
    first = await geocoder.geocode(ELM)
    second = await geocoder.geocode(ELM_SPELLED_OUT)
    assert isinstance(first, GeocodeFailure) and first.reason == "not_found"
    assert second == first
    assert len(service.requests) == 1
    with engine.connect() as conn:
        [row] = conn.execute(select(geocode_cache)).mappings().all()
    assert row["expires_at"] - row["created_at"] == timedelta(days=1)


async def test_unavailability_is_never_cached(service, make_geocoder, engine) -> None:
    service.script(*[Reply("", status=500)] * 3, [nominatim()])
    geocoder = cached(make_geocoder(retries=2), engine)
    with pytest.raises(GeocoderUnavailable):
        await geocoder.geocode(ELM)
    with engine.connect() as conn:
        assert conn.execute(select(geocode_cache)).all() == []
    result = await geocoder.geocode(ELM)
    assert isinstance(result, GeocodeResult) and result.source == "nominatim"
    assert len(service.requests) == 4


async def test_expired_entries_are_asked_again_and_purged(service, make_geocoder, engine) -> None:
    service.default = Reply([nominatim()])
    geocoder = cached(make_geocoder(), engine, ttl_ok=timedelta(0))
    await geocoder.geocode(ELM)
    again = await geocoder.geocode(ELM)
    assert isinstance(again, GeocodeResult) and again.source == "nominatim"
    assert len(service.requests) == 2
    assert purge_expired(engine) == 1


async def test_concurrent_misses_for_one_address_both_store(service, make_geocoder, engine) -> None:
    service.default = Reply([nominatim()], delay=0.05)
    geocoder = cached(make_geocoder(), engine)
    answers = await asyncio.gather(geocoder.geocode(ELM), geocoder.geocode(ELM_SPELLED_OUT))
    assert all(isinstance(a, GeocodeResult) for a in answers)
    with engine.connect() as conn:
        assert len(conn.execute(select(geocode_cache)).all()) == 1
    cached_answer = await geocoder.geocode(ELM)
    assert isinstance(cached_answer, GeocodeResult) and cached_answer.source == "cache:nominatim"


async def test_suggestions_survive_the_cache(engine) -> None:
    suggestion = Suggestion("1500 E Elm St", "Springfield", "MO", "65806", 37.2, -93.27, INTERPOLATED)
    inner = Scripted("gazetteer", GeocodeFailure("number_out_of_range", "No such number.", (suggestion,)))
    geocoder = CachedGeocoder(inner, engine, "gazetteer")
    first = await geocoder.geocode(ELM)
    assert await geocoder.geocode(ELM_SPELLED_OUT) == first
    assert inner.calls == 1


# --- the chain ----------------------------------------------------------------------------


class Scripted:
    """A geocoder that always gives one answer (or raises it) and counts its calls."""

    def __init__(self, name: str, answer: GeocodeResult | GeocodeFailure | Exception) -> None:
        self.name = name
        self.answer = answer
        self.calls = 0

    async def geocode(self, query: GeocodeQuery) -> GeocodeResult | GeocodeFailure:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def point(source: str, precision: str = ADDRESS_POINT) -> GeocodeResult:
    return GeocodeResult(37.2, -93.27, precision, source)


SUGGESTION = Suggestion("1500 E Elm St", "Springfield", "MO", "65806", 37.2, -93.27, INTERPOLATED)


async def test_the_first_proximity_grade_answer_wins() -> None:
    gazetteer, remote = Scripted("g", point("gazetteer", INTERPOLATED)), Scripted("r", point("nominatim"))
    assert await ChainGeocoder(gazetteer, remote).geocode(ELM) == point("gazetteer", INTERPOLATED)
    assert remote.calls == 0


async def test_a_coarse_answer_yields_to_a_later_precise_one() -> None:
    chain = ChainGeocoder(Scripted("g", point("gazetteer", STREET)), Scripted("r", point("nominatim")))
    assert await chain.geocode(ELM) == point("nominatim")


async def test_without_a_precise_answer_the_best_coarse_one_is_returned() -> None:
    chain = ChainGeocoder(
        Scripted("g", GeocodeFailure("unknown_street", "No such street in Springfield.")),
        Scripted("r1", point("pelias", ZIP_CENTROID)),
        Scripted("r2", point("nominatim", STREET)),
    )
    answer = await chain.geocode(ELM)
    assert answer == point("nominatim", STREET)
    assert not answer.supports_proximity


async def test_the_most_helpful_failure_is_returned() -> None:
    remote_nf = GeocodeFailure("not_found", "The map service could not find this address.")
    gazetteer_reason = GeocodeFailure("unknown_street", "No such street in Springfield.")
    with_suggestions = GeocodeFailure("number_out_of_range", "No 1510 on E Elm St.", (SUGGESTION,))
    assert (
        await ChainGeocoder(Scripted("r", remote_nf), Scripted("g", gazetteer_reason)).geocode(ELM)
        == gazetteer_reason
    )
    assert (
        await ChainGeocoder(
            Scripted("g", gazetteer_reason), Scripted("g2", with_suggestions), Scripted("r", remote_nf)
        ).geocode(ELM)
        == with_suggestions
    )


async def test_an_unavailable_member_is_covered_only_by_a_precise_answer() -> None:
    down = Scripted("r", GeocoderUnavailable("nominatim unavailable (500)"))
    assert await ChainGeocoder(down, Scripted("p", point("pelias"))).geocode(ELM) == point("pelias")
    with pytest.raises(GeocoderUnavailable):
        await ChainGeocoder(Scripted("g", point("gazetteer", STREET)), down).geocode(ELM)
    with pytest.raises(GeocoderUnavailable):
        await ChainGeocoder(Scripted("g", GeocodeFailure("unknown_street", "No such street.")), down).geocode(
            ELM
        )


async def test_an_unparseable_address_is_not_sent_on() -> None:
    remote = Scripted("r", point("nominatim"))
    verdict = GeocodeFailure("unparseable", "A PO box is not a street address.")
    assert await ChainGeocoder(Scripted("g", verdict), remote).geocode(ELM) == verdict
    assert remote.calls == 0


async def test_a_chain_of_cached_remote_geocoders_over_loopback(service, make_geocoder, engine) -> None:
    service.script(
        [
            nominatim(
                category="highway",
                type_="residential",
                addresstype="road",
                osm_type="way",
                rank=26,
                house_number=None,
            )
        ]
    )
    gazetteer = Scripted("g", GeocodeFailure("unknown_street", "No such street in Springfield."))
    chain = ChainGeocoder(gazetteer, cached(make_geocoder(), engine))
    first = await chain.geocode(ELM)
    second = await chain.geocode(ELM_SPELLED_OUT)
    assert isinstance(first, GeocodeResult) and first.precision == STREET
    assert isinstance(second, GeocodeResult) and second.source == "cache:nominatim"
    assert len(service.requests) == 1
