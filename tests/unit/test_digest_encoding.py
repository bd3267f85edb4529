"""A digest's parts arrive as written, whatever its registry and subscriber text holds.

Parts are sent as they are (7bit) when that is safe and quoted-printable otherwise; a reader
notices only if a name, an address or a label came out changed, or the message fell apart.
"""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default

import pytest

from streams.adapters.rendering import render_digest_bytes
from streams.domain.digest import build_digest
from tests.integration.conftest import proximity_alert

FIELDS = dict(
    to_addr="reader@example.org",
    from_addr="Registry Notifications <no-reply@notify.example.test>",
    public_url="https://notify.example.test",
    unsubscribe_url="https://notify.example.test/unsubscribe/t.sig",
    message_id="<digest-1.abc@notify.example.test>",
    period="2026-11-20",
)


def parts_of(name: str, street: str, label: str) -> tuple[list[str], list[str]]:
    digest = build_digest(7, [proximity_alert(7, 70, "MO-1", name, street, label=label)])
    assert digest is not None
    msg = message_from_bytes(render_digest_bytes(digest, **FIELDS), policy=default)
    parts = list(msg.iter_parts())
    return [p.get_content_type() for p in parts], [p.get_content() for p in parts]


@pytest.mark.parametrize(
    ("name", "street", "label"),
    [
        ("Pat Case", "800 Olive St", "Home"),  # plain ASCII: sent as it is
        ("José Núñez", "800 Olive St", "Grandma's"),  # non-ASCII: quoted-printable
        # The boundary itself on a line of its own (the registry's text never breaks lines; were it to):
        ("Pat Case\n--=_sor-notify-digest_=--", "800 Olive St", "--=_sor-notify-digest_= x"),
        ("Pat Case", "800 " + "Very Long " * 110 + "St", "Home"),  # a line longer than SMTP allows
        ("Pat = Case", "800 Olive St\tRear", "Home & school <b>"),
    ],
)
def test_every_part_reads_back_with_the_text_it_was_given(name: str, street: str, label: str) -> None:
    types, contents = parts_of(name, street, label)
    assert types == ["text/plain", "text/html"]  # still two parts: nothing broke the structure
    text, html = contents
    assert name in text and label in text and street in text
    escaped = label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")
    assert name in html and escaped in html
    assert "·" in html or "&middot;" in html  # the footer's separator, however it was written


def test_long_lines_and_non_ascii_are_encoded_and_plain_text_is_not() -> None:
    plain = render_digest_bytes(
        build_digest(7, [proximity_alert(7, 70, "MO-1", "Pat Case", "800 Olive St")]), **FIELDS
    )
    accented = render_digest_bytes(
        build_digest(7, [proximity_alert(7, 70, "MO-1", "José", "800 Olive St")]), **FIELDS
    )
    assert plain.count(b"Content-Transfer-Encoding: 7bit") == 2
    assert accented.count(b"Content-Transfer-Encoding: quoted-printable") == 2
    for raw in (plain, accented):
        assert max(len(line) for line in raw.split(b"\n")) <= 998
