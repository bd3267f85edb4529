"""The system of record: subscribers, offender states, pending alerts and digests (SQLAlchemy Core)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine, make_url


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_link_key() -> str:
    """A subscriber's own random value, bound into every unsubscribe link mailed to them
    (streams.domain.links): a link cannot outlive the enrollment it was mailed for."""
    return secrets.token_urlsafe(16)


# JSONB on PostgreSQL (indexable, compact); plain JSON text on SQLite.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")

# Constraint names as PostgreSQL makes them when none is given, so that a database built by
# `create_all` before the migrations (issue 32) has exactly the names the baseline revision
# gives, and autogenerate compares names, not guesses, on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),  # always lower-case
    Column("confirmed", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False, default="active"),  # active|suspended|unsubscribed
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("unsubscribed_at", DateTime(timezone=True), nullable=True),
    # argon2id (web enrollments); NULL for subscribers imported from the legacy program,
    # who set one through "forgot password".
    Column("password_hash", String(200), nullable=True),
    # Digests refused for good in a row (hard bounces); a delivered digest resets it.
    Column("mail_bounces", Integer, nullable=False, default=0, server_default="0"),
    Column("last_bounce_at", DateTime(timezone=True), nullable=True),
    Column("last_bounce_reason", String(200), nullable=True),  # the server's words, addresses masked
    # Set after SOR_SUSPEND_AFTER_BOUNCES bounces in a row: no digests (alerts are still
    # recorded) until the subscriber changes the address or resumes the e-mails on the site.
    Column("mail_suspended_at", DateTime(timezone=True), nullable=True),
    # Bound into the unsubscribe links (streams.domain.links). NULL only for subscribers from
    # before revision 0002, whose links already mailed keep working (ids are never reused).
    Column("link_key", String(32), nullable=True, default=new_link_key),
    # How often digests go out (streams.domain.digest_schedule): 'daily', or 'weekly' on
    # digest_weekday (0 Monday … 6 Sunday; NULL for daily). Checked at the edge (site, import).
    Column("digest_frequency", String(8), nullable=False, default="daily", server_default="daily"),
    Column("digest_weekday", Integer, nullable=True),
    # SQLite reuses the highest freed rowid without AUTOINCREMENT; PostgreSQL's sequence never does.
    sqlite_autoincrement=True,
)

tracked_addresses = Table(
    "tracked_addresses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("label", String(100), nullable=False),
    Column("street", String(200), nullable=False),
    Column("city", String(100), nullable=False),
    Column("state", String(2), nullable=False),
    Column("zip", String(10), nullable=False),
    Column("normalized", String(300), nullable=False, default=""),
    Column("radius_code", String(8), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    # How exact lat/lon are (streams.domain.geocoding): shown to the subscriber.
    Column("precision", String(20), nullable=False, default="provided"),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    sqlite_autoincrement=True,  # an id is a circle's key in the stream: never given out twice
)

offender_watches = Table(
    "offender_watches",
    metadata,
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("offender_id", String(100), primary_key=True, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
)

offenders = Table(
    "offenders",
    metadata,
    Column("offender_id", String(100), primary_key=True),
    Column("revision", BigInteger, nullable=False),  # the contract allows up to 2^63-1
    Column("removed", Boolean, nullable=False),
    Column("juvenile", Boolean, nullable=False),
    Column("state_json", JsonDoc, nullable=False),  # OffenderState.to_dict()
    Column("updated_at", DateTime(timezone=True), nullable=False, default=utcnow),
)

# Every registry event id ever applied, with the digest of what it said: an id names one
# registry entry for good, however long ago it came (the offender state lists only its recent
# ids). Written in the transaction that stores the state the event made.
registry_event_ids = Table(
    "registry_event_ids",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("offender_id", String(100), nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("content_digest", String(64), nullable=False),  # streams.domain.event_identity
    # Indexed: the latest one is "registry as of" on every page and digest listing offenders.
    Column("applied_at", DateTime(timezone=True), nullable=False, default=utcnow, index=True),
)

digests = Table(
    "digests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("period", String(10), nullable=False),  # local date YYYY-MM-DD
    # claimed|sent|empty|failed; indexed for the retry runs, which look for the few still claimed.
    Column("status", String(16), nullable=False, index=True),
    Column("message_id", String(200), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(300), nullable=True),
    # While "claimed": when the current attempt took the row; NULL = released for a retry.
    Column("claimed_at", DateTime(timezone=True), nullable=True),
    # Released after a temporary failure: not retried before this (backoff).
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    # First claimed: retries give up a fixed time after this.
    Column("created_at", DateTime(timezone=True), nullable=True),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("subscriber_id", "period", name="uq_digests_subscriber_period"),
)

pending_alerts = Table(
    "pending_alerts",
    metadata,
    Column("alert_id", String(32), primary_key=True),
    # No foreign key: an alert for a subscriber deleted meanwhile must not fail its batch
    # (the digest query joins subscribers, so such an alert is simply never mailed).
    Column("subscriber_id", Integer, nullable=False, index=True),
    Column("offender_id", String(100), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("payload", JsonDoc, nullable=False),  # Alert.to_dict()
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column(
        "digest_id",
        Integer,
        ForeignKey("digests.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Python's sqlite3 would otherwise BEGIN lazily (only before DML); we BEGIN ourselves.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # A read-then-write transaction that began DEFERRED cannot upgrade its lock once another
    # process committed (SQLITE_BUSY at once, busy_timeout does not help): writers take the
    # lock up front. Long read-only scans pass execution_options(sqlite_begin="DEFERRED").
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # hide_parameters: a failed statement must not print e-mail addresses into a log.
    return create_engine(u, pool_pre_ping=True, hide_parameters=True)
