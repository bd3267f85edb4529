"""Test databases built the product's way: by the migrations, as `sor-notify db upgrade` does."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, select, text
from sqlalchemy.engine import Engine, make_url

from streams.adapters.all_tables import metadata
from streams.adapters.db import make_engine
from streams.adapters.schema_migrations import VERSION_TABLE, upgrade

# What release 0.1 (before the migrations, commit af03293) left after `sor-notify up --demo`:
# a SQLite file's dump (`iterdump`) and a PostgreSQL dump (`pg_dump --inserts --no-owner`).
RELEASE_01 = Path(__file__).parent / "fixtures" / "release-0.1"


def differences(engine: Engine) -> list[Any]:
    """What Alembic's autogenerate finds between the database and the tables the code declares."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(ctx, metadata)


def every_row(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the database has (whichever revision it is at), in a stable order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        here = MetaData()
        here.reflect(conn)
        for table in here.sorted_tables:
            if table.name != VERSION_TABLE:
                out[table.name] = sorted(tuple(map(repr, row)) for row in conn.execute(select(table)).all())
    return out


def drop_everything(engine: Engine) -> None:
    """Every table of the project and the record of the schema revision: an empty database."""
    metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))


def at_head(engine: Engine) -> Engine:
    """The schema of this release, by the migrations (a no-op on a database already there)."""
    upgrade(engine)
    return engine


def _sql_statements(dump: str) -> str:
    """pg_dump's output without psql's own commands (\\connect, \\restrict), which are not SQL."""
    return "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))


def load_release_01(url: str) -> None:
    """Makes the (empty or emptied) database at `url` the one release 0.1's demo left."""
    if url.startswith("sqlite"):
        path = Path(make_url(url).database or "")
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:
            conn.executescript(gzip.decompress((RELEASE_01 / "demo-sqlite.sql.gz").read_bytes()).decode())
        return
    engine = make_engine(url)
    try:
        drop_everything(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                _sql_statements(
                    gzip.decompress((RELEASE_01 / "demo-postgresql.sql.gz").read_bytes()).decode()
                )
            )
    finally:
        engine.dispose()
