"""A real digest's HTML part opened in the browser with its map picture beside it: the picture is
shown with its alt text, and the e-mail passes axe-core's WCAG 2.1 AA rules and reads on a 320 px
phone without scrolling sideways; screenshot in
test-artifacts/digest-browser.png."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from streams.adapters import repository
from tests.e2e.accessibility import a_assert_accessible, a_assert_reflows
from tests.e2e.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, pytestmark  # noqa: F401
from tests.integration.conftest import engine, imported_address, offender_state, proximity_alert, subscribe  # noqa: F401
from tests.integration.test_digest_maps import applied, html_of, images_by_cid, run


async def test_the_digest_shows_its_map_picture_in_a_browser_and_passes_axe(
    engine,  # noqa: F811
    subscribe,  # noqa: F811
    smtp_server,
) -> None:
    from playwright.async_api import async_playwright

    catcher, port = smtp_server
    change = subscribe("parent@example.org", addresses=(imported_address("Home"),))
    [home] = (c.circle_id for c in change.circles)
    repository.save_offender_state(engine, offender_state("OFF-1", 2, first="Ray", last="Abbott"))
    repository.record_alerts(
        engine, [proximity_alert(change.subscriber_id, home, "OFF-1", "Ray Abbott", "800 Olive St")]
    )
    applied(engine, datetime(2026, 11, 20, 11, 45, tzinfo=UTC))
    assert (await run(engine, port)).sent == 1

    [msg] = catcher.messages
    html, [(cid, picture)] = html_of(msg), images_by_cid(msg).items()
    assert f'src="cid:{cid}"' in html
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "digest-map.png").write_bytes(picture.get_content())
    page_file: Path = ARTIFACTS / "digest-map.html"
    page_file.write_text(html.replace(f"cid:{cid}", "digest-map.png"), encoding="utf-8")

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 900})
            await page.goto(page_file.as_uri())
            img = page.get_by_role("img", name=re.compile(r"^Map of the 1-mile circle around Home"))
            assert await img.is_visible()
            shown = await img.evaluate("i => ({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})")
            assert shown["complete"] and (shown["w"], shown["h"]) == (960, 640)
            drawn = await img.evaluate("i => [i.clientWidth, i.clientHeight]")  # inside its border
            assert drawn == [480, 320]
            assert await page.get_by_role("rowheader", name="Ray Abbott").is_visible()
            await a_assert_accessible(page, "digest e-mail", best_practice=False)
            await a_assert_reflows(page, "digest e-mail")  # its tables scroll in their own box
            await page.screenshot(path=str(ARTIFACTS / "digest-browser.png"), full_page=True)
        finally:
            await browser.close()
