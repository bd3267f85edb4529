"""A person in a real browser: enroll, confirm from the e-mail, track an address, read the digest."""

from __future__ import annotations

import re
import time
from pathlib import Path

from streams.services.demo import DEMO_GAZETTEER
from tests.e2e.accessibility import assert_accessible, check_page
from tests.e2e.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, pytestmark, running_site  # noqa: F401
from tests.e2e.test_pipeline import event, home, profile


def test_enroll_confirm_track_and_read_the_digest(system, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = int(system.env["SOR_WEB_PORT"])
    base = f"http://127.0.0.1:{port}"
    system.env["SOR_PUBLIC_URL"] = base
    ARTIFACTS.mkdir(exist_ok=True)
    shots: list[str] = []

    system.run("gazetteer", "import", str(DEMO_GAZETTEER), "--no-progress")
    with running_site(system.env, tmp_path / "web.log", port):
        system.start_worker()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})

            def shot(name: str, *, mail: bool = False) -> None:
                path = ARTIFACTS / f"{len(shots) + 1:02d}-{name}.png"
                page.screenshot(path=str(path), full_page=True)
                shots.append(path.name)
                # WCAG 2.1 AA on every page pictured (an e-mail: its rules, in its reader's frame).
                if mail:
                    assert_accessible(page, name, best_practice=False)
                else:
                    check_page(page, name)

            page.goto(f"{base}/")
            shot("home")
            page.get_by_role("link", name="Enroll", exact=True).first.click()
            page.get_by_label("E-mail address", exact=True).fill("pat.parent@example.org")
            page.get_by_label("E-mail address again").fill("pat.parent@example.org")
            page.get_by_label("Choose a password").fill("a long walk to school in the rain")
            page.get_by_label("The same password again").fill("a long walk to school in the rain")
            shot("enroll")
            page.get_by_role("button", name="Enroll").click()
            assert "e-mail" in page.content().lower()
            shot("check-your-email")

            confirmation = system.catcher.wait_for(1)[0]
            text = confirmation.get_body(preferencelist=("plain",)).get_content()
            link = re.search(rf"{re.escape(base)}/confirm/\S+", text).group(0)
            page.goto(link)
            shot("confirm-address")
            page.get_by_role("button", name="Confirm my address").click()
            assert page.url.endswith("/login") and "confirmed" in page.content()
            page.get_by_label("E-mail address").fill("pat.parent@example.org")
            page.get_by_label("Password").fill("a long walk to school in the rain")
            page.get_by_role("button", name="Log in").click()
            assert page.url.endswith("/notifications")
            shot("notifications-empty")

            page.get_by_label("Name for this address").fill("Home")
            page.get_by_label("Street address").fill("1 Hitt Street")
            page.get_by_label("City").fill("Columbia")
            page.get_by_label("State").fill("MO")
            page.get_by_label(re.compile("ZIP code")).fill("65201")
            page.get_by_label("Tell me about offenders within").select_option("0.5mi")
            page.get_by_role("button", name="Track this address").click()
            assert "1 Hitt" in page.content()
            shot("address-added")
            page.goto(f"{base}/notifications")
            shot("notifications")

            # The stream learns of the new circle, then an offender registers nearby.
            deadline = time.monotonic() + 60
            while "tracked circles indexed" not in system.worker_log() and time.monotonic() < deadline:
                time.sleep(0.2)
            system.run(
                "registry",
                "publish",
                str(
                    system.write_jsonl(
                        "e.jsonl",
                        [
                            event(
                                "OFF-B",
                                1,
                                profile("Brown", "Bill"),
                                home("900 Rollins Street", "Columbia", "65201", (38.9420, -92.3270)),
                            ),
                        ],
                    )
                ),
            )
            system.wait_until("select count(*) from pending_alerts", lambda n: n == 1)
            system.run("digest", "send")
            digest = next(m for m in system.catcher.wait_for(2) if "digest" in str(m["Subject"]).lower())
            html = digest.get_body(preferencelist=("html",)).get_content()
            page.set_content(html)
            assert page.get_by_text("Bill Brown").first.is_visible()
            shot("digest", mail=True)

            page.locator("a[href*='/offenders/OFF-B']").first.click()
            page.wait_for_load_state()
            assert "Bill Brown" in page.content() and "secret-handle" not in page.content()
            # Signed in: how far the record's address is from the tracked one, as the alert measured.
            distances = page.get_by_role("table", name=re.compile("Each address you track"))
            assert distances.get_by_role("rowheader", name="Home (within 1/2 mile)").is_visible()
            assert distances.get_by_role("cell", name="Yes").is_visible()
            shot("offender-record")

            page.get_by_role("link", name="Why didn't I hear about Bill Brown?").click()
            page.wait_for_load_state()
            assert "You were told: it was in your digest of" in page.content()
            shot("why")

            page.set_content(html)
            page.locator("a[href*='/map?']").first.click()
            page.wait_for_load_state()
            page.wait_for_selector(".leaflet-container")
            assert page.locator(".leaflet-interactive").count() >= 1  # the radius circle is drawn
            shot("map")
            browser.close()
    assert len(shots) == 11  # every step of the walk-through reached, each pictured
