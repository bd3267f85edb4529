"""What a morning digest run costs the database grows with the digests due, and only linearly.

An operator would notice the opposite as a run that takes minutes before its first mail at a
state's size (issue: 13.5 minutes at 50,000 subscribers) though it took seconds at a city's.
Both tests count work, never time: the statements a run sends, and the buffers PostgreSQL
reads to answer them.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from streams.adapters import digest_store, repository, subscriber_store
from streams.adapters.db import make_engine
from streams.services.digests import DigestRunReport
from tests.databases import at_head
from tests.integration.conftest import imported, proximity_alert
from tests.integration.test_digest_blocks import run


def enroll_in_bulk(engine: Engine, n: int, alerts_each: int, *, first: int = 0) -> None:
    """n confirmed subscribers with `alerts_each` waiting alerts each, as a bulk load leaves
    them: written set-wise, as the import and the worker write them."""
    changes = subscriber_store.upsert_subscribers(
        engine, [imported(f"reader{first + i:05d}@example.org") for i in range(n)]
    )
    repository.record_alerts(
        engine,
        [
            proximity_alert(
                c.subscriber_id,
                c.circles[0].circle_id,
                f"OFF-{c.subscriber_id}-{k}",
                f"Pat Case-{c.subscriber_id}-{k}",
                f"{800 + k} Olive St",
            )
            for c in changes
            for k in range(alerts_each)
        ],
    )


class Statements:
    """Every statement the engine sends while counting, by kind (its SQL without literals),
    apart from those sent while marking digests sent (see below)."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.engine = engine
        self.kinds: Counter[str] = Counter()
        self.marks = 0
        self._marking = threading.local()
        mark = digest_store.mark_digests_sent

        def counted_mark(*args: Any, **kw: Any) -> int:
            self.marks += 1
            self._marking.on = True
            try:
                return mark(*args, **kw)
            finally:
                self._marking.on = False

        # Marking what the mail server accepted is, by design, done by each lane before it
        # offers its next message (so a run killed at any moment has at most one accepted,
        # unmarked digest per lane): how many marks share one commit depends on how fast the
        # server answers. Every other statement belongs to the run, a block or a chunk of ids.
        monkeypatch.setattr(digest_store, "mark_digests_sent", counted_mark)

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if not getattr(self._marking, "on", False):
            self.kinds[re.sub(r"\s+", " ", re.sub(r"\d+", "N", statement)).strip()[:120]] += 1


async def test_the_statements_a_run_sends_grow_by_blocks_not_by_digests(
    engine, smtp_server, monkeypatch
) -> None:
    catcher, port = smtp_server
    counts = {}
    for due in (100, 1000):  # one block of 500, then two
        with engine.begin() as conn:
            conn.execute(text("delete from pending_alerts"))
            conn.execute(text("delete from digests"))
        enroll_in_bulk(engine, due, alerts_each=2, first=len(counts) * 10_000)
        catcher.messages.clear()
        with Statements(engine, monkeypatch) as seen:
            report = await run(engine, port, lanes=4)
        assert report == DigestRunReport(sent=due)
        assert len(catcher.messages) == due
        assert 1 <= seen.marks <= due
        counts[due] = seen.kinds

    small, large = counts[100], counts[1000]
    # Ten times the digests, twice the blocks: no kind of statement may be sent per digest.
    for kind, n in large.items():
        assert n <= 2 * small.get(kind, 0) + 2, (
            f"{n} x {kind!r} for 1,000 digests, {small.get(kind, 0)} for 100"
        )
    assert sum(large.values()) <= 2 * sum(small.values()) + 10


# --- the plans of a run that meets tables just bulk-loaded ---------------------------------


PG_URL = os.environ.get("SOR_TEST_DATABASE_URL")


@pytest.fixture
def never_analyzed() -> Iterator[Engine]:
    """PostgreSQL tables as a morning run may meet them: created, bulk-loaded, and not yet
    analyzed (autovacuum looks once a minute at best; here it is kept away), in a schema of
    their own so that no earlier test has given them statistics."""
    schema = "digest_cost_never_analyzed"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"drop schema if exists {schema} cascade"))
        conn.execute(text(f"create schema {schema}"))
    engine = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")
    try:
        at_head(engine)
        with engine.begin() as conn:
            for t in ("subscribers", "tracked_addresses", "pending_alerts", "digests"):
                conn.execute(text(f"alter table {t} set (autovacuum_enabled = false)"))
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"drop schema if exists {schema} cascade"))
        admin.dispose()


def buffers_read(engine: Engine, statements: list[tuple[str, Any]]) -> int:
    """Shared buffers PostgreSQL touches to answer these SELECTs again, as EXPLAIN ANALYZE counts them."""
    total = 0
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for sql, params in statements:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
            plan = cur.fetchone()[0][0]["Plan"]
            total += plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
        raw.rollback()
    finally:
        raw.close()
    return total


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL's plans: set SOR_TEST_DATABASE_URL")
def test_finding_the_due_subscribers_after_a_bulk_load_reads_buffers_linear_in_the_alerts(
    never_analyzed,
) -> None:
    engine = never_analyzed
    work = {}
    for round_, n in enumerate((300, 1200)):
        with engine.begin() as conn:
            conn.execute(text("delete from pending_alerts where digest_id is null"))
        enroll_in_bulk(engine, n, alerts_each=6, first=round_ * 10_000)
        selects: list[tuple[str, Any]] = []

        def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                # This round's list: the listener is removed before the next round.
                selects.append((statement, parameters))  # noqa: B023

        # What a run does first: the statistics, then who is due.
        digest_store.refresh_statistics(engine)
        event.listen(engine, "before_cursor_execute", seen)
        try:
            due = digest_store.subscribers_with_unassigned_alerts(engine)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert len(due) == n
        work[n] = buffers_read(engine, selects)

    # 4x the waiting alerts (1,800, then 7,200) and 5x the subscribers: a linear plan reads
    # about 4-5x the buffers; one that re-reads every waiting alert per subscriber, ~20x.
    assert work[1200] <= 8 * work[300], (
        f"{work[300]} buffers for 1,800 waiting alerts, {work[1200]} for 7,200"
    )
