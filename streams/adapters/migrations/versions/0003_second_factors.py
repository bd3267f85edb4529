"""Second factors: authenticator apps and passkeys, recovery codes, and the sign-in steps between two requests.

Revision ID: 0003_second_factors
Revises: 0002_ids_never_reused
Create Date: 2026-12-07 15:40:43.937266
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_second_factors"
down_revision: str | None = "0002_ids_never_reused"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# SQLite: batch_alter_table rebuilds the table. A database stamped from release 0.1 has three
# unique constraints without a name (subscribers.email, address_points.hash,
# street_ranges.hash); to drop or change one, pass
# `naming_convention=streams.adapters.db.NAMING_CONVENTION` to batch_alter_table.


def upgrade() -> None:
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("recovery_codes_subscriber_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("recovery_codes_pkey")),
        sa.UniqueConstraint(
            "subscriber_id", "code_hash", name=op.f("recovery_codes_subscriber_id_code_hash_key")
        ),
    )
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recovery_codes_subscriber_id"), ["subscriber_id"], unique=False)

    op.create_table(
        "second_factors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=60), nullable=False),
        sa.Column("totp_secret", sa.Text(), nullable=True),
        sa.Column("last_used_step", sa.BigInteger(), nullable=True),
        sa.Column("credential_id", sa.String(length=1400), nullable=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=True),
        sa.Column("transports", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("second_factors_subscriber_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("second_factors_pkey")),
        sa.UniqueConstraint("credential_id", name=op.f("second_factors_credential_id_key")),
    )
    with op.batch_alter_table("second_factors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_second_factors_subscriber_id"), ["subscriber_id"], unique=False)

    op.create_table(
        "sign_in_steps",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_hash"],
            ["web_sessions.id_hash"],
            name=op.f("sign_in_steps_session_hash_fkey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("sign_in_steps_subscriber_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_hash", "purpose", name=op.f("sign_in_steps_pkey")),
    )
    with op.batch_alter_table("sign_in_steps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sign_in_steps_subscriber_id"), ["subscriber_id"], unique=False)


def downgrade() -> None:
    # Dropping a subscriber's factors would leave their account guarded by its password alone
    # without telling them: refuse while any is enrolled. The sign-in steps live minutes.
    bind = op.get_bind()
    for table in ("second_factors", "recovery_codes"):
        if bind.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None:  # noqa: S608
            raise RuntimeError(
                f"{table} holds rows: subscribers enrolled second factors, which a downgrade would drop. "
                "Restore a backup from before the upgrade instead."
            )
    with op.batch_alter_table("sign_in_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sign_in_steps_subscriber_id"))
    op.drop_table("sign_in_steps")
    with op.batch_alter_table("second_factors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_second_factors_subscriber_id"))
    op.drop_table("second_factors")
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_codes_subscriber_id"))
    op.drop_table("recovery_codes")
