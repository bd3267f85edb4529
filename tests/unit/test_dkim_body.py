"""The signer's shortcut for plain bodies canonicalises exactly as dkimpy (and so every receiver) does."""

from __future__ import annotations

from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import strategies as st

from streams.adapters.dkim_signing import relaxed_body

LINE = st.text(alphabet=st.sampled_from(["a", "b", " ", "\t", "=", "."]), max_size=12)
SPACED = st.text(alphabet=st.sampled_from(["a", "b", " ", "=", "."]), max_size=16)  # no tab: the shortcut


@given(st.lists(LINE, max_size=8), st.booleans())
def test_relaxed_body_is_dkimpys(lines: list[str], final_newline: bool) -> None:
    body = "\r\n".join(lines) + ("\r\n" if final_newline else "")
    raw = body.encode("ascii")
    assert relaxed_body(raw) == Relaxed.canonicalize_body(raw)


@given(st.lists(SPACED, max_size=8), st.booleans())
def test_the_shortcut_for_bodies_without_tabs_is_dkimpys(lines: list[str], final_newline: bool) -> None:
    raw = ("\r\n".join(lines) + ("\r\n" if final_newline else "")).encode("ascii")
    assert relaxed_body(raw) == Relaxed.canonicalize_body(raw)


def test_a_template_body_takes_the_shortcut_and_keeps_its_text() -> None:
    body = b"Ray Abbott moved in\r\n800 Olive St, St. Louis\r\n\r\n\r\n"
    assert relaxed_body(body) == b"Ray Abbott moved in\r\n800 Olive St, St. Louis\r\n"
