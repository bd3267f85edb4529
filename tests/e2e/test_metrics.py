"""A real worker's /metrics, /healthz and /readyz, scraped over HTTP the way Prometheus and a probe do."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from streams.adapters.broker import free_port
from tests.e2e.test_pipeline import ST_LOUIS, event, home, offset, profile

Samples = dict[tuple[str, frozenset], float]


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def scrape(base: str) -> Samples:
    status, ctype, body = get(base + "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def scrape_until(system, base: str, done: Callable[[Samples], bool], timeout: float = 60.0) -> Samples:
    """The worker's web server comes up with it; wait for it, then for `done`."""
    deadline = time.monotonic() + timeout
    samples: Samples = {}
    while time.monotonic() < deadline:
        try:
            samples = scrape(base)
        except (urllib.error.URLError, ConnectionError):
            samples = {}
        if samples and done(samples):
            return samples
        if any(w.poll() is not None for w in system.workers):
            raise AssertionError("the worker died:\n" + system.worker_log()[-4000:])
        time.sleep(0.3)
    interesting = {k: v for k, v in samples.items() if k[0].startswith("sor_")}
    raise AssertionError(f"metrics never got there: {interesting}\n" + system.worker_log()[-3000:])


async def _produce_raw(bootstrap: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("registry-events", value=value, key=key)
    finally:
        await producer.stop()


def test_worker_metrics_count_what_happened_and_readyz_follows_the_broker(system, broker) -> None:
    port = free_port()
    system.env["SOR_WORKER_WEB"] = "true"
    system.env["SOR_WORKER_WEB_PORT"] = str(port)
    base = f"http://127.0.0.1:{port}"

    subscribers = system.write_jsonl(
        "subscribers.jsonl",
        [
            {
                "email": "parent@example.org",
                "confirmed": True,
                "addresses": [
                    {
                        "label": "Home",
                        "street": "1 Market St",
                        "city": "St. Louis",
                        "state": "MO",
                        "zip": "63101",
                        "radius": "1mi",
                        "lat": ST_LOUIS[0],
                        "lon": ST_LOUIS[1],
                    }
                ],
                "offenders": [],
            },
        ],
    )
    system.run("subscribers", "import", str(subscribers))
    worker = system.start_worker()
    # The circle is in the index before any offender moves near it.
    scrape_until(system, base, lambda s: value(s, "sor_circles_held") == 1)

    near_1, near_2 = offset(ST_LOUIS, 800), offset(ST_LOUIS, 300)
    changes = system.write_jsonl(
        "changes.jsonl",
        [
            event("OFF-1", 1, profile("Abbott", "Ray"), home("800 Olive St", "St. Louis", "63101", near_1)),
            event("OFF-2", 2, profile("Baker", "Sue"), home("20 Near St", "St. Louis", "63101", near_2)),
            # the same event again (replayed: its alert derived again, recorded once), and an
            # older revision of OFF-2 (ignored)
            event("OFF-1", 1, profile("Abbott", "Ray"), home("800 Olive St", "St. Louis", "63101", near_1)),
            event(
                "OFF-2",
                1,
                profile("Baker", "Sue"),
                home("1 Hitt St", "Columbia", "65201", (38.9467, -92.3252)),
                event_id="OFF-2-old",
            ),
        ],
    )
    system.run("registry", "publish", str(changes))
    asyncio.run(_produce_raw(system.env["SOR_BROKER_URL"], b"OFF-X", b"{not json"))

    def processed(s: Samples) -> bool:
        return (
            value(s, "sor_events_consumed_total", topic="registry-events") >= 5
            and value(s, "sor_alerts_recorded_total", result="new") >= 2
            and total(s, "sor_registry_events_ignored_total") >= 1
            and value(s, "sor_alerts_recorded_total", result="duplicate") >= 1
            and total(s, "sor_registry_events_dead_lettered_total") >= 1
        )

    s = scrape_until(system, base, processed)
    assert value(s, "sor_events_consumed_total", topic="registry-events") == 5
    assert value(s, "sor_registry_events_applied_total") == 2
    assert value(s, "sor_registry_events_replayed_total") == 1
    assert value(s, "sor_registry_events_ignored_total", reason="duplicate") == 0
    assert value(s, "sor_registry_events_ignored_total", reason="stale") == 1
    assert value(s, "sor_registry_events_dead_lettered_total", reason="bad_json") == 1
    assert total(s, "sor_registry_events_dead_lettered_total") == 1
    assert value(s, "sor_alerts_emitted_total", kind="moved_in") == 3  # OFF-1's twice
    assert total(s, "sor_alerts_emitted_total") == 3
    assert value(s, "sor_alerts_recorded_total", result="new") == 2
    assert value(s, "sor_alerts_recorded_total", result="duplicate") == 1  # ...but stored once
    assert value(s, "sor_alerts_per_address_change_count") == 3  # one match per change sent
    assert value(s, "sor_alerts_per_address_change_sum") == 3
    assert value(s, "sor_geo_join_seconds_count") == 3
    assert value(s, "sor_offenders_held") == 2
    assert value(s, "sor_cells_held") >= 1
    assert value(s, "sor_geocode_retries_queued_total") == 0
    # No subscriber or offender ever becomes a label.
    assert not any(v for k in s for _, v in k[1] if "OFF-" in v or "@" in v)

    # Once everything is committed, nothing is waiting in any partition the worker reads.
    scrape_until(
        system,
        base,
        lambda s: (
            sum(1 for n, ls in s if n == "sor_consumer_lag" and ("topic", "registry-events") in ls) == 2
            and total(s, "sor_consumer_lag") == 0
        ),
    )

    assert get(base + "/healthz")[0] == 200
    status, ctype, body = get(base + "/readyz")
    assert status == 200, body
    assert json.loads(body) == {"ready": True, "failed": [], "checks": {"broker": "ok", "database": "ok"}}

    broker.stop()
    status, ctype, body = get(base + "/readyz")
    assert status == 503
    assert ctype.startswith("application/json")
    report = json.loads(body)
    assert report["failed"] == ["broker"]
    assert report["checks"]["database"] == "ok"
    # Alive all the same: restarting the worker would not bring the broker back.
    assert get(base + "/healthz")[0] == 200
    # Without its broker the worker takes its whole grace period to stop; nothing is left to check.
    system.stop_worker(worker, signal.SIGKILL)
