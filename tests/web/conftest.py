"""The site over real HTTP (aiohttp test server), a real database and a real SMTP server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.adapters.gazetteer import LocalGazetteer
from streams.adapters.gazetteer_import import import_gazetteer
from streams.adapters.mail import SmtpSender
from streams.adapters.subscriber_store import SubscriberChange
from streams.runtime import Runtime
from streams.services.demo import DEMO_GAZETTEER
from streams.settings import load_settings
from streams.web.app import init_app, init_metrics_app
from streams.web.keys import SEARCH, Clock, now
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
        self.ops: TestClient | None = None  # the site's metrics port (init_metrics_app)

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        resp = await self.client.get(path, **kw)
        text = await resp.text()
        if m := CSRF.search(text):
            self.csrf = m.group(1)
        return resp.status, text

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, **kw: Any
    ) -> tuple[int, str]:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        resp = await self.client.post(path, data=form, **kw)
        text = await resp.text()
        if m := CSRF.search(text):
            self.csrf = m.group(1)
        return resp.status, text

    def cookie(self, name: str) -> str | None:
        """The value of the browser's cookie `name` for this site, if it holds one."""
        morsel = self.client.session.cookie_jar.filter_cookies(self.client.make_url("/")).get(name)
        return morsel.value if morsel is not None else None

    def links_in_last_mail(self) -> list[str]:
        msg = self.mail.messages[-1]
        body = msg.get_body(preferencelist=("plain",)).get_content()
        return re.findall(r"https?://\S+", body)


@pytest.fixture
async def site(engine, smtp_server, tmp_path: Path) -> AsyncIterator[Site]:  # noqa: F811
    catcher, port = smtp_server
    async with open_site(engine, port, catcher, tmp_path) as opened:
        yield opened


# --- a logged-in subscriber (the account flows are not needed to test what comes after) ---


def add_subscriber(engine, email: str, *, status: str = "active") -> int:  # noqa: F811
    """A confirmed subscriber straight in the database; returns its id."""
    from datetime import datetime

    from streams.adapters.db import subscribers

    with engine.begin() as conn:
        return conn.execute(
            subscribers.insert().values(
                email=email,
                confirmed=True,
                status=status,
                created_at=datetime.now(UTC),
            )
        ).inserted_primary_key[0]


@pytest.fixture
async def logged_in_site(site: Site, engine) -> Site:  # noqa: F811
    """The `site` with a confirmed subscriber logged in through a real server-side session."""
    from datetime import datetime

    from streams.web import sessions

    email = "reader@example.com"
    sid = add_subscriber(engine, email)
    session = sessions.create(engine, sid, datetime.now(UTC))
    site.client.session.cookie_jar.update_cookies({sessions.COOKIE: session.raw_id})
    site.subscriber_id = sid  # type: ignore[attr-defined]
    site.email = email  # type: ignore[attr-defined]
    return site


# --- account flows ------------------------------------------------------------------------

from contextlib import asynccontextmanager  # noqa: E402

from streams.adapters import account_tokens  # noqa: E402,F401 (its table, before any test creates the schema)
from streams.web.security import DEFAULT_LIMITS, Limit  # noqa: E402


async def sent_mail(site: Site) -> list[Any]:
    """Every message the SMTP server got, once the account requests queued and the account
    e-mails under way are out (they are sent after the response, so a page never waits for,
    or betrays, a mail)."""
    from streams.web.account_mail import mail_sent

    await work_of(site).idle()
    await mail_sent()
    return site.mail.messages


def work_of(site: Site) -> Any:
    """The site's background work (streams/web/account_work.py)."""
    from streams.web.account_work import ACCOUNT_WORK

    return site.client.server.app[ACCOUNT_WORK]


async def notices_sent(site: Site, after: float | None = None) -> list[Any]:
    """Every message the SMTP server got, once the settings notices due `after` seconds from
    now (by default: the notice delay) are sent, as the site's periodic round would then."""
    from datetime import datetime, timedelta

    from streams.web.keys import RUNTIME

    app = site.client.server.app
    wait = app[RUNTIME].settings.settings_notice_delay_s if after is None else after
    await work_of(site).flush(datetime.now(UTC) + timedelta(seconds=wait))
    return await sent_mail(site)


async def enroll_and_log_in(site: Site, email: str, password: str = "plum orchard lantern") -> None:
    """Enroll over HTTP, press the confirmation link's button, log in: `site` is then logged in."""
    await site.get("/enroll")
    before = len(await sent_mail(site))
    status, _ = await site.post(
        "/enroll", {"email": email, "email2": email, "password": password, "password2": password}
    )
    assert status == 200
    assert len(await sent_mail(site)) == before + 1
    [link] = [u for u in site.links_in_last_mail() if "/confirm/" in u]
    path = re.sub(r"^https?://notify\.test", "", link)
    status, _ = await site.get(path)  # the page with the button (site.csrf is its token)
    assert status == 200
    resp = await site.client.post(path, data={"csrf_token": site.csrf}, allow_redirects=False)
    assert resp.status == 303
    await site.get("/login")
    status, _ = await site.post("/login", {"email": email, "password": password})
    assert status == 200
    status, page = await site.get("/account")
    assert status == 200 and "Log out" in page


@asynccontextmanager
async def open_site(
    engine: Any,  # noqa: F811
    smtp_port: int,
    mail_catcher: Any,
    tmp_path: Path,
    *,
    limiter: RateLimiter | None = None,
    mail: Any = None,
    env: dict[str, str] | None = None,
    account_work: bool = True,
    public_url: str = "http://notify.test",
    clock: Clock = now,
    search_every_s: float = 0.0,
) -> AsyncIterator[Site]:
    """The site on `engine`; by default its search looks for registry changes before every
    search (`search_every_s`), since tests store records and search at once."""
    settings = load_settings(
        {
            "SOR_DATA_DIR": str(tmp_path),
            "SOR_PUBLIC_URL": public_url,
            "SOR_MAP_TILES_URL": "",
            **(env or {}),
        }
    )
    import_gazetteer(engine, DEMO_GAZETTEER, progress=False)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        mail=mail
        or SmtpSender(
            host="127.0.0.1", port=smtp_port, starttls=False, username=None, password=None, timeout=10
        ),
        geocoder=LocalGazetteer(engine),
    )
    published: list[SubscriberChange] = []

    async def publish(change: SubscriberChange) -> None:
        published.append(change)

    app = init_app(
        runtime,
        publish=publish,
        limiter=limiter or RateLimiter(),
        account_work=account_work,
        clock=clock,
        search_every_s=search_every_s,
    )
    async with (
        TestClient(TestServer(app)) as client,
        TestClient(TestServer(init_metrics_app(runtime))) as ops,
    ):
        # The search index loads as the site starts; a test begins once it has, so what a
        # request does on the database is that request's alone.
        await app[SEARCH].fresh(runtime.engine)
        site = Site(client, mail_catcher, published)
        site.ops = ops  # the metrics port, apart from the public site
        yield site


LOGIN_LIMITS = {
    "login:client": Limit(6, 900),
    "login:account": Limit(3, 900),
    "login:device": Limit(3, 900),
    "reauth:session": Limit(3, 900),
}


@pytest.fixture
async def site_with_limits(engine, smtp_server, tmp_path: Path) -> AsyncIterator[Site]:  # noqa: F811
    """The site with log-in limits in 15 minutes: 6 tries per client, 3 wrong passwords per
    account (from browsers it never logged in from), per browser it did, and per session."""
    catcher, port = smtp_server
    limiter = RateLimiter(limits={**DEFAULT_LIMITS, **LOGIN_LIMITS})
    async with open_site(engine, port, catcher, tmp_path, limiter=limiter) as s:
        yield s
