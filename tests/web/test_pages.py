"""The public pages and the protections every page carries."""

from __future__ import annotations


async def test_home_page_has_security_headers_and_a_csrf_cookie_but_no_session(site) -> None:
    resp = await site.client.get("/")
    assert resp.status == 200
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "sor_session" not in resp.cookies  # nothing stored for a visitor (tests/web/test_sessions.py)
    cookie = resp.cookies["sor_csrf"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


async def test_a_post_without_csrf_token_is_refused(site) -> None:
    await site.get("/")
    status, text = await site.post("/logout", csrf=False)
    assert status == 403 and "form has expired" in text.lower()


async def test_no_response_names_the_server_software_or_its_version(site) -> None:
    """aiohttp's default Server header ("Python/3.11 aiohttp/3.x") tells which advisories apply."""
    for path in ("/", "/static/site.css", "/no-such-page", "/confirm/not-a-token"):
        resp = await site.client.get(path, allow_redirects=False)
        assert resp.headers["Server"] == "sor-notify", path


async def test_an_address_with_no_page_is_the_sites_own_page_not_found(site) -> None:
    """A mistyped link gets a page with the site's title, landmarks and a way back, not one line
    of plain text a screen reader announces with no title; a missing static file stays plain."""
    resp = await site.client.get("/no-such-page")
    text = await resp.text()
    assert resp.status == 404 and resp.content_type == "text/html"
    assert "<title>Page not found" in text and '<main id="main">' in text and 'href="/"' in text
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    missing = await site.client.get("/static/no-such-file.css")
    assert missing.status == 404 and "<main" not in await missing.text()
    await site.get("/enroll")  # a CSRF token, so the POST reaches the router
    assert (await site.post("/no-such-page"))[0] == 404
