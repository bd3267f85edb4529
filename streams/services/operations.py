"""Operator commands: pipeline status (lag, table sizes, digests) and the dead-letter queue."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams import topics
from streams.adapters import broker_reads, ops_db, repository, schema_migrations
from streams.adapters.broker import BROKER_FAILURES, BrokerError, broker_failure
from streams.adapters.dead_letters import InvalidEvent
from streams.adapters.event_codec import conflicting_duplicate, decode_registry_event, encode_registry_event
from streams.adapters.schema_checks import strict_json_loads
from streams.adapters.sql import stored_utc
from streams.domain.event_identity import content_digest
from streams.domain.model import RegistryEvent
from streams.runtime import Runtime
from streams.settings import Settings

READ_TIMEOUT_S = 15.0
# Every topic but the DLQ is read by the workers' consumer group: the DLQ is for people.
READ_BY_WORKERS: frozenset[str] = frozenset(t.name for t in topics.ALL_TOPICS if t is not topics.DEAD_LETTERS)
UNREADABLE = "unreadable_record"  # a DLQ record our workers did not write
_ENTRY_ID = re.compile(r"(\d{1,5}):(\d{1,19})")


class OperationError(Exception):
    """A refusal the operator can act on; the message says what to do."""


class UnknownEntry(OperationError):
    pass


class StillInvalid(OperationError):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"the event is still invalid ({reason}): {detail}")


class AlreadyReplayed(OperationError):
    def __init__(self, replay: ops_db.Replay) -> None:
        self.replay = replay
        super().__init__(
            f"entry {replay.entry_id} was already replayed at {_when(replay.replayed_at)} "
            f"as event {replay.event_id!r}; the workers ignore an event id they have applied. "
            "Use --force to send it again"
        )


def _when(at: datetime) -> str:
    return stored_utc(at).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    end_offset: int
    committed: int | None  # None: the group has committed nothing here
    lag: int | None  # None: the workers do not read this topic as a group


@dataclass(frozen=True)
class Status:
    group_id: str
    broker_url: str | None
    broker_error: str | None  # why the broker part is missing
    partitions: list[PartitionLag]
    tables: ops_db.TableSizes
    last_digest: ops_db.DigestRun
    schema_revision: str | None = None  # the database's (Alembic), as `sor-notify db current` says

    @property
    def total_lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        d = self.last_digest
        return {
            "group_id": self.group_id,
            "broker": self.broker_url,
            "broker_error": self.broker_error,
            "total_lag": self.total_lag,
            "partitions": [p.__dict__ for p in self.partitions],
            "database": dict(self.tables.__dict__),
            "schema_revision": self.schema_revision,
            "last_digest": {
                "period": d.period,
                "by_status": dict(d.by_status),
                "last_sent_at": _when(d.last_sent_at) if d.last_sent_at else None,
            },
        }


async def _lags(broker_url: str, group_id: str, names: list[str]) -> list[PartitionLag]:
    out = []
    for p in await broker_reads.group_offsets(broker_url, group_id, names):
        if p.committed is not None:
            lag: int | None = max(p.end - p.committed, 0)
        elif p.topic in READ_BY_WORKERS:
            # Nothing committed: the workers start from the beginning (auto_offset_reset).
            lag = p.end - p.begin
        else:
            lag = None
        out.append(PartitionLag(p.topic, p.partition, p.end, p.committed, lag))
    return out


async def status(settings: Settings, runtime: Runtime, broker_url: str | None) -> Status:
    """Where the workers are on every topic, what the database holds, how the last digests went."""
    tables = await runtime.db_once(ops_db.table_sizes)
    digest = await runtime.db_once(ops_db.last_digest_run)
    schema = await runtime.db_once(schema_migrations.schema_state)
    lags: list[PartitionLag] = []
    error = None
    if broker_url is None:
        error = "no broker running (start `sor-notify up`, or set SOR_BROKER_URL=host:port)"
    else:
        names = [name for name, _ in topics.all_topic_names(settings.app_id)]
        try:
            lags = await _lags(broker_url, settings.app_id, names)
        except BrokerError as exc:
            error = str(exc)
    return Status(settings.app_id, broker_url, error, lags, tables, digest, schema.current)


# --- the dead-letter queue ---------------------------------------------------------------


@dataclass(frozen=True)
class DlqEntry:
    """A dead letter as listed: never the original bytes (they may hold online identifiers)."""

    id: str  # "partition:offset" on registry-events-dlq
    reason: str
    detail: str
    source: dict[str, Any]
    dead_lettered_at: str | None
    fingerprint: str
    replayed_at: str | None = None
    replayed_as: str | None = None  # the event id that was sent

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        del d["fingerprint"]
        return d


@dataclass(frozen=True)
class DlqListing:
    entries: list[DlqEntry]  # the most recent, oldest first
    total: int  # how many the topic holds


@dataclass(frozen=True)
class DlqOriginal:
    """One entry with the event as received, for the operator to correct."""

    entry: DlqEntry
    original: bytes
    original_text: str  # UTF-8, undecodable bytes replaced by U+FFFD
    valid_utf8: bool


def _fingerprint(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def _parse(entry_id: str, value: bytes) -> tuple[DlqEntry, bytes]:
    try:
        doc = json.loads(value)
        original = base64.b64decode(doc["original_b64"], validate=True)
        entry = DlqEntry(
            id=entry_id,
            reason=str(doc["reason"]),
            detail=str(doc.get("detail", "")),
            source=dict(doc.get("source") or {}),
            dead_lettered_at=doc.get("dead_lettered_at"),
            fingerprint=_fingerprint(value),
        )
        return entry, original
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        # Not written by our workers: listed, so the operator sees it, but not replayable.
        detail = f"this DLQ record is not dead-letter/1 ({type(exc).__name__})"
        return DlqEntry(entry_id, UNREADABLE, detail, {}, None, _fingerprint(value)), b""


def parse_entry_id(entry_id: str) -> tuple[int, int]:
    """(partition, offset) on the DLQ topic."""
    m = _ENTRY_ID.fullmatch(entry_id.strip())
    if not m:
        raise UnknownEntry(
            f"{entry_id!r} is not a DLQ entry id: expected PARTITION:OFFSET, "
            "as `sor-notify dlq list` shows them (e.g. 0:12)"
        )
    return int(m.group(1)), int(m.group(2))


async def _with_replays(runtime: Runtime | None, entries: list[DlqEntry]) -> list[DlqEntry]:
    if runtime is None:
        return entries
    done = await runtime.db_once(ops_db.find_replays, [(e.id, e.fingerprint) for e in entries])
    return [
        DlqEntry(**{**e.__dict__, "replayed_at": _when(r.replayed_at), "replayed_as": r.event_id})
        if (r := done.get(e.id))
        else e
        for e in entries
    ]


async def dlq_list(broker_url: str, limit: int = 50, *, runtime: Runtime | None = None) -> DlqListing:
    """The `limit` most recent dead letters; with runtime, which of them were replayed."""
    name = topics.DEAD_LETTERS.name
    parts = (await broker_reads.topic_partitions(broker_url, [name])).get(name, [])
    if not parts:
        return DlqListing([], 0)
    read = await broker_reads.latest_records(
        broker_url, name, parts, limit, timeout_s=READ_TIMEOUT_S, label="the DLQ"
    )
    found = [(_parse(f"{r.partition}:{r.offset}", r.value)[0], r.timestamp) for r in read.records]
    found.sort(key=lambda f: (f[0].dead_lettered_at or "", f[1], f[0].id))
    entries = [e for e, _ in found[-limit:]] if limit > 0 else []
    return DlqListing(await _with_replays(runtime, entries), read.total)


async def dlq_show(broker_url: str, entry_id: str, *, runtime: Runtime | None = None) -> DlqOriginal:
    """One dead letter with the original event, as received."""
    partition, offset = parse_entry_id(entry_id)
    entry_id = f"{partition}:{offset}"
    name = topics.DEAD_LETTERS.name
    parts = (await broker_reads.topic_partitions(broker_url, [name])).get(name, [])
    if partition not in parts:
        raise UnknownEntry(
            f"no DLQ entry {entry_id}: {name} has "
            + (f"partitions 0 to {max(parts)}" if parts else "no messages (nothing was dead-lettered)")
            + "; `sor-notify dlq list` shows the ids"
        )
    read = await broker_reads.record_at(broker_url, name, partition, offset, timeout_s=READ_TIMEOUT_S)
    if not read.begin <= offset < read.end:
        held = f"offsets {read.begin} to {read.end - 1}" if read.end > read.begin else "nothing"
        raise UnknownEntry(
            f"no DLQ entry {entry_id}: partition {partition} holds {held}; "
            "`sor-notify dlq list` shows the ids"
        )
    if read.record is None:
        raise BrokerError(f"broker {broker_url}: could not read DLQ entry {entry_id}; try again")
    entry, original = _parse(entry_id, read.record.value)
    [entry] = await _with_replays(runtime, [entry])
    try:
        text, valid = original.decode("utf-8"), True
    except UnicodeDecodeError:
        text, valid = original.decode("utf-8", "replace"), False
    return DlqOriginal(entry, original, text, valid)


@dataclass(frozen=True)
class ReplayResult:
    entry_id: str
    event_id: str
    offender_id: str
    revision: int
    corrected: bool  # from a file, not the original bytes
    warnings: list[str] = field(default_factory=list)


def _validated(raw: bytes) -> RegistryEvent:
    """The event, or StillInvalid with the reason the workers would give."""
    try:
        return decode_registry_event(raw)
    except InvalidEvent as err:
        raise StillInvalid(err.reason, err.detail) from None


async def dlq_replay(
    runtime: Runtime,
    broker_url: str,
    entry_id: str,
    *,
    fixed: bytes | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> ReplayResult:
    """Send a dead letter (as received, or corrected) back to registry-events, once.

    Validated exactly as the workers will, so a still-broken event is refused here rather
    than dead-lettered again.
    """
    shown = await dlq_show(broker_url, entry_id, runtime=runtime)
    entry = shown.entry
    if entry.reason == UNREADABLE:
        raise OperationError(
            f"DLQ entry {entry.id} is not a dead-letter/1 record: it holds no event to replay"
        )
    if fixed is None:
        if entry.reason == "conflicting_duplicate":
            raise OperationError(
                f"DLQ entry {entry.id} reuses an event id the workers applied with other content; "
                "sent again it would be refused again. Give the correction a new event_id and "
                "replay it with --file FIXED.json"
            )
        event = _validated(shown.original)
        raw = shown.original
    else:
        event = _validated(fixed)
        # One compact line on the topic, like `registry publish`, however the file is laid out.
        raw = encode_registry_event(strict_json_loads(fixed.decode("utf-8").removeprefix("\ufeff")))

    # As the workers will judge it: an id already applied names that entry for good.
    known = (await runtime.db_once(repository.known_events, [event.event_id])).get(event.event_id)
    digest = content_digest(event)
    if known is not None and known.content_digest != digest:
        err = conflicting_duplicate(event, digest, known)
        raise StillInvalid(err.reason, err.detail)

    warnings = []
    if known is not None:
        warnings.append(
            f"event {event.event_id!r} was already applied with this content: the workers will "
            "treat it as a duplicate and change nothing"
        )
    key = entry.source.get("key")
    if key is not None and key != event.offender_id and entry.reason != "key_mismatch":
        warnings.append(
            f"the entry came keyed {key!r} but the event is for offender {event.offender_id!r}: "
            "it is sent keyed by its offender id"
        )
    stored = await runtime.db_once(ops_db.offender_revision, event.offender_id)
    if stored is not None and stored >= event.revision:
        warnings.append(
            f"offender {event.offender_id!r} is already at revision {stored}: the workers will ignore "
            f"revision {event.revision} as stale; give the correction a higher revision"
        )

    now = now or datetime.now(UTC)
    previous = await runtime.db_once(ops_db.find_replay, entry.id, entry.fingerprint)
    earlier = await runtime.db_once(
        ops_db.claim_replay, entry.id, entry.fingerprint, event.event_id, force=force, now=now
    )
    if earlier is not None:
        raise AlreadyReplayed(earlier)
    try:
        async with runtime.publisher(broker_url) as pub:
            await pub.send(topics.REGISTRY_EVENTS.name, event.offender_id, raw)
    except BaseException as exc:
        await runtime.db_once(ops_db.release_replay, entry.id, entry.fingerprint, previous)
        if isinstance(exc, BROKER_FAILURES):
            raise broker_failure(broker_url, exc) from exc
        raise
    return ReplayResult(
        entry_id=entry.id,
        event_id=event.event_id,
        offender_id=event.offender_id,
        revision=event.revision,
        corrected=fixed is not None,
        warnings=warnings,
    )
