"""Account notices: settings changes waiting for their one coalesced e-mail (settings_notices).

Revision ID: 0004_account_notices
Revises: 0003_second_factors
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_account_notices"
down_revision: str | None = "0003_second_factors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "settings_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("settings_notices_subscriber_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("settings_notices_pkey")),
    )
    with op.batch_alter_table("settings_notices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_settings_notices_subscriber_id"), ["subscriber_id"], unique=False
        )


def downgrade() -> None:
    # The older release has nowhere to keep a notice not yet mailed: refuse rather than lose it.
    waiting = op.get_bind().execute(sa.text("SELECT count(*) FROM settings_notices")).scalar_one()
    if waiting:
        raise RuntimeError(
            f"{waiting} settings change(s) still wait for their notice e-mail: keep the site running "
            "until they are sent (SOR_SETTINGS_NOTICE_DELAY after the change), then downgrade"
        )
    with op.batch_alter_table("settings_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settings_notices_subscriber_id"))
    op.drop_table("settings_notices")
