"""Every topic and table of the pipeline, declared once with its key, value and partitions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str  # what the key holds
    value: str  # what the value holds
    compacted: bool = False
    # Delete-policy topics keep messages this long: well past the longest outage an operator
    # would fix (a stopped worker resumes from its committed offset), and for dead letters
    # long enough to inspect and replay them.
    retention_days: int = 14
    # Topics that feed a table or share a key with one must have the same count.
    copartitioned: bool = True


REGISTRY_EVENTS = TopicSpec(
    "registry-events", "offender id", "registry-event/1 JSON (schemas/registry-event.schema.json)"
)
GEOCODE_RETRIES = TopicSpec(
    "registry-events-retry",
    "offender id",
    "{attempt, not_before, original_b64}: an event whose geocoding met a slow or down service",
)
DEAD_LETTERS = TopicSpec(
    "registry-events-dlq",
    "offender id as received",
    "dead-letter/1 JSON with the original bytes",
    retention_days=90,
)
OFFENDER_SNAPSHOTS = TopicSpec(
    "offender-snapshots", "offender id", "stored offender state, re-published by resync", compacted=True
)
OFFENDER_WATCHES = TopicSpec(
    "offender-watches",
    "offender id",
    "watch-batch/1 JSON (schemas/watch-batch.schema.json): subscribers starting or stopping to track the offender",
)
TRACKED_CIRCLES = TopicSpec(
    "tracked-circles",
    "grid cell",
    "circle-batch/1 JSON (schemas/circle-batch.schema.json): upserts and deletes of the cell's copies",
)
ADDRESS_CHANGES = TopicSpec(
    "address-changes", "grid cell of the address", "an offender address that appeared or went away"
)
ALERTS = TopicSpec(
    "alerts",
    "first subscriber id of the batch (partition: subscriber id mod partitions)",
    "alert-batch/1 JSON (schemas/alert-batch.schema.json): one change's alerts for the partition",
)

# Not part of the pipeline: each process writes two records here at start to see how the
# broker counts offsets (streams/adapters/broker_probe.py).
BROKER_PROBE = TopicSpec(
    "sor-broker-probe", "none", "two bytes strings per process start", retention_days=1, copartitioned=False
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    REGISTRY_EVENTS,
    GEOCODE_RETRIES,
    DEAD_LETTERS,
    OFFENDER_SNAPSHOTS,
    OFFENDER_WATCHES,
    TRACKED_CIRCLES,
    ADDRESS_CHANGES,
    ALERTS,
)

# Tables: name -> the topic whose partitions they follow. Faust names the changelog
# "<app id>-<table>-changelog"; we create it ourselves with the right partition count.
OFFENDER_TO_STATE = "offender_to_state"
OFFENDER_TO_WATCHERS = "offender_to_watchers"
# "<cell>/<bucket>" -> the bucket's circles (streams/domain/circle_batch.py). It replaced
# cell_circle_to_circle (one entry per copy); after an upgrade, `resync` fills it.
CELL_BUCKET_TO_CIRCLES = "cell_bucket_to_circles"
TABLES: tuple[str, ...] = (OFFENDER_TO_STATE, OFFENDER_TO_WATCHERS, CELL_BUCKET_TO_CIRCLES)


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


def all_topic_names(app_id: str) -> list[tuple[str, bool]]:
    """(name, compacted) for everything that must exist before a worker starts."""
    names = [(t.name, t.compacted) for t in ALL_TOPICS]
    names += [(changelog_topic(app_id, t), True) for t in TABLES]
    return names


def contiguous_topic_names() -> list[str]:
    """Topics whose offsets have no holes (delete policy, no transactions): a jump in a
    partition's offsets there is a lost record, never compaction."""
    return [t.name for t in ALL_TOPICS if not t.compacted]


def delete_policy(t: TopicSpec) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(t.retention_days * 86_400_000)}


def topic_configs(app_id: str) -> list[tuple[str, dict[str, str]]]:
    """(name, Kafka topic config) for everything that must exist before a worker starts."""
    out: list[tuple[str, dict[str, str]]] = []
    for t in ALL_TOPICS:
        if t.compacted:
            out.append((t.name, {"cleanup.policy": "compact"}))
        else:
            out.append((t.name, delete_policy(t)))
    out += [(changelog_topic(app_id, t), {"cleanup.policy": "compact"}) for t in TABLES]
    return out
