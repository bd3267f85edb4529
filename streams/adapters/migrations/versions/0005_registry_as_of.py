"""Registry as of: an index on registry_event_ids.applied_at, so the latest applied event is one lookup.

Revision ID: 0005_registry_as_of
Revises: 0004_account_notices
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_registry_as_of"
down_revision: str | None = "0004_account_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("registry_event_ids", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registry_event_ids_applied_at"), ["applied_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("registry_event_ids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_event_ids_applied_at"))
