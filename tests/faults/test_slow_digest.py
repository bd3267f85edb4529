"""A digest run stuck on a mail server that does not answer never holds up matching."""

from __future__ import annotations

import asyncio
import email
import email.policy
import random
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from streams.adapters.broker import free_port
from streams.adapters.db import make_engine
from tests.counts import report
from tests.faults.oracle import reference_day, wait_for_alerts, wait_for_circles, workload
from tests.faults.test_broker_and_database import _publish, _start


class StallingHandler:
    """Takes the envelope, then sits on DATA until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.stalled = threading.Event()
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        self.stalled.set()
        while not self.release.is_set():
            await asyncio.sleep(0.05)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


# Which database holds the alerts does not matter here: one run, on SQLite.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stalled_digest_run_does_not_stall_matching(system) -> None:
    rng = random.Random(13)
    subscribers, baseline, waves = workload(rng, 20, 60, 2)
    handler = StallingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        # The day's digest falls due in one to two minutes, on the worker that leads: time
        # enough to start and to record the first wave's alerts before it.
        due = datetime.now(ZoneInfo("America/Chicago")) + timedelta(minutes=2)
        system.env |= {
            "SOR_SMTP_PORT": str(port),
            "SOR_DIGEST_TIME": due.strftime("%H:%M"),
            "SOR_TIMEZONE": "America/Chicago",
        }
        _start(system, subscribers, baseline, 60)
        engine = make_engine(system.env["SOR_DATABASE_URL"])
        expected_first = reference_day(subscribers, baseline, waves[:1]).alerts()
        expected_all = reference_day(subscribers, baseline, waves).alerts()
        wait_for_circles(system, subscribers)
        assert _publish(system, "w0.jsonl", waves[0]).wait(120) == 0
        assert wait_for_alerts(system, engine, expected_first) == expected_first

        # The digest run starts and hangs on the first message.
        assert handler.stalled.wait(150), "the daily digest never started"
        assert _publish(system, "w1.jsonl", waves[1]).wait(120) == 0
        started = time.monotonic()
        recorded = wait_for_alerts(system, engine, expected_all, stall_s=30)
        still_stalled = not handler.release.is_set() and not handler.messages
        report(
            f"stalled digest: alerts matched while the mail server sat on DATA="
            f"{(recorded - expected_first).total()} of {(expected_all - expected_first).total()} "
            f"in {time.monotonic() - started:.1f}s"
        )
        assert recorded == expected_all and still_stalled

        handler.release.set()
        deadline = time.monotonic() + 60
        while not handler.messages and time.monotonic() < deadline:
            time.sleep(0.2)
        assert handler.messages, "the stalled digest was never delivered"
        engine.dispose()
    finally:
        handler.release.set()
        controller.stop()
