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


def insert(conn: Connection, table: Any) -> Any:
    """INSERT with ON CONFLICT support for the two databases we run on."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database {conn.dialect.name!r} is not supported")
