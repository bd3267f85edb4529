"""Pending alerts written in bulk: `COPY` on PostgreSQL, one `executemany` on SQLite.

The alerts agent stores everything a batch of messages carried in one transaction; an alert
already stored (a message read again, an event replayed) is skipped by its primary key, so
recording is idempotent. The rows are what `Alert.to_dict()` gives (a batch's rows share
their nested values): each is written as its JSON payload and the columns the digest queries
filter on, with no `Alert` object and no per-row statement.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from sqlalchemy.engine import Connection

from streams.adapters.db import pending_alerts, utcnow
from streams.adapters.sql import Bind, transaction

_COLUMNS = ("alert_id", "subscriber_id", "offender_id", "kind", "payload", "created_at")
_STAGE = "sor_incoming_alerts"
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def record_alert_rows(bind: Bind, rows: Iterable[dict[str, Any]]) -> int:
    """Store the alerts not stored yet; returns how many were new. Within `rows` an id seen
    twice is stored once."""
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["alert_id"], row)
    if not unique:
        return 0
    with transaction(bind) as conn:
        if conn.dialect.name == "postgresql":
            return _copy(conn, unique.values())
        return _executemany(conn, unique.values())


def _copy(conn: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """COPY into a session-local staging table, then one INSERT ... SELECT that skips what
    is stored: COPY alone cannot skip a conflicting row."""
    cur = conn.connection.driver_connection.cursor()  # psycopg 3, inside the caller's transaction
    try:
        cur.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (alert_id text, subscriber_id integer, "
            "offender_id text, kind text, payload jsonb) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY {_STAGE} (alert_id, subscriber_id, offender_id, kind, payload) FROM STDIN") as copy:
            for r in rows:
                copy.write_row((r["alert_id"], r["subscriber_id"], r["offender_id"], r["kind"], _encode(r)))
        cur.execute(
            f"INSERT INTO {pending_alerts.name} ({', '.join(_COLUMNS)}) "
            f"SELECT alert_id, subscriber_id, offender_id, kind, payload, %s FROM {_STAGE} "
            "ON CONFLICT (alert_id) DO NOTHING",
            (utcnow(),),
        )
        new = cur.rowcount
        cur.execute(f"TRUNCATE {_STAGE}")  # a second batch in this transaction starts empty
        return new
    finally:
        cur.close()


def _executemany(conn: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """One INSERT OR IGNORE run over every row; new rows counted from the connection's total
    of changes (sqlite3's rowcount of an executemany is not reliable across versions)."""
    raw = conn.connection.driver_connection
    before = raw.total_changes
    now = utcnow()
    conn.execute(
        pending_alerts.insert().prefix_with("OR IGNORE"),
        [
            {"alert_id": r["alert_id"], "subscriber_id": r["subscriber_id"], "offender_id": r["offender_id"],
             "kind": r["kind"], "payload": r, "created_at": now}
            for r in rows
        ],
    )
    return raw.total_changes - before
