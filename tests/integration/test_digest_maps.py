"""A digest's HTML part shows a map picture per tracked address with changes; its text part and
"registry as of" line are what a reader of either part sees, on a real database and SMTP server."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image
from sqlalchemy import insert

from streams.adapters import repository
from streams.adapters.db import registry_event_ids
from streams.adapters.mail import SmtpSender
from streams.adapters.map_images import MapCache
from streams.adapters.rendering import DigestMap, render_digest_bytes
from streams.domain.digest import build_digest
from streams.services.digests import send_due_digests
from tests.integration.conftest import imported_address, offender_state, proximity_alert, watch_alert

PUBLIC = "https://notify.example.test"
FROM = "Registry Notifications <no-reply@notify.example.test>"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


async def run(engine: Any, port: int, **kw: Any) -> Any:
    sender = SmtpSender("127.0.0.1", port, starttls=False, username=None, password=None, timeout=5)
    return await send_due_digests(
        engine,
        sender,
        period="2026-11-20",
        from_addr=FROM,
        public_url=PUBLIC,
        unsubscribe_url_for=lambda sid, key: f"{PUBLIC}/unsubscribe/{sid}.{key}.sig",
        now=NOW,
        lanes=2,
        **kw,
    )


def structure(msg: EmailMessage) -> list[Any]:
    """The MIME tree as nested lists of content types."""
    if msg.is_multipart():
        return [msg.get_content_type(), [structure(p) for p in msg.iter_parts()]]  # type: ignore[arg-type]
    return msg.get_content_type()  # type: ignore[return-value]


def images_by_cid(msg: EmailMessage) -> dict[str, EmailMessage]:
    return {p["Content-ID"].strip("<>"): p for p in msg.walk() if p.get_content_type() == "image/png"}


def html_of(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("html",)).get_content()


def text_of(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def applied(engine: Any, when: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(registry_event_ids).values(
                event_id="ev-1", offender_id="OFF-1", revision=1, content_digest="0" * 64, applied_at=when
            )
        )


async def test_each_tracked_address_with_changes_gets_its_picture_in_a_related_part(
    engine, subscribe, smtp_server
) -> None:
    catcher, port = smtp_server
    change = subscribe(
        "parent@example.org",
        addresses=(
            imported_address("Home"),
            imported_address(
                "School run", street="5600 Clayton Ave", zip_="63110", radius="2mi", at=(38.645, -90.215)
            ),
        ),
    )
    home, school = (c.circle_id for c in change.circles)
    repository.save_offender_state(engine, offender_state("OFF-1", 2, first="Ray", last="Abbott"))
    sid = change.subscriber_id
    repository.record_alerts(
        engine,
        [
            proximity_alert(sid, home, "OFF-1", "Ray Abbott", "800 Olive St"),
            proximity_alert(
                sid, school, "OFF-1", "Ray Abbott", "800 Olive St", label="School run", distance=3000
            ),
        ],
    )
    applied(engine, datetime(2026, 11, 20, 11, 45, tzinfo=UTC))

    assert (await run(engine, port, zone=ZoneInfo("America/Chicago"))).sent == 1

    [msg] = catcher.messages
    assert structure(msg) == [
        "multipart/alternative",
        ["text/plain", ["multipart/related", ["text/html", "image/png", "image/png"]]],
    ]
    html, images = html_of(msg), images_by_cid(msg)
    cids = re.findall(r'<img src="cid:([^"]+)"', html)
    assert len(cids) == 2 and set(cids) == set(images)  # every picture shown, every one attached
    for part in images.values():
        picture = Image.open(io.BytesIO(part.get_content()))
        assert (picture.format, picture.size) == ("PNG", (960, 640))  # 480x320 CSS px, twice as dense
        assert part.get_content_disposition() == "inline"
    alts = re.findall(r'<img src="cid:[^"]+" width="480" height="320" alt="([^"]+)"', html)
    assert alts == [
        "Map of the 1-mile circle around Home with 1 offender&#39;s address (moved in: 1 home),"
        " over state and county lines",
        "Map of the 2-mile circle around School run with 1 offender&#39;s address (moved in: 1 home),"
        " over state and county lines",
    ]
    # Registry as of, in the digest's zone (Central: 11:45 UTC is 5:45 AM CST), in both parts.
    as_of = "Registry data as of November 20, 2026, 5:45 AM CST."
    assert as_of in text_of(msg).splitlines() and as_of in html
    # For the browser test: the HTML part with its pictures as files beside it.
    ARTIFACTS.mkdir(exist_ok=True)
    for n, cid in enumerate(cids):
        name = "digest-map.png" if n == 0 else f"digest-map-{n + 1}.png"
        (ARTIFACTS / name).write_bytes(images[cid].get_content())
        html = html.replace(f"cid:{cid}", name)
    (ARTIFACTS / "digest-map.html").write_text(html)


def test_the_text_part_is_the_same_bytes_with_or_without_pictures() -> None:
    digest = build_digest(7, [proximity_alert(7, 70, "OFF-1", "Ray Abbott", "800 Olive St")])
    assert digest is not None
    fields: dict[str, Any] = dict(
        to_addr="reader@example.org",
        from_addr=FROM,
        public_url=PUBLIC,
        unsubscribe_url=f"{PUBLIC}/unsubscribe/t.sig",
        message_id="<digest-1.abc@notify.example.test>",
        period="2026-11-20",
        date=NOW,
    )
    picture = DigestMap(70, "map-1@sor-notify", "Map of the circle", b"\x89PNG not really")
    plain = message_from_bytes(render_digest_bytes(digest, **fields), policy=default)
    pictured = message_from_bytes(render_digest_bytes(digest, maps=[picture], **fields), policy=default)
    assert structure(plain) == ["multipart/alternative", ["text/plain", "text/html"]]
    assert structure(pictured)[1][1] == ["multipart/related", ["text/html", "image/png"]]

    def text_bytes(msg: EmailMessage) -> bytes:
        return msg.get_body(preferencelist=("plain",)).get_payload(decode=True)

    assert text_bytes(plain) == text_bytes(pictured)
    # Without a registry event applied yet, the digest says so rather than inventing a date.
    assert "Registry data as of: not known yet (no registry update has been received)." in text_of(plain)


async def test_a_digest_of_tracked_offenders_only_has_no_picture(engine, subscribe, smtp_server) -> None:
    catcher, port = smtp_server
    change = subscribe("parent@example.org", offenders=("OFF-W",))
    repository.save_offender_state(engine, offender_state("OFF-W", 2, first="Sam", last="Watts"))
    repository.record_alerts(
        engine,
        [
            watch_alert(
                change.subscriber_id, "OFF-W", "Sam Watts", ["400 S Campbell Ave"], ["2200 N Glenstone Ave"]
            )
        ],
    )
    assert (await run(engine, port)).sent == 1
    [msg] = catcher.messages
    assert structure(msg) == ["multipart/alternative", ["text/plain", "text/html"]]
    assert "<img" not in html_of(msg)


async def test_the_same_map_is_drawn_once_a_run_however_many_digests_show_it(
    engine, subscribe, smtp_server
) -> None:
    catcher, port = smtp_server
    repository.save_offender_state(engine, offender_state("OFF-1", 2, first="Ray", last="Abbott"))
    for n in range(3):  # three neighbours tracking the same corner, told of the same offender
        change = subscribe(f"n{n}@example.org")
        repository.record_alerts(
            engine,
            [
                proximity_alert(
                    change.subscriber_id, change.circles[0].circle_id, "OFF-1", "Ray Abbott", "800 Olive St"
                )
            ],
        )
    cache = MapCache()
    assert (await run(engine, port, map_cache=cache)).sent == 3
    assert cache.renders == 1
    pictures = {p.get_content() for m in catcher.messages for p in images_by_cid(m).values()}
    assert len(pictures) == 1
