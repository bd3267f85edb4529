"""Small SQL helpers every repository module shares: transactions and dialect upserts."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

Bind = Engine | Connection


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


def insert(conn: Connection, table: Any) -> Any:
    """INSERT with ON CONFLICT support for the two databases we run on."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database {conn.dialect.name!r} is not supported")
