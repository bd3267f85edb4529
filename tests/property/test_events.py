"""registry-event/1 under fire: every message is a valid event or a dead letter with a reason."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from streams.adapters.dead_letters import MAX_DETAIL, REASONS, InvalidEvent, dead_letter
from streams.adapters.event_codec import decode_registry_event, encode_registry_event
from streams.adapters.schema_checks import format_checker, load_schema, strict_json_loads
from streams.domain.matching import apply_event
from streams.domain.model import RegistryEvent, digest_online_identifier
from tests.property.hostile import Hostile, Tally, property_settings, schema_events, spoiled

DEAD_LETTER = Draft202012Validator(load_schema("dead-letter.schema.json"), format_checker=format_checker())


def assert_dead_letter(raw: bytes, key: bytes | str | None, err: InvalidEvent, doc: Any = None) -> None:
    """The rejection an operator reads: a known code, one readable sentence, a valid DLQ record
    that keeps the message as it came (its bytes and its key), to be fixed and replayed."""
    assert err.reason in REASONS
    assert err.detail.strip() and len(err.detail) <= MAX_DETAIL
    assert err.detail.isprintable(), err.detail
    record = dead_letter(raw, err, topic="registry-events", partition=0, offset=7, key=key)
    DEAD_LETTER.validate(record)
    json.dumps(record, ensure_ascii=False).encode("utf-8")  # what the DLQ topic carries
    assert record["reason"] == err.reason
    assert base64.b64decode(record["original_b64"], validate=True) == bytes(raw)
    assert record["source"]["key"] == (key.decode("utf-8", "replace") if isinstance(key, bytes) else key)
    for identifier in _identifiers(doc):
        assert identifier not in err.detail


def _identifiers(doc: Any) -> list[str]:
    try:
        ids = doc["offender"]["online_identifiers"]
    except (TypeError, KeyError, IndexError):
        return []
    return [i for i in ids if isinstance(i, str) and len(i.strip()) >= 8] if isinstance(ids, list) else []


def assert_applied_as_sent(ev: RegistryEvent, doc: dict[str, Any]) -> None:
    """An accepted event says what the document said, and the worker can store what follows."""
    assert (ev.event_id, ev.offender_id, ev.revision, ev.kind) == (
        doc["event_id"],
        doc["offender_id"],
        doc["revision"],
        doc["kind"],
    )
    assert ev.baseline == doc.get("baseline", False)
    if doc["kind"] == "upsert":
        p = ev.offender
        assert p is not None
        assert (p.last_name, p.first_name, p.juvenile, p.tier) == (
            doc["offender"]["last_name"],
            doc["offender"]["first_name"],
            doc["offender"]["juvenile"],
            doc["offender"]["tier"],
        )
        assert len(ev.addresses) == len(doc["addresses"])
        assert {
            digest_online_identifier(i) for i in doc["offender"].get("online_identifiers") or () if i.strip()
        } == set(p.online_identifier_digests)
    else:
        assert ev.offender is None and ev.addresses == ()
    outcome = apply_event(None, ev)
    assert outcome.state is not None
    stored = json.dumps(outcome.state.to_dict(), ensure_ascii=False, allow_nan=False)
    stored.encode("utf-8")  # what the database and the table changelog are given
    for identifier in _identifiers(doc):
        if not any(identifier in v for v in _other_strings(doc)):
            assert identifier not in stored


def _other_strings(doc: dict[str, Any]) -> list[str]:
    ids = doc["offender"].get("online_identifiers") or []
    return [v for v in _strings(doc) if v not in ids]


def _strings(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, dict):
        return [s for k, x in v.items() for s in (*_strings(k), *_strings(x))]
    if isinstance(v, list):
        return [s for x in v for s in _strings(x)]
    return []


def test_events_generated_from_the_schema_are_accepted(tally) -> None:
    """The contract, read by hypothesis-jsonschema: whatever it allows, the codec takes, but
    for one rule of its own: no text may hold U+0000, which the schema allows and PostgreSQL
    cannot store (text or JSONB); such an event is dead-lettered as bad_encoding."""
    t: Tally = tally("schema-valid events")

    @property_settings(100)
    @given(schema_events(), st.booleans())
    def run(doc: dict[str, Any], ascii_: bool) -> None:
        raw = json.dumps(doc, ensure_ascii=ascii_).encode("utf-8")
        key = doc["offender_id"].encode("utf-8")
        if any("\x00" in s for s in _strings(doc)):
            with pytest.raises(InvalidEvent) as info:
                decode_registry_event(raw, key)
            assert info.value.reason == "bad_encoding" and "U+0000" in info.value.detail
            assert_dead_letter(raw, key, info.value, doc)
            t.reject("bad_encoding (NUL)")
            return
        assert_applied_as_sent(decode_registry_event(raw, key), doc)
        t.accept()

    run()
    assert t.accepted > 0


def test_spoiled_events_are_dead_lettered_with_a_reason_or_accepted(tally, event_pool) -> None:
    """Valid events spoiled in every way we could think of: never an exception other than the
    codec's rejection, the expected reason where the spoiling settles it, and an accepted
    event always as the document said."""
    t: Tally = tally("spoiled events")

    @property_settings(7_000)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        base = data.draw(st.sampled_from(event_pool), label="base")
        h: Hostile = data.draw(spoiled(base), label="spoiled")
        try:
            ev = decode_registry_event(h.raw, h.key)
        except InvalidEvent as err:
            assert_dead_letter(h.raw, h.key, err, base)
            if h.expect is not None:
                expected = (h.expect,) if isinstance(h.expect, str) else h.expect
                assert err.reason in expected, (h.kind, err.reason, err.detail)
            t.reject(err.reason, h.kind)
        else:
            assert h.expect is None, (h.kind, "accepted", h.raw[:300])
            assert_applied_as_sent(ev, json.loads(h.raw.decode("utf-8").removeprefix("\ufeff")))
            t.accept(h.kind)

    run()
    print("spoiled events by kind:", dict(sorted(t.kinds.items())))
    assert t.tried > 0 and t.rejected and t.accepted
    # Every kind of spoiling was tried.
    from tests.property.hostile import MUTATIONS

    assert set(t.kinds) == set(MUTATIONS)


# What the codec itself refuses a message for; conflicting_duplicate is the workers' verdict on
# a valid event whose id they applied before with other content, never the codec's.
DECODE_REASONS = frozenset(REASONS) - {"conflicting_duplicate"}


@st.composite
def written_anyhow(draw: st.DrawFn, pool: list[dict[str, Any]]) -> tuple[bytes, bytes | str | None]:
    """A valid event, written the way some other JSON writer might (spacing, key order, escapes,
    a BOM), keyed by its offender id (as text or bytes), by nothing, or by something else."""
    doc = draw(st.sampled_from(pool))
    text = json.dumps(
        doc,
        ensure_ascii=draw(st.booleans()),
        sort_keys=draw(st.booleans()),
        indent=draw(st.none() | st.integers(0, 3)),
        separators=draw(st.sampled_from([None, (",", ":"), (" ,\t", " :\n")])),
    )
    pad = st.text(alphabet=" \t\r\n", max_size=3)
    text = draw(st.sampled_from(["", "\ufeff"])) + draw(pad) + text + draw(pad)
    oid = doc["offender_id"]
    key = draw(
        st.sampled_from([None, oid, oid.encode("utf-8")]) | st.binary(max_size=20) | st.text(max_size=20)
    )
    return text.encode("utf-8"), key


def test_arbitrary_messages_are_dead_lettered_with_their_bytes_or_round_trip(tally, event_pool) -> None:
    """No structure at all: bytes, text, and JSON of any shape, with any key; and valid events
    written any way JSON allows. Each message is either refused, with one of the documented
    dead-letter reasons in a dead-letter record that keeps its bytes and key, or accepted: then
    what it said, written again by the codec's own encoder, decodes to the very same event."""
    t: Tally = tally("arbitrary messages")
    json_docs = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
        max_leaves=8,
    )
    raws = st.one_of(
        st.binary(max_size=400),
        st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
        json_docs.map(lambda d: json.dumps(d).encode()),
        json_docs.map(
            lambda d: json.dumps({"schema": "registry-event/1", "kind": "upsert", "x": d}).encode()
        ),
    )
    keys = st.none() | st.binary(max_size=20) | st.text(max_size=20)

    def judge(raw: bytes, key: bytes | str | None) -> None:
        try:
            ev = decode_registry_event(raw, key)
        except InvalidEvent as err:
            assert err.reason in DECODE_REASONS, err.reason
            assert_dead_letter(raw, key, err)
            t.reject(err.reason)
        else:
            doc = strict_json_loads(raw.decode("utf-8").removeprefix("\ufeff"))
            assert_applied_as_sent(ev, doc)
            again = encode_registry_event(doc)
            assert decode_registry_event(again, key) == ev
            assert decode_registry_event(again) == ev
            t.accept()

    @property_settings(2_500)
    @given(raws, keys)
    def arbitrary(raw: bytes, key: bytes | str | None) -> None:
        judge(raw, key)

    @property_settings(500)
    @given(written_anyhow(event_pool))
    def valid(message: tuple[bytes, bytes | str | None]) -> None:
        judge(*message)

    arbitrary()
    valid()
    # Both outcomes were seen, so neither branch's assertions went unused.
    assert t.accepted > 0 and t.rejected
