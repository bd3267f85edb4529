"""Baseline: the schema of release 0.1, table for table as create_all made it.

A database made that way (no alembic_version table) is checked against this revision and
stamped with it (streams/adapters/schema_migrations.py), never rebuilt. Constraint names
follow streams.adapters.db.NAMING_CONVENTION, which are the names PostgreSQL gave them.

Revision ID: 0001_baseline
Revises: (none)
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "address_points",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("number_int", sa.Integer(), nullable=False),
        sa.Column("street_norm", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("city_norm", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("zip", sa.String(length=5), nullable=True),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("hash", sa.String(length=40), nullable=False),
        sa.Column("import_run", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("address_points_pkey")),
        sa.UniqueConstraint("hash", name=op.f("address_points_hash_key")),
    )
    with op.batch_alter_table("address_points", schema=None) as batch_op:
        batch_op.create_index("ix_address_points_street_city", ["street_norm", "city_norm"], unique=False)
        batch_op.create_index("ix_address_points_street_zip", ["street_norm", "zip"], unique=False)

    op.create_table(
        "dlq_replays",
        sa.Column("entry_id", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("dlq_replays_pkey")),
    )
    op.create_table(
        "gazetteer_streets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("street_norm", sa.String(length=200), nullable=False),
        sa.Column("city_norm", sa.String(length=100), nullable=False),
        sa.Column("zip", sa.String(length=5), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("gazetteer_streets_pkey")),
        sa.UniqueConstraint("street_norm", "city_norm", "zip", name="uq_gazetteer_streets"),
    )
    with op.batch_alter_table("gazetteer_streets", schema=None) as batch_op:
        batch_op.create_index("ix_gazetteer_streets_city", ["city_norm"], unique=False)
        batch_op.create_index("ix_gazetteer_streets_zip", ["zip"], unique=False)

    op.create_table(
        "geocode_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column(
            "value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("geocode_cache_pkey")),
    )
    with op.batch_alter_table("geocode_cache", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_geocode_cache_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "offender_identifier_digests",
        sa.Column("offender_id", sa.String(length=100), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("offender_id", "digest", name=op.f("offender_identifier_digests_pkey")),
    )
    with op.batch_alter_table("offender_identifier_digests", schema=None) as batch_op:
        batch_op.create_index("ix_offender_identifier_digests_digest", ["digest"], unique=False)

    op.create_table(
        "offender_search",
        sa.Column("offender_id", sa.String(length=100), nullable=False),
        sa.Column("last_name_norm", sa.String(length=100), nullable=False),
        sa.Column("first_name_norm", sa.String(length=100), nullable=False),
        sa.Column("names_text", sa.Text(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("offender_id", name=op.f("offender_search_pkey")),
    )
    with op.batch_alter_table("offender_search", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_offender_search_last_name_norm"), ["last_name_norm"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_offender_search_public"), ["public"], unique=False)

    op.create_table(
        "offender_search_addresses",
        sa.Column("offender_id", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("street_norm", sa.String(length=450), nullable=False),
        sa.Column("city_norm", sa.String(length=100), nullable=False),
        sa.Column("county_norm", sa.String(length=100), nullable=False),
        sa.Column("zip", sa.String(length=5), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("precision", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("offender_id", "position", name=op.f("offender_search_addresses_pkey")),
    )
    with op.batch_alter_table("offender_search_addresses", schema=None) as batch_op:
        batch_op.create_index("ix_offender_search_addresses_city", ["city_norm"], unique=False)
        batch_op.create_index("ix_offender_search_addresses_lat", ["lat"], unique=False)
        batch_op.create_index("ix_offender_search_addresses_zip", ["zip"], unique=False)

    op.create_table(
        "offenders",
        sa.Column("offender_id", sa.String(length=100), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("juvenile", sa.Boolean(), nullable=False),
        sa.Column(
            "state_json",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("offender_id", name=op.f("offenders_pkey")),
    )
    op.create_table(
        "registry_event_ids",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("offender_id", sa.String(length=100), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("content_digest", sa.String(length=64), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("registry_event_ids_pkey")),
    )
    op.create_table(
        "street_ranges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("street_norm", sa.String(length=200), nullable=False),
        sa.Column("city_norm", sa.String(length=100), nullable=True),
        sa.Column("zip_left", sa.String(length=5), nullable=True),
        sa.Column("zip_right", sa.String(length=5), nullable=True),
        sa.Column("from_left", sa.Integer(), nullable=True),
        sa.Column("to_left", sa.Integer(), nullable=True),
        sa.Column("from_right", sa.Integer(), nullable=True),
        sa.Column("to_right", sa.Integer(), nullable=True),
        sa.Column(
            "geometry",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("hash", sa.String(length=40), nullable=False),
        sa.Column("import_run", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("street_ranges_pkey")),
        sa.UniqueConstraint("hash", name=op.f("street_ranges_hash_key")),
    )
    with op.batch_alter_table("street_ranges", schema=None) as batch_op:
        batch_op.create_index("ix_street_ranges_street_city", ["street_norm", "city_norm"], unique=False)
        batch_op.create_index("ix_street_ranges_street_zip_left", ["street_norm", "zip_left"], unique=False)
        batch_op.create_index("ix_street_ranges_street_zip_right", ["street_norm", "zip_right"], unique=False)

    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("mail_bounces", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_bounce_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_bounce_reason", sa.String(length=200), nullable=True),
        sa.Column("mail_suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("subscribers_pkey")),
        sa.UniqueConstraint("email", name=op.f("subscribers_email_key")),
    )
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"], name=op.f("digests_subscriber_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("digests_pkey")),
        sa.UniqueConstraint("subscriber_id", "period", name="uq_digests_subscriber_period"),
    )
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_digests_status"), ["status"], unique=False)

    op.create_table(
        "email_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("new_email", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("email_tokens_subscriber_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("email_tokens_pkey")),
    )
    with op.batch_alter_table("email_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_tokens_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_email_tokens_subscriber_id"), ["subscriber_id"], unique=False)

    op.create_table(
        "offender_watches",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("offender_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("offender_watches_subscriber_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscriber_id", "offender_id", name=op.f("offender_watches_pkey")),
    )
    with op.batch_alter_table("offender_watches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offender_watches_offender_id"), ["offender_id"], unique=False)

    op.create_table(
        "tracked_addresses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("zip", sa.String(length=10), nullable=False),
        sa.Column("normalized", sa.String(length=300), nullable=False),
        sa.Column("radius_code", sa.String(length=8), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("precision", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("tracked_addresses_subscriber_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("tracked_addresses_pkey")),
    )
    with op.batch_alter_table("tracked_addresses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tracked_addresses_subscriber_id"), ["subscriber_id"], unique=False
        )

    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("flash", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("web_sessions_subscriber_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("web_sessions_pkey")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_sessions_subscriber_id"), ["subscriber_id"], unique=False)

    op.create_table(
        "pending_alerts",
        sa.Column("alert_id", sa.String(length=32), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("offender_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["digest_id"], ["digests.id"], name=op.f("pending_alerts_digest_id_fkey"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pending_alerts_pkey")),
    )
    with op.batch_alter_table("pending_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_alerts_digest_id"), ["digest_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pending_alerts_offender_id"), ["offender_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pending_alerts_subscriber_id"), ["subscriber_id"], unique=False)


def downgrade() -> None:
    # Below the baseline there is no schema to go back to, only an empty database: going there
    # would drop every subscriber, alert and digest. Restore a backup instead.
    raise RuntimeError("the baseline revision has no downgrade: it would drop every table")
