"""Offenders near any address, over HTTP: /near and /api/near against an independent geodesic check."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from pyproj import Geod

from streams.adapters import repository
from streams.adapters.db import registry_event_ids
from streams.domain.model import ALERTING_TYPES, OffenderState
from streams.web.keys import LIMITER, NEAR
from streams.web.security import Limit
from tests.on_radius import point_on_radius
from tests.web.test_tracking import HITT_AT, IDENTIFIER, near, offender, seed_registry, visible

GEOD = Geod(ellps="WGS84")
MILE_M = 1609.344
CENTRE = HITT_AT


def oracle_m(lat: float, lon: float) -> float:
    """WGS84 geodesic distance from the centre, written here apart from the site's code."""
    return float(GEOD.inv(CENTRE[1], CENTRE[0], lon, lat)[2])


def just_past(lat: float, lon: float, radius_m: float) -> tuple[float, float]:
    """The first point past the edge: the latitude moved away from the centre one double at a
    time (Geod.inv's distances step in clumps of a few ulps) until it measures over radius_m."""
    away = np.inf if lat > CENTRE[0] else -np.inf
    for _ in range(64):
        lat = float(np.nextafter(lat, away))
        if oracle_m(lat, lon) > radius_m:
            return lat, lon
    raise AssertionError("no point just past the edge")


def crowd(radius_m: float) -> list[OffenderState]:
    """Public home, work and school addresses in and around the circle, two exactly on its edge
    and two a hair past it, plus juvenile and removed records at the same places."""
    rng = np.random.default_rng(7)
    states = []
    kinds = ("home", "work", "school")
    for i in range(60):
        az, dist = rng.uniform(0, 360), rng.uniform(0, radius_m * 1.6)
        lon, lat, _ = GEOD.fwd(CENTRE[1], CENTRE[0], az, dist)
        states.append(
            offender(f"P-{i:03d}", "Pat", f"Person{i:03d}", near(kinds[i % 3], f"{i} Test St", lat, lon))
        )
    for seed in (0, 1):
        lat, lon = point_on_radius(CENTRE[0], CENTRE[1], radius_m, seed=seed)
        states.append(offender(f"EDGE-{seed}", "Ed", f"Edge{seed}", near(kinds[seed], "1 Edge Rd", lat, lon)))
        past = just_past(lat, lon, radius_m)
        states.append(offender(f"PAST-{seed}", "Pam", f"Past{seed}", near("school", "2 Edge Rd", *past)))
    return states


def hidden_twins(states: list[OffenderState]) -> list[OffenderState]:
    """A juvenile and a removed record at every public address."""
    twins = []
    for s in states:
        a = s.addresses[0]
        twins.append(
            offender(f"J-{s.offender_id}", "Juno", "Juvenile", a, juvenile=True, identifiers=("kid-1",))
        )
        twins.append(offender(f"R-{s.offender_id}", "Remy", "Removed", a, removed=True))
    return twins


def expected(states: list[OffenderState], radius_m: float) -> list[tuple[str, str]]:
    inside = []
    for s in states:
        for a in s.addresses:
            if a.type in ALERTING_TYPES:
                d = oracle_m(a.lat, a.lon)
                if d <= radius_m:
                    inside.append((d, s.offender_id, a.type))
    return [(oid, kind) for _, oid, kind in sorted(inside)]


def save(engine: Any, states: list[OffenderState]) -> None:
    for s in states:
        assert repository.save_offender_state(engine, s)


async def api(site: Any, **params: str) -> tuple[int, dict[str, Any]]:
    resp = await site.client.get("/api/near", params=params)
    return resp.status, json.loads(await resp.text())


async def refreshed(site: Any) -> None:
    """Past the index's refresh interval: the next request sees the registry as it is."""
    index = site.client.server.app[NEAR]
    await index.idle()
    index.interval_s = 0
    await site.client.get("/api/near", params={"lat": "0", "lon": "0", "radius": "500ft"})
    await index.idle()
    index.interval_s = 3600


@pytest.mark.parametrize("radius", ["1mi", "5mi"])
async def test_the_api_lists_exactly_who_the_geodesic_check_puts_inside_nearest_first(
    site, engine, radius
) -> None:
    radius_m = {"1mi": MILE_M, "5mi": 5 * MILE_M}[radius]
    states = crowd(radius_m)
    save(engine, states)
    status, body = await api(site, lat=str(CENTRE[0]), lon=str(CENTRE[1]), radius=radius)
    assert status == 200
    got = [(o["offender_id"], o["address_type"]) for o in body["offenders"]]
    assert got == expected(states, radius_m)
    assert {"EDGE-0", "EDGE-1"} <= {oid for oid, _ in got}  # exactly on the radius: inside
    assert not {"PAST-0", "PAST-1"} & {oid for oid, _ in got}  # one ulp past it: outside
    assert {k for _, k in got} == {"home", "work", "school"}
    distances = [o["distance_m"] for o in body["offenders"]]
    assert distances == sorted(distances)
    assert body["count"] == len(got) and body["radius"] == radius


async def test_juvenile_and_removed_records_change_nothing_on_the_page_or_in_the_api(site, engine) -> None:
    states = crowd(MILE_M)
    save(engine, states)
    query = {"lat": str(CENTRE[0]), "lon": str(CENTRE[1]), "radius": "1mi"}
    before_api = await (await site.client.get("/api/near", params=query)).text()
    before_page = await (await site.client.get("/near", params=query)).text()

    save(engine, hidden_twins(states))
    await refreshed(site)
    after_api = await (await site.client.get("/api/near", params=query)).text()
    after_page = await (await site.client.get("/near", params=query)).text()
    assert after_api == before_api and after_page == before_page
    assert "Juvenile" not in after_page and "Removed" not in after_api


async def test_a_typed_address_is_mapped_with_its_precision_and_lists_the_seeded_neighbours(
    site, engine
) -> None:
    seed_registry(engine)
    status, page = await site.get(
        "/near",
        params={"street": "1 Hitt St", "city": "Columbia", "state": "MO", "zip": "65201", "radius": "1mi"},
    )
    assert status == 200
    text = visible(page)
    assert "mapped to the house" in text
    assert text.index("Nora Nearby") < text.index("Milo Middleton")  # nearest first
    for hidden in ("Faraway", "Approxima", "Temporary", "Juvenal", "Gonzaga", "Smithers"):
        assert hidden not in text
    assert "within 500 ft" in text and "Home" in text and "Work" in text
    assert 'href="/offenders/OFF-NEAR"' in page
    assert IDENTIFIER not in page and IDENTIFIER.lower() not in page.lower()
    # The same on the map: its data block has the same two, by address type, with the ring.
    data = json.loads(html.unescape(re.search(r'id="map-data">(.*?)</script>', page, re.S).group(1)))
    assert [p["name"] for p in data["places"]] == ["Nora Nearby", "Milo Middleton"]
    assert [p["kind"] for p in data["places"]] == ["home", "work"]
    ring = data["tracked"]["ring"]
    assert len(ring) > 60 and all(abs(oracle_m(lat, lon) - MILE_M) < 0.5 for lat, lon in ring)
    assert "<script>" not in page.split('id="map-data">')[0].split("</head>")[1]  # no inline script


async def test_the_api_never_shows_online_identifiers(site, engine) -> None:
    seed_registry(engine)
    status, body = await api(site, lat=str(CENTRE[0]), lon=str(CENTRE[1]), radius="5mi")
    assert status == 200 and body["offenders"]
    raw = json.dumps(body).lower()
    assert IDENTIFIER.lower() not in raw and "juvie-handle" not in raw and "identifier" not in raw


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lon": "-92.3", "radius": "1mi"}, "lat is missing"),
        ({"lat": "38.9", "radius": "1mi"}, "lon is missing"),
        ({"lat": "north", "lon": "-92.3", "radius": "1mi"}, "lat must be a number"),
        ({"lat": "38.9", "lon": "1e", "radius": "1mi"}, "lon must be a number"),
        ({"lat": "nan", "lon": "-92.3", "radius": "1mi"}, "lat must be between -90 and 90"),
        ({"lat": "90.5", "lon": "-92.3", "radius": "1mi"}, "lat must be between -90 and 90"),
        ({"lat": "38.9", "lon": "-181", "radius": "1mi"}, "lon must be between -180 and 180"),
        ({"lat": "38.9", "lon": "-92.3"}, "radius is missing"),
        ({"lat": "38.9", "lon": "-92.3", "radius": "7mi"}, "radius is not one of the distances offered"),
        (
            {"lat": "38.9", "lon": "-92.3", "radius": "1609"},
            "500ft, 1000ft, 0.25mi, 0.5mi, 1mi, 2mi, 3mi, 5mi",
        ),
    ],
)
async def test_each_api_parameter_is_checked_with_a_clear_message(site, params, message) -> None:
    resp = await site.client.get("/api/near", params=params)
    assert resp.status == 400 and resp.content_type == "application/json"
    assert message in (await resp.json())["error"]


async def test_the_api_says_how_current_the_registry_is(site, engine) -> None:
    applied = datetime(2026, 12, 7, 11, 30, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            registry_event_ids.insert().values(
                event_id="e-1", offender_id="OFF-NEAR", revision=1, content_digest="x", applied_at=applied
            )
        )
    status, body = await api(site, lat="38.9", lon="-92.3", radius="1mi")
    assert status == 200 and body["registry_as_of"] == "2026-12-07T11:30:00Z"


async def test_the_page_and_the_api_share_one_rate_limit(site, engine) -> None:
    site.client.app[LIMITER].limits["near:client"] = Limit(3, 60)
    query = {"lat": str(CENTRE[0]), "lon": str(CENTRE[1]), "radius": "1mi"}
    assert (await site.client.get("/near", params=query)).status == 200
    assert (await site.client.get("/api/near", params=query)).status == 200
    assert (await site.client.get("/near", params=query)).status == 200
    resp = await site.client.get("/api/near", params=query)
    assert resp.status == 429 and "Too many" in (await resp.json())["error"]
    assert int(resp.headers["Retry-After"]) >= 1
    status, page = await site.get("/near", params=query)
    assert status == 429 and "Too many look-ups" in page
    assert (await site.client.get("/near")).status == 200  # the empty form costs nothing


async def test_an_address_we_cannot_map_says_why_and_offers_ones_that_can_be(site) -> None:
    status, page = await site.get(
        "/near",
        params={"street": "999 Hitt St", "city": "Columbia", "state": "MO", "zip": "65201", "radius": "2mi"},
    )
    assert status == 400
    text = visible(page)
    assert "We could not put this address on the map" in text and "There is no 999 Hitt St" in text
    links = [html.unescape(h) for h in re.findall(r'<a href="(/near\?[^"]+)">Look near', page)]
    assert links and all("radius=2mi" in h and "Hitt" in h for h in links)
    status, page = await site.get(links[0])
    assert status == 200 and "Within 2 miles of" in visible(page)


async def test_the_browsers_location_is_used_as_sent_and_a_bad_one_is_explained(site, engine) -> None:
    seed_registry(engine)
    status, page = await site.get("/near", params={"lat": "38.9467", "lon": "-92.3252", "radius": "0.5mi"})
    assert status == 200 and "Nora Nearby" in page and "Milo Middleton" not in page
    assert "location from your browser" in visible(page)
    status, page = await site.get("/near", params={"lat": "x", "lon": "-92.3252", "radius": "1mi"})
    assert status == 400 and "lat must be a number" in page


async def test_the_near_page_has_its_location_button_script_and_is_linked_from_everywhere(site) -> None:
    status, page = await site.get("/near")
    assert status == 200 and '<script src="/static/near.js" defer></script>' in page
    assert 'id="near-locate" hidden' in page  # shown by near.js only where a location exists
    for path in ("/", "/offenders/search"):
        assert 'href="/near"' in (await site.get(path))[1]
    resp = await site.client.get("/static/near.js")
    assert resp.status == 200 and "getCurrentPosition" in await resp.text()


async def test_a_long_list_names_how_many_in_all_and_lists_the_nearest(site, engine) -> None:
    rng = np.random.default_rng(3)
    states = []
    for i in range(230):
        lon, lat, _ = GEOD.fwd(CENTRE[1], CENTRE[0], rng.uniform(0, 360), rng.uniform(0, 1500))
        states.append(offender(f"M-{i:03d}", "Many", f"Many{i:03d}", near("home", f"{i} Main St", lat, lon)))
    save(engine, states)
    status, page = await site.get(
        "/near", params={"lat": str(CENTRE[0]), "lon": str(CENTRE[1]), "radius": "1mi"}
    )
    assert status == 200
    assert "230 registered addresses of 230 people; the nearest 200 are listed" in " ".join(
        visible(page).split()
    )
    nearest = expected(states, MILE_M)[:200]
    assert re.findall(r'<th scope="row"><a href="/offenders/([^"]+)"', page) == [oid for oid, _ in nearest]
    status, body = await api(site, lat=str(CENTRE[0]), lon=str(CENTRE[1]), radius="1mi")
    assert body["count"] == 230 and len(body["offenders"]) == 200 == body["listed"]


async def test_the_index_sees_registry_changes_after_its_refresh_interval(site, engine) -> None:
    seed_registry(engine)
    index = site.client.server.app[NEAR]
    t = [1000.0]
    index.clock = lambda: t[0]
    query = {"lat": str(CENTRE[0]), "lon": str(CENTRE[1]), "radius": "1mi"}
    status, body = await api(site, **query)
    assert {o["offender_id"] for o in body["offenders"]} == {"OFF-NEAR", "OFF-MID"}

    newcomer = offender("OFF-NEW", "Ned", "Newcomer", near("home", "20 Hitt St", 38.9470))
    gone = repository.get_offender_state(engine, "OFF-MID")
    from dataclasses import replace

    save(engine, [newcomer, replace(gone, removed=True, addresses=(), revision=gone.revision + 1)])
    t[0] += 1.0  # within the interval: the points in memory still answer
    await index.idle()
    _, body = await api(site, **query)
    assert {o["offender_id"] for o in body["offenders"]} == {"OFF-NEAR", "OFF-MID"}

    t[0] += index.interval_s  # past it: the next request has the registry checked and the index rebuilt
    await api(site, **query)
    await index.idle()
    _, body = await api(site, **query)
    assert {o["offender_id"] for o in body["offenders"]} == {"OFF-NEAR", "OFF-NEW"}
    status, page = await site.get("/near", params=query)
    assert "Ned Newcomer" in page and "Milo Middleton" not in page


# --- "Registry data as of" on every page that lists offenders ------------------------------


async def test_every_page_listing_offenders_says_when_the_registry_was_last_updated(
    logged_in_site, engine
) -> None:
    from tests.web.test_tracking import insert_address

    site = logged_in_site
    seed_registry(engine)
    tracked = insert_address(engine, site.subscriber_id, "Home", radius="1mi")
    sentence = "Registry data as of December 7, 2026, 5:30 AM CST."  # 11:30 UTC in SOR_TIMEZONE's Chicago
    with engine.begin() as conn:
        conn.execute(
            registry_event_ids.insert().values(
                event_id="e-1",
                offender_id="OFF-NEAR",
                revision=1,
                content_digest="x",
                applied_at=datetime(2026, 12, 7, 11, 30, tzinfo=UTC),
            )
        )
    pages = [
        "/offenders/search?last_name=Nearby",
        f"/near?lat={CENTRE[0]}&lon={CENTRE[1]}&radius=1mi",
        "/offenders/OFF-NEAR",
        f"/notifications/addresses/{tracked}",
        f"/map?tracked={tracked}",
        "/map?offender=OFF-NEAR",
    ]
    for path in pages:
        status, page = await site.get(path)
        assert status == 200 and sentence in visible(page), path


async def test_before_any_registry_update_the_pages_say_so(site, engine) -> None:
    seed_registry(engine)
    status, page = await site.get("/offenders/OFF-NEAR")
    assert status == 200 and "Registry data as of: not known yet" in visible(page)


# --- "E-mail me about this area" -----------------------------------------------------------


async def test_e_mail_me_about_this_area_carries_the_address_through_enroll_confirm_and_login(
    site, engine
) -> None:
    from tests.web.conftest import sent_mail

    seed_registry(engine)
    place = {"street": "1 Hitt St", "city": "Columbia", "state": "MO", "zip": "65201", "radius": "0.5mi"}
    _, page = await site.get("/near", params=place)
    [link] = re.findall(r'<a href="([^"]+)">E-mail me about this area</a>', page)
    link = html.unescape(link)
    assert link.startswith("/enroll?")

    status, page = await site.get(link)
    assert status == 200 and "1 Hitt St, Columbia, MO 65201" in visible(page)
    action = html.unescape(re.search(r'<form method="post" action="(/enroll[^"]*)"', page).group(1))
    email, pw = "newcomer@example.com", "plum orchard lantern"
    status, _ = await site.post(action, {"email": email, "email2": email, "password": pw, "password2": pw})
    assert status == 200
    await sent_mail(site)
    [confirm] = [u for u in site.links_in_last_mail() if "/confirm/" in u]
    path = re.sub(r"^https?://notify\.test", "", confirm)
    assert "street=1+Hitt+St" in path and "radius=0.5mi" in path

    status, _ = await site.get(path)
    assert status == 200
    resp = await site.client.post(path, data={"csrf_token": site.csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login?")
    status, page = await site.get(resp.headers["Location"])
    login = html.unescape(re.search(r'<form method="post" action="(/login[^"]*)"', page).group(1))
    resp = await site.client.post(
        login, data={"email": email, "password": pw, "csrf_token": site.csrf}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"].startswith("/notifications?")
    status, page = await site.get(resp.headers["Location"])
    assert status == 200 and "The address you looked up is filled in below" in visible(page)
    form = page[page.index('id="add-street"') - 400 :]
    assert 'value="1 Hitt St"' in form and 'value="Columbia"' in form and 'value="65201"' in form
    assert re.search(r'<option value="0.5mi" selected>', form)

    # One click more (and a name) tracks it.
    status, page = await site.post("/notifications/addresses", {**place, "label": "New street"})
    assert status == 200 and "Tracked address: New street" in page and "Nora Nearby" in page


@pytest.mark.parametrize(
    "query",
    [
        "street=1+Hitt+St&city=Columbia&state=MO&radius=9mi",  # not an offered distance
        "street=1+Hitt+St&city=Columbia&state=Missouri&radius=1mi",
        "street=&city=Columbia&state=MO&radius=1mi",
        "next=https://evil.example/&street=1+Hitt+St&city=Columbia&state=MO&zip=6520&radius=1mi",
    ],
)
async def test_nothing_but_a_valid_address_is_carried_and_never_a_link(site, query) -> None:
    status, page = await site.get(f"/enroll?{query}")
    assert status == 200 and "filled in for you" not in page
    assert 'action="/enroll"' in page and "evil.example" not in page


async def test_a_signed_in_visitor_goes_straight_to_the_filled_in_form(logged_in_site) -> None:
    site = logged_in_site
    _, page = await site.get(
        "/near", params={"street": "1 Hitt St", "city": "Columbia", "state": "MO", "radius": "1mi"}
    )
    [link] = re.findall(r'<a href="([^"]+)">E-mail me about this area</a>', page)
    status, page = await site.get(html.unescape(link))
    assert html.unescape(link).startswith("/notifications?")
    assert status == 200 and 'value="1 Hitt St"' in page
    resp = await site.client.get(
        "/login?street=1+Hitt+St&city=Columbia&state=MO&radius=1mi", allow_redirects=False
    )
    assert resp.headers["Location"] == "/notifications?street=1+Hitt+St&city=Columbia&state=MO&radius=1mi"


async def test_with_a_second_factor_the_address_rides_through_the_second_step_too(site) -> None:
    from tests.web.conftest import enroll_and_log_in
    from tests.web.test_account import PW
    from tests.web.test_second_factors import add_app, code_at

    await enroll_and_log_in(site, "tess@example.org", PW)
    secret, _ = await add_app(site)
    await site.post("/logout")
    carry = "street=1+Hitt+St&city=Columbia&state=MO&zip=65201&radius=2mi"
    await site.get(f"/login?{carry}")
    resp = await site.client.post(
        f"/login?{carry}",
        data={"email": "tess@example.org", "password": PW, "csrf_token": site.csrf},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == f"/login/second-step?{carry}"
    status, page = await site.get(resp.headers["Location"])
    action = html.unescape(
        re.search(r'<form method="post" action="(/login/second-step[^"]*)"', page).group(1)
    )
    assert action == f"/login/second-step?{carry}"
    resp = await site.client.post(
        action, data={"code": code_at(secret, 1), "csrf_token": site.csrf}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == f"/notifications?{carry}"
    status, page = await site.get(resp.headers["Location"])
    assert status == 200 and 'value="1 Hitt St"' in page and '<option value="2mi" selected>' in page


async def test_a_passkey_sign_in_lands_on_the_filled_in_form_too(site) -> None:
    from tests.web.conftest import enroll_and_log_in
    from tests.web.test_passkeys import Authenticator, add_passkey, options

    await enroll_and_log_in(site, "pia@example.org")
    phone = Authenticator()
    await add_passkey(site, phone)
    await site.post("/logout")
    carry = "street=1+Hitt+St&city=Columbia&state=MO&radius=3mi"
    _, page = await site.get(f"/login?{carry}")
    action = html.unescape(re.search(r'<form method="post" action="(/login/passkey[^"]*)"', page).group(1))
    assert action == f"/login/passkey?{carry}"
    opts = await options(site, "/login/passkey/options")
    resp = await site.client.post(
        action, data={"credential": phone.get(opts), "csrf_token": site.csrf}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == f"/notifications?{carry}"
    status, page = await site.get(resp.headers["Location"])
    assert status == 200 and 'value="1 Hitt St"' in page and '<option value="3mi" selected>' in page
