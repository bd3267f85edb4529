"""What commands publish: subscriber changes, registry files, and resync from the database."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

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


async def resync(engine: Engine, pub: Publisher) -> ResyncReport:
    """Re-publish what the streams need from the system of record (idempotent)."""
    report = ResyncReport()
    batch: list[tuple[str, dict[str, Any]]] = []
    for circle in repository.active_circles(engine):
        report.circles += 1
        batch += circle_messages(circle, "upsert")
        if len(batch) >= 5000:
            report.circle_messages += await pub.send_many(topics.TRACKED_CIRCLES.name, batch)
            batch = []
    report.circle_messages += await pub.send_many(topics.TRACKED_CIRCLES.name, batch)
    watches = [watch_message(s, o, True) for s, o in repository.active_watches(engine)]
    report.watches = await pub.send_many(topics.OFFENDER_WATCHES.name, watches)
    states = [(s.offender_id, s.to_dict()) for s in repository.all_offender_states(engine)]
    report.offenders = await pub.send_many(topics.OFFENDER_SNAPSHOTS.name, states)
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
