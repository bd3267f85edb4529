"""A database that `sor-notify up --demo` of release 0.1 (before the migrations) built, upgraded
by `sor-notify db upgrade` as an operator runs it: recognised, stamped, every row kept
(tests/databases.RELEASE_01 says where the dumps come from)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import UniqueConstraint, create_engine, text
from sqlalchemy.engine import make_url

from streams.adapters.db import make_engine
from tests.conftest import database_urls
from tests.databases import differences, every_row, load_release_01

REPO = Path(__file__).resolve().parents[2]
PG_DATABASE = "sor_release01_test"


def cli(url: str, tmp: Path, *args: str, broker_url: str = "") -> subprocess.CompletedProcess[str]:
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("SOR_")}
        | {
            "SOR_DATABASE_URL": url,
            "SOR_DATA_DIR": str(tmp / "data"),
            "SOR_LOG_FORMAT": "json",
        }
        | ({"SOR_BROKER_URL": broker_url} if broker_url else {})
    )
    return subprocess.run(
        [sys.executable, "-m", "streams.entrypoints.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(params=database_urls())
def release_01_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'release-0.1.db'}"
        load_release_01(url)
        yield url
        return
    base = make_url(os.environ["SOR_TEST_DATABASE_URL"])
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {PG_DATABASE}"))
    url = base.set(database=PG_DATABASE).render_as_string(hide_password=False)
    load_release_01(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
        admin.dispose()


def test_db_upgrade_on_a_release_01_demo_database_keeps_every_subscriber_and_alert(
    release_01_database: str, tmp_path: Path
) -> None:
    url = release_01_database
    engine = make_engine(url)
    try:
        before = every_row(engine)
        assert len(before["subscribers"]) >= 2 and before["pending_alerts"] and before["digests"]

        current = cli(url, tmp_path, "db", "current")
        assert current.returncode == 1 and "made before the migrations" in current.stdout

        upgraded = cli(url, tmp_path, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        assert (
            "made before the migrations: its tables checked and recorded as 0001_baseline" in upgraded.stdout
        )

        assert "upgraded from 0001_baseline" in upgraded.stdout
        # Recognised, stamped, then upgraded: every row kept; columns a revision adds come after.
        after = every_row(engine)
        for table, rows in before.items():
            assert [row[: len(r)] for row, r in zip(after[table], rows, strict=True)] == rows, table
        # No link key for 0.1's subscribers: the unsubscribe links already mailed to them work.
        with engine.connect() as conn:
            assert set(conn.execute(text("SELECT link_key FROM subscribers")).scalars()) == {None}
        # The schema is this release's. On PostgreSQL to the constraint names (the naming
        # convention is PostgreSQL's own); 0.1's SQLite file has three unique constraints
        # without a name, which SQLite cannot rename: a revision that drops one passes the
        # naming convention to batch_alter_table (streams/adapters/migrations/script.py.mako).
        unnamed = {
            (d[1].table.name, tuple(c.name for c in d[1].columns))
            for d in differences(engine)
            if d[0] == "add_constraint" and isinstance(d[1], UniqueConstraint)
        }
        assert len(differences(engine)) == len(unnamed)
        assert unnamed == (
            set()
            if url.startswith("postgresql")
            else {("subscribers", ("email",)), ("address_points", ("hash",)), ("street_ranges", ("hash",))}
        )
        assert cli(url, tmp_path, "db", "current").returncode == 0
        # The digest run works on it: the demo's digests went out in 0.1; a later day has none
        # due (its alerts are all mailed), and nothing is mailed twice.
        sent = cli(url, tmp_path, "digest", "send", "--period", "2030-01-02")
        assert sent.returncode == 0, sent.stderr
        assert "0 sent" in sent.stdout
        assert every_row(engine)["pending_alerts"] == before["pending_alerts"]
    finally:
        engine.dispose()


@pytest.mark.skipif(
    "SOR_TEST_DATABASE_URL" not in os.environ,
    reason="PostgreSQL's rule (SQLite upgrades itself): set SOR_TEST_DATABASE_URL",
)
@pytest.mark.parametrize("command", [("web",), ("worker",), ("up",)])
def test_the_long_running_commands_refuse_an_empty_postgresql_database(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    base = make_url(os.environ["SOR_TEST_DATABASE_URL"])
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"{PG_DATABASE}_empty"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        env_url = base.set(database=name).render_as_string(hide_password=False)
        done = cli(env_url, tmp_path, *command, broker_url="127.0.0.1:1")  # the database is checked first
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            "sor-notify: the database has no tables yet: run `sor-notify db upgrade` (after a backup), "
            "then start again"
        ]
        probe = create_engine(env_url)
        with probe.connect() as conn:
            assert (
                conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar() == 0
            )
        probe.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
