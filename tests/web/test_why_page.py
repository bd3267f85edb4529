"""Why (not) told, over HTTP: the record's distance table and the "Why didn't I hear about …?" page."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pyproj import Geod
from sqlalchemy import select

from streams.adapters import repository
from streams.adapters.db import digests, offender_watches, offenders, tracked_addresses
from streams.domain.model import Alert, OffenderState
from streams.web.display import distance_text
from tests.web.test_tracking import HITT_AT, near, offender, seed_registry, visible

GEOD = Geod(ellps="WGS84")
CHICAGO = ZoneInfo("America/Chicago")  # the site's default SOR_TIMEZONE
TRACKED_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NO_RECORD = "We have no public registry record with that id or name."

# Where seed_registry puts each offender's one address.
WHERE = {
    "OFF-NEAR": (38.9480, HITT_AT[1]),
    "OFF-MID": (38.9550, HITT_AT[1]),
    "OFF-FAR": (38.9900, HITT_AT[1]),
}


def oracle_m(lat: float, lon: float) -> float:
    return float(GEOD.inv(HITT_AT[1], HITT_AT[0], lon, lat)[2])


def track(
    engine: Any, sid: int, label: str = "Home", radius: str = "1mi", precision: str = "address_point"
) -> int:
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
                precision=precision,
                created_at=TRACKED_AT,
            )
        ).inserted_primary_key[0]


def dated(engine: Any, oid: str, occurred_at: str) -> OffenderState:
    """The stored offender, as if its latest registry event came at `occurred_at`."""
    state = repository.get_offender_state(engine, oid)
    assert state is not None
    state = replace(state, occurred_at=occurred_at, revision=state.revision + 1)
    assert repository.save_offender_state(engine, state)
    return state


def proximity_alert(state: OffenderState, sid: int, place_id: int) -> Alert:
    a = state.addresses[0]
    return Alert(
        alert_id=f"a-{state.offender_id}-{place_id}",
        subscriber_id=sid,
        offender_id=state.offender_id,
        kind="moved_in",
        event_id="e-late",
        occurred_at=state.occurred_at,
        offender={
            "offender_id": state.offender_id,
            "name": "x",
            "main_offense": "",
            "tier": 2,
            "compliance": "",
        },
        tracked_address_id=place_id,
        tracked_label="Home",
        tracked_one_line="1 Hitt St, Columbia, MO 65201",
        address=a.to_dict(),
        distance_m=100.0,
        band="within 500 ft",
    )


async def answer(site: Any, query: str) -> tuple[int, str]:
    await site.get("/notifications/why")
    return await site.post("/notifications/why", {"q": query})


def next_six_am(now: datetime) -> datetime:
    local = now.astimezone(CHICAGO)
    today = datetime.combine(local.date(), time(6, 0), tzinfo=CHICAGO)
    return (
        today
        if today > local
        else datetime.combine(local.date() + timedelta(days=1), time(6), tzinfo=CHICAGO)
    )


# --- the record page -----------------------------------------------------------------------


async def test_the_record_shows_a_visitor_no_distances(site, engine) -> None:
    seed_registry(engine)
    status, page = await site.get("/offenders/OFF-NEAR")
    assert status == 200
    assert "Distance from the addresses you track" not in page and "/notifications/why" not in page


async def test_the_record_shows_a_subscriber_each_tracked_address_against_each_registered_one(
    logged_in_site, engine
) -> None:
    site = logged_in_site
    seed_registry(engine)
    track(engine, site.subscriber_id, "Home", "1mi")
    track(engine, site.subscriber_id, "School", "500ft")
    status, page = await site.get("/offenders/OFF-MID")
    assert status == 200
    [table] = re.findall(r"<table>\s*<caption[^>]*>Each address you track.*?</table>", page, re.S)
    assert '<th scope="col">Your address</th>' in table and '<th scope="row">' in table
    rows = [visible(r).split() for r in re.findall(r"<tr>\s*<th scope=\"row\">.*?</tr>", table, re.S)]
    d = distance_text(oracle_m(*WHERE["OFF-MID"]))
    assert [" ".join(r) for r in rows] == [
        f"Home (within 1 mile) Work: 900 Rollins St, Columbia, MO 65201 (Boone County) {d} Yes",
        f"School (within 500 feet) Work: 900 Rollins St, Columbia, MO 65201 (Boone County) {d} No",
    ]
    assert 'href="/notifications/why?offender=OFF-MID"' in page

    # Placed only to its ZIP code: a reason instead of a distance.
    _, page = await site.get("/offenders/OFF-APPROX")
    text = " ".join(visible(page).split())
    assert "Not counted: this address could only be placed roughly (its street or ZIP code area)" in text
    _, page = await site.get("/offenders/OFF-TEMP")
    assert "temporary addresses are kept on the record but never send alerts" in visible(page)


async def test_a_subscriber_tracking_nothing_is_pointed_to_tracking_an_address(
    logged_in_site, engine
) -> None:
    seed_registry(engine)
    _, page = await logged_in_site.get("/offenders/OFF-NEAR")
    assert "You do not track any address yet." in visible(page)


# --- the why page ----------------------------------------------------------------------------


async def test_the_notifications_page_and_the_faq_link_to_the_why_page(logged_in_site) -> None:
    for path in ("/notifications", "/faq"):
        _, page = await logged_in_site.get(path)
        assert 'href="/notifications/why"' in page, path


async def test_the_why_page_redirects_a_visitor_to_log_in(site) -> None:
    resp = await site.client.get("/notifications/why", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    resp = await site.client.post("/notifications/why", data={"q": "OFF-NEAR"}, allow_redirects=False)
    assert resp.status in (303, 403)


async def test_outside_the_radius_says_by_how_much(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    track(engine, site.subscriber_id)
    status, page = await answer(site, "OFF-FAR")
    assert status == 200
    text = " ".join(visible(page).split())
    d = oracle_m(*WHERE["OFF-FAR"])
    assert (
        f"outside your radius: {distance_text(d)} from Home, {distance_text(d - 1609.344)} farther than your 1 mile"
        in text
    )
    assert "You do not track this person" in text


async def test_an_address_not_mapped_exactly_enough_says_so(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    track(engine, site.subscriber_id)
    _, page = await answer(site, "OFF-APPROX")
    assert "could only be placed roughly (its street or ZIP code area)" in " ".join(visible(page).split())
    # A tracked address placed only to the street (an old import) measures nothing either.
    track(engine, site.subscriber_id, "Cabin", "5mi", precision="street")
    _, page = await answer(site, "OFF-NEAR")
    text = " ".join(visible(page).split())
    assert "Near Cabin (within 5 miles)" in text
    assert "your address is placed only roughly (location approximate)" in text


async def test_an_address_registered_before_tracking_began_says_so(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    track(engine, site.subscriber_id)
    dated(engine, "OFF-NEAR", "2026-10-15T14:00:00Z")
    _, page = await answer(site, "OFF-NEAR")
    text = " ".join(visible(page).split())
    d = distance_text(oracle_m(*WHERE["OFF-NEAR"]))
    assert (
        f"inside your radius ({d} away), but it was on the registry (by October 15, 2026) "
        "before you started tracking Home on November 1, 2026" in text
    )


async def test_a_waiting_alert_is_in_the_next_digest_with_its_local_send_time(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    place = track(engine, site.subscriber_id)
    state = dated(engine, "OFF-NEAR", "2026-12-05T14:00:00Z")
    repository.record_alerts(engine, [proximity_alert(state, site.subscriber_id, place)])
    before = datetime.now(UTC)
    _, page = await answer(site, "Nearby, Nora")
    after = datetime.now(UTC)
    text = " ".join(visible(page).split())
    sends = {next_six_am(before), next_six_am(after)}
    wanted = [f"It is in your next digest, sent {t:%B} {t.day}, {t.year} at 6:00 AM {t:%Z}" for t in sends]
    assert any(w in text for w in wanted), text


async def test_an_alert_in_a_digest_sent_says_you_were_told_and_when(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    place = track(engine, site.subscriber_id)
    state = dated(engine, "OFF-NEAR", "2026-12-05T14:00:00Z")
    repository.record_alerts(engine, [proximity_alert(state, site.subscriber_id, place)])
    with engine.begin() as conn:
        did = conn.execute(
            digests.insert().values(
                subscriber_id=site.subscriber_id,
                period="2026-12-06",
                status="sent",
                attempts=1,
                sent_at=datetime(2026, 12, 6, 12, 0, 3, tzinfo=UTC),
            )
        ).inserted_primary_key[0]
        from streams.adapters.db import pending_alerts

        conn.execute(pending_alerts.update().values(digest_id=did))
    _, page = await answer(site, "OFF-NEAR")
    text = " ".join(visible(page).split())
    assert "You were told: it was in your digest of December 6, 2026." in text


async def test_a_tracked_offender_is_mailed_because_you_track_them(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    with engine.begin() as conn:
        conn.execute(
            offender_watches.insert().values(
                subscriber_id=site.subscriber_id, offender_id="OFF-STL", created_at=TRACKED_AT
            )
        )
    _, page = await answer(site, "OFF-STL")
    text = " ".join(visible(page).split())
    assert "You track this person (since November 1, 2026): you receive e-mails about them" in text
    assert "You do not track any address." in text


async def test_a_name_matching_several_records_lets_you_pick_one(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    repository.save_offender_state(
        engine, offender("OFF-NEAR2", "Ned", "Nearby", near("home", "9 Elm", 38.95))
    )
    track(engine, site.subscriber_id)
    status, page = await answer(site, "Nearby")
    assert status == 200
    assert "Several records match" in page
    assert 'href="/notifications/why?offender=OFF-NEAR"' in page
    assert 'href="/notifications/why?offender=OFF-NEAR2"' in page
    status, page = await site.get("/notifications/why?offender=OFF-NEAR2")
    assert status == 200 and "About" in page and "Ned Nearby" in page
    # "First Last" finds one, and answers straight away.
    _, page = await answer(site, "Ned Nearby")
    assert "Several records match" not in page and "Near Home (within 1 mile)" in visible(page)


async def test_an_empty_question_is_refused_with_a_message(logged_in_site) -> None:
    status, page = await answer(logged_in_site, "  ")
    assert status == 400 and "Enter the offender&#39;s record number or name." in page
    assert '<label for="why-q">' in page


def _without_token_and_echo(page: str, echoed: str) -> str:
    page = re.sub(r'name="csrf_token" value="[^"]*"', "", page)
    return page.replace(f'value="{echoed}"', 'value=""')


async def test_juvenile_removed_and_unknown_get_one_and_the_same_answer(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    track(engine, site.subscriber_id)
    with engine.connect() as conn:
        flags = dict(conn.execute(select(offenders.c.offender_id, offenders.c.juvenile)).tuples().all())
    assert flags["OFF-JUV"] is True
    pages = []
    for q in ("OFF-JUV", "OFF-GONE", "OFF-NOPE", "Juvenal", "Gonzaga, Gus", "Jody Juvenal", "Zzyzx"):
        status, page = await answer(site, q)
        assert status == 200
        assert NO_RECORD in page
        pages.append(_without_token_and_echo(page, q))
    for q in ("OFF-JUV", "OFF-GONE", "OFF-NOPE"):
        status, page = await site.get(f"/notifications/why?offender={q}")
        assert status == 200
        pages.append(_without_token_and_echo(page, q))
    assert len(set(pages)) == 1
    for hidden in ("Jody", "Gonzaga", "5 Hitt St", "7 Hitt St"):
        assert hidden not in pages[0]


async def test_a_subscriber_whose_mail_is_stopped_is_told_first(logged_in_site, engine) -> None:
    from streams.adapters.db import subscribers

    site = logged_in_site
    seed_registry(engine)
    with engine.begin() as conn:
        conn.execute(subscribers.update().values(status="unsubscribed"))
    _, page = await answer(site, "OFF-NEAR")
    assert "Your alert e-mails are stopped, so nothing is mailed to you at all." in " ".join(
        visible(page).split()
    )


async def test_an_address_moved_or_widened_is_tracked_anew_from_the_edit(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    place = track(engine, site.subscriber_id, "Home", "500ft")
    # OFF-MID (about 925 m away) registered after tracking began, outside 500 ft then.
    dated(engine, "OFF-MID", "2026-11-20T14:00:00Z")
    _, page = await answer(site, "OFF-MID")
    assert "outside your radius" in visible(page)
    await site.get(f"/notifications/addresses/{place}")
    fields = {"label": "Home", "street": "1 Hitt St", "city": "Columbia", "state": "MO", "zip": "65201"}
    resp = await site.client.post(
        f"/notifications/addresses/{place}",
        data={**fields, "radius": "1mi", "csrf_token": site.csrf},
        allow_redirects=False,
    )
    assert resp.status == 303
    _, page = await answer(site, "OFF-MID")
    text = " ".join(visible(page).split())
    today = datetime.now(UTC).astimezone(CHICAGO)
    assert "but it was on the registry (by November 20, 2026) before you started tracking Home on" in text
    assert f"Home on {today:%B} {today.day}, {today.year}." in text
