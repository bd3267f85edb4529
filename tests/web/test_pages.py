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
