"""The site over real HTTP (aiohttp test server), a real database and a real SMTP server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.adapters.gazetteer import LocalGazetteer
from streams.adapters.gazetteer_import import import_gazetteer
from streams.adapters.mail import SmtpSender
from streams.adapters.repository import SubscriberChange
from streams.bootstrap import Services
from streams.services.demo import DEMO_GAZETTEER
from streams.settings import load_settings
from streams.web.app import init_app
from streams.web.security import RateLimiter
from tests.integration.conftest import engine  # noqa: F401 (fixture: sqlite and PostgreSQL)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Site:
    """A browser-like client: keeps cookies, fills in the CSRF token of the last page."""

    def __init__(self, client: TestClient, mail: Any, published: list[SubscriberChange]) -> None:
        self.client = client
        self.mail = mail
        self.published = published
        self.csrf = ""

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        resp = await self.client.get(path, **kw)
        text = await resp.text()
        if m := CSRF.search(text):
            self.csrf = m.group(1)
        return resp.status, text

    async def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True,
                   **kw: Any) -> tuple[int, str]:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        resp = await self.client.post(path, data=form, **kw)
        text = await resp.text()
        if m := CSRF.search(text):
            self.csrf = m.group(1)
        return resp.status, text

    def links_in_last_mail(self) -> list[str]:
        msg = self.mail.messages[-1]
        body = msg.get_body(preferencelist=("plain",)).get_content()
        return re.findall(r"https?://\S+", body)


@pytest.fixture
async def site(engine, smtp_server, tmp_path: Path) -> AsyncIterator[Site]:  # noqa: F811
    catcher, port = smtp_server
    settings = load_settings({
        "SOR_DATA_DIR": str(tmp_path), "SOR_PUBLIC_URL": "http://notify.test",
        "SOR_MAP_TILES_URL": "",
    })
    import_gazetteer(engine, DEMO_GAZETTEER, progress=False)
    services = Services(
        settings=settings, engine=engine,
        mail=SmtpSender(host="127.0.0.1", port=port, starttls=False, username=None, password=None, timeout=10),
        geocoder=LocalGazetteer(engine),
    )
    published: list[SubscriberChange] = []

    async def publish(change: SubscriberChange) -> None:
        published.append(change)

    app = init_app(services, publish=publish, limiter=RateLimiter())
    async with TestClient(TestServer(app)) as client:
        yield Site(client, catcher, published)
