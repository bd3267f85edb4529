"""JSON checks shared by every input with a schema (registry events, the subscriber import):
strict parsing, formats, and errors told in one sentence."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"

# Fields whose values are never repeated in an error: RSMo 43.650.4 identifiers.
SECRET_FIELDS: frozenset[str] = frozenset({"online_identifiers"})

_EMAIL_LIKE = re.compile(r"[^\s'\"<>()\[\],;:@]+@[^\s'\"<>()\[\],;:@]+")


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
            where = (
                field_path(p if isinstance(p, int) or p.isprintable() else "?" for p in path) or "(top level)"
            )
            what = (
                "a NUL character (U+0000)"
                if m.group() == "\x00"
                else f"an unpaired surrogate escape \\u{ord(m.group()):04x}, which is not a character"
            )
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


def describe_error(err: ValidationError, *, root: str = "", secret: frozenset[str] = SECRET_FIELDS) -> str:
    """One sentence naming the field path; never repeats a secret field's value."""
    parts = list(err.absolute_path)
    path = field_path(parts) or root or "(top level)"
    hidden = any(isinstance(p, str) and p in secret for p in parts)
    # Set on every error a validator yields: the stubs' Unset is a ValidationError made by hand.
    v = err.validator
    arg: Any = err.validator_value
    inst: Any = err.instance
    schema: Any = err.schema
    last = parts[-1] if parts else None
    if v == "required":
        missing = [r for r in arg if r not in inst]
        name = next((r for r in missing if err.message.startswith(f"{r!r} ")), missing[0])
        return f"{field_path([*parts, name])}: is missing (required)"
    if v == "additionalProperties":
        known = schema.get("properties", {})
        extra = [short(k) for k in inst if k not in known]
        noun = "field" if len(extra) == 1 else "fields"
        more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
        return f"{path}: unexpected {noun} {', '.join(extra[:5])}{more}"
    if v == "dependentRequired":
        given, needed = next((k, d) for k, deps in arg.items() if k in inst for d in deps if d not in inst)
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
