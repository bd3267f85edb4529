"""What commands publish: subscriber changes, registry files, and resync from the database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from streams import topics
from streams.adapters import repository, subscriber_store
from streams.adapters.broker import Publisher, key_partitioner
from streams.adapters.dead_letters import InvalidEvent
from streams.adapters.event_codec import decode_registry_event
from streams.domain import circle_batch, watch_batch


async def publish_subscriber_changes(
    pub: Publisher, changes: Sequence[subscriber_store.SubscriberChange]
) -> None:
    """Every change's circles as circle batches (one message per cell, whoever's circles they
    are), then their offender watches; of several changes, the later wins."""
    await pub.send_many(
        topics.TRACKED_CIRCLES.name,
        circle_batch.messages(
            op for ch in changes for op in circle_batch.change_ops(ch.removed_circles, ch.circles)
        ),
    )
    await pub.send_many(
        topics.OFFENDER_WATCHES.name,
        watch_batch.messages(
            op
            for ch in changes
            for op in [
                *((ch.subscriber_id, o, False) for o in ch.removed_watches),
                *((ch.subscriber_id, o, True) for o in ch.watches),
            ]
        ),
    )


async def publish_subscriber_change(pub: Publisher, change: subscriber_store.SubscriberChange) -> None:
    await publish_subscriber_changes(pub, [change])


@dataclass
class ResyncReport:
    circles: int = 0
    circle_entries: int = 0  # table entries written to the changelog (cell and bucket)
    circle_messages: int = 0
    watches: int = 0
    offenders: int = 0


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def resync(engine: Engine, pub: Publisher, *, app_id: str, partitions: int) -> ResyncReport:
    """Re-seed the streams from the system of record (idempotent).

    Table entries go straight into the tables' changelogs: a worker that starts next
    restores them before it processes any event, so a registry event can never overtake
    the state it must be compared with. The same changes are published to the topics too,
    for workers already running.
    """
    report = ResyncReport()
    circles = list(subscriber_store.active_circles(engine))
    report.circles = len(circles)
    place = key_partitioner(partitions)
    # Each circle's cells worked out once, for its table entries and its messages.
    cells = {c.circle_id: circle_batch.cells_of(c) for c in circles}  # ids are unique: table rows
    entries = circle_batch.table_entries(
        circles, lambda cell: place(cell.encode()), cells=lambda c: cells[c.circle_id]
    )
    report.circle_entries = len(entries)
    circle_messages = circle_batch.messages(
        (("upsert", c) for c in circles), cells=lambda c: cells[c.circle_id]
    )
    report.circle_messages = len(circle_messages)
    del circles
    cells.clear()

    watchers: dict[str, list[int]] = {}
    for subscriber_id, offender_id in subscriber_store.active_watches(engine):
        watchers.setdefault(offender_id, []).append(subscriber_id)
    report.watches = sum(len(v) for v in watchers.values())
    states = [(s.offender_id, s.to_dict()) for s in repository.all_offender_states(engine)]
    report.offenders = len(states)

    # All at once: the embedded broker takes one record per batch, and a produce request
    # carries one batch per topic partition, so more topics in flight is more records per
    # request (bench/README.md, start). Each send is complete before this returns.
    await asyncio.gather(
        pub.send_to_partitions(
            topics.changelog_topic(app_id, topics.CELL_BUCKET_TO_CIRCLES),
            partitions,
            (
                (circle_batch.cell_of_key(key).encode(), _json(key), _json(entry))
                for key, entry in entries.items()
            ),
        ),
        pub.send_many(topics.TRACKED_CIRCLES.name, circle_messages),
        pub.send_to_partitions(
            topics.changelog_topic(app_id, topics.OFFENDER_TO_WATCHERS),
            partitions,
            ((o.encode(), _json(o), _json(sorted(subs))) for o, subs in watchers.items()),
        ),
        pub.send_many(
            topics.OFFENDER_WATCHES.name,
            watch_batch.messages((s, o, True) for o, subs in watchers.items() for s in subs),
        ),
        pub.send_to_partitions(
            topics.changelog_topic(app_id, topics.OFFENDER_TO_STATE),
            partitions,
            ((o.encode(), _json(o), _json(d)) for o, d in states),
        ),
        pub.send_many(topics.OFFENDER_SNAPSHOTS.name, states),
    )
    return report


@dataclass
class PublishReport:
    published: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def read_registry_file(path: Path, baseline: bool) -> Iterator[tuple[int, str | None, bytes | str]]:
    """(line number, offender id, bytes to publish) or (line number, None, reason)."""
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                ev = decode_registry_event(line)
            except InvalidEvent as err:
                yield n, None, f"{err.reason}: {err.detail}"
                continue
            if baseline:
                doc = json.loads(line)
                doc["baseline"] = True
                line = json.dumps(doc, separators=(",", ":")).encode()
            yield n, ev.offender_id, line


async def publish_registry_file(pub: Publisher, path: Path, baseline: bool) -> PublishReport:
    report = PublishReport()
    batch: list[tuple[str | None, bytes | dict[str, Any]]] = []
    for n, key, payload in read_registry_file(path, baseline):
        if key is None:
            report.rejected.append((n, str(payload)))
            continue
        batch.append((key, payload))  # type: ignore[arg-type]
        if len(batch) >= 5000:
            report.published += await pub.send_many(topics.REGISTRY_EVENTS.name, batch)
            batch = []
    report.published += await pub.send_many(topics.REGISTRY_EVENTS.name, batch)
    return report
