"""Digest frequency: each subscriber's digests daily (every one so far) or weekly on a weekday.

Revision ID: 0007_digest_frequency
Revises: 0005_registry_as_of
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_digest_frequency"
down_revision: str | None = "0006_surge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The server default makes every existing subscriber daily, as they were.
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("digest_frequency", sa.String(length=8), server_default="daily", nullable=False)
        )
        batch_op.add_column(sa.Column("digest_weekday", sa.Integer(), nullable=True))


def downgrade() -> None:
    # The older release sends everyone a daily digest: a weekly subscriber gets their waiting
    # alerts sooner, none is lost, and only the choice of weekday is forgotten.
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("digest_weekday")
        batch_op.drop_column("digest_frequency")
