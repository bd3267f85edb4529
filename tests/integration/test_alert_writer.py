"""Alert batches stored in bulk (COPY on PostgreSQL): each alert once, exactly as sent."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine

from streams.adapters import repository, subscriber_store
from streams.adapters.alert_writer import record_alert_messages, record_alert_rows
from streams.adapters.db import pending_alerts
from streams.domain.alert_batch import alert_rows, batch_of
from streams.domain.model import Alert
from tests.integration.conftest import imported, proximity_alert


def stored(engine: Engine) -> dict[str, Alert]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                pending_alerts.c.alert_id,
                pending_alerts.c.subscriber_id,
                pending_alerts.c.offender_id,
                pending_alerts.c.kind,
                pending_alerts.c.payload,
            )
        ).all()
    out = {}
    for alert_id, sid, oid, kind, payload in rows:
        alert = Alert(**payload)
        # The columns the digest queries filter on agree with the payload.
        assert (alert.alert_id, alert.subscriber_id, alert.offender_id, alert.kind) == (
            alert_id,
            sid,
            oid,
            kind,
        )
        out[alert_id] = alert
    return out


def alerts_for(engine: Engine, n: int) -> list[Alert]:
    sub = subscriber_store.upsert_subscriber(engine, imported("a@example.org"))
    tid = sub.circles[0].circle_id
    return [proximity_alert(sub.subscriber_id, tid, "MO-7", "Ray Abbott", f"{i} Olive St") for i in range(n)]


def test_a_batch_is_stored_alert_by_alert_as_sent_and_a_second_reading_adds_nothing(engine: Engine) -> None:
    alerts = alerts_for(engine, 300)
    message = batch_of(alerts[:200]).to_dict()  # type: ignore[union-attr]
    assert record_alert_messages(engine, [message]) == (200, 200)
    assert record_alert_messages(engine, [message]) == (200, 0)  # the same message read again
    assert record_alert_rows(engine, alert_rows(message)) == 0
    # One transaction: some already stored, some new, some twice in the same call.
    assert record_alert_rows(engine, [a.to_dict() for a in alerts[150:300] + alerts[290:]]) == 100
    assert stored(engine) == {a.alert_id: a for a in alerts}
    assert repository.count_pending_alerts(engine) == 300


def test_two_writes_in_one_transaction_each_count_only_their_own_new_alerts(engine: Engine) -> None:
    alerts = alerts_for(engine, 20)
    with engine.begin() as conn:
        assert record_alert_rows(conn, [a.to_dict() for a in alerts[:12]]) == 12
        assert record_alert_rows(conn, [a.to_dict() for a in alerts[8:]]) == 8
    assert set(stored(engine)) == {a.alert_id for a in alerts}


def test_a_failed_transaction_stores_none_of_its_alerts(engine: Engine) -> None:
    alerts = alerts_for(engine, 10)
    try:
        with engine.begin() as conn:
            record_alert_rows(conn, [a.to_dict() for a in alerts])
            raise RuntimeError("the worker died before commit")
    except RuntimeError:
        pass
    assert stored(engine) == {}
    assert record_alert_rows(engine, [a.to_dict() for a in alerts]) == 10  # read again, stored then


def test_what_an_alert_shares_with_its_batch_is_stored_with_each_alert_exactly(engine: Engine) -> None:
    alerts = alerts_for(engine, 30)
    odd = [
        Alert(
            **(
                a.to_dict()
                | {
                    "offender": a.offender | {"main_offense": 'Abuse "1st" 100% \\ Ñ'},
                    "tracked_label": None if i % 3 else "50%",
                }
            )
        )
        for i, a in enumerate(alerts)
    ]
    one_alert_message = odd[0].to_dict()
    assert record_alert_messages(engine, [batch_of(odd[1:]).to_dict(), one_alert_message]) == (30, 30)  # type: ignore[union-attr]
    assert stored(engine) == {a.alert_id: a for a in odd}
