"""Turn one subscriber's pending alerts into the content of one digest (pure, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.domain.model import Alert

PROXIMITY_KINDS = frozenset({"moved_in", "moved_out"})
WATCH_KINDS = frozenset({"watch_changed", "watch_removed"})

_TYPE_LABELS = {"home": "Home", "work": "Work", "school": "School", "temporary": "Temporary"}


def address_type_label(kind: str) -> str:
    return _TYPE_LABELS.get(kind, kind.capitalize())


def _one_line(a: dict[str, Any]) -> str:
    street, city = a.get("street") or "", a.get("city") or ""
    state, zip_ = a.get("state") or "", a.get("zip") or ""
    tail = " ".join(p for p in (state, zip_) if p)
    return ", ".join(p for p in (street, city, tail) if p)


def _identity(a: dict[str, Any]) -> tuple[str, str]:
    """Address type plus normalized text; without a normalized form, the upper-cased one-liner."""
    return (a.get("type") or "", a.get("normalized") or _one_line(a).upper())


@dataclass(frozen=True)
class AddressLine:
    type: str  # "Home", "Work", "School"
    one_line: str

    @classmethod
    def of(cls, a: dict[str, Any]) -> AddressLine:
        return cls(address_type_label(a.get("type") or ""), _one_line(a))


@dataclass(frozen=True)
class OffenderLine:
    """One offender address that came into (or left) the radius of a tracked address."""

    offender_id: str
    name: str
    direction: str  # "in" | "out"
    address_type: str
    address: str
    offense: str
    band: str  # e.g. "within 1/4 mi"
    distance_m: float
    # Where the address lies (drawn on the digest's map); None when the registry gave no point.
    lat: float | None = None
    lon: float | None = None

    @property
    def moved_in(self) -> bool:
        return self.direction == "in"


@dataclass(frozen=True)
class TrackedAddressSection:
    tracked_address_id: int
    label: str
    one_line: str
    lines: tuple[OffenderLine, ...]  # moved in first, then moved out; nearest first

    @property
    def moved_in(self) -> tuple[OffenderLine, ...]:
        return tuple(line for line in self.lines if line.direction == "in")

    @property
    def moved_out(self) -> tuple[OffenderLine, ...]:
        return tuple(line for line in self.lines if line.direction == "out")


@dataclass(frozen=True)
class WatchLine:
    """A tracked offender's addresses changed, or the offender left the public registry."""

    offender_id: str
    name: str
    offense: str
    removed: bool
    old_addresses: tuple[AddressLine, ...]
    new_addresses: tuple[AddressLine, ...]


@dataclass(frozen=True)
class Digest:
    subscriber_id: int
    places: tuple[TrackedAddressSection, ...]
    watches: tuple[WatchLine, ...]

    @property
    def proximity_count(self) -> int:
        return sum(len(p.lines) for p in self.places)

    @property
    def watch_count(self) -> int:
        return len(self.watches)

    @property
    def change_count(self) -> int:
        return self.proximity_count + self.watch_count


def _chronological(alerts: Iterable[Alert]) -> list[Alert]:
    """In registry order. Every group built from this is one offender's, and an offender's
    revisions are the registry's own order: two of them may carry the same occurred_at, and
    alerts are not recorded in order (a batch stores them together, under one timestamp)."""
    return sorted(alerts, key=lambda a: (a.revision, a.occurred_at))


def _net_proximity(alerts: Sequence[Alert]) -> list[Alert]:
    """Per (tracked address, offender, address identity), keep only the net change of the period.

    The first alert of a group tells where things stood before the period (moved in: the
    address was not there; moved out: it was), the last one where they stand now. Equal
    first and last direction means a real change, shown once (the latest alert); different
    ones (in then out, or out then in) mean nothing changed overall, and the group is dropped.
    """
    groups: dict[tuple[int, str, tuple[str, str]], list[Alert]] = {}
    for a in _chronological(alerts):
        key = (a.tracked_address_id or 0, a.offender_id, _identity(a.address or {}))
        groups.setdefault(key, []).append(a)
    return [g[-1] for g in groups.values() if g[0].kind == g[-1].kind]


def _coordinate(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _offender_line(a: Alert) -> OffenderLine:
    addr = a.address or {}
    return OffenderLine(
        offender_id=a.offender_id,
        name=str(a.offender.get("name") or ""),
        direction="in" if a.kind == "moved_in" else "out",
        address_type=address_type_label(addr.get("type") or ""),
        address=_one_line(addr),
        offense=str(a.offender.get("main_offense") or ""),
        band=a.band or "",
        distance_m=float(a.distance_m if a.distance_m is not None else 0.0),
        lat=_coordinate(addr.get("lat")),
        lon=_coordinate(addr.get("lon")),
    )


def _places(alerts: Sequence[Alert]) -> tuple[TrackedAddressSection, ...]:
    by_place: dict[int, list[Alert]] = {}
    for a in _net_proximity(alerts):
        by_place.setdefault(a.tracked_address_id or 0, []).append(a)
    sections = []
    for tracked_id, group in by_place.items():
        latest = max(group, key=lambda a: a.occurred_at)  # the label as last named
        lines = sorted(
            (_offender_line(a) for a in group),
            key=lambda ln: (ln.direction != "in", ln.distance_m, ln.name.casefold(), ln.offender_id),
        )
        sections.append(
            TrackedAddressSection(
                tracked_address_id=tracked_id,
                label=latest.tracked_label or "",
                one_line=latest.tracked_one_line or "",
                lines=tuple(lines),
            )
        )
    sections.sort(key=lambda s: (s.label.casefold(), s.label, s.tracked_address_id))
    return tuple(sections)


def _watches(alerts: Sequence[Alert]) -> tuple[WatchLine, ...]:
    """One line per tracked offender: from the addresses before the period to the latest ones."""
    by_offender: dict[str, list[Alert]] = {}
    for a in _chronological(alerts):
        by_offender.setdefault(a.offender_id, []).append(a)
    lines = []
    for offender_id, group in by_offender.items():
        first, last = group[0], group[-1]
        removed = last.kind == "watch_removed"
        old, new = first.old_addresses, ([] if removed else last.new_addresses)
        if not removed and {_identity(x) for x in old} == {_identity(x) for x in new}:
            continue  # changed and changed back within the period
        lines.append(
            WatchLine(
                offender_id=offender_id,
                name=str(last.offender.get("name") or ""),
                offense=str(last.offender.get("main_offense") or ""),
                removed=removed,
                old_addresses=tuple(AddressLine.of(x) for x in old),
                new_addresses=tuple(AddressLine.of(x) for x in new),
            )
        )
    lines.sort(key=lambda w: (w.name.casefold(), w.offender_id))
    return tuple(lines)


def build_digest(subscriber_id: int, alerts: Sequence[Alert]) -> Digest | None:
    """The digest of these alerts, or None when, net of cancelling changes, nothing is left.

    The caller has already dropped alerts of offenders who are no longer public; alerts of
    another subscriber are ignored.
    """
    mine = {a.alert_id: a for a in alerts if a.subscriber_id == subscriber_id}
    unique = list(mine.values())
    places = _places([a for a in unique if a.kind in PROXIMITY_KINDS])
    watches = _watches([a for a in unique if a.kind in WATCH_KINDS])
    if not places and not watches:
        return None
    return Digest(subscriber_id=subscriber_id, places=places, watches=watches)
