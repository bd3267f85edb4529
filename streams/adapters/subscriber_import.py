"""The legacy migration file: one subscriber per JSON line, checked against subscriber-import.schema.json."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from os import PathLike
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from streams.adapters.schema_checks import (
    FORMATS,
    describe_error,
    format_checker,
    json_type,
    load_schema,
    scrub,
    short,
    strict_json_loads,
    text_problem,
)
from streams.adapters.schema_gate import compile_gate
from streams.domain.addresses import normalize_address
from streams.domain.digest_schedule import WEEKLY, Schedule
from streams.domain.geocoding import PROVIDED
from streams.domain.limits import MAX_ADDRESSES, MAX_OFFENDERS
from streams.domain.radii import RADIUS_CODES

# A legacy export is read line by line; one runaway line must not be read whole.
MAX_LINE_BYTES = 64 * 1024
# Lines read and checked together by iter_import_file (the import's own blocks are its choice).
READ_BLOCK = 500
GEOCODING_MESSAGE = "give both lat and lon, or neither (the address is then geocoded)"
_SECRET = frozenset({"email"})


@dataclass(frozen=True)
class ImportedAddress:
    label: str
    street: str
    city: str
    state: str
    zip: str
    radius_code: str
    lat: float | None  # None until geocoded
    lon: float | None
    normalized: str
    precision: str | None = None


@dataclass(frozen=True)
class ImportedSubscriber:
    email: str  # email-validator's normalized form, lower-cased: the identity for matching
    confirmed: bool
    addresses: tuple[ImportedAddress, ...]
    offenders: tuple[str, ...]
    schedule: Schedule | None = None  # None: a new subscriber is daily, an existing one unchanged


class InvalidLine(Exception):
    """One line that cannot be imported; the message names the field and never the e-mail."""

    def __init__(self, message: str) -> None:
        self.message = scrub(message)
        super().__init__(self.message)


@cache
def _validator() -> Draft202012Validator:
    schema = load_schema("subscriber-import.schema.json")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=format_checker())


@cache
def _gate() -> Callable[[Any], bool]:
    return compile_gate(load_schema("subscriber-import.schema.json"), FORMATS)


def _describe(err: ValidationError) -> str:
    parts = list(err.absolute_path)
    if err.validator == "required" and parts[:1] == ["addresses"] and len(parts) == 2:
        if err.message.startswith(("'lat' ", "'lon' ")):
            return f"addresses[{parts[1]}]: {GEOCODING_MESSAGE}"
    if err.validator == "dependentRequired" and parts[:1] == ["addresses"]:
        return f"addresses[{parts[1]}]: {GEOCODING_MESSAGE}"
    if err.validator == "enum" and parts[-1:] == ["radius"]:
        return (
            f"addresses[{parts[1]}].radius: {short(err.instance)} is not offered; "
            f"choose one of {', '.join(RADIUS_CODES)}"
        )
    if err.validator == "maxItems" and parts == ["addresses"]:
        given = len(cast(list[Any], err.instance))
        return f"addresses: {given} given, at most {MAX_ADDRESSES} addresses per subscriber"
    return describe_error(err, root="line", secret=_SECRET)


def _schema_check(doc: dict[str, Any]) -> None:
    if _gate()(doc):
        return
    errors = list(_validator().iter_errors(doc))
    if not errors:
        return
    # Missing coordinates are the likeliest fault of a legacy export: say so first.
    geo = [e for e in errors if _describe(e).endswith(GEOCODING_MESSAGE)]
    message = _describe(geo[0] if geo else best_match(errors))
    if len(errors) > 1:
        n = len(errors) - 1
        message += f" (and {n} more problem{'s' if n > 1 else ''})"
    raise InvalidLine(message)


def _without(text: str, email: str) -> str:
    """email-validator's reason, minus any piece of the address it may quote."""
    local, _, domain = email.rpartition("@")
    for piece in sorted({email, local, domain}, key=len, reverse=True):
        if len(piece) >= 2:
            text = re.sub(re.escape(piece), "…", text, flags=re.IGNORECASE)

    def quoted(m: re.Match[str]) -> str:
        # IDNA and IP errors quote a label or an address literal from the domain.
        inner = m.group(1)
        return "'…'" if len(inner) >= 2 and inner.lower() in email.lower() else m.group(0)

    return re.sub(r"'([^']*)'", quoted, text).rstrip(".")


def _email(raw: str) -> str:
    try:
        valid = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as e:
        raise InvalidLine(f"email: not a valid address ({_without(str(e), raw)})") from None
    return valid.normalized.lower()


def _address(a: dict[str, Any]) -> ImportedAddress:
    state = a["state"].upper()
    return ImportedAddress(
        label=a["label"],
        street=a["street"],
        city=a["city"],
        state=state,
        zip=a["zip"],
        radius_code=a["radius"],
        lat=float(a["lat"]) if a.get("lat") is not None else None,
        lon=float(a["lon"]) if a.get("lon") is not None else None,
        normalized=normalize_address(a["street"], a["city"], state, a["zip"]),
        precision=PROVIDED if a.get("lat") is not None else None,
    )


def parse_subscriber_line(line: str) -> ImportedSubscriber:
    """One JSON line to a subscriber, or InvalidLine saying which rule it breaks."""
    try:
        doc = strict_json_loads(line)
    except ValueError as e:
        raise InvalidLine(f"not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidLine(f"a line must be one JSON object, got {json_type(doc)}")
    _schema_check(doc)
    if problem := text_problem(doc):
        raise InvalidLine(problem)
    # A repeated id counts once: the limit is on what is tracked, not on how it was typed.
    offenders = tuple(dict.fromkeys(doc.get("offenders") or ()))
    if len(offenders) > MAX_OFFENDERS:
        raise InvalidLine(
            f"offenders: {len(offenders)} distinct offender ids, at most {MAX_OFFENDERS} can be tracked"
        )
    return ImportedSubscriber(
        email=_email(doc["email"]),
        confirmed=doc["confirmed"],
        addresses=tuple(_address(a) for a in doc.get("addresses") or ()),
        offenders=offenders,
        schedule=_schedule(doc),
    )


def _schedule(doc: dict[str, Any]) -> Schedule | None:
    frequency, weekday = doc.get("frequency"), doc.get("weekday")
    if frequency is None and weekday is None:
        return None
    if frequency != WEEKLY and weekday is not None:
        raise InvalidLine('weekday: only with "frequency": "weekly" (a daily digest has no weekday)')
    if frequency == WEEKLY and weekday is None:
        raise InvalidLine('weekday: required with "frequency": "weekly", one of Monday … Sunday')
    return Schedule.parse(frequency, weekday)


def _lines(fh: Any) -> Iterator[bytes | None]:
    """Raw lines; None for a line longer than MAX_LINE_BYTES (skipped to its end)."""
    while chunk := fh.readline(MAX_LINE_BYTES + 1):
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            while chunk and not chunk.endswith(b"\n"):
                chunk = fh.readline(MAX_LINE_BYTES + 1)
            yield None
        else:
            yield chunk


RawLine = tuple[int, "bytes | None"]
CheckedLine = tuple[int, "ImportedSubscriber | InvalidLine"]


def read_blocks(path: str | PathLike[str], size: int) -> Iterator[list[RawLine]]:
    """The file's lines in blocks of at most `size`: (line number from 1, raw bytes, or None
    for a line longer than MAX_LINE_BYTES); blank lines are skipped, a leading BOM dropped."""
    block: list[RawLine] = []
    with open(path, "rb") as fh:
        for n, raw in enumerate(_lines(fh), start=1):
            if raw is not None:
                if n == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a BOM from a Windows export
                if not raw.strip():
                    continue
            block.append((n, raw))
            if len(block) >= size:
                yield block
                block = []
    if block:
        yield block


def check_line(raw: bytes | None) -> ImportedSubscriber | InvalidLine:
    """One raw line to a subscriber, or the reason it cannot be imported."""
    if raw is None:
        return InvalidLine(f"line is longer than {MAX_LINE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return InvalidLine(f"line is not UTF-8: byte 0x{raw[e.start]:02x} at position {e.start} ({e.reason})")
    try:
        return parse_subscriber_line(text)
    except InvalidLine as err:
        return err


def check_lines(block: list[RawLine]) -> list[CheckedLine]:
    """A block of raw lines checked, in order; pure, so a worker process can run it."""
    return [(n, check_line(raw)) for n, raw in block]


def iter_import_file(path: str | PathLike[str]) -> Iterator[CheckedLine]:
    """(line number from 1, subscriber or the reason it was rejected); blank lines skipped."""
    for block in read_blocks(path, READ_BLOCK):
        yield from check_lines(block)
