"""Search index freshness: offender_search.updated_at indexed, so a site process asks what changed since it looked.

Revision ID: 0006_surge
Revises: 0005_registry_as_of
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_surge"
down_revision: str | None = "0005_registry_as_of"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("offender_search", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offender_search_updated_at"), ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("offender_search", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offender_search_updated_at"))
