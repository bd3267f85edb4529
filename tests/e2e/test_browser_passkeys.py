"""A person in a real browser adds a passkey (Chromium's virtual authenticator), signs out, signs
back in with it and no password, then adds an authenticator app; screenshots in test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp

from streams.services.demo import DEMO_GAZETTEER
from tests.e2e.accessibility import check_page
from tests.e2e.browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, pytestmark, running_site  # noqa: F401

EMAIL = "sam.sitter@example.org"
PASSWORD = "a quiet porch after the storm"


def test_a_passkey_signs_in_without_the_password_then_an_app_is_added(system, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = int(system.env["SOR_WEB_PORT"])
    # A WebAuthn relying party is a domain, never an IP address: the site is "localhost" here.
    base = f"http://localhost:{port}"
    system.env["SOR_PUBLIC_URL"] = base
    ARTIFACTS.mkdir(exist_ok=True)
    shots: list[str] = []

    system.run("gazetteer", "import", str(DEMO_GAZETTEER), "--no-progress")
    with running_site(system.env, tmp_path / "web.log", port), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})

        def shot(name: str) -> None:
            path = ARTIFACTS / f"passkey-{len(shots) + 1:02d}-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append(path.name)
            check_page(page, name)  # WCAG 2.1 AA on every page pictured

        # Chromium's virtual authenticator: a platform passkey that verifies its user.
        cdp = page.context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        authenticator = cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                }
            },
        )["authenticatorId"]

        page.goto(f"{base}/enroll")
        page.get_by_label("E-mail address", exact=True).fill(EMAIL)
        page.get_by_label("E-mail address again").fill(EMAIL)
        page.get_by_label("Choose a password").fill(PASSWORD)
        page.get_by_label("The same password again").fill(PASSWORD)
        page.get_by_role("button", name="Enroll").click()
        text = system.catcher.wait_for(1)[0].get_body(preferencelist=("plain",)).get_content()
        page.goto(re.search(rf"{re.escape(base)}/confirm/\S+", text).group(0))
        page.get_by_role("button", name="Confirm my address").click()
        page.get_by_label("E-mail address").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in", exact=True).click()
        assert page.url.endswith("/notifications")

        page.goto(f"{base}/account")
        page.get_by_role("link", name="Sign-in factors and recovery codes").click()
        shot("sign-in-factors")
        page.get_by_label("Name for this passkey").fill("This laptop")
        page.get_by_role("button", name="Add a passkey").click()
        page.wait_for_url(re.compile(r"/account/passkeys$"))
        assert "Your recovery codes" in page.content()
        assert len(page.locator(".recovery-codes code").all_inner_texts()) == 10
        shot("recovery-codes")
        [credential] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
        assert credential["isResidentCredential"] and credential["signCount"] == 1
        added = system.catcher.wait_for(2)[-1]
        assert "factor was added" in str(added["Subject"])

        page.get_by_role("button", name="Log out").click()
        page.goto(f"{base}/login")
        shot("login")
        page.get_by_role("button", name="Sign in with a passkey").click()
        page.wait_for_url(re.compile(r"/notifications$"))
        assert "Log out" in page.content()
        shot("signed-in-with-passkey")
        [credential] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
        assert credential["signCount"] == 2  # the site saw the counter move on

        page.goto(f"{base}/account/app")
        secret = page.locator("#totp-secret").inner_text().replace(" ", "")
        assert page.locator(".qr svg").count() == 1
        shot("add-app")
        page.get_by_label("The six digits the app shows").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Add this app").click()
        page.wait_for_url(re.compile(r"/account/security$"))
        content = page.content()
        assert "Authenticator app" in content and "This laptop" in content
        assert "Your new sign-in factor is ready" in content
        shot("factors")

        # With factors, the password alone leads to the second step, which offers them all.
        page.get_by_role("button", name="Log out").click()
        page.goto(f"{base}/login")
        page.get_by_label("E-mail address").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in", exact=True).click()
        page.wait_for_url(re.compile(r"/login/second-step$"))
        assert page.get_by_role("button", name="Use my passkey").is_visible()
        page.get_by_text("No phone or passkey with you?").click()
        assert page.get_by_label("One of your recovery codes").is_visible()
        shot("second-step")
        browser.close()
    assert len(shots) == 7
