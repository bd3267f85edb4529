"""The fast schema gate never lets through what jsonschema refuses.

Registry events and import lines are first checked by a compiled copy of their schema
(streams/adapters/schema_gate.py); only a refused document goes to jsonschema for its
message. The oracle here is jsonschema itself, with the same schema file and format checks:
whatever the gate accepts, jsonschema must accept, for valid documents and for thousands of
spoiled ones. The gate must also accept the valid ones, or the fast path would never be taken.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from streams.adapters.schema_checks import FORMATS, format_checker, load_schema, strict_json_loads
from streams.adapters.schema_gate import UntranslatableSchema, compile_gate
from tests.property.hostile import (
    _paths_of,
    property_settings,
    put,
    schema_events,
    schema_subscriber_lines,
    spoiled,
    spoiled_json,
)

# Values at the edges of JSON's types: bool against number, 1.0 against integer, -0.0, empty
# containers, strings just past a pattern ("63101\n"), a digit that is not ASCII.
BOUNDARY = [
    True,
    False,
    None,
    0,
    1,
    -1,
    1.0,
    -0.0,
    0.5,
    90,
    90.0000001,
    -180.0000001,
    1e308,
    2**63,
    "",
    " ",
    "x",
    "63101",
    "63101\n",
    "6310",
    "MO",
    "mo",
    "M\u00d6",
    "\u00b2",
    "1mi",
    "1MI",
    "2026-01-05",
    "2026-02-30",
    "2026-01-05T09:00:00Z",
    "2026-01-05 09:00:00",
    "https://x.example/p",
    "http://",
    "registry-event/1",
    "upsert",
    "remove",
    "home",
    [],
    {},
    [1],
    {"a": 1},
]


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=format_checker())


@st.composite
def boundary_value(draw: st.DrawFn, doc: dict[str, Any]) -> Any:
    """doc with one value anywhere in it (or a new field) replaced by a value at a type's edge."""
    paths = [p for p, _ in _paths_of(doc) if p]
    value = draw(st.sampled_from(BOUNDARY))
    if not paths or draw(st.integers(0, 9)) == 0:
        return doc | {draw(st.sampled_from(["extra", "lat", "schema", "addresses"])): value}
    return put(doc, draw(st.sampled_from(paths)), value)


def _check_agreement(schema: dict[str, Any], docs: list[Any], valid: list[Any]) -> Counter[str]:
    gate = compile_gate(schema, FORMATS)
    oracle = _validator(schema)
    tally: Counter[str] = Counter()
    for doc in valid:
        assert gate(doc), f"the gate refused a valid document, so the fast path is not taken: {doc!r:.300}"
    for doc in docs:
        fast, slow = gate(doc), oracle.is_valid(doc)
        if fast:
            assert slow, f"the gate let through what jsonschema refuses: {doc!r:.300}"
        tally["accepted" if slow else "refused"] += 1
        if slow and not fast:
            tally["left_to_jsonschema"] += 1  # slower, never wrong: jsonschema has the last word
    return tally


def _parsed(raw: bytes) -> Any:
    try:
        return strict_json_loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


@pytest.mark.parametrize("which", ["registry-event", "subscriber-import"])
def test_the_gate_accepts_only_what_jsonschema_accepts(which: str, record_property: Any) -> None:
    schema = load_schema(f"{which}.schema.json")  # fresh: hypothesis-jsonschema rewrites what it is given
    oracle = _validator(schema)
    valid: list[Any] = []
    docs: list[Any] = []

    @property_settings(120)
    @given(st.data())
    def collect(data: st.DataObject) -> None:
        base = data.draw(schema_events() if which == "registry-event" else schema_subscriber_lines())
        # hypothesis-jsonschema does not know dependentRequired: jsonschema sorts its output.
        (valid if oracle.is_valid(base) else docs).append(json.loads(json.dumps(base)))
        for _ in range(4):
            docs.append(data.draw(boundary_value(base)))
        raw = data.draw(spoiled(base)).raw if which == "registry-event" else data.draw(spoiled_json(base))[1]
        if (doc := _parsed(raw)) is not None:
            docs.append(doc)

    collect()
    assert len(valid) >= 60
    tally = _check_agreement(schema, docs, valid)
    record_property("tally", dict(tally))
    print(f"{which}: {len(valid)} valid, {len(docs)} altered: {dict(tally)}")
    # The altered documents must include both outcomes, or the comparison proves little.
    assert tally["accepted"] >= 20 and tally["refused"] >= 100


def test_the_schemas_in_use_are_all_translatable() -> None:
    for name in ("registry-event", "subscriber-import"):
        compile_gate(load_schema(f"{name}.schema.json"), FORMATS)


@pytest.mark.parametrize(
    "keyword, value",
    [
        ("prefixItems", [{"type": "string"}]),
        ("unevaluatedProperties", False),
        ("dependentSchemas", {"a": {"required": ["b"]}}),
        ("$ref", "https://elsewhere.example/schema.json"),
        ("items", [{"type": "string"}]),
    ],
)
def test_a_keyword_the_gate_cannot_check_stops_it_being_built(keyword: str, value: Any) -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"a": {keyword: value}},
    }
    with pytest.raises(UntranslatableSchema, match=keyword.strip("$")):
        compile_gate(schema, FORMATS)


def test_a_draft_other_than_2020_12_is_refused() -> None:
    with pytest.raises(UntranslatableSchema, match="2020-12"):
        compile_gate({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"})


def test_the_gate_does_not_fill_in_defaults() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"a": {"type": "integer", "default": 3}},
    }
    doc: dict[str, Any] = {}
    assert compile_gate(schema)(doc) and doc == {}
