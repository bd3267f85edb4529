"""An import stores its lines in blocks: each block must leave the database, and report the
changes to publish, exactly as storing its lines one at a time does."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine

from streams.adapters import subscriber_store
from streams.adapters.db import subscribers
from tests.integration.conftest import imported, imported_address

ADDRESSES = [
    imported_address("Home"),
    imported_address("School", street="5600 Clayton Ave", zip_="63110", at=(38.636, -90.285)),
    imported_address(
        "Work", street="201 W Capitol Ave", city="Jefferson City", zip_="65101", at=(38.579, -92.173)
    ),
    imported_address("Home", radius="0.5mi"),
    imported_address("Gym", street="9 Elm St", city="Columbia", zip_="65201", at=(38.944, -92.326)),
    imported_address("Daycare", street="12 Oak Ave", city="Springfield", zip_="65806", at=(37.209, -93.292)),
]


def blocks(seed: int) -> list[list[tuple[int, Any]]]:
    """Blocks of (subscriber key, import line): keys repeat across blocks (re-imports), and
    within some blocks (the same e-mail twice in one block)."""
    rnd = random.Random(seed)
    out = []
    for b in range(5):
        keys = [rnd.randint(1, 25) for _ in range(rnd.randint(1, 20))]
        if b % 2:
            keys = list(dict.fromkeys(keys))  # some blocks with every e-mail once: set-wise
        out.append(
            [
                (
                    k,
                    dict(
                        confirmed=rnd.random() < 0.8,
                        addresses=tuple(rnd.sample(ADDRESSES, rnd.randint(0, 4))),
                        offenders=tuple(f"MO-{rnd.randint(1, 6)}" for _ in range(rnd.randint(0, 5))),
                    ),
                )
                for k in keys
            ]
        )
    return out


def run(engine: Engine, prefix: str, seed: int, *, set_wise: bool) -> list[Any]:
    """Store the blocks; between them unsubscribe one subscriber. What was reported and what
    is stored, with database ids replaced by the order in which they first appear."""
    ids: dict[tuple[str, int], int] = {}

    def n(kind: str, i: int) -> int:
        return ids.setdefault((kind, i), len(ids))

    def norm(ch: subscriber_store.SubscriberChange) -> tuple[Any, ...]:
        def circles(cs: list[Any]) -> list[Any]:
            return [
                (n("circle", c.circle_id), n("sub", c.subscriber_id), c.label, c.one_line, c.radius_code)
                for c in cs
            ]

        return (
            n("sub", ch.subscriber_id),
            circles(ch.circles),
            circles(ch.removed_circles),
            ch.watches,
            ch.removed_watches,
        )

    seen: list[Any] = []
    for b, block in enumerate(blocks(seed)):
        lines = [imported(f"{prefix}-{k}@example.org", **kw) for k, kw in block]
        if set_wise:
            changes = subscriber_store.upsert_subscribers(engine, lines)
        else:
            changes = [subscriber_store.upsert_subscriber(engine, line) for line in lines]
        seen.append([norm(ch) for ch in changes])
        with engine.begin() as conn:
            conn.execute(
                update(subscribers)
                .where(subscribers.c.email == f"{prefix}-{b + 3}@example.org")
                .values(status="unsubscribed")
            )
    mine = {c.subscriber_id for c in subscriber_store.active_circles(engine)} | {
        s for s, _ in subscriber_store.active_watches(engine)
    }
    seen.append(
        sorted(
            (n("circle", c.circle_id), n("sub", c.subscriber_id), c.label)
            for c in subscriber_store.active_circles(engine)
            if c.subscriber_id in mine and ("sub", c.subscriber_id) in ids
        )
    )
    seen.append(
        sorted((n("sub", s), o) for s, o in subscriber_store.active_watches(engine) if ("sub", s) in ids)
    )
    return seen


def test_blocks_store_and_report_what_one_line_at_a_time_does(engine: Engine) -> None:
    for seed in (1, 2, 3):
        one_by_one = run(engine, f"one{seed}", seed, set_wise=False)
        in_blocks = run(engine, f"block{seed}", seed, set_wise=True)
        assert in_blocks == one_by_one
        assert any(changes for changes in one_by_one[:-2])  # the runs did report changes
