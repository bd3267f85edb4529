"""Every Prometheus metric, declared once, and the readiness probes the worker and the site share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping

from aiokafka.client import AIOKafkaClient
from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from sqlalchemy import text
from sqlalchemy.engine import Engine

from streams.adapters import db_calls
from streams.adapters.dead_letters import REASONS

# A `_created` series per counter doubles the output and no dashboard here uses it.
disable_created_metrics()

# Text format 0.0.4: what every Prometheus version scrapes (the client's own constant moved between versions).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Labels hold only values from short fixed lists: never an offender, subscriber or address.

# --- worker: the stream ---------------------------------------------------------------------

EVENTS_CONSUMED = Counter(
    "sor_events_consumed", "Messages the worker took from a topic, per topic.", ["topic"]
)
REGISTRY_EVENTS_APPLIED = Counter("sor_registry_events_applied", "Registry events applied to offender state.")
REGISTRY_EVENTS_IGNORED = Counter(
    "sor_registry_events_ignored",
    "Registry events ignored: an event seen before (duplicate) or an older revision (stale).",
    ["reason"],
)
REGISTRY_EVENTS_REPLAYED = Counter(
    "sor_registry_events_replayed",
    "The latest event of an offender delivered again: its alerts derived and sent again (idempotent).",
)
REGISTRY_EVENTS_DEAD_LETTERED = Counter(
    "sor_registry_events_dead_lettered",
    "Registry events that could not be read, sent to the dead-letter topic, per reason code.",
    ["reason"],
)
GEOCODE_RETRIES_QUEUED = Counter(
    "sor_geocode_retries_queued",
    "Registry events put on the retry topic because every geocoding service was unavailable.",
)
ALERTS_EMITTED = Counter("sor_alerts_emitted", "Alerts sent to the alerts topic, per kind.", ["kind"])
ALERTS_RECORDED = Counter(
    "sor_alerts_recorded",
    "Alerts taken from the alerts topic: stored for a digest (new) or already stored (duplicate).",
    ["result"],
)
GEO_JOIN_SECONDS = Histogram(
    "sor_geo_join_seconds",
    "Time spent matching one address change against the tracked circles held here.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
ALERTS_PER_ADDRESS_CHANGE = Histogram(
    "sor_alerts_per_address_change",
    "Proximity alerts one address change produced (fan-out).",
    buckets=(0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
FETCH_GAPS_REPAIRED = Counter(
    "sor_fetch_gaps_repaired",
    "Records fetched but lost before reaching a stream, noticed by the offset gap after them "
    "and read again (streams/adapters/faust_fixes/fetch.py). Anything above 0 is worth a look.",
    ["topic"],
)
CIRCLES_HELD = Gauge("sor_circles_held", "Tracked circles in this worker's index.")
CIRCLE_COPIES_HELD = Gauge(
    "sor_circle_copies_held",
    "Circle copies (one per grid cell a circle touches) in this worker's partitions.",
)
CELLS_HELD = Gauge("sor_cells_held", "Grid cells with at least one tracked circle on this worker.")
OFFENDERS_HELD = Gauge("sor_offenders_held", "Offenders in this worker's state table.")
CONSUMER_LAG = Gauge(
    "sor_consumer_lag",
    "Messages in a partition this worker owns that it has not committed yet (end offset - committed).",
    ["topic", "partition"],
)

# --- worker: the digests ------------------------------------------------------------------

DIGESTS = Counter(
    "sor_digests",
    "Digest e-mails handled: sent, failed (refused for good or given up on), deferred to a retry, or empty (not sent).",
    ["outcome"],
)
DIGEST_BOUNCES = Counter(
    "sor_digest_bounces",
    "Digests refused for good by the receiving side (hard bounces), counted per subscriber towards suspension.",
)
MAIL_SUSPENSIONS = Counter(
    "sor_mail_suspensions",
    "Subscribers whose digests were stopped after repeated hard bounces.",
)
SMTP_SEND_SECONDS = Histogram(
    "sor_smtp_send_seconds",
    "Time to hand one message to the SMTP server, failures included.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

# --- web site ---------------------------------------------------------------------------------

WEB_REQUESTS = Counter(
    "sor_web_requests",
    "Requests to the web site, per method, route pattern and status code.",
    ["method", "route", "status"],
)
WEB_LOGINS_FAILED = Counter(
    "sor_web_logins_failed",
    "Log-in attempts refused: wrong address or password (refused) or too many tries (rate_limited).",
    ["reason"],
)
WEB_ENROLLMENTS = Counter(
    "sor_web_enrollments",
    "Enrollment forms accepted (requested; a confirmation e-mail goes out) and confirmation links"
    " followed (confirmed).",
    ["stage"],
)

# Known label values start at 0, so a rate() over them works before the first increment.
for _reason in ("duplicate", "stale"):
    REGISTRY_EVENTS_IGNORED.labels(reason=_reason)
for _reason in REASONS:
    REGISTRY_EVENTS_DEAD_LETTERED.labels(reason=_reason)
for _kind in ("moved_in", "moved_out", "watch_changed", "watch_removed"):
    ALERTS_EMITTED.labels(kind=_kind)
for _result in ("new", "duplicate"):
    ALERTS_RECORDED.labels(result=_result)
for _outcome in ("sent", "failed", "deferred", "empty"):
    DIGESTS.labels(outcome=_outcome)
for _reason in ("refused", "rate_limited"):
    WEB_LOGINS_FAILED.labels(reason=_reason)
for _stage in ("requested", "confirmed"):
    WEB_ENROLLMENTS.labels(stage=_stage)


def alerts_emitted(kind: str, count: int) -> None:
    ALERTS_EMITTED.labels(kind=kind).inc(count)


def alerts_recorded(received: int, new: int) -> None:
    ALERTS_RECORDED.labels(result="new").inc(new)
    ALERTS_RECORDED.labels(result="duplicate").inc(received - new)


def exposition() -> bytes:
    return generate_latest()


# --- readiness probes -------------------------------------------------------------------------

PROBE_TIMEOUT_S = 3.0


def _select_one(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()


async def database_answers(engine: Engine, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raises unless the database answers `SELECT 1` within `timeout` seconds (no retrying)."""
    await asyncio.wait_for(db_calls.call(engine, _select_one), timeout)


async def broker_answers(broker_url: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raises unless a broker answers a metadata request within `timeout` seconds."""
    client = AIOKafkaClient(bootstrap_servers=broker_url, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
    finally:
        await client.close()


async def readiness(checks: Mapping[str, Awaitable[None]]) -> tuple[bool, dict]:
    """Run every check at once; the body names each check and, for a failed one, only the
    error's type (a message could carry a host name or a user)."""
    names = list(checks)
    results = await asyncio.gather(*checks.values(), return_exceptions=True)
    status = {name: "ok" if r is None else type(r).__name__ for name, r in zip(names, results)}
    failed = [name for name in names if status[name] != "ok"]
    return not failed, {"ready": not failed, "failed": failed, "checks": status}
