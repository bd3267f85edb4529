"""Enroll, confirm from the e-mail, log in and track an address with the keyboard alone (Tab,
Shift+Tab, Enter, Space, arrows and typing; no click), the focus ring visible at every stop."""

from __future__ import annotations

import re
from pathlib import Path

from streams.services.demo import DEMO_GAZETTEER
from tests.e2e.accessibility import assert_focus_visible, check_page, tab_to
from tests.e2e.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, pytestmark, running_site  # noqa: F401

EMAIL = "kim.keys@example.org"
PASSWORD = "a brisk walk along the river path"


def test_enroll_confirm_log_in_and_track_an_address_with_the_keyboard_alone(system, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = int(system.env["SOR_WEB_PORT"])
    base = f"http://127.0.0.1:{port}"
    system.env["SOR_PUBLIC_URL"] = base
    ARTIFACTS.mkdir(exist_ok=True)
    system.run("gazetteer", "import", str(DEMO_GAZETTEER), "--no-progress")
    with running_site(system.env, tmp_path / "web.log", port), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        keys = page.keyboard

        def follow(key: str) -> None:
            """Presses a key that submits a form or follows a link, and waits for the new page."""
            with page.expect_navigation():
                keys.press(key)

        def fill(selector: str, text: str, *, backwards: bool = False) -> None:
            tab_to(page, selector, backwards=backwards)
            keys.press("Control+A")  # whatever the form put there first
            keys.type(text)

        # The first Tab reaches the skip link, shown while it has the focus; Enter skips the
        # header, so the next Tab lands in the page's own content.
        page.goto(f"{base}/")
        keys.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
        assert_focus_visible(page)
        assert page.locator("a.skip").is_visible()
        keys.press("Enter")
        keys.press("Tab")
        assert page.evaluate("document.activeElement.closest('main') !== null")
        assert_focus_visible(page)

        tab_to(page, "header a[href='/enroll']", backwards=True)
        follow("Enter")
        page.wait_for_url(re.compile(r"/enroll$"))
        check_page(page, "enroll")
        fill("#email", EMAIL)
        fill("#email2", EMAIL)
        fill("#password", PASSWORD)
        fill("#password2", PASSWORD)
        tab_to(page, "main button[type=submit]")
        follow("Enter")
        assert "spam or junk folder" in page.content(), page.locator("main").inner_text()
        check_page(page, "check your e-mail")

        text = system.catcher.wait_for(1)[0].get_body(preferencelist=("plain",)).get_content()
        page.goto(re.search(rf"{re.escape(base)}/confirm/\S+", text).group(0))
        tab_to(page, "main button[type=submit]")
        follow("Space")
        page.wait_for_url(re.compile(r"/login$"))
        assert "confirmed" in page.content()

        # The password first, then back up to the address with Shift+Tab; Enter submits.
        fill("#password", PASSWORD)
        fill("#email", EMAIL, backwards=True)
        tab_to(page, "#password")
        follow("Enter")
        page.wait_for_url(re.compile(r"/notifications$"))

        fill("#add-label", "Home")
        fill("#add-street", "1 Hitt Street")
        fill("#add-city", "Columbia")
        fill("#add-state", "MO")
        fill("#add-zip", "65201")
        tab_to(page, "#add-radius")
        radius = page.locator("#add-radius")
        for _ in range(8):  # the arrow keys move the choice without opening the list
            value = radius.input_value()
            if value == "0.5mi":
                break
            order = radius.evaluate("s => [...s.options].map(o => o.value)")
            keys.press("ArrowDown" if order.index(value) < order.index("0.5mi") else "ArrowUp")
        assert radius.input_value() == "0.5mi"
        tab_to(page, "form[action='/notifications/addresses'] button[type=submit]")
        follow("Enter")
        assert "1 Hitt" in page.content() and "1/2 mi" in page.content()
        check_page(page, "a tracked address, just added")
        page.screenshot(path=str(ARTIFACTS / "keyboard-address-added.png"), full_page=True)

        # Back on the list, the new address's Edit link is reached and followed by keyboard.
        page.goto(f"{base}/notifications")
        tab_to(page, "a[aria-label='Edit Home']")
        follow("Enter")
        page.wait_for_url(re.compile(r"/notifications/addresses/\d+$"))
        assert page.locator("#edit-label").input_value() == "Home"
        browser.close()
