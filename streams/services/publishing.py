"""What commands publish: subscriber changes, registry files, and resync from the database."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy.engine import Engine

from streams import topics
from streams.adapters import repository
from streams.adapters.broker import Publisher
from streams.adapters.event_codec import InvalidEvent, decode_registry_event
from streams.domain.cells import cells_overlapping
from streams.domain.geometry import bounding_box
from streams.domain.model import Circle


def circle_messages(circle: Circle, op: str) -> list[tuple[str, dict[str, Any]]]:
    """One message per grid cell the circle touches, keyed by that cell."""
    box = bounding_box(circle.lat, circle.lon, circle.radius_m)
    return [(cell, {"op": op, "circle": circle.to_dict()}) for cell in cells_overlapping(box)]


def watch_message(subscriber_id: int, offender_id: str, active: bool) -> tuple[str, dict[str, Any]]:
    return offender_id, {"subscriber_id": subscriber_id, "offender_id": offender_id, "active": active}


async def publish_subscriber_change(pub: Publisher, change: repository.SubscriberChange) -> None:
    msgs: list[tuple[str, dict[str, Any]]] = []
    for circle in change.removed_circles:
        msgs += circle_messages(circle, "delete")
    for circle in change.circles:
        msgs += circle_messages(circle, "upsert")
    await pub.send_many(topics.TRACKED_CIRCLES.name, msgs)
    watches = [watch_message(change.subscriber_id, o, False) for o in change.removed_watches]
    watches += [watch_message(change.subscriber_id, o, True) for o in change.watches]
    await pub.send_many(topics.OFFENDER_WATCHES.name, watches)


@dataclass
class ResyncReport:
    circles: int = 0
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
    cell_copies: list[tuple[str, Circle]] = []
    for circle in repository.active_circles(engine):
        report.circles += 1
        box = bounding_box(circle.lat, circle.lon, circle.radius_m)
        cell_copies += [(cell, circle) for cell in cells_overlapping(box)]
    report.circle_messages = len(cell_copies)
    choose = DefaultPartitioner()
    every = list(range(partitions))
    await pub.send_to_partitions(
        topics.changelog_topic(app_id, topics.CELL_CIRCLE_TO_CIRCLE),
        partitions,
        (
            (
                cell.encode(),
                _json(f"{cell}/{c.circle_id}"),
                _json({"partition": choose(cell.encode(), every, every), "circle": c.to_dict()}),
            )
            for cell, c in cell_copies
        ),
    )
    await pub.send_many(
        topics.TRACKED_CIRCLES.name,
        [(cell, {"op": "upsert", "circle": c.to_dict()}) for cell, c in cell_copies],
    )

    watchers: dict[str, list[int]] = {}
    for subscriber_id, offender_id in repository.active_watches(engine):
        watchers.setdefault(offender_id, []).append(subscriber_id)
    report.watches = sum(len(v) for v in watchers.values())
    await pub.send_to_partitions(
        topics.changelog_topic(app_id, topics.OFFENDER_TO_WATCHERS),
        partitions,
        ((o.encode(), _json(o), _json(sorted(subs))) for o, subs in watchers.items()),
    )
    await pub.send_many(
        topics.OFFENDER_WATCHES.name,
        [watch_message(s, o, True) for o, subs in watchers.items() for s in subs],
    )

    states = [(s.offender_id, s.to_dict()) for s in repository.all_offender_states(engine)]
    report.offenders = len(states)
    await pub.send_to_partitions(
        topics.changelog_topic(app_id, topics.OFFENDER_TO_STATE),
        partitions,
        ((o.encode(), _json(o), _json(d)) for o, d in states),
    )
    await pub.send_many(topics.OFFENDER_SNAPSHOTS.name, states)
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
