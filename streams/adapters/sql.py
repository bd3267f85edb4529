"""Small SQL helpers every repository module shares: transactions and dialect upserts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Engine

Bind = Engine | Connection


def stored_utc(t: datetime) -> datetime:
    """A time read back from the database, aware: SQLite keeps no zone, and every time stored here is UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def driver_connection(conn: Connection) -> Any:
    """The DB-API connection under `conn` (psycopg's or sqlite3's), for what Core cannot say:
    COPY, sqlite3's count of changes."""
    raw = conn.connection.driver_connection
    if raw is None:  # only once the pool has invalidated it
        raise RuntimeError("the database connection was invalidated")
    return raw


def inserted_id(result: CursorResult[Any]) -> int:
    """The id of the one row an INSERT made."""
    key = result.inserted_primary_key
    if key is None:  # an executemany, or no INSERT at all
        raise RuntimeError("no row was inserted")
    return int(key[0])


@contextmanager
def transaction(bind: Bind) -> Iterator[Connection]:
    """A transaction of our own on an Engine; the caller's on a Connection."""
    if isinstance(bind, Connection):
        if bind.in_transaction():
            yield bind
        else:
            with bind.begin():
                yield bind
    else:
        with bind.begin() as conn:
            yield conn


@contextmanager
def reading(bind: Bind) -> Iterator[Connection]:
    """A read-only connection (on SQLite it does not take the write lock)."""
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as conn:
            conn.execution_options(sqlite_begin="DEFERRED")
            yield conn


@contextmanager
def reading_all(bind: Bind) -> Iterator[Connection]:
    """`reading`, for a query streamed to its last row (`yield_per`: a server-side cursor on
    PostgreSQL). PostgreSQL plans a cursor for its first 10% of rows; with the row estimates
    of a table just bulk-loaded (not analysed yet) that chose a nested loop scanning every
    subscriber for each tracked address: 66 s for 100k circles against 0.25 s planned for
    every row (bench/README.md, start)."""
    with reading(bind) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
        yield conn


def custom_plans(conn: Connection) -> None:
    """For the rest of this transaction, plan each statement for its own parameters. After
    five runs psycopg's prepared statements may settle on one generic plan; one chosen while
    a table was nearly empty (an import's first blocks) scans the whole table on every later
    run: 87 ms instead of 5 ms for a block's `email IN (...)` at 50,000 subscribers, ~4 s
    for a digest block's claim at 100k due (bench/README.md, import and digests)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


def insert(conn: Connection, table: Any) -> Any:
    """INSERT with ON CONFLICT support for the two databases we run on."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database {conn.dialect.name!r} is not supported")


def insert_rows(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows (every column but the integer primary key `id`) and return their new ids,
    in the order of `rows`. On PostgreSQL the ids are drawn from the table's sequence in one
    query and the rows sent by `COPY` (one multi-row INSERT ... RETURNING spent most of an
    import's storing parsing its own placeholders: bench/README.md); elsewhere one
    INSERT ... RETURNING."""
    if not rows:
        return []
    if conn.dialect.name != "postgresql":
        return list(
            conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows).scalars()
        )
    columns = [c.name for c in table.columns if c.name != "id"]
    ids = list(
        conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence(%(t)s, 'id')) FROM generate_series(1, %(n)s) ORDER BY 1",
            {"t": table.name, "n": len(rows)},
        ).scalars()
    )
    cur = driver_connection(conn).cursor()  # psycopg 3, inside the caller's transaction
    try:
        with cur.copy(f"COPY {table.name} (id, {', '.join(columns)}) FROM STDIN") as copy:
            for rid, row in zip(ids, rows):
                copy.write_row((rid, *(row[c] for c in columns)))
    finally:
        cur.close()
    return ids
