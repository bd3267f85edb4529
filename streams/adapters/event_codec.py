"""The registry-event/1 edge: raw Kafka bytes in, a validated RegistryEvent out (or an
InvalidEvent to dead-letter); and back to bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from streams.adapters.dead_letters import InvalidEvent
from streams.adapters.schema_checks import (
    FORMATS,
    describe_error,
    format_checker,
    json_type,
    load_schema,
    short,
    strict_json_loads,
    text_problem,
)
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
        aliases=tuple(
            Alias(last_name=a["last_name"], first_name=a["first_name"]) for a in d.get("aliases") or ()
        ),
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
        raw = json.dumps(event_dict, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    except (TypeError, ValueError) as e:
        raise InvalidEvent("bad_json", f"the event cannot be written as JSON: {e}") from None
    decode_registry_event(raw)
    return raw
