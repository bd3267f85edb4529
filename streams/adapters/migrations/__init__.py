"""Alembic's script directory: env.py, the revision template and versions/ (one file a revision).

Run through `sor-notify db upgrade|current|history` (streams/adapters/schema_migrations.py),
never with a connection of its own.
"""
