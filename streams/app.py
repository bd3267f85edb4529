"""The Faust app and its topics and tables; agents are registered by the composition root."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TableT

from streams import topics as t
from streams.adapters import faust_fixes
from streams.settings import Settings


@dataclass
class StreamGraph:
    app: faust.App
    registry_events: faust.TopicT
    geocode_retries: faust.TopicT
    dead_letters: faust.TopicT
    offender_snapshots: faust.TopicT
    offender_watches: faust.TopicT
    tracked_circles: faust.TopicT
    address_changes: faust.TopicT
    alerts: faust.TopicT
    offender_to_state: TableT
    offender_to_watchers: TableT
    cell_bucket_to_circles: TableT


def create_app(settings: Settings, broker_url: str, *, single_record_batches: bool) -> StreamGraph:
    faust_fixes.apply(
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        contiguous_topics=t.contiguous_topic_names(),
    )
    n = settings.partitions
    batching: dict[str, Any] = {"producer_max_batch_size": 1} if single_record_batches else {}
    app = faust.App(
        settings.app_id,
        # faust would let WEB_PORT, BROKER_URL, APP_DATADIR and ~80 more plain variables
        # override what is passed here: every setting comes from Settings alone.
        env={},
        broker=f"kafka://{broker_url}",
        store="memory://",
        # At-least-once; every effect downstream is idempotent (alert ids, revisions).
        processing_guarantee="at_least_once",
        topic_partitions=n,
        topic_allow_declare=True,
        topic_disable_leader=False,
        web_enabled=settings.worker_web_enabled,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        web_transport="tcp://",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 10),
        broker_commit_every=100,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        datadir=str(settings.data_dir / "faust"),
        **batching,
    )

    def raw_topic(spec: t.TopicSpec) -> faust.TopicT:
        return app.topic(spec.name, partitions=n, key_serializer="raw", value_serializer="raw")

    def json_topic(spec: t.TopicSpec) -> faust.TopicT:
        return app.topic(spec.name, partitions=n, key_type=str)

    def table(name: str, default: type | None = None) -> TableT:
        return app.Table(name, default=default, partitions=n, key_type=str)

    return StreamGraph(
        app=app,
        registry_events=raw_topic(t.REGISTRY_EVENTS),
        geocode_retries=json_topic(t.GEOCODE_RETRIES),
        dead_letters=json_topic(t.DEAD_LETTERS),
        offender_snapshots=json_topic(t.OFFENDER_SNAPSHOTS),
        offender_watches=json_topic(t.OFFENDER_WATCHES),
        tracked_circles=json_topic(t.TRACKED_CIRCLES),
        address_changes=json_topic(t.ADDRESS_CHANGES),
        alerts=json_topic(t.ALERTS),
        offender_to_state=table(t.OFFENDER_TO_STATE),
        offender_to_watchers=table(t.OFFENDER_TO_WATCHERS),
        cell_bucket_to_circles=table(t.CELL_BUCKET_TO_CIRCLES),
    )
