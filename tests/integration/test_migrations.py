"""The schema by migrations, on SQLite and PostgreSQL: what the migrations build is what the
code declares, an upgrade keeps every row and leaves a database the product works on, and a
database out of step with the code is refused with a line that says what to run."""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from streams.adapters import (
    accounts,
    geocode_cache,
    ops_db,
    repository,
    schema_migrations,
    subscriber_store,
)
from streams.adapters.db import make_engine
from streams.adapters.gazetteer_import import import_gazetteer
from streams.adapters.mail import SmtpSender
from streams.adapters.password_hashes import hash_password
from streams.adapters.schema_migrations import BASELINE, SchemaOutOfStep, ensure_ready, upgrade
from streams.services.demo import DEMO_GAZETTEER
from streams.services.digests import send_due_digests
from streams.web import sessions
from tests.databases import differences, drop_everything, every_row
from tests.integration.conftest import (
    imported,
    imported_address,
    offender_state,
    proximity_alert,
    watch_alert,
)
from tests.web.conftest import open_site

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PUBLIC = "https://notify.example.test"
FROM = "Registry Notifications <no-reply@notify.example.test>"


def test_the_migrations_build_exactly_the_tables_the_code_declares(engine: Engine) -> None:
    """A column, index or table added to a model without its revision turns this red."""
    drop_everything(engine)
    upgrade(engine)
    assert differences(engine) == []
    assert schema_migrations.schema_state(engine).kind == "current"


async def send(engine: Engine, port: int, period: str, now: datetime) -> Any:
    sender = SmtpSender("127.0.0.1", port, starttls=False, username=None, password=None, timeout=5)
    return await send_due_digests(
        engine,
        sender,
        period=period,
        from_addr=FROM,
        public_url=PUBLIC,
        unsubscribe_url_for=lambda sid, key: f"{PUBLIC}/unsubscribe/{sid}.{key}.sig",
        now=now,
    )


async def fill_through_the_product(engine: Engine, smtp_port: int) -> int:
    """Every kind of row the product writes, written by the product's own code."""
    import_gazetteer(engine, DEMO_GAZETTEER, progress=False)
    enrollment = accounts.create_enrollment(
        engine, "Parent@Example.org", hash_password("plum orchard lantern"), NOW
    )
    assert enrollment.token is not None
    assert accounts.confirm(engine, enrollment.token, NOW) is not None
    parent = accounts.authenticate(engine, "parent@example.org", "plum orchard lantern")
    assert parent is not None
    sessions.create(engine, parent, NOW)
    sessions.create(engine, None, NOW)
    other = subscriber_store.upsert_subscriber(
        engine,
        imported(
            "other@example.org",
            addresses=(imported_address("Home"), imported_address("School", radius="5mi")),
            offenders=("MO-W1", "MO-W2"),
        ),
    )
    assert accounts.start_reset(engine, "other@example.org", NOW) is not None
    repository.save_offender_state(engine, offender_state("MO-1"))
    repository.save_offender_state(engine, offender_state("MO-J", juvenile=True, last="Junior"))
    circle = other.circles[0].circle_id
    repository.record_alerts(
        engine,
        [
            proximity_alert(other.subscriber_id, circle, "MO-1", "Ray Abbott", "800 Olive St"),
            watch_alert(other.subscriber_id, "MO-W1", "Sam Watts", ["1 Old St"], ["2 New St"]),
        ],
    )
    report = await send(engine, smtp_port, "2026-11-20", NOW)
    assert report.sent == 1
    # An alert still waiting for tomorrow's digest.
    repository.record_alerts(
        engine, [proximity_alert(other.subscriber_id, circle, "MO-1", "Ray Abbott", "801 Olive St")]
    )
    geocode_cache.cache_store(engine, "k" * 64, "census", {"lat": 38.6, "lon": -90.2}, timedelta(days=30))
    assert ops_db.claim_replay(engine, "0:17", "f" * 64, "MO-1-r9", force=False, now=NOW) is None
    return other.subscriber_id


async def test_an_upgrade_from_the_baseline_keeps_every_row_and_the_product_works_on_it(
    engine: Engine, smtp_server: Any, tmp_path: Path
) -> None:
    """The product writes this release's schema, so its rows are written at the head and the
    database is then taken down to the baseline (every revision's downgrade keeps the rows)."""
    catcher, port = smtp_server
    other = await fill_through_the_product(engine, port)
    assert schema_migrations.downgrade(engine, BASELINE)[1] == BASELINE
    before = every_row(engine)
    assert all(
        before[t]
        for t in (
            "subscribers",
            "tracked_addresses",
            "offender_watches",
            "email_tokens",
            "web_sessions",
            "pending_alerts",
            "digests",
            "address_points",
            "geocode_cache",
            "dlq_replays",
            "offenders",
            "offender_search",
        )
    )

    upgrade(engine)

    after = every_row(engine)
    for table, rows in before.items():  # columns a revision adds come after the ones there were
        assert [row[: len(r)] for row, r in zip(after[table], rows, strict=True)] == rows, table
    assert schema_migrations.schema_state(engine).kind == "current"
    # The digest run: the waiting alert goes out in the next day's digest, once.
    report = await send(engine, port, "2026-11-21", NOW + timedelta(days=1))
    assert report.sent == 1
    assert len(catcher.wait_for(2)) == 2
    # The site: the enrolled parent signs in and sees the account page.
    async with open_site(engine, port, catcher, tmp_path) as site:
        status, _ = await site.get("/login")
        assert status == 200
        await site.post("/login", {"email": "parent@example.org", "password": "plum orchard lantern"})
        status, page = await site.get("/account")
        assert status == 200 and "parent@example.org" in page
    # The pipeline's own reads: circles and watches for the stream.
    assert {c.subscriber_id for c in subscriber_store.active_circles(engine)} >= {other}
    assert (other, "MO-W2") in set(subscriber_store.active_watches(engine))


def test_every_start_on_a_current_database_changes_nothing(engine: Engine) -> None:
    sub = subscriber_store.upsert_subscriber(engine, imported("kept@example.org", offenders=("MO-1",)))
    before = every_row(engine)
    ensure_ready(engine, upgrade_on_start=False)
    ensure_ready(engine, upgrade_on_start=True)
    again = upgrade(engine)
    assert again.before == again.after == schema_migrations.head_revision() and not again.stamped
    assert every_row(engine) == before and before["subscribers"]
    assert list(subscriber_store.active_watches(engine)) == [(sub.subscriber_id, "MO-1")]


def test_an_empty_database_is_refused_unless_it_upgrades_itself(engine: Engine) -> None:
    drop_everything(engine)
    with pytest.raises(SchemaOutOfStep, match=r"no tables yet: run `sor-notify db upgrade`"):
        ensure_ready(engine, upgrade_on_start=False)
    assert inspect(engine).get_table_names() == []  # refusing changed nothing
    ensure_ready(engine, upgrade_on_start=True)
    assert schema_migrations.schema_state(engine).kind == "current"


def test_a_database_upgraded_by_a_newer_release_is_refused_and_left_alone(engine: Engine) -> None:
    subscriber_store.upsert_subscriber(engine, imported("kept@example.org"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999_from_a_newer_release'"))
    before = every_row(engine)
    try:
        for auto in (False, True):
            with pytest.raises(
                SchemaOutOfStep,
                match=r"at revision 0999_from_a_newer_release, which this "
                r"release does not know .*a newer release upgraded it",
            ):
                ensure_ready(engine, upgrade_on_start=auto)
        with pytest.raises(SchemaOutOfStep, match="newer release"):
            upgrade(engine)
        assert every_row(engine) == before
    finally:
        drop_everything(engine)  # the next test's database is this release's


# A revision after the head, in a copy of the script directory: the way the next release's
# first change will arrive. On SQLite it rebuilds `subscribers` (batch mode), the table every
# other table points at: the rebuild must not cascade into their rows.
NEXT = textwrap.dedent('''
    """Test only: a column on subscribers."""
    import sqlalchemy as sa
    from alembic import op

    revision = "0900_test_next"
    down_revision = "{head}"
    branch_labels = None
    depends_on = None


    def upgrade():
        with op.batch_alter_table("subscribers") as batch_op:
            batch_op.add_column(sa.Column("test_note", sa.String(20), nullable=False, server_default="none"))


    def downgrade():
        with op.batch_alter_table("subscribers") as batch_op:
            batch_op.drop_column("test_note")
''')


@pytest.fixture
def next_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    scripts = tmp_path / "migrations"
    shutil.copytree(schema_migrations.SCRIPT_LOCATION, scripts)
    head = schema_migrations.head_revision()
    (scripts / "versions" / "0900_test_next.py").write_text(NEXT.format(head=head))
    monkeypatch.setattr(schema_migrations, "SCRIPT_LOCATION", str(scripts))
    return head


async def test_a_database_behind_the_code_is_refused_then_upgraded_losing_nothing(
    engine: Engine, smtp_server: Any, next_release: str
) -> None:
    _, port = smtp_server
    drop_everything(engine)
    try:
        await _behind_then_upgraded(engine, port, next_release)
    finally:
        drop_everything(engine)  # the next test's database is this release's, not the test's


async def _behind_then_upgraded(engine: Engine, port: int, next_release: str) -> None:
    upgrade(engine, next_release)
    await fill_through_the_product(engine, port)
    before = every_row(engine)

    with pytest.raises(
        SchemaOutOfStep,
        match=rf"at revision {next_release}, this release needs "
        r"0900_test_next: run `sor-notify db upgrade`",
    ):
        ensure_ready(engine, upgrade_on_start=False)
    assert every_row(engine) == before

    done = upgrade(engine)
    assert (done.before, done.after, done.stamped) == (next_release, "0900_test_next", False)
    after = every_row(engine)
    for table, rows in before.items():
        assert len(after[table]) == len(rows), table  # nothing cascaded away in the rebuild
        if table != "subscribers":
            assert after[table] == rows, table
    with engine.connect() as conn:
        notes = conn.execute(text("SELECT test_note FROM subscribers")).scalars().all()
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on after
    assert notes and set(notes) == {"none"}
    ensure_ready(engine, upgrade_on_start=False)


async def test_the_embedded_sqlite_upgrades_itself_and_keeps_a_copy_of_the_file_as_it_was(
    engine: Engine, smtp_server: Any, next_release: str, tmp_path: Path
) -> None:
    from streams.bootstrap import upgrades_on_start
    from streams.settings import load_settings

    url = engine.url.render_as_string(hide_password=False)
    on_start = upgrades_on_start(load_settings({"SOR_DATABASE_URL": url, "SOR_DATA_DIR": str(tmp_path)}))
    if engine.dialect.name != "sqlite":
        assert not on_start  # PostgreSQL is upgraded on purpose, never by a start
        with pytest.raises(SchemaOutOfStep, match="run `sor-notify db upgrade`"):
            ensure_ready(engine, upgrade_on_start=on_start)
        assert schema_migrations.schema_state(engine).kind == "behind"
        return
    assert on_start
    _, port = smtp_server
    drop_everything(engine)
    upgrade(engine, next_release)
    await fill_through_the_product(engine, port)
    before = every_row(engine)

    ensure_ready(engine, upgrade_on_start=on_start)

    assert schema_migrations.schema_state(engine).kind == "current"
    assert len(every_row(engine)["subscribers"]) == len(before["subscribers"])
    path = Path(engine.url.database or "")
    [copy] = path.parent.glob(f"{path.name}.before-upgrade-from-*")
    assert copy.name.endswith(next_release)
    kept = make_engine(f"sqlite:///{copy}")
    try:
        assert every_row(kept) == before
        assert schema_migrations.schema_state(kept).current == next_release
    finally:
        kept.dispose()


def test_after_the_upgrade_a_freed_id_is_never_given_out_again(engine: Engine) -> None:
    """Issue 15, hole 2: SQLite gave the highest freed id to the next row, so a deleted
    subscriber's links and circles named the next person; the upgrade ends that."""
    drop_everything(engine)
    try:
        upgrade(engine, BASELINE)
        upgrade(engine)
        for email in ("a@example.org", "b@example.org"):
            subscriber_store.upsert_subscriber(engine, imported(email, addresses=(imported_address(),)))
        with engine.begin() as conn:
            top = conn.execute(text("SELECT max(id) FROM subscribers")).scalar_one()
            top_address = conn.execute(text("SELECT max(id) FROM tracked_addresses")).scalar_one()
            conn.execute(text("DELETE FROM subscribers WHERE id = :i"), {"i": top})
        later = subscriber_store.upsert_subscriber(
            engine, imported("c@example.org", addresses=(imported_address(),))
        )
        assert later.subscriber_id > top
        assert later.circles[0].circle_id > top_address
    finally:
        drop_everything(engine)


def test_a_downgrade_names_what_it_cannot_do_and_changes_nothing(engine: Engine) -> None:
    subscriber_store.upsert_subscriber(engine, imported("kept@example.org"))
    before = every_row(engine)
    with pytest.raises(
        SchemaOutOfStep, match=r"no revision '0042_nothing' in this release: `sor-notify db history`"
    ):
        schema_migrations.downgrade(engine, "0042_nothing")
    with pytest.raises(SchemaOutOfStep, match="cannot downgrade to base: .*would drop every table"):
        schema_migrations.downgrade(engine, "base")
    assert every_row(engine) == before
    assert schema_migrations.schema_state(engine).kind == "current"


def test_the_notices_revision_downgrades_only_when_no_notice_waits(engine: Engine) -> None:
    """0004_account_notices: the release before it has nowhere to keep a settings notice not
    yet mailed, so its downgrade refuses (changing nothing) until none waits."""
    from sqlalchemy import delete

    from streams.adapters.settings_notices import record, settings_notices

    sid = subscriber_store.upsert_subscriber(engine, imported("waits@example.org")).subscriber_id
    record(engine, sid, "{}", NOW)
    before = every_row(engine)
    try:
        with pytest.raises(SchemaOutOfStep, match="wait for their notice e-mail"):
            schema_migrations.downgrade(engine, "0003_second_factors")
        assert every_row(engine) == before
        with engine.begin() as conn:
            conn.execute(delete(settings_notices))
        schema_migrations.downgrade(engine, "0003_second_factors")
        assert "settings_notices" not in inspect(engine).get_table_names()
        kept = every_row(engine)["subscribers"]  # less the columns later revisions added
        assert kept == [row[: len(kept[0])] for row in before["subscribers"]]
    finally:
        drop_everything(engine)  # the next test's database is this release's


def test_the_second_factors_revision_goes_back_only_while_nobody_enrolled_a_factor(engine: Engine) -> None:
    """Its downgrade would leave accounts with their password alone, unannounced: it refuses
    while a factor is stored, and once none is, drops its tables and nothing else."""
    from streams.adapters import second_factors_db

    drop_everything(engine)
    upgrade(engine)
    sub = subscriber_store.upsert_subscriber(engine, imported("kept@example.org"))
    second_factors_db.add_totp(engine, sub.subscriber_id, "v1.sealed", "App", 1, ["a" * 64], NOW)
    before = every_row(engine)
    with pytest.raises(SchemaOutOfStep, match="second_factors holds rows"):
        schema_migrations.downgrade(engine, "0002_ids_never_reused")
    assert every_row(engine) == before
    with engine.begin() as conn:
        conn.execute(second_factors_db.recovery_codes.delete())
        conn.execute(second_factors_db.second_factors.delete())
    schema_migrations.downgrade(engine, "0002_ids_never_reused")
    assert not {"second_factors", "recovery_codes", "sign_in_steps"} & set(inspect(engine).get_table_names())
    assert "subscribers" in inspect(engine).get_table_names()
    drop_everything(engine)  # the next test's database is this release's


def test_the_frequency_revision_makes_every_subscriber_daily_and_goes_back_keeping_them(
    engine: Engine,
) -> None:
    """0007_digest_frequency: subscribers from before it get their daily digest as they did;
    its downgrade forgets only the choices (the older release mails everyone daily)."""
    from streams.adapters import tracking_db
    from streams.domain.digest_schedule import DAILY_SCHEDULE, Schedule

    drop_everything(engine)
    try:
        upgrade(engine, "0006_surge")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO subscribers (email, confirmed, status, created_at, mail_bounces)"
                    " VALUES ('before@example.org', true, 'active', :t, 0)"
                ),
                {"t": NOW},
            )
        before = every_row(engine)["subscribers"]
        upgrade(engine)
        assert differences(engine) == []
        with engine.connect() as conn:
            [(sid, frequency, weekday)] = conn.execute(
                text("SELECT id, digest_frequency, digest_weekday FROM subscribers")
            ).all()
        assert (frequency, weekday) == ("daily", None)
        assert tracking_db.schedule(engine, sid) == DAILY_SCHEDULE
        assert [r[: len(before[0])] for r in every_row(engine)["subscribers"]] == before

        assert tracking_db.set_schedule(engine, sid, Schedule("weekly", 2)) == DAILY_SCHEDULE
        assert tracking_db.schedule(engine, sid) == Schedule("weekly", 2)
        schema_migrations.downgrade(engine, "0006_surge")
        columns = {c["name"] for c in inspect(engine).get_columns("subscribers")}
        assert not {"digest_frequency", "digest_weekday"} & columns
        assert every_row(engine)["subscribers"] == before
        upgrade(engine)
        assert tracking_db.schedule(engine, sid) == DAILY_SCHEDULE
    finally:
        drop_everything(engine)  # the next test's database is this release's
