"""The near-an-address page in a real browser: the location button fills in the browser's position,
the list and the offline map show the same registrants by address type; screenshot in
test-artifacts/near.png."""

from __future__ import annotations

from pathlib import Path

from streams.adapters import repository
from streams.adapters.db import make_engine
from tests.e2e.accessibility import check_page
from tests.e2e.browsing import (  # noqa: F401
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    offline_site,
    pytestmark,
    running_site,
    watch_requests,
)
from tests.web.test_tracking import HITT_AT, near, offender, seed_registry


def test_the_location_button_lists_and_maps_who_is_registered_nearby(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    port, base, env = offline_site(tmp_path)
    engine = make_engine(env["SOR_DATABASE_URL"])
    try:
        from streams.adapters.gazetteer_import import import_gazetteer
        from streams.services.demo import DEMO_GAZETTEER

        import_gazetteer(engine, DEMO_GAZETTEER, progress=False)
        seed_registry(engine)
        school = near("school", "1104 N Providence Rd", 38.9525, -92.3345)  # ~1 km west
        assert repository.save_offender_state(engine, offender("OFF-SCH", "Sid", "Schooler", school))
    finally:
        engine.dispose()

    ARTIFACTS.mkdir(exist_ok=True)
    with running_site(env, tmp_path / "web.log", port), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1100, "height": 900},
            geolocation={"latitude": HITT_AT[0], "longitude": HITT_AT[1]},
            permissions=["geolocation"],
        )
        page = context.new_page()
        elsewhere, refused = watch_requests(page, base)
        page.goto(base + "/")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Near an address").click()
        expect(page.get_by_role("heading", name="Registered offenders near an address")).to_be_visible()
        check_page(page, "near page, empty")
        page.get_by_label("Within").select_option("1mi")
        page.get_by_role("button", name="Use my location").click()

        expect(page.get_by_role("heading", name="Within 1 mile of your location")).to_be_visible()
        table = page.get_by_role(
            "table", name="Registered home, work and school addresses within 1 mile, nearest first"
        )
        names = table.locator("tbody th").all_inner_texts()
        assert names == ["Nora Nearby", "Milo Middleton", "Sid Schooler"]
        for hidden in ("Juvenal", "Gonzaga", "Approxima", "Temporary", "Faraway"):
            expect(page.get_by_text(hidden)).to_have_count(0)
        expect(page.get_by_text("Registry data as of")).to_be_visible()

        region = page.get_by_role("region", name="Map of the places listed below")
        expect(region).to_be_visible()
        close_up = page.locator("#map > .leaflet-map-pane")
        expect(close_up.locator(".leaflet-sorCounties-pane svg path").first).to_be_attached()
        assert page.locator(".leaflet-tile").count() == 0
        assert page.locator(".sor-marker svg.tracked").count() == 1
        for kind in ("home", "work", "school"):
            assert page.locator(f".sor-marker svg.{kind}").count() == 1
        ring = page.locator(".leaflet-overlay-pane svg path.leaflet-interactive")
        assert ring.count() == 1 and (ring.get_attribute("d") or "").count("L") >= 60
        legend = page.locator(".leaflet-control.sor-legend")
        for words in ("The address you looked up", "Home address", "Work address", "School address"):
            expect(legend.get_by_text(words)).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "near.png"), full_page=True)
        check_page(page, "near page with its list and map")

        # A typed address, and the way on to e-mail alerts about it.
        page.get_by_label("Street address").fill("1 Hitt St")
        page.get_by_label("City").fill("Columbia")
        page.get_by_label("ZIP code (optional)").fill("65201")
        page.get_by_role("button", name="Show offenders near this address").click()
        expect(page.get_by_text("mapped to the house")).to_be_visible()
        check_page(page, "near page for a typed address")
        page.get_by_role("link", name="E-mail me about this area").click()
        expect(page.get_by_text("1 Hitt St, Columbia, MO 65201")).to_be_visible()
        check_page(page, "enrollment carrying the address")
        assert not elsewhere, elsewhere
        assert not refused, refused
        browser.close()
