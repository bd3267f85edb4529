"""The map in a real browser with no network tiles: county lines and names from the site's own
base layer, the geodesic circle, markers shaped by address type, the legend; screenshot in
test-artifacts/map-offline.png."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from streams.adapters import repository
from streams.adapters.db import make_engine
from streams.web import sessions
from tests.e2e.accessibility import assert_focus_visible, check_page
from tests.e2e.browsing import (  # noqa: F401
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    offline_site,
    pytestmark,
    running_site,
    watch_requests,
)
from tests.web.conftest import add_subscriber
from tests.web.test_tracking import insert_address, near, offender, seed_registry


def map_story(engine):
    """The registry around 1 Hitt Street, a school ~1 km west, and a parent tracking Home at
    1 mile: (subscriber, tracked address, signed-in session)."""
    seed_registry(engine)
    school = near("school", "1104 N Providence Rd", 38.9525, -92.3345)  # ~1 km west
    assert repository.save_offender_state(engine, offender("OFF-SCH", "Sid", "Schooler", school))
    sid = add_subscriber(engine, "pat.parent@example.org")
    aid = insert_address(engine, sid, "Home", radius="1mi")
    return sid, aid, sessions.create(engine, sid, datetime.now(UTC))


def test_with_no_tiles_the_map_draws_county_lines_and_names_under_typed_markers(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    port, base, env = offline_site(tmp_path)
    engine = make_engine(env["SOR_DATABASE_URL"])
    try:
        _, aid, session = map_story(engine)
    finally:
        engine.dispose()

    with running_site(env, tmp_path / "web.log", port):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1100, "height": 900})
            context.add_cookies(
                [{"name": sessions.cookie_name(sessions.COOKIE, False), "value": session.raw_id, "url": base}]
            )
            page = context.new_page()
            elsewhere, refused = watch_requests(page, base)
            page.goto(f"{base}/map?tracked={aid}")

            region = page.get_by_role("region", name="Map of the places listed below")
            expect(region).to_be_visible()
            # The base layer: county outlines as SVG paths in their own pane, under the symbols.
            close_up = page.locator("#map > .leaflet-map-pane")  # not the small map of the wider area
            counties = close_up.locator(".leaflet-sorCounties-pane svg path")
            expect(counties.first).to_be_attached()
            assert counties.count() >= 5  # Boone and its neighbours
            assert close_up.locator(".leaflet-sorBorders-pane svg path").count() >= 1  # state lines
            assert page.locator(".leaflet-tile").count() == 0
            # The county is named on the map although its own label point is off this view.
            boone = close_up.locator(".leaflet-sorLabels-pane .sor-label", has_text="Boone")
            expect(boone).to_be_visible()
            box, frame = boone.bounding_box(), region.bounding_box()
            assert box and frame
            assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]
            assert frame["y"] <= box["y"] and box["y"] + box["height"] <= frame["y"] + frame["height"]

            # The small map of the wider area names the county and its neighbours.
            wider = page.locator(".sor-overview .sor-label")
            expect(wider.filter(has_text="Boone")).to_be_visible()
            assert wider.count() >= 3

            # The circle is the server's geodesic ring drawn as a polygon, vertex by vertex (72):
            # straight segments, closed, no arc of a flat circle (L.circle draws with "a").
            ring = page.locator(".leaflet-overlay-pane svg path.leaflet-interactive")
            assert ring.count() == 1
            d = ring.get_attribute("d") or ""
            assert d.startswith("M") and d.endswith("z") and "a" not in d and d.count("L") >= 60
            # One marker per place, each shaped by its address type, with its name for a screen reader.
            assert page.locator(".sor-marker svg.tracked").count() == 1
            assert page.locator(".sor-marker svg.home").count() == 1  # Nora Nearby
            assert page.locator(".sor-marker svg.work").count() == 1  # Milo Middleton
            assert page.locator(".sor-marker svg.school").count() == 1  # Sid Schooler
            expect(
                page.get_by_role("button", name="Sid Schooler, School address: 1104 N Providence Rd")
            ).to_be_visible()
            # The legend, on the map and on the page, naming each shape.
            legend = page.locator(".leaflet-control.sor-legend")
            for words in ("Your tracked address", "Home address", "Work address", "School address"):
                expect(legend.get_by_text(words)).to_be_visible()
                expect(page.locator("#map-legend").get_by_text(words)).to_be_visible()
            expect(
                page.get_by_text("Everything on this map is also written out in the list below it.")
            ).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "map-offline.png"), full_page=True)

            # The keyboard passes through the map and out the other side, each stop ringed.
            region.focus()
            for _ in range(20):
                page.keyboard.press("Tab")
                if not page.evaluate("document.getElementById('map').contains(document.activeElement)"):
                    break
                assert_focus_visible(page)
            assert page.evaluate("document.activeElement.closest('main') !== null")
            assert not page.evaluate("document.getElementById('map').contains(document.activeElement)")
            check_page(page, "map of a tracked address")
            browser.close()
        assert elsewhere == [], elsewhere  # nothing fetched from anywhere but this site
        assert refused == [], refused
