"""The site's operations endpoints: what a Prometheus scrape and a load balancer's probes see."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select

from streams.adapters.broker import free_port
from streams.adapters.gazetteer import LocalGazetteer
from streams.adapters.web_db import web_sessions
from streams.runtime import Runtime
from streams.settings import load_settings
from streams.web.app import init_app, init_metrics_app
from tests.web.conftest import Site, enroll_and_log_in


async def scrape(site: Site) -> dict[tuple[str, frozenset], float]:
    assert site.ops is not None
    resp = await site.ops.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(await resp.text())
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def sessions_in(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(web_sessions)).scalar_one())


async def test_probes_answer_while_the_database_answers(site: Site) -> None:
    resp = await site.client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["alive"] is True

    resp = await site.client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"ready": True, "failed": [], "checks": {"database": "ok"}}


async def test_readyz_names_the_database_when_it_is_down_and_healthz_stays_up(
    tmp_path: Path,
    smtp_server,
) -> None:
    # A PostgreSQL server that is not there: nothing listens on the port.
    url = f"postgresql+psycopg://sor:secret-pw@127.0.0.1:{free_port()}/sor"
    engine = create_engine(url)
    settings = load_settings({"SOR_DATA_DIR": str(tmp_path), "SOR_MAP_TILES_URL": ""})
    runtime = Runtime(
        settings=settings,
        engine=engine,
        mail=None,  # type: ignore[arg-type]
        geocoder=LocalGazetteer(engine),
    )
    async with (
        TestClient(TestServer(init_app(runtime))) as client,
        TestClient(TestServer(init_metrics_app(runtime))) as ops,
    ):
        resp = await client.get("/readyz")
        assert resp.status == 503
        body = await resp.json()
        assert body["ready"] is False and body["failed"] == ["database"]
        assert body["checks"]["database"] == "OperationalError"
        raw = await resp.text()
        assert "secret-pw" not in raw and "127.0.0.1" not in raw  # only the error's type

        assert (await client.get("/healthz")).status == 200  # alive: restarting would not help
        assert (await ops.get("/metrics")).status == 200  # still scraped
        assert (await ops.get("/readyz")).status == 503
    engine.dispose()


async def test_requests_are_counted_by_route_pattern_and_status(site: Site) -> None:
    before = await scrape(site)
    for _ in range(2):
        assert (await site.get("/"))[0] == 200
    assert (await site.get("/confirm/not-a-real-token"))[0] == 400
    assert (await site.get("/no-such-page-7f3a"))[0] == 404
    after = await scrape(site)

    def delta(**labels: str) -> float:
        return value(after, "sor_web_requests_total", **labels) - value(
            before, "sor_web_requests_total", **labels
        )

    assert delta(method="GET", route="/", status="200") == 2
    # The pattern, never the token or the unknown path: a bounded set of series.
    assert delta(method="GET", route="/confirm/{token}", status="400") == 1
    assert delta(method="GET", route="unmatched", status="404") == 1
    assert not any("not-a-real-token" in str(k) or "7f3a" in str(k) for k in after)
    # Scrapes come to the metrics port: the public site's counts are the public's requests.
    assert not any(dict(k[1]).get("route") == "/metrics" for k in after)


async def test_the_public_site_has_no_metrics_they_are_on_their_own_port(site: Site, engine) -> None:
    """A scrape shows the SMTP time moving after /forgot for an enrolled address only: on the
    public site that would tell anyone who is enrolled."""
    await enroll_and_log_in(site, "private@example.org")
    resp = await site.client.get("/metrics")
    assert resp.status == 404 and "sor_" not in await resp.text()
    samples = await scrape(site)
    assert any(name.startswith("sor_smtp_send_seconds") for name, _ in samples)


async def test_failed_logins_and_enrollments_are_counted(site: Site) -> None:
    before = await scrape(site)
    await enroll_and_log_in(site, "counted@example.org")
    await site.post("/logout")
    await site.get("/login")
    status, _ = await site.post("/login", {"email": "counted@example.org", "password": "wrong password here"})
    assert status == 400
    await site.get("/login")
    status, _ = await site.post(
        "/login", {"email": "counted@example.org", "password": "plum orchard lantern"}
    )
    after = await scrape(site)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("sor_web_enrollments_total", stage="requested") == 1
    assert delta("sor_web_enrollments_total", stage="confirmed") == 1
    assert delta("sor_web_logins_failed_total", reason="refused") == 1  # the right password is not a failure
    assert delta("sor_web_logins_failed_total", reason="rate_limited") == 0


async def test_rate_limited_logins_are_counted_apart(site_with_limits: Site) -> None:
    site = site_with_limits
    before = await scrape(site)
    statuses = []
    for _ in range(4):  # the account's limit is 3 tries
        await site.get("/login")
        statuses.append((await site.post("/login", {"email": "nobody@example.org", "password": "guess"}))[0])
    assert statuses == [400, 400, 400, 429]
    after = await scrape(site)
    assert (
        value(after, "sor_web_logins_failed_total", reason="refused")
        - value(before, "sor_web_logins_failed_total", reason="refused")
    ) == 3
    assert (
        value(after, "sor_web_logins_failed_total", reason="rate_limited")
        - value(before, "sor_web_logins_failed_total", reason="rate_limited")
    ) == 1


async def test_scrapes_and_probes_leave_no_sessions_behind(site: Site, engine) -> None:
    before = sessions_in(engine)
    assert site.ops is not None
    for client, path in [(site.ops, "/metrics"), (site.client, "/healthz"), (site.client, "/readyz")] * 5:
        resp = await client.get(path)
        assert resp.status == 200
        assert "Set-Cookie" not in resp.headers
    assert sessions_in(engine) == before
