"""Dead letters: why a registry event cannot be applied (InvalidEvent, its reasons) and the
dead-letter/1 record kept to fix and replay it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from streams.adapters.schema_checks import scrub

DEAD_LETTER_SCHEMA = "dead-letter/1"

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


class InvalidEvent(Exception):
    """A registry event that cannot be applied; `reason` is a stable code, `detail` a sentence."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        self.reason = reason
        self.detail = _clip(scrub(detail))
        super().__init__(f"{reason}: {self.detail}")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


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
    at = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "schema": DEAD_LETTER_SCHEMA,
        "reason": error.reason,
        "detail": error.detail,
        "source": {"topic": topic, "partition": partition, "offset": offset, "key": key},
        "original_b64": base64.b64encode(bytes(raw)).decode("ascii"),
        "dead_lettered_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
