"""Ids are never given out twice, and unsubscribe links are bound to their enrollment.

Issue 15, hole 2: SQLite reused the highest freed id, so a deleted subscriber's mailed
unsubscribe link stopped the mail of the next person to enroll. On SQLite `subscribers` and
`tracked_addresses` are rebuilt with AUTOINCREMENT (PostgreSQL's sequences never reuse an
id); `subscribers.link_key` is the random value new links bind (NULL for the subscribers
already there, whose links already mailed keep working).

Downgrade drops `link_key` (links mailed since the upgrade stop working: they bind it) and
rebuilds the SQLite tables without AUTOINCREMENT; no row is lost.

Revision ID: 0002_ids_never_reused
Revises: 0001_baseline
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_ids_never_reused"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def upgrade() -> None:
    sqlite = _sqlite()
    with op.batch_alter_table(
        "subscribers",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch_op:
        batch_op.add_column(sa.Column("link_key", sa.String(length=32), nullable=True))
    if sqlite:
        with op.batch_alter_table(
            "tracked_addresses", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    sqlite = _sqlite()
    with op.batch_alter_table("subscribers", recreate="always" if sqlite else "auto") as batch_op:
        batch_op.drop_column("link_key")
    if sqlite:
        with op.batch_alter_table("tracked_addresses", recreate="always"):
            pass
