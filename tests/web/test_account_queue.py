"""The forms that mail a link (/forgot, /delete) or enroll do nothing on the request path that
depends on the address: the same database statements, no e-mail rendered, for an enrolled
address as for an unknown one. The work happens after the answer, in the site's background
task, and the e-mail still arrives (for the enrolled address only)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog.testing
from sqlalchemy import event

from streams.web.account_mail import mail_sent
from streams.web.account_requests import AccountRequest
from streams.web.account_work import AccountWork
from tests.web.conftest import add_subscriber, open_site, work_of
from tests.web.test_account import PW, link_in

KNOWN, UNKNOWN = "known@example.org", "unknown@example.org"


@contextmanager
def statements(engine: Any) -> Iterator[list[str]]:
    """The SQL the engine runs meanwhile (texts, not values)."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


FORMS = {
    "/forgot": lambda email: {"email": email},
    "/delete": lambda email: {"email": email},
    "/enroll": lambda email: {"email": email, "email2": email, "password": PW, "password2": PW},
}


async def test_the_forms_do_the_same_work_for_an_enrolled_and_an_unknown_address(
    engine, smtp_server, tmp_path: Path
) -> None:
    """Equal statement lists (and no e-mail built) on the request path: what made an enrolled
    address 1-2 ms slower, the link's insert and the e-mail's rendering, is not there."""
    catcher, port = smtp_server
    add_subscriber(engine, KNOWN)
    async with open_site(engine, port, catcher, tmp_path, account_work=False) as site:
        for path, form in FORMS.items():
            await site.get(path)
            with statements(engine) as known:
                known_answer = await site.post(path, form(KNOWN))
            with statements(engine) as unknown:
                unknown_answer = await site.post(path, form(UNKNOWN))
            assert known_answer[0] == unknown_answer[0] == 200, path
            assert known == unknown, path
            assert not [s for s in known if s.lstrip().upper().startswith("INSERT")], path
        await mail_sent()
        assert catcher.messages == []  # nothing rendered or sent while answering

        await work_of(site).drain()  # what the background task does after the answers
        await mail_sent()
    to_known = [m for m in catcher.messages if m["To"] == KNOWN]
    to_unknown = [m for m in catcher.messages if m["To"] == UNKNOWN]
    assert [m["Subject"] for m in to_known] == [
        "Choose a new password for registry e-mail alerts",
        "Confirm deleting your registry e-mail alerts enrollment",
        "Someone tried to enroll this address in registry e-mail alerts",
    ]
    assert link_in(to_known[0], "/reset/") and link_in(to_known[1], "/delete/confirm/")
    # The unknown address gets no link to reset or delete; its enrollment, its confirmation.
    assert [m["Subject"] for m in to_unknown] == ["Confirm your e-mail address for registry e-mail alerts"]


async def test_the_mail_still_arrives_from_the_running_site(site, engine) -> None:
    add_subscriber(engine, KNOWN)
    await site.get("/forgot")
    await site.post("/forgot", {"email": KNOWN})
    await site.post("/forgot", {"email": UNKNOWN})
    await work_of(site).idle()
    await mail_sent()
    [msg] = site.mail.messages
    assert msg["To"] == KNOWN and link_in(msg, "/reset/")


async def test_a_full_queue_drops_a_request_with_a_log_line_that_names_no_address() -> None:
    done: list[str] = []

    async def carry_out(req: AccountRequest, now: datetime) -> None:
        done.append(req.email)

    async def no_notices(at: datetime) -> int:
        return 0

    work = AccountWork(carry_out, no_notices, lambda: datetime.now(UTC), size=1)
    with structlog.testing.capture_logs() as logs:
        assert work.offer(AccountRequest("reset", "first@example.org"))
        assert not work.offer(AccountRequest("reset", "second@example.org"))
    await work.drain()
    assert done == ["first@example.org"]
    [dropped] = [e for e in logs if "dropped" in e["event"]]
    assert dropped["kind"] == "reset" and "example.org" not in repr(logs)
