"""The registry-event/1 edge: raw Kafka bytes in, a validated RegistryEvent or a dead letter out."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from streams.adapters.schema_gate import compile_gate
from streams.domain.addresses import make_address
from streams.domain.model import (
    Address,
    Alias,
    OffenderProfile,
    Offense,
    RegistryEvent,
    SeenEvent,
    digest_online_identifier,
)

SCHEMA_VERSION = "registry-event/1"
UNDERSTOOD_SCHEMAS: tuple[str, ...] = (SCHEMA_VERSION,)
DEAD_LETTER_SCHEMA = "dead-letter/1"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"

REASONS: tuple[str, ...] = (
    "bad_encoding",
    "bad_json",
    "not_an_object",
    "unknown_schema",
    "schema_violation",
    "coordinates_out_of_range",
    "half_coordinates",
    "key_mismatch",
    # Valid on its own, but its event_id was applied before with other content.
    "conflicting_duplicate",
)
MAX_DETAIL = 300
# Fields whose values are never repeated in an error: RSMo 43.650.4 identifiers.
SECRET_FIELDS: frozenset[str] = frozenset({"online_identifiers"})

_EMAIL_LIKE = re.compile(r"[^\s'\"<>()\[\],;:@]+@[^\s'\"<>()\[\],;:@]+")


class InvalidEvent(Exception):
    """A registry event that cannot be applied; `reason` is a stable code, `detail` a sentence."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        self.reason = reason
        self.detail = _clip(scrub(detail))
        super().__init__(f"{reason}: {self.detail}")


# --- shared with the subscriber import -------------------------------------------------


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))",
    re.ASCII,
)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    m = _DATE.fullmatch(value)
    if not m:
        return False
    try:
        date(*map(int, m.groups()))
    except ValueError:
        return False
    return True


def _is_date_time(value: object) -> bool:
    # jsonschema checks "date-time" only when rfc3339-validator is installed; it is not a
    # dependency, so the check is here (RFC 3339 section 5.6, leap second allowed).
    if not isinstance(value, str):
        return True
    m = _RFC3339.fullmatch(value)
    if not m:
        return False
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        date(y, mo, d)
    except ValueError:
        return False
    if h > 23 or mi > 59 or s > 60:
        return False
    if m.group(8) is not None and (int(m.group(8)) > 23 or int(m.group(9)) > 59):
        return False
    return True


def _is_uri(value: object) -> bool:
    # Likewise "uri" needs rfc3987 or rfc3986-validator; an absolute ASCII URI is enough here.
    if not isinstance(value, str):
        return True
    if not value.isascii() or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        return False
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parts.scheme or ""):
        return False
    if parts.scheme.lower() in ("http", "https"):
        return bool(parts.hostname)
    return True


# The formats our schemas use, one check each for jsonschema and the fast gate.
FORMATS = {"date": _is_date, "date-time": _is_date_time, "uri": _is_uri}


def format_checker() -> FormatChecker:
    """date, date-time and uri enforced with no optional packages."""
    checker = FormatChecker()
    for name, check in FORMATS.items():
        checker.checks(name)(check)
    return checker


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated key is read differently by different parsers ("juvenile": true, then false).
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the field {short(k)} appears twice in one object")
        out[k] = v
    return out


def strict_json_loads(text: str) -> Any:
    """json.loads without NaN/Infinity or repeated keys; raises ValueError with a readable text."""
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as e:
        raise ValueError(f"{e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def text_problem(doc: Any) -> str | None:
    """Where a parsed document holds what no text column can store, said without the value:
    an unpaired surrogate escape (\\ud800 alone is not a character, and UTF-8 cannot carry
    it) or U+0000 (PostgreSQL refuses it in text and JSONB)."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), doc)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                stack.append(((*path, k), k))
                stack.append(((*path, k), v))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
        elif isinstance(value, str) and (m := _NOT_TEXT.search(value)):
            # A field name may be the culprit: never repeated, only its place.
            where = field_path(p if isinstance(p, int) or p.isprintable() else "?" for p in path) or "(top level)"
            what = "a NUL character (U+0000)" if m.group() == "\x00" else \
                f"an unpaired surrogate escape \\u{ord(m.group()):04x}, which is not a character"
            return f"{where}: holds {what}; no text field may contain it"
    return None


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def short(value: Any, limit: int = 40) -> str:
    """A scalar for an error message: quoted, and cut when long."""
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else repr(value[:limit]) + "…"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= limit else text[:limit] + "…"
    return f"an {json_type(value)}" if json_type(value) in ("array", "object") else repr(value)


def field_path(parts: Iterable[Any], root: str = "") -> str:
    out = root
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def scrub(text: str) -> str:
    """No e-mail address leaves in a message, whatever field it was typed into."""
    return _EMAIL_LIKE.sub("<e-mail address>", text)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


_PATTERN_HINTS = {
    "zip": "is not a ZIP code (5 digits or ZIP+4, e.g. 63101 or 63101-1234)",
    "state": "is not a 2-letter state code (e.g. MO)",
    "photo_url": "is not an http(s) URL",
}
_FORMAT_HINTS = {
    "date": "is not a valid date (YYYY-MM-DD)",
    "date-time": "is not an RFC 3339 timestamp (e.g. 2026-01-05T15:00:00Z)",
    "uri": "is not a valid absolute URL",
}


def describe_error(
    err: ValidationError, *, root: str = "", secret: frozenset[str] = SECRET_FIELDS
) -> str:
    """One sentence naming the field path; never repeats a secret field's value."""
    parts = list(err.absolute_path)
    path = field_path(parts) or root or "(top level)"
    hidden = any(isinstance(p, str) and p in secret for p in parts)
    v, arg, inst = err.validator, err.validator_value, err.instance
    last = parts[-1] if parts else None
    if v == "required":
        missing = [r for r in arg if r not in inst]
        name = next((r for r in missing if err.message.startswith(f"{r!r} ")), missing[0])
        return f"{field_path([*parts, name])}: is missing (required)"
    if v == "additionalProperties":
        known = err.schema.get("properties", {})
        extra = [short(k) for k in inst if k not in known]
        noun = "field" if len(extra) == 1 else "fields"
        more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
        return f"{path}: unexpected {noun} {', '.join(extra[:5])}{more}"
    if v == "dependentRequired":
        given, needed = next(
            (k, d) for k, deps in arg.items() if k in inst for d in deps if d not in inst
        )
        return f"{path}: {given} is given without {needed}; give both or neither"
    # `why` reads after "<value> "; the value is repeated only when it is a scalar (cut
    # short) and not a secret.
    show = not isinstance(inst, (dict, list))
    if v == "type":
        types = " or ".join(arg) if isinstance(arg, list) else arg
        why = f"is not of type {types}" + ("" if show and not hidden else f" (got {json_type(inst)})")
    elif v == "enum":
        why = f"is not one of {', '.join(short(a) for a in arg)}"
    elif v == "const":
        why = f"is not {short(arg)}"
    elif v == "minLength":
        why, show = ("is empty" if arg == 1 else f"is shorter than {arg} characters"), False
    elif v == "maxLength":
        why, show = f"is {len(inst)} characters long, more than the maximum of {arg}", False
    elif v == "pattern":
        why = _PATTERN_HINTS.get(str(last), f"does not match the pattern {arg}")
    elif v == "format":
        why = _FORMAT_HINTS.get(arg, f"is not a valid {arg}")
    elif v in ("minimum", "exclusiveMinimum"):
        why = f"is less than the minimum of {arg}"
    elif v in ("maximum", "exclusiveMaximum"):
        why = f"is greater than the maximum of {arg}"
    elif v == "minItems":
        why, show = f"has {len(inst)} items, fewer than the minimum of {arg}", False
    elif v == "maxItems":
        why, show = f"has {len(inst)} items, more than the maximum of {arg}", False
    elif v == "uniqueItems":
        why, show = "has repeated items", False
    else:
        why, show = ("fails " + str(v)) if hidden else err.message, False
    if hidden:
        return f"{path}: invalid ({why})"
    return f"{path}: {short(inst)} {why}" if show else f"{path}: {why}"


# --- registry events --------------------------------------------------------------------


@cache
def _validator() -> Draft202012Validator:
    schema = load_schema("registry-event.schema.json")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=format_checker())


@cache
def _gate() -> Callable[[Any], bool]:
    return compile_gate(load_schema("registry-event.schema.json"), FORMATS)


def _is_coordinate_range(err: ValidationError) -> bool:
    p = list(err.absolute_path)
    return (
        err.validator in ("minimum", "maximum")
        and len(p) == 3
        and p[0] == "addresses"
        and p[2] in ("lat", "lon")
    )


def _check(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InvalidEvent("not_an_object", f"the event must be a JSON object, got {json_type(doc)}")
    understood = ", ".join(UNDERSTOOD_SCHEMAS)
    if "schema" not in doc:
        raise InvalidEvent("unknown_schema", f"schema: missing; this service understands {understood}")
    if doc["schema"] not in UNDERSTOOD_SCHEMAS:
        raise InvalidEvent(
            "unknown_schema",
            f"schema: {short(doc['schema'])} is not understood; this service understands {understood}",
        )
    if _gate()(doc):
        return doc
    errors = list(_validator().iter_errors(doc))
    if not errors:  # the gate may be stricter than jsonschema, never looser: jsonschema decides
        return doc
    coords = [e for e in errors if _is_coordinate_range(e)]
    halves = [e for e in errors if e.validator == "dependentRequired"]
    if coords:
        reason, chosen = "coordinates_out_of_range", coords[0]
    elif halves:
        reason, chosen = "half_coordinates", halves[0]
    else:
        reason, chosen = "schema_violation", best_match(errors)
    detail = describe_error(chosen, root="event")
    if len(errors) > 1:
        n = len(errors) - 1
        detail += f" (and {n} more problem{'s' if n > 1 else ''})"
    raise InvalidEvent(reason, detail)


def _key_text(key: bytes | str) -> str | None:
    if isinstance(key, str):
        return key
    try:
        return bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _profile(d: dict[str, Any]) -> OffenderProfile:
    identifiers = [i for i in d.get("online_identifiers") or () if i.strip()]
    return OffenderProfile(
        last_name=d["last_name"],
        first_name=d["first_name"],
        date_of_birth=d["date_of_birth"],
        tier=int(d["tier"]),
        compliance=d["compliance"],
        juvenile=d["juvenile"],
        offenses=tuple(
            Offense(description=o["description"], code=o.get("code"), convicted_on=o.get("convicted_on"))
            for o in d["offenses"]
        ),
        middle_name=d.get("middle_name"),
        suffix=d.get("suffix"),
        aliases=tuple(Alias(last_name=a["last_name"], first_name=a["first_name"]) for a in d.get("aliases") or ()),
        sex=d.get("sex"),
        race=d.get("race"),
        height_in=_opt_int(d.get("height_in")),
        weight_lb=_opt_int(d.get("weight_lb")),
        photo_url=d.get("photo_url"),
        # Clear text stops here: only digests travel on (RSMo 43.650.4 exact-match search).
        online_identifier_digests=tuple(dict.fromkeys(digest_online_identifier(i) for i in identifiers)),
    )


def _address(a: dict[str, Any]) -> Address:
    return make_address(
        {
            "type": a["type"],
            "street": a["street"],
            "city": a["city"],
            "state": a["state"].upper(),
            "zip": a["zip"],
            "county": a.get("county"),
            "lat": a.get("lat"),
            "lon": a.get("lon"),
        }
    )


def decode_registry_event(raw: bytes, key: bytes | str | None = None) -> RegistryEvent:
    """Validate one message value (and its Kafka key, when given) and build the event."""
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidEvent(
            "bad_encoding",
            f"the event is not UTF-8: byte 0x{data[e.start]:02x} at position {e.start} ({e.reason})",
        ) from None
    try:
        doc = strict_json_loads(text.removeprefix("\ufeff"))
    except ValueError as e:
        raise InvalidEvent("bad_json", f"the event is not valid JSON: {e}") from None
    _check(doc)
    if problem := text_problem(doc):
        raise InvalidEvent("bad_encoding", problem)
    offender_id = doc["offender_id"]
    if key is not None:
        k = _key_text(key)
        if k != offender_id:
            shown = short(k) if k is not None else "(not UTF-8)"
            raise InvalidEvent(
                "key_mismatch",
                f"offender_id: {short(offender_id)} differs from the Kafka key {shown}; "
                "key each event by its offender id",
            )
    upsert = doc["kind"] == "upsert"
    return RegistryEvent(
        event_id=doc["event_id"],
        offender_id=offender_id,
        revision=int(doc["revision"]),
        occurred_at=doc["occurred_at"],
        kind=doc["kind"],
        baseline=doc.get("baseline", False),
        offender=_profile(doc["offender"]) if upsert else None,
        addresses=tuple(_address(a) for a in doc["addresses"]) if upsert else (),
    )


def conflicting_duplicate(event: RegistryEvent, digest: str, stored: SeenEvent) -> InvalidEvent:
    """The dead-letter reason for an event id reused with other content (never applied)."""
    return InvalidEvent(
        "conflicting_duplicate",
        f"event_id {short(event.event_id)} already names revision {stored.revision} "
        f"(content digest {stored.content_digest}); this message says something else "
        f"(revision {event.revision}, content digest {digest}) and is not applied. "
        "An event id names one registry entry: send a correction under a new event_id",
    )


def encode_registry_event(event_dict: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; refuses (InvalidEvent) what the consumers would dead-letter."""
    try:
        raw = json.dumps(event_dict, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise InvalidEvent("bad_json", f"the event cannot be written as JSON: {e}") from None
    decode_registry_event(raw)
    return raw


def dead_letter(
    raw: bytes,
    error: InvalidEvent,
    *,
    topic: str | None,
    partition: int | None,
    offset: int | None,
    key: bytes | str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The dead-letter/1 record (schemas/dead-letter.schema.json): enough to fix and replay."""
    if isinstance(key, (bytes, bytearray, memoryview)):
        key = bytes(key).decode("utf-8", "replace")
    at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {
        "schema": DEAD_LETTER_SCHEMA,
        "reason": error.reason,
        "detail": error.detail,
        "source": {"topic": topic, "partition": partition, "offset": offset, "key": key},
        "original_b64": base64.b64encode(bytes(raw)).decode("ascii"),
        "dead_lettered_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
