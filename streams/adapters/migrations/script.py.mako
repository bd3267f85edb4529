"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


# SQLite: batch_alter_table rebuilds the table. A database stamped from release 0.1 has three
# unique constraints without a name (subscribers.email, address_points.hash,
# street_ranges.hash); to drop or change one, pass
# `naming_convention=streams.adapters.db.NAMING_CONVENTION` to batch_alter_table.


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
