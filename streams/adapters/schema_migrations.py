"""The database's schema revision: upgrade it, stamp a database older than the migrations,
refuse to run on one out of step with the code.

The revisions are Alembic's (streams/adapters/migrations/versions/). Every upgrade runs in one
transaction on one connection: on PostgreSQL behind an advisory lock, so two upgraders queue
instead of racing; on SQLite behind `BEGIN IMMEDIATE` with foreign keys off while Alembic's
batch mode rebuilds a table (dropping the old copy would otherwise cascade into its children),
and a foreign key check before the commit.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from streams.adapters.all_tables import metadata
from streams.adapters.db import make_engine

logger = structlog.get_logger()

SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))
BASELINE = "0001_baseline"
VERSION_TABLE = "alembic_version"
_PG_LOCK = 0x736F72_6E6F74  # pg_advisory_xact_lock key: "sor" "not"

Kind = Literal["empty", "unversioned", "behind", "current", "ahead"]


class SchemaOutOfStep(Exception):
    """The database's schema and this release's disagree; the message says what to run."""


@dataclass(frozen=True)
class Upgraded:
    before: str | None  # None: an empty database, or one from before the migrations
    after: str | None
    stamped: bool = False  # made before the migrations: checked and recorded as the baseline


@dataclass(frozen=True)
class SchemaState:
    kind: Kind
    current: str | None  # the revision the database records; None before any
    head: str


def _config(connection: Connection | None = None) -> Config:
    _quiet_alembic()
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None, "streams/adapters/migrations/versions/ holds no revision"
    return head


def history() -> list[Script]:
    """Every revision, oldest first."""
    return list(reversed(list(script_directory().walk_revisions())))


def _recorded(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _state(conn: Connection) -> SchemaState:
    head = head_revision()
    current = _recorded(conn)
    if current is None:
        ours = set(inspect(conn).get_table_names()) & set(metadata.tables)
        return SchemaState("unversioned" if ours else "empty", None, head)
    if current == head:
        return SchemaState("current", current, head)
    try:
        script_directory().get_revision(current)
    except CommandError:
        return SchemaState("ahead", current, head)
    return SchemaState("behind", current, head)


def schema_state(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        return _state(conn)


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """One connection, one transaction, no second migrator at the same time."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        raw = conn.connection.driver_connection if sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: before BEGIN
        try:
            with conn.begin():  # SQLite: BEGIN IMMEDIATE (streams.adapters.db)
                if not sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise SchemaOutOfStep(
                            f"the upgrade would leave {len(broken)} rows pointing at rows that "
                            f"do not exist (first: table {broken[0][0]}); nothing was changed"
                        )
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def _baseline_columns() -> dict[str, set[str]]:
    """Table -> column names, as the baseline revision builds them (on a scratch database)."""
    scratch = make_engine("sqlite://")
    try:
        with scratch.connect() as conn, conn.begin():
            command.upgrade(_config(conn), BASELINE)
            look = inspect(conn)
            return {
                name: {c["name"] for c in look.get_columns(name)}
                for name in look.get_table_names()
                if name != VERSION_TABLE
            }
    finally:
        scratch.dispose()


def _stamp_unversioned(conn: Connection) -> None:
    """A database `create_all` made before the migrations: check it has the baseline's tables
    and columns, then record it as the baseline. Nothing in it is changed or rebuilt."""
    look = inspect(conn)
    have = set(look.get_table_names())
    missing: list[str] = []
    for table, columns in sorted(_baseline_columns().items()):
        if table not in have:
            missing.append(table)
            continue
        found = {c["name"] for c in look.get_columns(table)}
        missing += [f"{table}.{column}" for column in sorted(columns - found)]
    if missing:
        raise SchemaOutOfStep(
            "the database was made before the schema migrations but lacks "
            + ", ".join(missing[:8])
            + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
            + f": it is not at the baseline ({BASELINE}) and cannot be stamped; "
            "restore it from a backup of release 0.1 or start from an empty database"
        )
    command.stamp(_config(conn), BASELINE)
    logger.info("database from before the migrations recognised and stamped", revision=BASELINE)


def upgrade(engine: Engine, target: str = "head") -> Upgraded:
    """Brings the schema to `target` (a database older than the migrations is stamped first).

    Refuses a database ahead of this release's head.
    """
    with _migrating(engine) as conn:
        state = _state(conn)
        if state.kind == "ahead":
            raise SchemaOutOfStep(_ahead(state))
        if state.kind == "unversioned":
            _stamp_unversioned(conn)
        command.upgrade(_config(conn), target)
        done = Upgraded(state.current, _recorded(conn), stamped=state.kind == "unversioned")
    if done.before != done.after:
        logger.info("database schema upgraded", before=done.before or "none", after=done.after)
    return done


def downgrade(engine: Engine, target: str) -> tuple[str | None, str | None]:
    """Takes the schema back to `target`, an older revision this release knows, in one
    transaction; (before, after). A revision whose downgrade would lose data refuses."""
    with _migrating(engine) as conn:
        state = _state(conn)
        if state.kind != "current" and state.kind != "behind":
            raise SchemaOutOfStep(
                _ahead(state)
                if state.kind == "ahead"
                else "the database has no schema revision to go back from"
            )
        try:
            script_directory().get_revision(target)
        except CommandError as exc:
            raise SchemaOutOfStep(
                f"no revision {target!r} in this release: `sor-notify db history` lists them"
            ) from exc
        try:
            command.downgrade(_config(conn), target)
        except (CommandError, RuntimeError) as exc:  # RuntimeError: a revision that refuses
            raise SchemaOutOfStep(f"cannot downgrade to {target}: {exc}") from exc
        after = _recorded(conn)
    if state.current != after:
        logger.info("database schema downgraded", before=state.current, after=after)
    return state.current, after


def _ahead(state: SchemaState) -> str:
    return (
        f"the database schema is at revision {state.current}, which this release does not know "
        f"(its newest is {state.head}): a newer release upgraded it. Run that release, or "
        "restore the backup taken before its upgrade"
    )


def sqlite_backup(engine: Engine, revision: str | None) -> Path | None:
    """A copy of a SQLite database file taken through SQLite's backup API (consistent while
    others write), named after the revision it holds; None for an in-memory database."""
    name = engine.url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    source = Path(name)
    target = source.with_name(f"{source.name}.before-upgrade-from-{revision or 'release-0.1'}")
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        copy = sqlite3.connect(target)
        try:
            raw.backup(copy)
        finally:
            copy.close()
    return target


def ensure_ready(engine: Engine, *, upgrade_on_start: bool) -> None:
    """Before a command touches the database: the schema is this release's, or it is made so
    (`upgrade_on_start`, the embedded SQLite), or the command refuses with one line to act on."""
    state = schema_state(engine)
    if state.kind == "current":
        return
    if state.kind == "ahead":
        raise SchemaOutOfStep(_ahead(state))
    if upgrade_on_start:
        changes = state.kind == "behind" or (state.kind == "unversioned" and state.head != BASELINE)
        if changes and engine.dialect.name == "sqlite":
            # What a person would do before an upgrade, done for them: the file as it was.
            kept = sqlite_backup(engine, state.current)
            if kept is not None:
                logger.info("database copied before its upgrade", copy=str(kept))
        upgrade(engine)
        return
    if state.kind == "unversioned":
        # Stamping changes no table: a 0.1 database needs no decision to be recognised.
        upgrade(engine, BASELINE)
        state = schema_state(engine)
        if state.kind == "current":
            return
    where = (
        "the database has no tables yet"
        if state.kind == "empty"
        else f"the database schema is at revision {state.current}, this release needs {state.head}"
    )
    raise SchemaOutOfStep(f"{where}: run `sor-notify db upgrade` (after a backup), then start again")


def new_revision(message: str) -> Path:
    """For contributors: a revision file with what the models declare beyond the head,
    found by Alembic's autogenerate on a scratch database at the head. Read it before committing
    (autogenerate misses renames and data moves) and write its downgrade where no data is lost."""
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40] or "change"
    number = max((int(s.revision[:4]) for s in history() if s.revision[:4].isdigit()), default=0) + 1
    scratch = make_engine("sqlite://")
    try:
        with scratch.connect() as conn, conn.begin():
            cfg = _config(conn)
            command.upgrade(cfg, "head")
            cfg.set_main_option("file_template", "%%(rev)s")
            made = command.revision(cfg, message=message, autogenerate=True, rev_id=f"{number:04d}_{slug}")
    finally:
        scratch.dispose()
    assert isinstance(made, Script)
    return Path(made.path)


def _quiet_alembic() -> None:
    # Alembic logs every revision at INFO through the stdlib; our own line says what changed.
    logging.getLogger("alembic").setLevel(logging.WARNING)
