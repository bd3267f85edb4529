"""Tracking over HTTP: addresses and offenders, registry search and records, the map, unsubscribe."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from streams.adapters import offender_search, repository
from streams.adapters.db import offender_watches, offenders, subscribers, tracked_addresses
from streams.domain import links
from streams.domain.geocoding import ZIP_CENTROID, GeocodeResult, GeocoderUnavailable
from streams.domain.model import (
    Address,
    Alias,
    OffenderProfile,
    OffenderState,
    Offense,
    SeenEvent,
    digest_online_identifier,
)
from streams.web.keys import LIMITER, RUNTIME
from streams.web.security import Limit
from tests.web.conftest import add_subscriber, notices_sent

HITT = {
    "label": "Home",
    "street": "1 Hitt St",
    "city": "Columbia",
    "state": "MO",
    "zip": "65201",
    "radius": "1mi",
}
HITT_AT = (38.9467, -92.3252)
IDENTIFIER = "Night.Owl_77@example.net"
SCRIPT = "<script>alert(1)</script>"


def offender(
    oid: str,
    first: str,
    last: str,
    *addresses: Address,
    juvenile: bool = False,
    removed: bool = False,
    aliases: tuple[Alias, ...] = (),
    identifiers: tuple[str, ...] = (),
    **profile: Any,
) -> OffenderState:
    p = OffenderProfile(
        last_name=last,
        first_name=first,
        date_of_birth="1971-06-02",
        tier=2,
        compliance="compliant",
        juvenile=juvenile,
        offenses=(Offense(f"Offense of {first} {last}", "566.030"),),
        aliases=aliases,
        online_identifier_digests=tuple(digest_online_identifier(i) for i in identifiers),
        **profile,
    )
    return OffenderState(oid, 1, removed, p, () if removed else addresses, (SeenEvent(f"{oid}-e1", None),))


def near(
    kind: str,
    street: str,
    lat: float,
    lon: float = HITT_AT[1],
    precision: str | None = "address_point",
    city: str = "Columbia",
    zip_: str = "65201",
    county: str | None = "Boone",
) -> Address:
    return Address(
        kind,
        street,
        city,
        "MO",
        zip_,
        county=county,
        lat=lat,
        lon=lon,
        normalized=f"{street}, {city}, MO {zip_}".upper(),
        precision=precision,
    )


def seed_registry(engine: Any) -> None:
    """Around 1 Hitt St, Columbia: who may and who may never show up."""
    states = [
        # ~145 m north: within 500 ft.
        offender(
            "OFF-NEAR",
            "Nora",
            "Nearby",
            near("home", "12 Conley Ave", 38.9480),
            aliases=(Alias("Brightwater", "Eleanor"),),
            identifiers=(IDENTIFIER,),
            photo_url="https://photos.registry.example/nora.jpg",
            sex="F",
            height_in=66,
            weight_lb=150,
        ),
        # ~925 m north: within 1 mile, not within 1/2 mile.
        offender("OFF-MID", "Milo", "Middleton", near("work", "900 Rollins St", 38.9550)),
        # ~4.8 km north: outside 1 mile.
        offender("OFF-FAR", "Frank", "Faraway", near("home", "4000 Range Line St", 38.9900, zip_="65202")),
        # Next door but only placed at the ZIP code: never "near" anyone.
        offender(
            "OFF-APPROX", "Alma", "Approxima", near("home", "1 Unknown Rd", 38.9468, precision=ZIP_CENTROID)
        ),
        # Next door, but a temporary address: kept for the record, never an alert.
        offender("OFF-TEMP", "Tess", "Temporary", near("temporary", "3 Hitt St", 38.9469)),
        # Next door and a juvenile adjudication: never shown, anywhere.
        offender(
            "OFF-JUV",
            "Jody",
            "Juvenal",
            near("home", "5 Hitt St", 38.9467),
            juvenile=True,
            identifiers=("juvie-handle",),
        ),
        # Removed from the registry.
        offender("OFF-GONE", "Gus", "Gonzaga", near("home", "7 Hitt St", 38.9467), removed=True),
        offender(
            "OFF-STL",
            "Sam",
            "Smithers",
            near(
                "school",
                "800 Olive St",
                38.63,
                -90.19,
                city="St. Louis",
                zip_="63101",
                county="St. Louis City",
            ),
        ),
    ]
    for s in states:
        assert repository.save_offender_state(engine, s)


def count(engine: Any, table: Any, sid: int) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(table).where(table.c.subscriber_id == sid)
        ).scalar_one()


def insert_address(engine: Any, sid: int, label: str = "Elsewhere", radius: str = "1mi") -> int:
    with engine.begin() as conn:
        return conn.execute(
            tracked_addresses.insert().values(
                subscriber_id=sid,
                label=label,
                street="1 Hitt St",
                city="Columbia",
                state="MO",
                zip="65201",
                normalized="1 HITT ST, COLUMBIA, MO 65201",
                radius_code=radius,
                lat=HITT_AT[0],
                lon=HITT_AT[1],
                precision="address_point",
            )
        ).inserted_primary_key[0]


async def last_mail(site: Any, count_: int) -> tuple[Any, str, str]:
    """The settings notice, once due (sent a delay after the change: streams/web/confirmations.py)."""
    msgs = await notices_sent(site)
    assert len(msgs) == count_, "expected a confirmation e-mail"
    msg = msgs[-1]
    return (
        msg,
        msg.get_body(preferencelist=("plain",)).get_content(),
        msg.get_body(preferencelist=("html",)).get_content(),
    )


def results(page: str) -> str:
    """The results part of a search page (the form repeats what was typed)."""
    start = page.find('aria-labelledby="results-heading"')
    return page[start:] if start >= 0 else ""


def visible(page: str) -> str:
    """The page without its tags: what a reader sees."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


# --- tracked addresses ---------------------------------------------------------------------


async def test_adding_an_address_maps_it_publishes_it_and_mails_who_is_registered_nearby(
    logged_in_site, engine
) -> None:
    site = logged_in_site
    seed_registry(engine)
    status, page = await site.get("/notifications")
    assert status == 200 and "Addresses you track (0 of 5)" in page

    status, page = await site.post("/notifications/addresses", HITT)
    assert status == 200
    text = visible(page)
    assert "Tracked address: Home" in text and "mapped to the house" in text
    assert "Now tracking “Home”" in text and "A confirmation e-mail follows within about 5 minutes" in text
    for name in ("Nora Nearby", "Milo Middleton"):
        assert name in text
    for hidden in ("Faraway", "Approxima", "Temporary", "Juvenal", "Gonzaga", "Smithers"):
        assert hidden not in text
    assert "within 500 ft" in text

    change = site.published[-1]
    assert change.subscriber_id == site.subscriber_id
    [circle] = change.circles
    assert (circle.label, circle.radius_code) == ("Home", "1mi")
    assert abs(circle.lat - HITT_AT[0]) < 1e-4 and abs(circle.lon - HITT_AT[1]) < 1e-4
    with engine.connect() as conn:
        assert conn.execute(select(tracked_addresses.c.precision)).scalar_one() == "address_point"

    msg, plain, htm = await last_mail(site, 1)
    assert msg["To"] == site.email
    assert "You started tracking an address" in plain and "1 Hitt St, Columbia, MO 65201" in plain
    assert "Nora Nearby" in plain and "Milo Middleton" in plain
    assert "Faraway" not in plain and "Juvenal" not in plain and "Approxima" not in plain
    assert "http://notify.test/offenders/OFF-NEAR" in plain
    assert f"http://notify.test/map?tracked={circle.circle_id}&offender=OFF-MID" in plain
    assert "Nora Nearby" in htm and msg["List-Unsubscribe"].startswith("<http://notify.test/unsubscribe/")


async def test_an_address_we_cannot_map_says_why_and_offers_addresses_that_can_be(
    logged_in_site, engine
) -> None:
    site = logged_in_site
    await site.get("/notifications")
    status, page = await site.post("/notifications/addresses", HITT | {"street": "999 Hitt St"})
    assert status == 400
    text = visible(page)
    assert "We could not put this address on the map" in text
    assert "There is no 999 Hitt St" in text
    suggestions = re.findall(r"<button type=\"submit\">Use ([^<]+)</button>", page)
    assert suggestions and all("HITT ST" in s.upper() for s in suggestions)
    assert 'aria-describedby="add-street-hint add-geocode"' in page  # the reason is tied to the field
    assert count(engine, tracked_addresses, site.subscriber_id) == 0 and not site.published

    # A suggestion is a ready-made form: one button saves it, keeping the name and distance.
    form = page[page.index('<ul class="suggestions">') :]
    form = form[: form.index("</form>")]
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
    assert fields["label"] == "Home" and fields["radius"] == "1mi"
    status, page = await site.post(
        "/notifications/addresses", {k: html.unescape(v) for k, v in fields.items()}
    )
    assert status == 200 and "Tracked address: Home" in page
    assert count(engine, tracked_addresses, site.subscriber_id) == 1 and len(site.published) == 1


async def test_an_address_placed_only_roughly_is_not_tracked(logged_in_site, engine) -> None:
    site = logged_in_site

    class RoughGeocoder:
        async def geocode(self, query: Any) -> GeocodeResult:
            return GeocodeResult(38.95, -92.33, ZIP_CENTROID, "test")

    site.client.app[RUNTIME].geocoder = RoughGeocoder()
    await site.get("/notifications")
    status, page = await site.post("/notifications/addresses", HITT)
    assert status == 400 and "not at the house" in page
    assert count(engine, tracked_addresses, site.subscriber_id) == 0 and not site.published


async def test_a_mapping_service_outage_keeps_the_form_and_says_to_retry(logged_in_site, engine) -> None:
    site = logged_in_site

    class DownGeocoder:
        async def geocode(self, query: Any) -> GeocodeResult:
            raise GeocoderUnavailable("timeout")

    site.client.app[RUNTIME].geocoder = DownGeocoder()
    await site.get("/notifications")
    status, page = await site.post("/notifications/addresses", HITT)
    assert status == 503 and "did not answer in time" in page and 'value="1 Hitt St"' in page
    assert count(engine, tracked_addresses, site.subscriber_id) == 0 and not site.published


async def test_every_field_on_the_tracking_pages_has_a_label(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    aid = insert_address(engine, site.subscriber_id)
    for path in ("/notifications", f"/notifications/addresses/{aid}", "/offenders/search?last_name=n"):
        _, page = await site.get(path)
        labelled = set(re.findall(r'<label for="([^"]+)"', page))
        fields = re.findall(r"<(?:input|select)\b([^>]*)>", page)
        ids = [re.search(r'id="([^"]+)"', f) for f in fields if 'type="hidden"' not in f]
        assert ids and all(i and i.group(1) in labelled for i in ids), path


async def test_missing_fields_are_named_and_tied_to_their_inputs(logged_in_site) -> None:
    site = logged_in_site
    await site.get("/notifications")
    status, page = await site.post("/notifications/addresses", HITT | {"label": "", "radius": "7mi"})
    assert status == 400
    assert '<a href="#add-label">Give this address a name' in page
    assert 'id="add-label-error"' in page and 'aria-describedby="add-label-hint add-label-error"' in page
    assert "Choose one of the distances offered." in page and not site.published


async def test_a_sixth_address_is_refused_by_the_server(logged_in_site, engine) -> None:
    site = logged_in_site
    for n in range(5):
        insert_address(engine, site.subscriber_id, f"Place {n}")
    status, page = await site.get("/notifications")
    assert "Addresses you track (5 of 5)" in page and 'action="/notifications/addresses"' not in page
    status, page = await site.post("/notifications/addresses", HITT)
    assert status == 400 and "You already track 5 addresses, the most allowed" in page
    assert count(engine, tracked_addresses, site.subscriber_id) == 5 and not site.published


async def test_widening_an_address_lists_who_is_now_inside_and_deleting_withdraws_it(
    logged_in_site, engine
) -> None:
    site = logged_in_site
    seed_registry(engine)
    aid = insert_address(engine, site.subscriber_id, "Work", radius="500ft")
    status, page = await site.get(f"/notifications/addresses/{aid}")
    assert "Nora Nearby" in page and "Milo Middleton" not in page

    status, page = await site.post(
        f"/notifications/addresses/{aid}", HITT | {"label": "Work", "radius": "1mi"}
    )
    assert status == 200 and "Milo Middleton" in page
    change = site.published[-1]
    assert [c.radius_code for c in change.removed_circles] == ["500ft"]
    assert [(c.circle_id, c.radius_code) for c in change.circles] == [(aid, "1mi")]
    _, plain, _ = await last_mail(site, 1)
    assert "You changed a tracked address" in plain and "within 1/2 mile" not in plain
    assert "Milo Middleton" in plain and "within 1 mile" in plain

    status, page = await site.post(f"/notifications/addresses/{aid}/delete")
    assert status == 200 and "No longer tracking “Work”" in page
    assert [c.circle_id for c in site.published[-1].removed_circles] == [aid]
    assert count(engine, tracked_addresses, site.subscriber_id) == 0
    _, plain, _ = await last_mail(site, 2)
    assert "You stopped tracking an address" in plain and "Milo" not in plain


async def test_someone_elses_address_cannot_be_seen_changed_or_deleted(logged_in_site, engine) -> None:
    site = logged_in_site
    other = add_subscriber(engine, "neighbour@example.com")
    theirs = insert_address(engine, other, "Their home")
    await site.get("/notifications")
    assert (await site.get(f"/notifications/addresses/{theirs}"))[0] == 404
    assert (await site.post(f"/notifications/addresses/{theirs}", HITT))[0] == 404
    assert (await site.post(f"/notifications/addresses/{theirs}/delete"))[0] == 404
    assert count(engine, tracked_addresses, other) == 1 and not site.published
    with engine.connect() as conn:
        assert (
            conn.execute(select(tracked_addresses.c.label).where(tracked_addresses.c.id == theirs)).scalar()
            == "Their home"
        )


async def test_a_script_in_a_label_stays_text_on_the_page_and_in_the_email(logged_in_site) -> None:
    site = logged_in_site
    await site.get("/notifications")
    status, page = await site.post("/notifications/addresses", HITT | {"label": SCRIPT})
    assert status == 200
    assert SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    status, page = await site.get("/notifications")
    assert SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    _, plain, htm = await last_mail(site, 1)
    assert SCRIPT not in htm and "&lt;script&gt;alert(1)&lt;/script&gt;" in htm
    assert SCRIPT in plain  # plain text is not HTML: shown as typed


async def test_forms_without_the_csrf_token_are_refused(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    aid = insert_address(engine, site.subscriber_id)
    await site.get("/notifications")
    for path, data in [
        ("/notifications/addresses", HITT),
        (f"/notifications/addresses/{aid}", HITT | {"radius": "5mi"}),
        (f"/notifications/addresses/{aid}/delete", {}),
        ("/notifications/offenders", {"offender_id": "OFF-NEAR"}),
        ("/notifications/offenders/OFF-NEAR/delete", {}),
        ("/offenders/search", {"online_identifier": IDENTIFIER}),
    ]:
        status, page = await site.post(path, data, csrf=False)
        assert status == 403 and "form has expired" in page.lower(), path
    assert count(engine, tracked_addresses, site.subscriber_id) == 1
    assert count(engine, offender_watches, site.subscriber_id) == 0 and not site.published


async def test_tracking_pages_need_a_login(site) -> None:
    resp = await site.client.get("/notifications", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"


# --- tracked offenders ---------------------------------------------------------------------


async def test_tracking_an_offender_from_the_search_publishes_and_confirms(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    status, page = await site.get("/offenders/search?last_name=middle")
    assert status == 200 and "Milo" in page and 'name="offender_id" value="OFF-MID"' in page
    status, page = await site.post("/notifications/offenders", {"offender_id": "OFF-MID"})
    assert status == 200
    text = visible(page)
    assert "Now tracking Milo Middleton" in text and "06/02/1971" in text
    assert site.published[-1].watches == ["OFF-MID"]
    _, plain, _ = await last_mail(site, 1)
    assert "You started tracking an offender" in plain and "Milo Middleton" in plain

    status, page = await site.post("/notifications/offenders/OFF-MID/delete")
    assert status == 200 and "No longer tracking Milo Middleton" in visible(page)
    assert site.published[-1].removed_watches == ["OFF-MID"]
    assert count(engine, offender_watches, site.subscriber_id) == 0
    _, plain, _ = await last_mail(site, 2)
    assert "You stopped tracking an offender" in plain


async def test_a_sixth_offender_is_refused_by_the_server(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    with engine.begin() as conn:
        conn.execute(
            offender_watches.insert(),
            [{"subscriber_id": site.subscriber_id, "offender_id": f"SOMEONE-{n}"} for n in range(5)],
        )
    await site.get("/notifications")
    status, page = await site.post("/notifications/offenders", {"offender_id": "OFF-NEAR"})
    assert status == 400 and "You already track 5 offenders, the most allowed" in page
    assert count(engine, offender_watches, site.subscriber_id) == 5 and not site.published


async def test_hidden_records_cannot_be_tracked(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    await site.get("/notifications")
    for oid in ("OFF-JUV", "OFF-GONE", "NO-SUCH"):
        status, _ = await site.post("/notifications/offenders", {"offender_id": oid})
        assert status == 404
    assert count(engine, offender_watches, site.subscriber_id) == 0 and not site.published


# --- search and records ---------------------------------------------------------------------


async def search(site: Any, **query: str) -> tuple[int, str]:
    return await site.get("/offenders/search", params=query)


async def test_search_by_name_alias_city_county_street_and_zip(site, engine) -> None:
    seed_registry(engine)
    for query, found in [
        ({"last_name": "nearb"}, "Nearby, Nora"),
        ({"last_name": "Brightwater", "first_name": "el"}, "Nearby, Nora"),  # an alias
        ({"first_name": "MILO"}, "Middleton, Milo"),
        ({"city": "columbia", "address_type": "work"}, "Middleton, Milo"),
        ({"zip": "65202"}, "Faraway, Frank"),
        ({"street": "olive"}, "Smithers, Sam"),
        ({"county": "Saint Louis"}, "Smithers, Sam"),
    ]:
        status, page = await search(site, **query)
        assert status == 200 and found in html.unescape(page), query
    status, page = await search(site, city="Columbia")
    text = visible(page)
    assert "Nearby, Nora" in text and "Also known as: Brightwater, Eleanor" in text
    assert "12 Conley Ave, Columbia, MO 65201 (Boone County)" in text
    assert "Smithers" not in text
    # Last and first name must belong to the same name.
    status, page = await search(site, last_name="Brightwater", first_name="Nora")
    assert "No record found" in page
    # Not logged in: no Track button, a way to log in instead.
    assert "Log in to track" in (await search(site, last_name="Nearby"))[1]


async def test_juvenile_and_removed_records_are_not_findable_by_anything(site, engine) -> None:
    seed_registry(engine)
    for query in [
        {"last_name": "Juvenal"},
        {"first_name": "Jody"},
        {"street": "5 Hitt"},
        {"last_name": "Gonzaga"},
        {"first_name": "Gus"},
        {"street": "7 Hitt"},
    ]:
        status, page = await search(site, **query)
        assert status == 200 and "No record found" in results(page), query
        assert "Juvenal" not in results(page) and "Gonzaga" not in results(page)
    for query in [{"city": "Columbia"}, {"zip": "65201"}, {"county": "Boone"}]:
        _, page = await search(site, **query)
        assert "Nearby" in page and "Juvenal" not in page and "Gonzaga" not in page
    await site.get("/offenders/search")
    status, page = await site.post("/offenders/search", {"online_identifier": "juvie-handle"})
    assert status == 200 and "No record found" in page and "Juvenal" not in page

    pages = []
    for oid in ("OFF-JUV", "OFF-GONE", "NO-SUCH-ID"):
        resp = await site.client.get(f"/offenders/{oid}")
        pages.append((resp.status, re.sub(r'value="[^"]*"', "", await resp.text())))
    assert pages[0] == pages[1] == pages[2] and pages[0][0] == 404
    assert "Juvenal" not in pages[0][1] and "Gonzaga" not in pages[1][1]
    # Nothing of the juvenile record is in the search tables at all.
    with engine.connect() as conn:
        dump = json.dumps(
            [list(map(str, r)) for t in offender_search.SEARCH_TABLES for r in conn.execute(select(t))]
        )
    assert "JUVENAL" not in dump.upper() and "5 HITT" not in dump.upper()
    assert digest_online_identifier("juvie-handle") not in dump


async def test_a_record_flagged_juvenile_later_disappears_everywhere_at_once(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    aid = insert_address(engine, site.subscriber_id, "Home", radius="500ft")
    assert "Nora Nearby" in (await site.get(f"/notifications/addresses/{aid}"))[1]
    flagged = offender(
        "OFF-NEAR",
        "Nora",
        "Nearby",
        near("home", "12 Conley Ave", 38.9480),
        juvenile=True,
        identifiers=(IDENTIFIER,),
    )
    assert repository.save_offender_state(engine, replace(flagged, revision=2))

    assert "Nora" not in (await site.get(f"/notifications/addresses/{aid}"))[1]
    assert "No record found" in results((await search(site, last_name="Nearby"))[1])
    status, page = await site.post("/offenders/search", {"online_identifier": IDENTIFIER})
    assert "No record found" in page and "Nora" not in page
    assert (await site.client.get("/offenders/OFF-NEAR")).status == 404


async def test_offenders_stored_before_the_search_existed_are_indexed_on_request(site, engine) -> None:
    state = offender("OFF-OLD", "Olive", "Oldfield", near("home", "2 Hitt St", 38.9467))
    with engine.begin() as conn:  # as an older version wrote it: the offenders table only
        conn.execute(
            offenders.insert().values(
                offender_id="OFF-OLD", revision=1, removed=False, juvenile=False, state_json=state.to_dict()
            )
        )
    assert "No record found" in results((await search(site, last_name="Oldfield"))[1])
    assert offender_search.index_missing(engine) == 1
    assert offender_search.index_missing(engine) == 0
    assert "Oldfield, Olive" in results((await search(site, last_name="Oldfield"))[1])


async def test_an_online_identifier_finds_only_by_exact_match_and_is_never_shown(site, engine) -> None:
    seed_registry(engine)
    await site.get("/offenders/search")
    status, page = await site.post("/offenders/search", {"online_identifier": IDENTIFIER.upper()})
    assert status == 200 and "Nearby, Nora" in html.unescape(page)
    assert IDENTIFIER.lower() not in page.lower() and "Night.Owl" not in page
    assert 'name="online_identifier" maxlength' in page  # the field comes back empty
    for partial in (
        "Night.Owl",
        "Night.Owl_77@example",
        "ight.Owl_77@example.net",
        "Night.Owl_77@example.ne%",
    ):
        status, page = await site.post("/offenders/search", {"online_identifier": partial})
        assert status == 200 and "No record found" in page and "Nearby" not in page, partial
        assert "night.owl" not in page.lower()  # not echoed either
    # The digest alone is stored; the text is in no table.
    with engine.connect() as conn:
        dump = json.dumps(
            [
                list(map(str, r))
                for t in ("offender_search", "offender_identifier_digests", "offenders")
                for r in conn.exec_driver_sql(f"SELECT * FROM {t}")
            ]
        )
    assert "night.owl" not in dump.lower()


async def test_search_is_rate_limited_per_client(site, engine) -> None:
    seed_registry(engine)
    site.client.app[LIMITER].limits["search:client"] = Limit(2, 60)
    assert (await search(site, last_name="Nearby"))[0] == 200
    assert (await search(site, last_name="Nearby"))[0] == 200
    status, page = await search(site, last_name="Nearby")
    assert status == 429 and "Too many searches" in page


async def test_the_record_page_shows_the_public_record_and_no_identifier(site, engine) -> None:
    seed_registry(engine)
    resp = await site.client.get("/offenders/OFF-NEAR")
    page = await resp.text()
    assert resp.status == 200
    text = visible(page)
    for fact in (
        "Nora Nearby",
        "Brightwater, Eleanor",
        "06/02/1971",
        "Tier",
        "Compliant",
        "Offense of Nora Nearby",
        "566.030",
        "12 Conley Ave, Columbia, MO 65201",
        "Home",
        "5 ft 6 in",
        "150 lb",
    ):
        assert fact in text, fact
    assert "Night.Owl" not in page and digest_online_identifier(IDENTIFIER) not in page
    assert '<img class="photo" src="https://photos.registry.example/nora.jpg"' in page
    # The registry's photo host, and only it, may serve images to this page.
    assert "img-src 'self' data: https://photos.registry.example;" in resp.headers["Content-Security-Policy"]
    resp = await site.client.get("/offenders/OFF-APPROX")
    assert "location approximate" in await resp.text()


# --- the map ----------------------------------------------------------------------------------


async def test_the_map_uses_leaflet_from_this_site_and_no_inline_script(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    aid = insert_address(engine, site.subscriber_id, "Home", radius="1mi")
    resp = await site.client.get(f"/map?tracked={aid}&offender=OFF-MID")
    page = await resp.text()
    assert resp.status == 200
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    for attrs, body in scripts:
        assert 'src="/static/' in attrs or 'type="application/json"' in attrs, attrs
        assert 'src="/static/' not in attrs or not body.strip()
    srcs = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert srcs == ["/static/leaflet/leaflet.js", "/static/basemap.js", "/static/map.js"]
    assert '<link rel="stylesheet" href="/static/leaflet/leaflet.css">' in page
    assert "script-src 'self';" in resp.headers["Content-Security-Policy"]
    for path in srcs + ["/static/leaflet/leaflet.css", "/static/leaflet/images/marker-icon.png"]:
        asset = await site.client.get(path)
        assert asset.status == 200, path
    assert "Leaflet 1.9" in await (await site.client.get("/static/leaflet/leaflet.js")).text()

    data = json.loads(
        re.search(r'<script type="application/json" id="map-data">(.*?)</script>', page, re.S).group(1)
    )
    assert data["tiles"] == "" and data["tracked"]["label"] == "Home"
    assert round(data["tracked"]["radius_m"]) == 1609
    assert [p["name"] for p in data["places"]] == ["Milo Middleton"]
    text = visible(page)  # the same facts without JavaScript
    assert "Home" in text and "1 Hitt St, Columbia, MO 65201" in text and "1 mile" in text
    assert "Milo Middleton" in text and "900 Rollins St" in text and "inside your circle" in text


async def test_the_map_shows_only_your_own_tracked_address(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    other = add_subscriber(engine, "neighbour@example.com")
    theirs = insert_address(engine, other, "Their secret place")
    resp = await site.client.get(f"/map?tracked={theirs}&offender=OFF-NEAR")
    page = await resp.text()
    assert resp.status == 200 and "Their secret place" not in page and "Nora Nearby" in page
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', page, re.S).group(1))
    assert data["tracked"] is None
    assert (await site.client.get("/map?offender=OFF-JUV")).status == 404


# --- one-click unsubscribe ----------------------------------------------------------------------


def unsubscribe_path(site: Any, engine: Any) -> str:
    """The link the logged-in subscriber's e-mails carry."""
    with engine.connect() as conn:
        key = conn.execute(
            select(subscribers.c.link_key).where(subscribers.c.id == site.subscriber_id)
        ).scalar_one()
    secret = site.client.app[RUNTIME].settings.secret_key
    return f"/unsubscribe/{links.unsubscribe_token(secret, site.subscriber_id, key)}"


async def test_one_click_unsubscribe_needs_no_cookie_and_withdraws_everything(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    aid = insert_address(engine, site.subscriber_id)
    with engine.begin() as conn:
        conn.execute(
            offender_watches.insert().values(subscriber_id=site.subscriber_id, offender_id="OFF-MID")
        )
    path = unsubscribe_path(site, engine)

    # What a mail program sends (RFC 8058): no cookie, no CSRF token.
    async with aiohttp.ClientSession() as fresh:
        resp = await fresh.post(site.client.make_url(path), data={"List-Unsubscribe": "One-Click"})
        assert resp.status == 200 and "unsubscribed" in (await resp.text()).lower()
    with engine.connect() as conn:
        status = conn.execute(
            select(subscribers.c.status).where(subscribers.c.id == site.subscriber_id)
        ).scalar()
    assert status == "unsubscribed"
    change = site.published[-1]
    assert [c.circle_id for c in change.removed_circles] == [aid] and change.removed_watches == ["OFF-MID"]
    assert not change.circles and not change.watches


async def test_opening_the_unsubscribe_link_only_asks(logged_in_site, engine) -> None:
    site = logged_in_site
    path = unsubscribe_path(site, engine)
    resp = await site.client.get(path)
    page = await resp.text()
    assert resp.status == 200 and "Stop registry alert e-mails?" in page
    assert f'<form method="post" action="{path}">' in page
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    with engine.connect() as conn:
        assert (
            conn.execute(select(subscribers.c.status).where(subscribers.c.id == site.subscriber_id)).scalar()
            == "active"
        )
    assert not site.published

    status, page = await site.post(path, {"from_page": "1"}, csrf=False)
    assert status == 200 and "You are unsubscribed" in page


async def test_a_forged_unsubscribe_link_is_refused(logged_in_site, engine) -> None:
    site = logged_in_site
    other = add_subscriber(engine, "neighbour@example.com")
    forged = f"/unsubscribe/{other}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    assert (await site.get(forged))[0] == 400
    resp = await site.client.post(forged, data={"List-Unsubscribe": "One-Click"})
    assert resp.status == 400
    with engine.connect() as conn:
        assert set(conn.execute(select(subscribers.c.status)).scalars()) == {"active"}
    assert not site.published


@pytest.mark.parametrize("sid", ["\u00b2", "\u0661\u0662", "\uff11", "9" * 5000, "99999999999999999999"])
async def test_an_unsubscribe_link_with_a_number_no_one_has_is_refused_not_a_server_error(
    logged_in_site, sid
) -> None:
    """Superscript, Arabic-Indic and fullwidth digits pass str.isdigit() but are no id; nor is
    a number of 5,000 digits or one past any database integer."""
    site = logged_in_site
    forged = f"/unsubscribe/{sid}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    assert (await site.get(forged))[0] == 400
    resp = await site.client.post(forged, data={"List-Unsubscribe": "One-Click"})
    assert resp.status == 400


@pytest.mark.parametrize("tracked", ["\u00b2", "\u0661", "9" * 5000, "99999999999999999999"])
async def test_the_map_of_a_tracked_id_that_is_no_number_is_the_plain_map(
    logged_in_site, engine, tracked
) -> None:
    seed_registry(engine)
    resp = await logged_in_site.client.get("/map", params={"tracked": tracked, "offender": "OFF-NEAR"})
    page = await resp.text()
    assert resp.status == 200 and "Nora Nearby" in page
    assert json.loads(re.search(r'id="map-data">(.*?)</script>', page, re.S).group(1))["tracked"] is None


@pytest.mark.parametrize("address_id", ["\u00b2", "9" * 5000, "99999999999999999999", "2147483648"])
async def test_an_address_page_for_an_id_no_row_can_have_is_not_found(logged_in_site, address_id) -> None:
    resp = await logged_in_site.client.get(f"/notifications/addresses/{address_id}")
    assert resp.status == 404


async def test_the_faq_answers_the_common_questions(site) -> None:
    status, page = await site.get("/faq")
    text = visible(page)
    assert status == 200
    for phrase in (
        "within 24 hours",
        "suggest",
        "My account",
        "enroll each",
        "spam",
        "straight line",
        "juvenile",
        "One click",
    ):
        assert phrase.lower() in text.lower(), phrase
