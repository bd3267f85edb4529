"""The system of record: subscribers, offender states and pending alerts, on a real database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, inspect, select, update
from sqlalchemy.engine import Engine

from streams.adapters import digest_store, repository, subscriber_store
from streams.adapters.db import digests, pending_alerts, subscribers
from streams.adapters.schema_migrations import ensure_ready, upgrade
from streams.adapters.search_index import SearchIndex
from streams.domain.model import Circle
from streams.domain.radii import radius_m
from tests.integration.conftest import (
    imported,
    imported_address,
    offender_state,
    proximity_alert,
    watch_alert,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _now() -> datetime:
    return NOW


def test_schema_creation_is_idempotent(engine: Engine) -> None:
    """Every start checks the schema again, and an upgrade at head changes nothing: the tables
    and what is in them stay."""
    tables_before = set(inspect(engine).get_table_names())
    sub = subscriber_store.upsert_subscriber(engine, imported("kept@example.org", offenders=("MO-1",)))
    alert = proximity_alert(sub.subscriber_id, sub.circles[0].circle_id, "MO-1", "Ray Abbott", "800 Olive St")
    assert repository.record_alerts(engine, [alert]) == 1

    ensure_ready(engine, upgrade_on_start=True)
    ensure_ready(engine, upgrade_on_start=False)
    assert upgrade(engine).before == upgrade(engine).after

    assert set(inspect(engine).get_table_names()) == tables_before
    assert {"subscribers", "pending_alerts"} <= tables_before
    with engine.connect() as conn:
        assert conn.execute(select(subscribers.c.email)).scalars().all() == ["kept@example.org"]
    assert list(subscriber_store.active_circles(engine)) == sub.circles
    assert list(subscriber_store.active_watches(engine)) == [(sub.subscriber_id, "MO-1")]
    assert repository.count_pending_alerts(engine) == 1
    # The alert is still known: recording it again adds nothing.
    assert repository.record_alerts(engine, [alert]) == 0


def test_new_subscriber_gets_circles_and_watches(engine: Engine) -> None:
    change = subscriber_store.upsert_subscriber(
        engine,
        imported(
            "Parent@Example.ORG",
            addresses=(imported_address("Home", radius="0.5mi"),),
            offenders=("MO-1", "MO-2", "MO-1"),
        ),
    )
    with engine.connect() as conn:
        assert conn.execute(select(subscribers.c.email)).scalars().all() == ["parent@example.org"]
    [circle] = change.circles
    assert circle == Circle(
        circle_id=circle.circle_id,
        subscriber_id=change.subscriber_id,
        label="Home",
        one_line="1 Market St, St. Louis, MO 63101",
        lat=38.6270,
        lon=-90.1994,
        radius_m=radius_m("0.5mi"),
        radius_code="0.5mi",
    )
    assert change.watches == ["MO-1", "MO-2"]
    assert change.removed_circles == [] and change.removed_watches == []
    assert list(subscriber_store.active_circles(engine)) == [circle]
    assert list(subscriber_store.active_watches(engine)) == [
        (change.subscriber_id, "MO-1"),
        (change.subscriber_id, "MO-2"),
    ]


def test_reimport_replaces_addresses_and_watches_and_reports_withdrawals(engine: Engine) -> None:
    home, school = (
        imported_address("Home"),
        imported_address("School", street="5600 Clayton Ave", zip_="63110"),
    )
    first = subscriber_store.upsert_subscriber(
        engine, imported("a@example.org", addresses=(home, school), offenders=("MO-1", "MO-2"))
    )
    same = subscriber_store.upsert_subscriber(
        engine, imported("A@example.org", addresses=(home, school), offenders=("MO-1", "MO-2"))
    )
    # Unchanged: the same ids, nothing withdrawn.
    assert same.subscriber_id == first.subscriber_id
    assert same.circles == first.circles and same.removed_circles == [] and same.removed_watches == []

    work = imported_address("Work", street="201 W Capitol Ave", city="Jefferson City", zip_="65101")
    change = subscriber_store.upsert_subscriber(
        engine, imported("a@example.org", addresses=(home, work), offenders=("MO-2", "MO-3"))
    )
    assert change.subscriber_id == first.subscriber_id
    assert [c.label for c in change.circles] == ["Home", "Work"]
    assert change.circles[0] == first.circles[0]
    assert change.removed_circles == [first.circles[1]]
    assert change.removed_circle_ids == [first.circles[1].circle_id]
    assert change.watches == ["MO-2", "MO-3"] and change.removed_watches == ["MO-1"]
    assert sorted(c.label for c in subscriber_store.active_circles(engine)) == ["Home", "Work"]
    assert sorted(o for _, o in subscriber_store.active_watches(engine)) == ["MO-2", "MO-3"]


def test_only_confirmed_active_subscribers_are_resynced(engine: Engine) -> None:
    ok = subscriber_store.upsert_subscriber(engine, imported("ok@example.org", offenders=("MO-1",)))
    subscriber_store.upsert_subscriber(
        engine, imported("pending@example.org", confirmed=False, offenders=("MO-1",))
    )
    gone = subscriber_store.upsert_subscriber(engine, imported("gone@example.org", offenders=("MO-1",)))
    with engine.begin() as conn:
        conn.execute(
            update(subscribers).where(subscribers.c.id == gone.subscriber_id).values(status="unsubscribed")
        )
    assert {c.subscriber_id for c in subscriber_store.active_circles(engine)} == {ok.subscriber_id}
    assert list(subscriber_store.active_watches(engine)) == [(ok.subscriber_id, "MO-1")]
    # Re-importing somebody who unsubscribed does not bring them back.
    again = subscriber_store.upsert_subscriber(engine, imported("gone@example.org", offenders=("MO-1",)))
    assert again.circles == [] and again.watches == []
    assert [c.circle_id for c in again.removed_circles] == [c.circle_id for c in gone.circles]
    assert again.removed_watches == ["MO-1"]


def test_offender_state_only_moves_forward(engine: Engine) -> None:
    assert repository.get_offender_state(engine, "MO-1") is None
    assert repository.save_offender_state(engine, offender_state("MO-1", 2)) is True
    assert repository.save_offender_state(engine, offender_state("MO-1", 1, first="Old")) is False
    assert repository.save_offender_state(engine, offender_state("MO-1", 2, first="Same")) is False
    stored = repository.get_offender_state(engine, "MO-1")
    assert stored == offender_state("MO-1", 2)
    assert repository.save_offender_state(engine, offender_state("MO-1", 3, removed=True)) is True
    repository.save_offender_state(engine, offender_state("MO-2", 1))
    states = list(repository.all_offender_states(engine))
    assert [(s.offender_id, s.revision, s.removed) for s in states] == [("MO-1", 3, True), ("MO-2", 1, False)]


def test_a_batch_of_offender_states_is_stored_at_once_and_only_moves_forward(engine: Engine) -> None:
    repository.save_offender_state(engine, offender_state("MO-1", 5))
    written = repository.save_offender_states(
        engine,
        [
            offender_state("MO-1", 4, first="Older"),  # a redelivered, older state: kept out
            offender_state("MO-2", 2, first="Bea"),
            offender_state("MO-2", 1),  # two revisions of one offender in a batch: the higher one
            offender_state("MO-3", 7, first="Ann"),
        ],
    )
    assert written == 2
    assert repository.get_offender_state(engine, "MO-2") == offender_state("MO-2", 2, first="Bea")
    assert repository.get_offender_state(engine, "MO-1") == offender_state("MO-1", 5)
    assert repository.get_offender_state(engine, "MO-3") == offender_state("MO-3", 7, first="Ann")
    # What the worker reads for offenders its table lacks: those stored, by id.
    found = repository.get_offender_states(engine, ["MO-3", "MO-404", "MO-1"])
    assert found == {"MO-1": offender_state("MO-1", 5), "MO-3": offender_state("MO-3", 7, first="Ann")}
    # And the search finds what was stored in the batch.
    index = SearchIndex()
    index.load(engine)
    assert [h.record.offender_id for h in index.search(first_name="Ann").hits] == ["MO-3"]


def test_the_longest_offender_id_and_the_highest_revision_the_contract_allows_are_stored(
    engine: Engine,
) -> None:
    oid = "MO-" + "9" * 97  # schemas/registry-event.schema.json: up to 100 characters
    top = 2**63 - 1  # ...and revisions up to 2^63 - 1
    assert repository.save_offender_state(engine, offender_state(oid, top)) is True
    stored = repository.get_offender_state(engine, oid)
    assert stored is not None and (stored.offender_id, stored.revision) == (oid, top)


def test_record_alerts_is_idempotent(engine: Engine) -> None:
    sub = subscriber_store.upsert_subscriber(engine, imported("a@example.org"))
    tid = sub.circles[0].circle_id
    a1 = proximity_alert(sub.subscriber_id, tid, "MO-1", "Ray Abbott", "800 Olive St")
    a2 = proximity_alert(sub.subscriber_id, tid, "MO-2", "Lee Outlaw", "20 Near St", kind="moved_out")
    assert repository.record_alerts(engine, []) == 0
    assert repository.record_alerts(engine, [a1, a1]) == 1
    assert repository.record_alerts(engine, [a1, a2]) == 1
    assert repository.record_alerts(engine, [a2, a1]) == 0
    assert repository.count_pending_alerts(engine) == 2
    with engine.connect() as conn:
        payloads = conn.execute(
            select(pending_alerts.c.payload).order_by(pending_alerts.c.offender_id)
        ).scalars()
        assert [p["offender_id"] for p in payloads] == ["MO-1", "MO-2"]


def test_record_alerts_takes_thousands_at_once(engine: Engine) -> None:
    # How fast: `python -m bench.record_alerts` (bench/README.md), not a bound here.
    sub = subscriber_store.upsert_subscriber(engine, imported("a@example.org"))
    tid = sub.circles[0].circle_id
    alerts = [proximity_alert(sub.subscriber_id, tid, f"MO-{i}", "X Y", f"{i} Olive St") for i in range(5000)]
    assert repository.record_alerts(engine, alerts) == 5000
    assert repository.record_alerts(engine, alerts[:2500] + alerts[:10]) == 0
    assert repository.count_pending_alerts(engine) == 5000


def test_purge_drops_unsent_alerts_of_an_offender(engine: Engine) -> None:
    sub = subscriber_store.upsert_subscriber(engine, imported("a@example.org", offenders=("MO-R",)))
    sid, tid = sub.subscriber_id, sub.circles[0].circle_id
    already_sent = proximity_alert(sid, tid, "MO-R", "Ron Removed", "40 Near St")
    repository.record_alerts(engine, [already_sent])
    digest_id = digest_store.claim_digest(engine, sid, "2026-11-19", now=_now(), message_domain="x.test")
    assert digest_id is not None
    digest_store.mark_digest_sent(engine, digest_id, now=_now(), message_id="<m@x.test>")

    pending = proximity_alert(sid, tid, "MO-R", "Ron Removed", "41 Near St")
    farewell = watch_alert(sid, "MO-R", "Ron Removed", ["40 Near St"], [], removed=True)
    other = proximity_alert(sid, tid, "MO-1", "Ray Abbott", "800 Olive St")
    repository.record_alerts(engine, [pending, farewell, other])
    repository.save_offender_state(engine, offender_state("MO-R", 2, removed=True))

    assert repository.purge_offender_alerts(engine, "MO-R") == 1
    with engine.connect() as conn:
        left = set(conn.execute(select(pending_alerts.c.alert_id)).scalars())
    # The sent one stays as history; the watcher still hears that the offender left the registry.
    assert left == {already_sent.alert_id, farewell.alert_id, other.alert_id}

    # A juvenile flag leaves nothing unsent at all.
    repository.save_offender_state(engine, offender_state("MO-R", 3, juvenile=True))
    assert repository.purge_offender_alerts(engine, "MO-R") == 1
    assert repository.purge_offender_alerts(engine, "MO-R") == 0


def test_a_period_can_be_claimed_once(engine: Engine) -> None:
    sub = subscriber_store.upsert_subscriber(engine, imported("a@example.org"))
    sid, tid = sub.subscriber_id, sub.circles[0].circle_id
    repository.record_alerts(engine, [proximity_alert(sid, tid, "MO-1", "Ray Abbott", "800 Olive St")])
    first = digest_store.claim_digest(engine, sid, "2026-11-20", now=_now(), message_domain="x.test")
    assert first is not None
    assert digest_store.claim_digest(engine, sid, "2026-11-20", now=_now(), message_domain="x.test") is None
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(digests)).scalar() == 1
        assert conn.execute(select(digests.c.message_id)).scalar().endswith("@x.test>")
    assert repository.count_pending_alerts(engine) == 0
