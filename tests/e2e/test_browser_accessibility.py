"""Every page of the site in a real browser, signed out and signed in, against WCAG 2.1 AA: axe-core
finds nothing wrong, and at 320 CSS px nothing scrolls sideways; screenshots of the record's
distance table in test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

from streams.adapters.db import make_engine
from streams.web import sessions
from tests.e2e.accessibility import assert_accessible, assert_reflows
from tests.e2e.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, offline_site, pytestmark, running_site  # noqa: F401
from tests.e2e.test_browser_map import map_story

SIGNED_OUT = [
    ("/", "home"),
    ("/faq", "questions"),
    ("/enroll", "enroll"),
    ("/login", "log in"),
    ("/forgot", "forgotten password"),
    ("/delete", "delete by e-mail"),
    ("/confirm/not-a-real-token", "a confirmation link that is no good"),
    ("/offenders/search", "search form"),
    ("/offenders/search?city=Columbia", "search results"),
    ("/offenders/search?last_name=Nobody", "search with no result"),
    ("/offenders/OFF-NEAR", "a record, signed out"),
    ("/no-such-page", "not found"),
    ("/offenders/OFF-JUV", "no public record"),
    ("/reset/not-a-real-token", "a reset link that is no good"),
    ("/unsubscribe/not-a-real-token", "an unsubscribe link that is no good"),
]
STATUS = {
    "/confirm/not-a-real-token": 400,
    "/reset/not-a-real-token": 400,
    "/unsubscribe/not-a-real-token": 400,
    "/no-such-page": 404,
    "/offenders/OFF-JUV": 404,
}
SIGNED_IN = [
    ("/notifications", "my notifications"),
    ("/notifications/addresses/{aid}", "a tracked address"),
    ("/offenders/search?city=Columbia", "search results with Track buttons"),
    ("/offenders/OFF-NEAR", "a record with its distance table"),
    ("/notifications/why", "why, the form"),
    ("/notifications/why?offender=OFF-NEAR", "why: told in a digest, or not yet"),
    ("/notifications/why?offender=OFF-FAR", "why: outside the radius"),
    ("/notifications/why?offender=OFF-APPROX", "why: not mapped exactly enough"),
    ("/notifications/why?offender=OFF-JUV", "why: no such public record"),
    ("/notifications/why?offender=Smith", "why: nobody by that name"),
    ("/map?tracked={aid}", "map of a tracked address"),
    ("/map?offender=OFF-NEAR", "map of a record"),
    ("/account", "my account"),
    ("/account/security", "sign-in factors"),
    ("/account/app", "add an authenticator app"),
]


def test_every_page_passes_axe_and_reflows_at_320_px(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port, base, env = offline_site(tmp_path)
    engine = make_engine(env["SOR_DATABASE_URL"])
    try:
        sid, aid, session = map_story(engine)
    finally:
        engine.dispose()

    with running_site(env, tmp_path / "web.log", port):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            failures: list[str] = []

            def visit(page, path: str, what: str) -> None:
                response = page.goto(base + path.format(aid=aid))
                assert response is not None
                assert response.status == STATUS.get(path, 200), (path, response.status)
                if "/map" in path:
                    page.wait_for_selector(".sor-marker")
                for check in (assert_accessible, assert_reflows):
                    try:
                        check(page, what)
                    except AssertionError as e:
                        failures.append(str(e))

            def after_submitting(page, path: str, button: str, what: str) -> None:
                """A form sent empty: its errors listed on top and beside each field."""
                page.goto(base + path)
                page.get_by_role("button", name=button, exact=True).click()
                page.wait_for_load_state()
                assert page.locator(".errors").first.is_visible(), what
                for check in (assert_accessible, assert_reflows):
                    try:
                        check(page, what)
                    except AssertionError as e:
                        failures.append(str(e))

            page = browser.new_page(viewport={"width": 1100, "height": 900})
            for path, what in SIGNED_OUT:
                visit(page, path, what)
            after_submitting(page, "/enroll", "Enroll", "enroll, sent empty")
            page.close()

            context = browser.new_context(viewport={"width": 1100, "height": 900})
            context.add_cookies(
                [{"name": sessions.cookie_name(sessions.COOKIE, False), "value": session.raw_id, "url": base}]
            )
            page = context.new_page()
            for path, what in SIGNED_IN:
                visit(page, path, what)
            after_submitting(page, "/notifications", "Track this address", "track an address, sent empty")
            # The record's distance table, as a signed-in subscriber sees it.
            page.goto(f"{base}/offenders/OFF-NEAR")
            distances = page.get_by_role("region", name=re.compile("Each address you track"))
            assert distances.get_by_role("rowheader", name="Home (within 1 mile)").is_visible()
            distances.screenshot(path=str(ARTIFACTS / "record-distances.png"))
            page.get_by_role(
                "heading", name="Distance from the addresses you track"
            ).scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "record-why.png"))
            browser.close()
        assert not failures, "\n\n".join(failures)
