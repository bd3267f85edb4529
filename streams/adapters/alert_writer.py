"""Pending alerts written in bulk: `COPY` on PostgreSQL, one `executemany` on SQLite.

The alerts agent stores everything a batch of messages carried in one transaction; an alert
already stored (a message read again, an event replayed) is skipped by its primary key, so
recording is idempotent. Each alert arrives in its stored form (`alert_batch.StoredAlert`:
the columns the digest queries filter on and the alert's JSON text, encoded once per batch
for what its alerts share), with no `Alert` object, no dict and no per-row statement.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Text, bindparam, type_coerce
from sqlalchemy.engine import Connection

from streams.adapters.db import pending_alerts, utcnow
from streams.adapters.sql import Bind, driver_connection, transaction
from streams.domain.alert_batch import StoredAlert, stored_alert, stored_alerts

_COLUMNS = ("alert_id", "subscriber_id", "offender_id", "kind", "payload", "created_at")
_STAGE = "sor_incoming_alerts"


def record_alert_messages(bind: Bind, messages: Iterable[Any]) -> tuple[int, int]:
    """Store every alert the messages of the alerts topic carry (batches, or one alert per
    message as workers before batches sent it); returns how many they carried and how many
    of those were new."""
    alerts = [a for m in messages for a in stored_alerts(m)]
    return len(alerts), record_stored_alerts(bind, alerts)


def record_alert_rows(bind: Bind, rows: Iterable[dict[str, Any]]) -> int:
    """Store alerts given as `Alert.to_dict()` gives them; returns how many were new."""
    return record_stored_alerts(bind, map(stored_alert, rows))


def record_stored_alerts(bind: Bind, alerts: Iterable[StoredAlert]) -> int:
    """Store the alerts not stored yet; returns how many were new. Within `alerts` an id
    seen twice is stored once."""
    unique: dict[str, StoredAlert] = {}
    for alert in alerts:
        unique.setdefault(alert[0], alert)
    if not unique:
        return 0
    with transaction(bind) as conn:
        if conn.dialect.name == "postgresql":
            return _copy(conn, unique.values())
        return _executemany(conn, unique.values())


def _copy(conn: Connection, alerts: Iterable[StoredAlert]) -> int:
    """COPY into a session-local staging table, then one INSERT ... SELECT that skips what
    is stored: COPY alone cannot skip a conflicting row."""
    cur = driver_connection(conn).cursor()  # psycopg 3, inside the caller's transaction
    try:
        cur.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (alert_id text, subscriber_id integer, "
            "offender_id text, kind text, payload jsonb) ON COMMIT DELETE ROWS"
        )
        with cur.copy(
            f"COPY {_STAGE} (alert_id, subscriber_id, offender_id, kind, payload) FROM STDIN"
        ) as copy:
            for alert in alerts:
                copy.write_row(alert)
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


# The payload goes in as the JSON text it already is (the column's JSON type would encode it
# again, as a string).
_INSERT_OR_IGNORE = (
    pending_alerts.insert()
    .prefix_with("OR IGNORE")
    .values(
        alert_id=bindparam("a"),
        subscriber_id=bindparam("s"),
        offender_id=bindparam("o"),
        kind=bindparam("k"),
        payload=type_coerce(bindparam("p"), Text),
        created_at=bindparam("t"),
    )
)


def _executemany(conn: Connection, alerts: Iterable[StoredAlert]) -> int:
    """One INSERT OR IGNORE run over every alert; new rows counted from the connection's
    total of changes (sqlite3's rowcount of an executemany is not reliable across versions)."""
    raw = driver_connection(conn)
    before = raw.total_changes
    now = utcnow()
    conn.execute(
        _INSERT_OR_IGNORE, [{"a": a, "s": s, "o": o, "k": k, "p": p, "t": now} for a, s, o, k, p in alerts]
    )
    return raw.total_changes - before
