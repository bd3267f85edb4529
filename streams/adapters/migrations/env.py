"""Alembic's environment: runs the revisions on the connection sor-notify hands it.

streams/adapters/schema_migrations.py opens the connection (one transaction, a lock against a
second upgrader, SQLite's foreign keys off while tables are rebuilt) and puts it in
`config.attributes["connection"]`; this module never reads settings or the environment.
"""

from __future__ import annotations

from alembic import context

from streams.adapters.all_tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run the migrations with `sor-notify db upgrade` (it opens the database from SOR_DATABASE_URL)"
    )

if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported: run `sor-notify db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things: Alembic rebuilds the table (copy, drop, rename).
    render_as_batch=True,
    compare_type=True,
    compare_server_default=True,
)
with context.begin_transaction():
    context.run_migrations()
