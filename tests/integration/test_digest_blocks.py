"""Digests claimed, loaded and marked a block at a time, on a real database and a real SMTP server.

What a subscriber or an operator would notice if the set-wise paths were wrong: an alert in two
digests or in none, a digest for someone who may not get one, two digests in a period, a
Message-ID that changes, or (after a crash) more digests sent again than one per mail lane.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from streams.adapters import digest_store, repository, subscriber_store
from streams.adapters.db import digests, pending_alerts, subscribers
from streams.adapters.mail import SmtpSender
from streams.services import digests as digest_service
from streams.services.digests import DigestRunReport, send_due_digests
from tests.integration.conftest import imported, proximity_alert

PUBLIC = "https://notify.example.test"
FROM = "Registry Notifications <no-reply@notify.example.test>"
PERIOD = "2026-11-20"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def enroll(engine: Engine, n: int, alerts_each: int = 2, **kw: Any) -> dict[int, list[str]]:
    """n subscribers with news; returns subscriber id -> the offender names in their alerts."""
    out: dict[int, list[str]] = {}
    for i in range(n):
        change = subscriber_store.upsert_subscriber(engine, imported(f"reader{i:04d}@example.org", **kw))
        sid, tid = change.subscriber_id, change.circles[0].circle_id
        names = [f"Pat Case-{sid:04d}-{k}" for k in range(alerts_each)]
        repository.record_alerts(
            engine,
            [
                proximity_alert(sid, tid, f"OFF-{sid}-{k}", name, f"{800 + k} Olive St")
                for k, name in enumerate(names)
            ],
        )
        out[sid] = names
    return out


async def run(engine: Engine, port: int, **kw: Any) -> DigestRunReport:
    sender = SmtpSender("127.0.0.1", port, starttls=False, timeout=10)
    return await send_due_digests(
        engine,
        sender,
        period=PERIOD,
        from_addr=FROM,
        public_url=PUBLIC,
        unsubscribe_url_for=lambda sid, key: f"{PUBLIC}/unsubscribe/{sid}.{key}.sig",
        now=NOW,
        **kw,
    )


def names_in(msg: Any) -> list[str]:
    return re.findall(r"Pat Case-\d{4}-\d", msg.get_body(preferencelist=("plain",)).get_content())


async def test_many_blocks_every_alert_in_exactly_one_digest_to_its_subscriber(
    engine, smtp_server, monkeypatch
) -> None:
    catcher, port = smtp_server
    monkeypatch.setattr(digest_service, "BLOCK", 7)  # 40 subscribers: six blocks, the last one short
    news = enroll(engine, 40)
    with engine.connect() as conn:
        email_of = dict(conn.execute(select(subscribers.c.id, subscribers.c.email)).all())
    # In the middle of the blocks: one not confirmed, one suspended after bounces, one whose
    # digest for the day is already sent (a second `digest send` the same day).
    unconfirmed, suspended, done = sorted(news)[9], sorted(news)[16], sorted(news)[23]
    with engine.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.id == unconfirmed).values(confirmed=False))
        conn.execute(update(subscribers).where(subscribers.c.id == suspended).values(mail_suspended_at=NOW))
    [already] = digest_store.claim_digests(
        engine, [done], PERIOD, now=NOW, message_domain="x.test"
    ).digest_ids
    assert digest_store.mark_digest_sent(engine, already, now=NOW, message_id="<earlier@x.test>")
    repository.record_alerts(
        engine, [proximity_alert(done, done, "OFF-LATE", "Pat Case-9999-9", "1 Late St")]
    )

    report = await run(engine, port, lanes=3)

    assert report == DigestRunReport(sent=37, skipped_already_sent=1)
    got: dict[str, Counter[str]] = {}
    for m in catcher.messages:
        got.setdefault(str(m["To"]), Counter()).update(names_in(m))
    want = {
        email_of[s]: Counter(names) for s, names in news.items() if s not in (unconfirmed, suspended, done)
    }
    assert got == want  # each alert once, in its own subscriber's digest, nobody else's
    with engine.connect() as conn:
        rows = conn.execute(
            select(digests.c.id, digests.c.subscriber_id, digests.c.status, digests.c.message_id).where(
                digests.c.id != already
            )
        ).all()
        waiting = Counter(
            conn.execute(
                select(pending_alerts.c.subscriber_id).where(pending_alerts.c.digest_id.is_(None))
            ).scalars()
        )
    assert Counter(r.status for r in rows) == Counter(sent=37)
    assert sorted(r.message_id for r in rows) == sorted(str(m["Message-ID"]) for m in catcher.messages)
    # Not mailed: their alerts still wait, none was attached to a digest.
    assert waiting == Counter({unconfirmed: 2, suspended: 2, done: 1})


def test_two_runs_claiming_overlapping_blocks_at_once_give_each_subscriber_one_digest(engine) -> None:
    news = enroll(engine, 30, alerts_each=3)
    ids = sorted(news)
    blocks = [ids[0:20], ids[10:30]]
    results: list[Any] = [None, None]
    start = threading.Barrier(2)

    def claim(k: int) -> None:
        start.wait()
        results[k] = digest_store.claim_digests(engine, blocks[k], PERIOD, now=NOW, message_domain="x.test")

    threads = [threading.Thread(target=claim, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = results[0].digest_ids + results[1].digest_ids
    assert len(claimed) == len(set(claimed)) == 30
    with engine.connect() as conn:
        per_subscriber = Counter(conn.execute(select(digests.c.subscriber_id)).scalars())
        attached = Counter(
            conn.execute(
                select(pending_alerts.c.digest_id).where(pending_alerts.c.digest_id.is_not(None))
            ).scalars()
        )
        mids = list(conn.execute(select(digests.c.message_id)).scalars())
    assert per_subscriber == Counter(dict.fromkeys(ids, 1))
    assert attached == Counter(dict.fromkeys(claimed, 3))  # every alert in exactly one digest
    assert len(set(mids)) == 30 and all(re.fullmatch(r"<digest-\d+\.[0-9a-f]{12}@x\.test>", m) for m in mids)
    # Claiming again finds them all taken; a retry keeps the Message-ID fixed at the claim.
    again = digest_store.claim_digests(engine, ids, PERIOD, now=NOW, message_domain="x.test")
    assert again.digest_ids == [] and again.already_final == 0
    works = digest_store.load_digests(engine, claimed)
    assert [w.digest_id for w in works] == claimed
    assert {w.message_id for w in works} == set(mids)
    assert all(len(w.alerts) == 3 for w in works)


async def test_a_lane_marks_each_accepted_digest_before_offering_its_next(engine, smtp_server) -> None:
    """So a run killed at any moment has at most one accepted, unmarked digest per lane: the
    ones the next run sends again (with the same Message-ID)."""
    catcher, port = smtp_server
    enroll(engine, 30, alerts_each=1)
    lanes = 3
    seen: list[tuple[int, int]] = []

    def at_recipient(accepted: int) -> None:
        with engine.connect() as conn:
            marked = conn.execute(
                select(func.count()).select_from(digests).where(digests.c.status == "sent")
            ).scalar()
        seen.append((accepted, marked))

    catcher.on_recipient = at_recipient
    assert await run(engine, port, lanes=lanes) == DigestRunReport(sent=30)
    assert len(seen) == 30
    assert all(accepted - marked <= lanes - 1 for accepted, marked in seen), seen
    assert len(catcher.messages) == 30
