"""`sor-notify db upgrade|downgrade|current|history`: the database's schema revision, changed on purpose."""

from __future__ import annotations

import argparse

from sqlalchemy.engine import Engine

from streams.adapters import schema_migrations as migrations
from streams.adapters.db import make_engine
from streams.settings import Settings


def _engine(settings: Settings) -> Engine:
    return make_engine(settings.database_url)


def _describe(revision: str | None) -> str:
    if revision is None:
        return "none"
    doc = migrations.script_directory().get_revision(revision).doc or ""
    return f"{revision} ({doc.splitlines()[0].rstrip('.')})" if doc else revision


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine(settings)
    try:
        done = migrations.upgrade(engine)
    finally:
        engine.dispose()
    start = migrations.BASELINE if done.stamped else done.before
    if done.stamped:
        print(f"database made before the migrations: its tables checked and recorded as {start}")
    if start != done.after:
        print(f"database schema upgraded from {_describe(start)} to {_describe(done.after)}")
    elif not done.stamped:
        print(f"database schema already at {_describe(done.after)}: nothing to do")
    return 0


def cmd_db_downgrade(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine(settings)
    try:
        before, after = migrations.downgrade(engine, args.revision)
    finally:
        engine.dispose()
    if before == after:
        print(f"database schema already at {_describe(after)}: nothing to do")
    else:
        print(
            f"database schema downgraded from {_describe(before)} to {_describe(after)}: "
            "run the release that needs it now"
        )
    return 0


def cmd_db_current(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine(settings)
    try:
        state = migrations.schema_state(engine)
    finally:
        engine.dispose()
    said = {
        "current": f"{_describe(state.current)}: this release's newest (head)",
        "behind": f"{_describe(state.current)}: behind this release's {state.head}; "
        "run `sor-notify db upgrade`",
        "ahead": f"{state.current}: unknown to this release (newest {state.head}); a newer "
        "release upgraded it",
        "empty": "none: the database has no tables yet; `sor-notify db upgrade` creates them",
        "unversioned": f"none recorded: made before the migrations; `sor-notify db upgrade` "
        f"checks it and records it as {migrations.BASELINE}",
    }[state.kind]
    print(f"database schema: {said}")
    return 0 if state.kind == "current" else 1


def cmd_db_revision(settings: Settings, args: argparse.Namespace) -> int:
    path = migrations.new_revision(args.message)
    print(f"wrote {path}: read it, write its downgrade, add it to the upgrade test's data if it adds a table")
    return 0


def cmd_db_history(settings: Settings, args: argparse.Namespace) -> int:
    for script in migrations.history():
        doc = (script.doc or "").splitlines()[0] if script.doc else ""
        mark = " (head)" if script.is_head else ""
        print(f"{script.revision}{mark}  {doc}")
    return 0
