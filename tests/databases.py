"""Test databases built the product's way: by the migrations, as `sor-notify db upgrade` does."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from streams.adapters.all_tables import metadata
from streams.adapters.schema_migrations import VERSION_TABLE, upgrade


def drop_everything(engine: Engine) -> None:
    """Every table of the project and the record of the schema revision: an empty database."""
    metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))


def at_head(engine: Engine) -> Engine:
    """The schema of this release, by the migrations (a no-op on a database already there)."""
    upgrade(engine)
    return engine
