"""The statistics page in a real browser: the map drawn with no script and no network, the
tables reachable from the keyboard, nothing wider than a 320 px phone; screenshots in test-artifacts/."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.accessibility import a_assert_accessible, a_check_page
from tests.e2e.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, pytestmark  # noqa: F401
from tests.integration.conftest import engine  # noqa: F401 (fixture)
from tests.web.conftest import open_site
from tests.web.test_statistics import REGISTRY, seed


async def test_the_statistics_page_reads_on_a_desktop_and_a_phone_without_script(
    engine,  # noqa: F811
    smtp_server,
    tmp_path: Path,
) -> None:
    from playwright.async_api import async_playwright

    seed(engine, REGISTRY, event="load")
    catcher, port = smtp_server
    ARTIFACTS.mkdir(exist_ok=True)
    async with open_site(engine, port, catcher, tmp_path) as site, async_playwright() as p:
        url = str(site.client.make_url("/statistics"))
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width in (1100, 320):
                # No script at all, and every request other than the site's own refused.
                context = await browser.new_context(
                    viewport={"width": width, "height": 900}, java_script_enabled=False
                )
                await context.route(
                    "**/*",
                    lambda r: (
                        r.continue_() if r.request.url.startswith(url.split("/statistics")[0]) else r.abort()
                    ),
                )
                page = await context.new_page()
                await page.goto(url)
                counties = page.locator("svg.choropleth path[data-fips]")
                assert await counties.count() == 115
                box = await page.locator("svg.choropleth").bounding_box()
                assert box is not None and 0 < box["width"] <= width and box["height"] > 0.7 * box["width"]
                boone = page.locator('svg.choropleth path[data-fips="29019"]')
                assert await boone.get_attribute("fill") not in (None, "url(#stat-none)")
                assert await page.get_by_role("img", name="Map of Missouri's counties").count() == 1
                table = page.get_by_role("region", name="Public registrants by county")
                assert await table.count() == 1
                row = page.get_by_role("row", name="Boone County")
                assert (await row.inner_text()).split()[:4] == ["Boone", "County", "29019", "2"]
                await page.screenshot(path=str(ARTIFACTS / f"statistics-{width}.png"), full_page=False)
                await page.locator("figure.choropleth").screenshot(
                    path=str(ARTIFACTS / f"statistics-map-{width}.png")
                )
                await context.close()

            # With script (so the page can be measured): no sideways scrolling at 320 px; the wide
            # table scrolls inside its own region, which the keyboard reaches.
            context = await browser.new_context(viewport={"width": 320, "height": 700})
            page = await context.new_page()
            await page.goto(url)
            assert await page.evaluate("document.documentElement.scrollWidth") <= 320
            await a_assert_accessible(page, "statistics at 320 px")
            await page.set_viewport_size({"width": 1100, "height": 900})
            await a_check_page(page, "statistics at 1100 px")
            await page.set_viewport_size({"width": 320, "height": 700})
            region = page.get_by_role("region", name="Public registrants by county")
            assert await region.evaluate("e => e.scrollWidth > e.clientWidth")
            for _ in range(40):
                await page.keyboard.press("Tab")
                if await region.evaluate("e => e === document.activeElement"):
                    break
            else:
                raise AssertionError("the county table's region is never reached with Tab")
            await context.close()
        finally:
            await browser.close()
