"""The alerts of one change, as one batch: what they share once, what differs as columns.

An address change that falls inside 400 circles gives 400 alerts that differ only in the
subscriber, the circle and the distance; a watch change gives one alert per watcher that
differs only in the subscriber. They travel on the alerts topic as one message per change
and destination partition, and are stored without building an `Alert` per subscriber. The
alert ids stay derived from event, circle (or subscriber) and address, as `Alert`'s are, so
a batch read twice stores nothing twice and a batch holds the very alerts the one-message-
per-alert form held.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any

from streams.domain.model import Alert, alert_id_for
from streams.domain.radii import proximity_band

SCHEMA = "alert-batch/1"
# Alerts per message at most: ~250 bytes each, so a message stays far below the 1 MB a Kafka
# broker accepts by default, whatever a change's fan-out (thousands at 1M circles).
MAX_ROWS = 1000

# Every field of a stored alert with its default (None for the ones without); a row of a
# batch is these, then the batch's common fields, then its own columns.
ALERT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Alert))
_DEFAULTS: dict[str, Any] = {
    f.name: (f.default if f.default is not MISSING else [] if f.default_factory is list else None)
    for f in fields(Alert)
}
_REQUIRED = frozenset(f.name for f in fields(Alert) if f.default is MISSING and f.default_factory is MISSING)


# The stored form of one alert: the columns the digest queries filter on, then the whole
# alert as JSON text (what `Alert.to_dict()` gives, encoded).
StoredAlert = tuple[str, int, str, str, str]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_str = json.encoder.encode_basestring  # what _encode does with a str, without the dispatch


def _encoded_column(values: Sequence[Any]) -> list[str]:
    """Each value as `_encode` gives it; a column of one plain type without its dispatch
    (`json` writes an int and a finite float as their repr)."""
    kinds = set(map(type, values))
    if kinds == {str}:
        return list(map(_encode_str, values))
    if kinds == {int}:
        return list(map(int.__repr__, values))
    if kinds == {float} and all(map(math.isfinite, values)):
        return list(map(float.__repr__, values))
    return list(map(_encode, values))


class InvalidAlertBatch(ValueError):
    """A message on the alerts topic that is neither an alert nor a well-formed batch."""


@dataclass(frozen=True)
class AlertBatch:
    """Alerts sharing `common`; `columns` holds the fields that differ, one list per field."""

    common: dict[str, Any]
    columns: dict[str, list[Any]]

    def __post_init__(self) -> None:
        names = set(self.common) | set(self.columns)
        unknown = names - set(ALERT_FIELDS)
        if unknown:
            raise InvalidAlertBatch(f"unknown alert fields {sorted(unknown)}")
        if set(self.common) & set(self.columns):
            raise InvalidAlertBatch(
                f"fields both common and per alert: {sorted(set(self.common) & set(self.columns))}"
            )
        if not {"alert_id", "subscriber_id"} <= set(self.columns):
            raise InvalidAlertBatch("a batch needs alert_id and subscriber_id columns")
        if _REQUIRED - names:
            raise InvalidAlertBatch(f"missing alert fields {sorted(_REQUIRED - names)}")
        lengths = {len(c) for c in self.columns.values()}
        if len(lengths) != 1:
            raise InvalidAlertBatch(f"columns of different lengths {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.columns["alert_id"])

    @property
    def subscriber_ids(self) -> list[int]:
        return self.columns["subscriber_id"]

    def rows(self) -> Iterator[dict[str, Any]]:
        """Each alert as `Alert.to_dict()` gives it (nested values shared, not copied)."""
        base = {**_DEFAULTS, **self.common}
        names = list(self.columns)
        for values in zip(*self.columns.values()):
            row = dict(base)
            row.update(zip(names, values))
            yield row

    def stored(self) -> list[StoredAlert]:
        """Each alert in its stored form, the JSON text the very object `rows()` gives would
        encode to. What the alerts share is encoded once and each alert's own columns are
        spliced in: encoding every row whole was the largest single cost of recording
        (bench/README.md, Pipeline)."""
        names = list(self.columns)
        shared = {k: v for k, v in {**_DEFAULTS, **self.common}.items() if k not in self.columns}
        head = (_encode(shared)[:-1] + ",") if shared else "{"
        # "%" in what is shared (an offense described as "50% ...") is not a placeholder.
        template = head.replace("%", "%%") + ",".join(_encode_str(n) + ":%s" for n in names) + "}"
        text = [template % parts for parts in zip(*(_encoded_column(self.columns[n]) for n in names))]
        n = len(self)
        offender_ids = self.columns.get("offender_id") or [self.common["offender_id"]] * n
        kinds = self.columns.get("kind") or [self.common["kind"]] * n
        return list(zip(self.columns["alert_id"], self.columns["subscriber_id"], offender_ids, kinds, text))

    def alerts(self) -> list[Alert]:
        return [Alert(**row) for row in self.rows()]

    def by_partition(self, partitions: int, max_rows: int = MAX_ROWS) -> list[tuple[int, AlertBatch]]:
        """One batch per destination partition (subscriber id modulo the partitions), so one
        subscriber's alerts always travel, and are recorded, in one partition; a partition's
        share past `max_rows` alerts is cut into several batches, each well under a broker's
        message size limit."""
        groups: dict[int, list[int]] = {}
        for i, sid in enumerate(self.subscriber_ids):
            groups.setdefault(sid % partitions, []).append(i)
        if len(groups) == 1 and len(self) <= max_rows:
            return [(next(iter(groups)), self)]
        out = []
        for p, rows in sorted(groups.items()):
            for start in range(0, len(rows), max_rows):
                part = rows[start : start + max_rows]
                out.append(
                    (
                        p,
                        AlertBatch(
                            self.common, {k: [col[i] for i in part] for k, col in self.columns.items()}
                        ),
                    )
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "common": self.common, "columns": self.columns}

    @classmethod
    def from_dict(cls, d: Any) -> AlertBatch:
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise InvalidAlertBatch(f"not an {SCHEMA} message")
        common, columns = d.get("common"), d.get("columns")
        if not isinstance(common, dict) or not isinstance(columns, dict):
            raise InvalidAlertBatch("a batch has a common object and a columns object")
        if not all(isinstance(c, list) for c in columns.values()):
            raise InvalidAlertBatch("every column is a list")
        return cls(common, columns)


def alert_rows(message: Any) -> Iterator[dict[str, Any]]:
    """The stored form of every alert a message on the alerts topic carries: a batch, or one
    alert per message as workers before batches sent it (still read during an upgrade)."""
    if isinstance(message, dict) and "schema" in message:
        yield from AlertBatch.from_dict(message).rows()
        return
    if (
        not isinstance(message, dict)
        or not message.keys() >= _REQUIRED
        or not message.keys() <= set(ALERT_FIELDS)
    ):
        raise InvalidAlertBatch("neither an alert nor an alert batch")
    yield {**_DEFAULTS, **message}


def stored_alerts(message: Any) -> list[StoredAlert]:
    """The stored form of every alert a message on the alerts topic carries (as `alert_rows`
    reads them, encoded)."""
    if isinstance(message, dict) and "schema" in message:
        return AlertBatch.from_dict(message).stored()
    return [stored_alert(row) for row in alert_rows(message)]


def stored_alert(row: dict[str, Any]) -> StoredAlert:
    """One alert's stored form, from its fields as `Alert.to_dict()` gives them."""
    return (row["alert_id"], row["subscriber_id"], row["offender_id"], row["kind"], _encode(row))


def proximity_batch(
    *,
    event_id: str,
    offender_id: str,
    occurred_at: str,
    revision: int,
    direction: str,
    offender: dict[str, Any],
    address: dict[str, Any],
    identity: tuple[str, str],
    circle_ids: Sequence[int],
    subscriber_ids: Sequence[int],
    labels: Sequence[str],
    one_lines: Sequence[str],
    distances_m: Sequence[float],
) -> AlertBatch | None:
    """The "moved in" or "moved out" alerts of one address change for the circles holding it
    (ids as `proximity_alerts` derives them), or None when no circle holds it."""
    if not circle_ids:
        return None
    kind = "moved_in" if direction == "in" else "moved_out"
    return AlertBatch(
        common={
            "offender_id": offender_id,
            "kind": kind,
            "event_id": event_id,
            "occurred_at": occurred_at,
            "revision": revision,
            "offender": offender,
            "address": address,
        },
        columns={
            "alert_id": [alert_id_for(event_id, cid, identity, direction) for cid in circle_ids],
            "subscriber_id": list(subscriber_ids),
            "tracked_address_id": list(circle_ids),
            "tracked_label": list(labels),
            "tracked_one_line": list(one_lines),
            "distance_m": list(distances_m),
            "band": [proximity_band(d) for d in distances_m],
        },
    )


def batch_of(alerts: Iterable[Alert]) -> AlertBatch | None:
    """Alerts of one change as a batch: the fields all of them share become common."""
    rows = [{f: getattr(a, f) for f in ALERT_FIELDS} for a in alerts]
    if not rows:
        return None
    first = rows[0]
    common = {
        f: first[f]
        for f in ALERT_FIELDS
        if f not in ("alert_id", "subscriber_id") and all(r[f] == first[f] for r in rows)
    }
    columns = {f: [r[f] for r in rows] for f in ALERT_FIELDS if f not in common}
    return AlertBatch(common, columns)
