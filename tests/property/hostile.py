"""Hostile input for the property tests: schema-valid events and the ways to spoil them."""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import utils as cu

from streams.adapters.schema_checks import load_schema

# hypothesis-jsonschema 0.23.1 (the newest release) builds objects with the `many.more()`
# loop that Hypothesis 6.170 replaced by iteration; without this every object schema fails
# with "'many' object has no attribute 'more'". Same semantics, on the new internals.
if not hasattr(cu.many, "more"):

    def _more(self: Any) -> bool:
        if self._depth is None:  # what `with many(...)` would have recorded
            self._depth = self.data.depth
            self._iterated = True
        if self._in_element:
            self._finish_element()
        if self._done or not self._decide():
            self._closed = True
            return False
        self.count += 1
        self._in_element = True
        self._rejected = False
        return True

    cu.many.more = _more  # type: ignore[attr-defined]


def property_settings(n: int, **kw: Any) -> settings:
    """Fixed examples for CI (derandomize), no example database, no timing."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
            HealthCheck.large_base_example,
        ],
        **kw,
    )


EVENT_SCHEMA = load_schema("registry-event.schema.json")
SUBSCRIBER_SCHEMA = load_schema("subscriber-import.schema.json")


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    # Imported here: importing it reads Hypothesis' Unicode tables, which a conftest should not.
    from hypothesis_jsonschema import from_schema as build

    return build(schema)


def schema_events() -> st.SearchStrategy[dict[str, Any]]:
    return from_schema(EVENT_SCHEMA)


def schema_subscriber_lines() -> st.SearchStrategy[dict[str, Any]]:
    return from_schema(SUBSCRIBER_SCHEMA)


# --- strings a hostile sender likes -------------------------------------------------------

SCRIPT = "<script>alert('x')</script>"
NASTY_TEXT = [
    SCRIPT,
    '"><img src=x onerror=alert(1)>',
    "</title><script>alert(1)</script>",
    "{{ 7*7 }}",
    "{% raw %}",
    "'; DROP TABLE subscribers; --",
    "%s%s%n",
    "${jndi:ldap://x}",
    "\u202eevil\u202c",
    "e\u0301",
    "\U0001f600\U0001f4a9",
    "\ufeff",
    "\u2028\u2029",
    "\x85",
    "a\tb\nc\rd",
    "\x1b[31mred",
    "\x7f",
    "ß" * 50,
    "\u0130stanbul",
    "ﬀ",
    "٣٤٥",
    "𝟏𝟐𝟑",
    "²",
    "\u00a0",
    "\u200b",
    "Ω" * 200,
    "x" * 5000,
    '=HYPERLINK("http://x")',
    "../../etc/passwd",
    "\\\\server\\share",
    "null",
    "true",
    "0",
    "-1e999",
]
CONTROL = [chr(c) for c in (*range(0x00, 0x20), 0x7F, 0x85, 0x2028, 0x2029, 0xFEFF, 0x202E, 0x200B)]
# Byte sequences that are not UTF-8: a stray continuation byte, an overlong NUL, a CESU
# surrogate, a cut 3-byte sequence, bytes no UTF-8 ever uses, Latin-1 and Windows-1252 text.
BAD_UTF8 = [
    b"\x80",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xe2\x82",
    b"\xff",
    b"\xfe",
    b"\xf8\x88\x80\x80\x80",
    b"\xe9",
    b"caf\xe9",
    b"\x93quoted\x94",
    b"\xf4\x90\x80\x80",
]

hostile_text = st.deferred(
    lambda: st.one_of(
        st.sampled_from(NASTY_TEXT),
        st.text(max_size=60),
        st.text(alphabet=st.sampled_from(CONTROL), min_size=1, max_size=8),
        st.builds(
            lambda a, b, c: a + b + c, st.text(max_size=10), st.sampled_from(NASTY_TEXT), st.text(max_size=10)
        ),
    )
)

# Any JSON value, of any type: what a field gets when a sender confuses its types.
json_values = st.deferred(
    lambda: st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | hostile_text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
        max_leaves=6,
    )
)


# --- where to hurt a document -------------------------------------------------------------

Path = tuple[Any, ...]


def paths(doc: Any, prefix: Path = ()) -> list[tuple[Path, Any]]:
    """Every (path, value) inside a document, the document itself first."""
    out = [(prefix, doc)]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


_PATHS: dict[int, tuple[Any, list[tuple[Path, Any]]]] = {}


def _paths_of(doc: Any) -> list[tuple[Path, Any]]:
    """paths(), remembered per pool document."""
    hit = _PATHS.get(id(doc))
    if hit is None or hit[0] is not doc:
        hit = _PATHS[id(doc)] = (doc, paths(doc))
    return hit[1]


def get(doc: Any, path: Path) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _shallow(v: Any) -> Any:
    return dict(v) if isinstance(v, dict) else list(v)


def put(doc: Any, path: Path, value: Any) -> Any:
    """`doc` with the value at `path` replaced (the root when `path` is empty); only the
    containers on the path are copied, the rest is shared."""
    if not path:
        return value
    top = node = _shallow(doc)
    for p in path[:-1]:
        node[p] = _shallow(node[p])
        node = node[p]
    node[path[-1]] = value
    return top


def drop(doc: Any, path: Path) -> Any:
    parent = _shallow(get(doc, path[:-1]))
    del parent[path[-1]]
    return put(doc, path[:-1], parent)


SENTINEL = "@@hostile-sentinel-7f3a9c@@"


def with_raw(doc: Any, path: Path, raw_json: str, ensure_ascii: bool = True) -> str:
    """JSON text of `doc` with the value at `path` written as `raw_json` verbatim (text that
    json.dumps would never write: NaN, a repeated key, a 10,000-deep array, a lone surrogate)."""
    text = json.dumps(put(doc, path, SENTINEL), ensure_ascii=ensure_ascii)
    return text.replace(json.dumps(SENTINEL), raw_json, 1)


def type_of(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


@dataclass(frozen=True)
class Hostile:
    """One spoiled message: what was done, its bytes and key, and the reason it must get
    (None where the change may leave a valid event: then either outcome is right)."""

    kind: str
    raw: bytes
    key: bytes | None
    expect: str | tuple[str, ...] | None


def _key(doc: Any) -> bytes | None:
    oid = doc.get("offender_id") if isinstance(doc, dict) else None
    return oid.encode("utf-8", "surrogatepass") if isinstance(oid, str) else None


def _dumps(doc: Any, ascii_: bool) -> bytes:
    return json.dumps(doc, ensure_ascii=ascii_).encode("utf-8")


REQUIRED_TOP = ("schema", "event_id", "offender_id", "revision", "occurred_at", "kind")
REQUIRED_OFFENDER = ("last_name", "first_name", "date_of_birth", "tier", "compliance", "juvenile", "offenses")
REQUIRED_ADDRESS = ("type", "street", "city", "state", "zip")


def _required_paths(doc: dict[str, Any]) -> list[Path]:
    out: list[Path] = [(k,) for k in REQUIRED_TOP if k in doc]
    if doc.get("kind") == "upsert":
        out += [("offender",), ("addresses",)]
        out += [("offender", k) for k in REQUIRED_OFFENDER if k in doc["offender"]]
        for i, _offense in enumerate(doc["offender"]["offenses"]):
            out.append(("offender", "offenses", i, "description"))
        for i, _alias in enumerate(doc["offender"].get("aliases") or ()):
            out += [("offender", "aliases", i, "last_name"), ("offender", "aliases", i, "first_name")]
        for i, _ in enumerate(doc["addresses"]):
            out += [("addresses", i, k) for k in REQUIRED_ADDRESS]
    return out


def _expect_missing(path: Path) -> str:
    return "unknown_schema" if path == ("schema",) else "schema_violation"


def deep_json(depth: int, opener: str) -> str:
    closer = "]" if opener == "[" else "}"
    inner = "[" if opener == "[" else '{"a":'
    return (inner * depth) + ("0" if opener == "{" else "") + (closer * depth)


@st.composite
def spoiled(draw: st.DrawFn, base: dict[str, Any]) -> Hostile:
    """One of many ways to spoil a valid event; see Hostile.expect for what must follow."""
    doc = base  # never changed in place: put() and drop() copy what they change
    ascii_ = draw(st.booleans())
    all_paths = _paths_of(doc)
    inner_paths = [p for p, _ in all_paths if p]
    kind = draw(st.sampled_from(MUTATIONS))
    key = _key(doc)

    if kind == "drop_required":
        path = draw(st.sampled_from(_required_paths(doc)))
        return Hostile(kind, _dumps(drop(doc, path), ascii_), key, _expect_missing(path))

    if kind == "wrong_type":
        path = draw(st.sampled_from(inner_paths))
        old = get(doc, path)
        new = draw(json_values.filter(lambda v: type_of(v) != type_of(old)))
        if unconstrained(doc, path) or path[-1] in NULLABLE:
            expect: Any = None
        else:
            expect = "unknown_schema" if path == ("schema",) else "schema_violation"
        return Hostile(kind, _dumps(put(doc, path, new), ascii_), key, expect)

    if kind == "hostile_string":
        strings = [p for p, v in all_paths if isinstance(v, str)]
        path = draw(st.sampled_from(strings))
        new = draw(hostile_text)
        raw = _dumps(put(doc, path, new), ascii_)
        return Hostile(kind, raw, _key(put(doc, path, new)) if path == ("offender_id",) else key, None)

    if kind == "huge_string":
        strings = [p for p, v in all_paths if isinstance(v, str)] or [("event_id",)]
        path = draw(st.sampled_from(strings))
        size = draw(st.sampled_from([2_001, 20_000, 300_000]))  # past every maxLength
        new = draw(st.sampled_from("xé€\U0001f600<")) * size
        doc2 = put(doc, path, new)
        expect = None if unconstrained(doc, path) else ("schema_violation", "unknown_schema")
        return Hostile(kind, _dumps(doc2, ascii_), key, expect)

    if kind == "control_chars":
        strings = [p for p, v in all_paths if isinstance(v, str)]
        path = draw(st.sampled_from(strings))
        old = get(doc, path)
        at = draw(st.integers(0, len(old)))
        chars = "".join(draw(st.lists(st.sampled_from(CONTROL), min_size=1, max_size=4)))
        new = old[:at] + chars + old[at:]
        doc2 = put(doc, path, new)
        return Hostile(kind, _dumps(doc2, ascii_), _key(doc2) if path == ("offender_id",) else key, None)

    if kind == "invalid_utf8":
        raw = _dumps(doc, False)
        at = draw(st.integers(0, len(raw)))
        bad = draw(st.sampled_from(BAD_UTF8))
        return Hostile(kind, raw[:at] + bad + raw[at:], key, "bad_encoding")

    if kind == "latin1_export":
        text = json.dumps(
            put(doc, ("event_id",), "Sainte-Genevi\u00e8ve-" + str(doc.get("event_id"))[:50]),
            ensure_ascii=False,
        )
        return Hostile(kind, text.encode("latin-1", "replace"), key, "bad_encoding")

    if kind == "deep_nesting":
        path = draw(st.sampled_from(inner_paths))
        depth = draw(st.sampled_from([50, 500, 5_000, 100_000]))
        raw = with_raw(doc, path, deep_json(depth, draw(st.sampled_from("[{"))), ascii_).encode()
        expect = (
            "bad_json"
            if depth >= 5_000
            else None
            if unconstrained(doc, path)
            else ("schema_violation", "unknown_schema")
        )
        return Hostile(kind, raw, key, expect)

    if kind == "nan_infinity":
        path = draw(st.sampled_from(inner_paths))
        token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "[NaN]", '{"x": Infinity}']))
        return Hostile(kind, with_raw(doc, path, token, ascii_).encode(), key, "bad_json")

    if kind == "huge_number":
        path = draw(st.sampled_from(inner_paths))
        token = draw(
            st.sampled_from(
                [
                    "1" * 5000,
                    "-" + "9" * 4400,
                    "1e400",
                    "-1e400",
                    "1e-400",
                    "9223372036854775808",
                    "18446744073709551616",
                    "0.0000000000000000000000001",
                    "1" + "0" * 400 + ".5",
                ]
            )
        )
        return Hostile(kind, with_raw(doc, path, token, ascii_).encode(), key, None)

    if kind == "coordinates_out_of_range":
        doc = _with_address(doc)
        i = draw(st.integers(0, len(doc["addresses"]) - 1))
        which = draw(st.sampled_from(["lat", "lon"]))
        limit = 90.0 if which == "lat" else 180.0
        bad = draw(
            st.floats(min_value=limit, max_value=1e308, exclude_min=True)
            | st.floats(max_value=-limit, min_value=-1e308, exclude_max=True)
            | st.integers(min_value=int(limit) + 1, max_value=10**30)
        )
        bad = -bad if draw(st.booleans()) else bad
        a = doc["addresses"][i]
        a.setdefault("lat", 38.6)
        a.setdefault("lon", -90.2)
        a[which] = bad
        return Hostile(kind, _dumps(doc, ascii_), key, "coordinates_out_of_range")

    if kind == "half_coordinates":
        doc = _with_address(doc)
        i = draw(st.integers(0, len(doc["addresses"]) - 1))
        a = doc["addresses"][i]
        a.pop("lat", None)
        a.pop("lon", None)
        which = draw(st.sampled_from(["lat", "lon"]))
        a[which] = draw(st.floats(-89, 89))
        return Hostile(kind, _dumps(doc, ascii_), key, "half_coordinates")

    if kind == "repeated_key":
        objects = [p for p, v in all_paths if isinstance(v, dict) and v]
        path = draw(st.sampled_from(objects))
        obj = get(doc, path)
        k = draw(st.sampled_from(sorted(obj)))
        body = json.dumps(obj, ensure_ascii=ascii_)
        again = f"{json.dumps(k)}: {json.dumps(draw(json_values))}"
        text = body[:-1] + ", " + again + "}" if draw(st.booleans()) else "{" + again + ", " + body[1:]
        return Hostile(kind, with_raw(doc, path, text, ascii_).encode(), key, "bad_json")

    if kind == "not_an_object":
        value = draw(
            st.one_of(
                st.lists(st.just(doc), min_size=1, max_size=2),
                st.sampled_from(["registry-event/1", 0, None, True]),
                json_values.filter(lambda v: not isinstance(v, dict)),
            )
        )
        return Hostile(kind, _dumps(value, ascii_), key, "not_an_object")

    if kind == "truncated":
        raw = _dumps(doc, ascii_)
        cut = draw(st.integers(0, len(raw) - 1))
        return Hostile(kind, raw[:cut], key, ("bad_json", "bad_encoding"))

    if kind == "trailing_garbage":
        raw = _dumps(doc, ascii_) + draw(st.sampled_from([b"x", b"}", b",", b"\n{}", b"\x00", b"]"]))
        return Hostile(kind, raw, key, "bad_json")

    if kind == "lone_surrogate":
        strings = [p for p, v in all_paths if isinstance(v, str)]
        path = draw(st.sampled_from(strings))
        esc = draw(st.sampled_from(["\\ud800", "\\udfff", "x\\udc00y", "\\ud83d", "\\ude00\\ud83d"]))
        old = json.dumps(get(doc, path))[1:-1]
        return Hostile(
            kind,
            with_raw(doc, path, f'"{old}{esc}"', ascii_).encode(),
            key,
            ("bad_encoding", "schema_violation", "unknown_schema"),
        )

    if kind == "nul_character":
        strings = [p for p, v in all_paths if isinstance(v, str) and p != ("schema",)]
        path = draw(st.sampled_from(strings))
        doc2 = put(doc, path, get(doc, path) + "\x00")
        return Hostile(kind, _dumps(doc2, ascii_), key, ("bad_encoding", "schema_violation"))

    if kind == "unknown_schema":
        value = draw(
            st.sampled_from(["registry-event/2", "registry-event/1 ", "REGISTRY-EVENT/1", "", None, 1])
        )
        return Hostile(kind, _dumps(put(doc, ("schema",), value), ascii_), key, "unknown_schema")

    if kind == "key_mismatch":
        other = draw(
            st.one_of(st.binary(min_size=1, max_size=20), st.text(min_size=1, max_size=20).map(str.encode))
        )
        if other == key:
            other += b"-other"
        return Hostile(kind, _dumps(doc, ascii_), other, "key_mismatch")

    if kind == "unexpected_field":
        objects = [p for p, v in all_paths if isinstance(v, dict)]
        path = draw(st.sampled_from(objects))
        name = draw(hostile_text.filter(lambda s: s not in KNOWN_FIELDS))
        obj = dict(get(doc, path))
        obj[name] = draw(json_values)
        expect = None if unconstrained(doc, path) else "schema_violation"
        return Hostile(kind, _dumps(put(doc, path, obj), ascii_), key, expect)

    if kind == "random_bytes":
        return Hostile(kind, draw(st.binary(max_size=300)), key, None)

    if kind == "bom":
        bom = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xef\xbb\xbf\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]))
        expect = None if bom == b"\xef\xbb\xbf" else ("bad_json", "bad_encoding")
        return Hostile(kind, bom + _dumps(doc, ascii_), key, expect)

    raise AssertionError(kind)


# Fields that may be null.
NULLABLE = frozenset(
    {
        "middle_name",
        "suffix",
        "sex",
        "race",
        "height_in",
        "weight_lb",
        "photo_url",
        "county",
        "code",
        "convicted_on",
    }
)
KNOWN_FIELDS = (
    frozenset(EVENT_SCHEMA["properties"])
    | frozenset(EVENT_SCHEMA["$defs"]["offender"]["properties"])
    | frozenset(EVENT_SCHEMA["$defs"]["address"]["properties"])
    | {"description", "code", "convicted_on"}
)


def unconstrained(doc: dict[str, Any], path: Path) -> bool:
    """What a remove carries besides its header is allowed and ignored, whatever it is."""
    return doc.get("kind") != "upsert" and path[:1] in (("offender",), ("addresses",))


MUTATIONS = (
    "drop_required",
    "wrong_type",
    "hostile_string",
    "huge_string",
    "control_chars",
    "invalid_utf8",
    "latin1_export",
    "deep_nesting",
    "nan_infinity",
    "huge_number",
    "coordinates_out_of_range",
    "half_coordinates",
    "repeated_key",
    "not_an_object",
    "truncated",
    "trailing_garbage",
    "lone_surrogate",
    "nul_character",
    "unknown_schema",
    "key_mismatch",
    "unexpected_field",
    "random_bytes",
    "bom",
)


def _with_address(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy that is an upsert with at least one address (a remove is turned into one)."""
    doc = copy.deepcopy(doc)
    if doc.get("kind") != "upsert":
        doc = doc | {"kind": "upsert", "offender": copy.deepcopy(PLAIN_OFFENDER), "addresses": []}
    if not doc["addresses"]:
        doc["addresses"] = [
            {"type": "home", "street": "1 Market St", "city": "St. Louis", "state": "MO", "zip": "63101"}
        ]
    return doc


PLAIN_OFFENDER: dict[str, Any] = {
    "last_name": "Doe",
    "first_name": "Richard",
    "date_of_birth": "1980-04-02",
    "tier": 2,
    "compliance": "compliant",
    "juvenile": False,
    "offenses": [{"description": "Failure to register"}],
}


# --- counting ------------------------------------------------------------------------------


class Tally:
    """Examples tried, accepted and rejected (by reason), for the line each test prints."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tried = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.notes: list[str] = []  # more lines to print with the count

    def accept(self, kind: str = "") -> None:
        self.tried += 1
        self.accepted += 1
        self.kinds[kind] += 1

    def reject(self, reason: str, kind: str = "") -> None:
        self.tried += 1
        self.rejected[reason] += 1
        self.kinds[kind] += 1

    def line(self) -> str:
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(self.rejected.items()))
        return (
            f"{self.name}: tried={self.tried} accepted={self.accepted} "
            f"rejected={sum(self.rejected.values())}" + (f" ({reasons})" if reasons else "")
        )


# --- any JSON document (import lines, GeoJSON features) ------------------------------------

LONE_SURROGATES = ("\\ud800", "\\udfff", "a\\udc00b")
JSON_SPOILERS = (
    "wrong_type",
    "hostile_string",
    "huge_string",
    "control_chars",
    "drop_field",
    "deep_nesting",
    "nan_infinity",
    "huge_number",
    "repeated_key",
    "not_an_object",
    "truncated",
    "trailing_garbage",
    "lone_surrogate",
    "nul_character",
    "invalid_utf8",
    "random_bytes",
    "unexpected_field",
)
# Spoilers after which the document can no longer be valid JSON text.
NOT_JSON = frozenset({"nan_infinity", "repeated_key", "truncated", "trailing_garbage", "invalid_utf8"})


@st.composite
def spoiled_json(draw: st.DrawFn, doc: Any, kinds: tuple[str, ...] = JSON_SPOILERS) -> tuple[str, bytes]:
    """(what was done, the bytes) for one spoiled JSON document, on one line."""
    ascii_ = draw(st.booleans())
    all_paths = _paths_of(doc)
    inner = [p for p, _ in all_paths if p] or [()]
    strings = [p for p, v in all_paths if isinstance(v, str)] or inner
    objects = [p for p, v in all_paths if isinstance(v, dict) and v]
    kind = draw(st.sampled_from([k for k in kinds if k != "repeated_key" or objects]))

    def dumps(d: Any) -> bytes:
        return json.dumps(d, ensure_ascii=ascii_).encode("utf-8")

    def raw_at(path: Path, token: str) -> bytes:
        return with_raw(doc, path, token, ascii_).encode("utf-8")

    if kind == "wrong_type":
        path = draw(st.sampled_from(inner))
        old = get(doc, path) if path else doc
        return kind, dumps(put(doc, path, draw(json_values.filter(lambda v: type_of(v) != type_of(old)))))
    if kind == "hostile_string":
        return kind, dumps(put(doc, draw(st.sampled_from(strings)), draw(hostile_text)))
    if kind == "huge_string":
        size = draw(st.sampled_from([2_001, 20_000, 140_000]))
        return kind, dumps(
            put(doc, draw(st.sampled_from(strings)), draw(st.sampled_from("xé\U0001f600<")) * size)
        )
    if kind == "control_chars":
        path = draw(st.sampled_from(strings))
        old = get(doc, path)
        old = old if isinstance(old, str) else ""
        at = draw(st.integers(0, len(old)))
        chars = "".join(draw(st.lists(st.sampled_from(CONTROL), min_size=1, max_size=4)))
        return kind, dumps(put(doc, path, old[:at] + chars + old[at:]))
    if kind == "drop_field":
        path = draw(st.sampled_from(inner))
        return kind, dumps(drop(doc, path) if path else {})
    if kind == "deep_nesting":
        depth = draw(st.sampled_from([50, 500, 5_000, 100_000]))
        return kind, raw_at(draw(st.sampled_from(inner)), deep_json(depth, draw(st.sampled_from("[{"))))
    if kind == "nan_infinity":
        return kind, raw_at(
            draw(st.sampled_from(inner)), draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        )
    if kind == "huge_number":
        token = draw(st.sampled_from(["1" * 5000, "1e400", "-1e400", "1e-400", "9223372036854775808", "-0"]))
        return kind, raw_at(draw(st.sampled_from(inner)), token)
    if kind == "repeated_key":
        path = draw(st.sampled_from(objects))
        obj = get(doc, path)
        k = draw(st.sampled_from(sorted(obj)))
        body = json.dumps(obj, ensure_ascii=ascii_)
        return kind, raw_at(path, body[:-1] + f", {json.dumps(k)}: {json.dumps(draw(json_values))}}}")
    if kind == "not_an_object":
        return kind, dumps(draw(json_values.filter(lambda v: not isinstance(v, dict))))
    if kind == "truncated":
        raw = dumps(doc)
        return kind, raw[: draw(st.integers(1, len(raw) - 1))]
    if kind == "trailing_garbage":
        return kind, dumps(doc) + draw(st.sampled_from([b"x", b"}", b",{}", b"\x00", b"]"]))
    if kind == "lone_surrogate":
        path = draw(st.sampled_from(strings))
        old = get(doc, path)
        old_text = json.dumps(old)[1:-1] if isinstance(old, str) else ""
        esc = draw(st.sampled_from(LONE_SURROGATES))
        return kind, raw_at(path, f'"{old_text}{esc}"')
    if kind == "nul_character":
        path = draw(st.sampled_from(strings))
        old = get(doc, path)
        return kind, dumps(put(doc, path, (old if isinstance(old, str) else "") + "\x00"))
    if kind == "invalid_utf8":
        raw = dumps(doc)
        at = draw(st.integers(0, len(raw)))
        return kind, raw[:at] + draw(st.sampled_from(BAD_UTF8)) + raw[at:]
    if kind == "random_bytes":
        return kind, draw(st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b))
    if kind == "unexpected_field":
        path = draw(st.sampled_from([p for p, v in all_paths if isinstance(v, dict)]))
        obj = dict(get(doc, path) if path else doc)
        obj[draw(hostile_text)] = draw(json_values)
        return kind, dumps(put(doc, path, obj))
    raise AssertionError(kind)
