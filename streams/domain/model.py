"""Value objects shared by every stage: registry state, tracked circles, alerts."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from streams.domain.geocoding import precise_enough

AddressType = Literal["home", "work", "school", "temporary"]
# Only these address types take part in proximity and watch alerts (RSMo 43.650 lists
# residence, work and school as the public addresses; "temporary" is kept for the record).
ALERTING_TYPES: frozenset[str] = frozenset({"home", "work", "school"})

AlertKind = Literal["moved_in", "moved_out", "watch_changed", "watch_removed"]


@dataclass(frozen=True)
class Address:
    type: str
    street: str
    city: str
    state: str
    zip: str
    county: str | None = None
    lat: float | None = None
    lon: float | None = None
    # Normalized one-line text (USPS Pub 28 form); the address identity with `type`.
    normalized: str = ""
    # How exact lat/lon are (streams.domain.geocoding); None for states stored before it.
    precision: str | None = None

    @property
    def identity(self) -> tuple[str, str]:
        return (self.type, self.normalized)

    @property
    def has_point(self) -> bool:
        return self.lat is not None and self.lon is not None

    @property
    def locates(self) -> bool:
        """Exact enough to say "within 500 ft": coarser points are shown as approximate only."""
        return self.has_point and precise_enough(self.precision)

    @property
    def one_line(self) -> str:
        return f"{self.street}, {self.city}, {self.state} {self.zip}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Address:
        return cls(**d)


@dataclass(frozen=True)
class Offense:
    description: str
    code: str | None = None
    convicted_on: str | None = None


@dataclass(frozen=True)
class Alias:
    last_name: str
    first_name: str


@dataclass(frozen=True)
class OffenderProfile:
    """What the statute lets the public see, plus the juvenile flag that hides it all.

    Online identifiers are never held in clear text past the edge: only their SHA-256
    digests (of the lower-cased identifier), for exact-match search (RSMo 43.650.4).
    """

    last_name: str
    first_name: str
    date_of_birth: str
    tier: int
    compliance: str
    juvenile: bool
    offenses: tuple[Offense, ...] = ()
    middle_name: str | None = None
    suffix: str | None = None
    aliases: tuple[Alias, ...] = ()
    sex: str | None = None
    race: str | None = None
    height_in: int | None = None
    weight_lb: int | None = None
    photo_url: str | None = None
    online_identifier_digests: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        parts = [self.first_name, self.middle_name or "", self.last_name]
        name = " ".join(p for p in parts if p)
        return f"{name} {self.suffix}" if self.suffix else name

    @property
    def main_offense(self) -> str:
        return self.offenses[0].description if self.offenses else ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OffenderProfile:
        d = dict(d)
        d["offenses"] = tuple(Offense(**o) for o in d.get("offenses", ()))
        d["aliases"] = tuple(Alias(**a) for a in d.get("aliases", ()))
        d["online_identifier_digests"] = tuple(d.get("online_identifier_digests", ()))
        return cls(**d)


def digest_online_identifier(identifier: str) -> str:
    return hashlib.sha256(identifier.strip().lower().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RegistryEvent:
    """A validated `registry-event/1` (see schemas/registry-event.schema.json)."""

    event_id: str
    offender_id: str
    revision: int
    occurred_at: str
    kind: Literal["upsert", "remove"]
    baseline: bool = False
    offender: OffenderProfile | None = None
    addresses: tuple[Address, ...] = ()


@dataclass(frozen=True)
class SeenEvent:
    """An event id the system applied, and what that event said.

    `content_digest` is streams.domain.event_identity.content_digest of the event (None:
    applied before digests were kept); with the revision, it names the registry entry.
    """

    event_id: str
    content_digest: str | None
    revision: int | None = None

    def to_list(self) -> list[Any]:
        return [self.event_id, self.content_digest, self.revision]

    @classmethod
    def from_list(cls, d: list[Any]) -> SeenEvent:
        return cls(d[0], d[1], d[2])


@dataclass(frozen=True)
class OffenderState:
    """The last applied registry state of one offender (the stream's table value)."""

    offender_id: str
    revision: int
    removed: bool
    profile: OffenderProfile | None
    addresses: tuple[Address, ...]
    # Recent events applied to this offender (oldest first), to tell a redelivered event
    # from one that reuses an id with other content.
    recent_events: tuple[SeenEvent, ...] = ()
    occurred_at: str = ""
    # The state before the latest event (without its own `previous`), so that the latest
    # event, delivered again, can re-derive its alerts: after a broker lost messages that
    # were in flight, re-publishing the day's events makes the missing alerts again (alert
    # ids are deterministic, so the ones already recorded are not doubled). "unknown" for a
    # state stored before this field existed.
    previous: OffenderState | None | Literal["unknown"] = "unknown"
    # Whether the latest event was a baseline load: a replay of it derives nothing, as the
    # original did not (None: stored before this was kept; such a state is never replayed).
    baseline: bool | None = None

    @property
    def recent_event_ids(self) -> tuple[str, ...]:
        return tuple(e.event_id for e in self.recent_events)

    def recent_event(self, event_id: str) -> SeenEvent | None:
        return next((e for e in reversed(self.recent_events) if e.event_id == event_id), None)

    @property
    def is_public(self) -> bool:
        return not self.removed and self.profile is not None and not self.profile.juvenile

    def to_dict(self) -> dict[str, Any]:
        return {
            "offender_id": self.offender_id,
            "revision": self.revision,
            "removed": self.removed,
            "profile": self.profile.to_dict() if self.profile else None,
            "addresses": [a.to_dict() for a in self.addresses],
            "recent_events": [e.to_list() for e in self.recent_events],
            "occurred_at": self.occurred_at,
            **({} if self.baseline is None else {"baseline": self.baseline}),
            **(
                {}
                if self.previous == "unknown"
                else {"previous": self.previous.to_dict() if self.previous else None}
            ),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OffenderState:
        prev = d.get("previous", "unknown")
        if "recent_events" in d:
            recent = tuple(SeenEvent.from_list(e) for e in d["recent_events"])
        else:  # stored before content digests were kept
            recent = tuple(SeenEvent(i, None) for i in d.get("recent_event_ids", ()))
        return cls(
            offender_id=d["offender_id"],
            revision=d["revision"],
            removed=d["removed"],
            profile=OffenderProfile.from_dict(d["profile"]) if d.get("profile") else None,
            addresses=tuple(Address.from_dict(a) for a in d.get("addresses", ())),
            recent_events=recent,
            occurred_at=d.get("occurred_at", ""),
            previous=prev if prev in ("unknown", None) else OffenderState.from_dict(prev),
            baseline=d.get("baseline"),
        )


@dataclass(frozen=True)
class OffenderSummary:
    """The few offender facts an alert carries (never online identifiers)."""

    offender_id: str
    name: str
    main_offense: str
    tier: int
    compliance: str

    @classmethod
    def of(cls, offender_id: str, p: OffenderProfile) -> OffenderSummary:
        return cls(offender_id, p.display_name, p.main_offense, p.tier, p.compliance)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AddressChange:
    """One alerting address of one offender that appeared ("in") or went away ("out")."""

    event_id: str
    offender_id: str
    occurred_at: str
    direction: Literal["in", "out"]
    address: Address
    offender: OffenderSummary
    revision: int = 0  # the offender's registry revision: orders one offender's changes

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "offender_id": self.offender_id,
            "occurred_at": self.occurred_at,
            "direction": self.direction,
            "address": self.address.to_dict(),
            "offender": self.offender.to_dict(),
            "revision": self.revision,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AddressChange:
        return cls(
            event_id=d["event_id"],
            offender_id=d["offender_id"],
            occurred_at=d["occurred_at"],
            direction=d["direction"],
            address=Address.from_dict(d["address"]),
            offender=OffenderSummary(**d["offender"]),
            revision=int(d.get("revision", 0)),  # absent from changes queued before 2026-12
        )


@dataclass(frozen=True)
class WatchChange:
    """A tracked offender's alerting addresses changed (or the offender left the registry)."""

    event_id: str
    offender_id: str
    occurred_at: str
    removed: bool
    offender: OffenderSummary
    old_addresses: tuple[Address, ...] = ()
    new_addresses: tuple[Address, ...] = ()
    revision: int = 0


@dataclass(frozen=True)
class Circle:
    """A subscriber's tracked address with its radius: the unit of the geo join."""

    circle_id: int  # the tracked address id
    subscriber_id: int
    label: str
    one_line: str
    lat: float
    lon: float
    radius_m: float
    radius_code: str

    def to_dict(self) -> dict[str, Any]:
        # Every field is a scalar: a shallow dict is what asdict gives, without its deep
        # copy per field (most of resync's message building at 1M circles: bench/README.md).
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Circle:
        return cls(**d)


@dataclass(frozen=True)
class Alert:
    """One line of a future digest, for one subscriber. `alert_id` makes re-delivery harmless."""

    alert_id: str
    subscriber_id: int
    offender_id: str
    kind: str  # AlertKind
    event_id: str
    occurred_at: str
    offender: dict[str, Any]
    # proximity alerts
    tracked_address_id: int | None = None
    tracked_label: str | None = None
    tracked_one_line: str | None = None
    address: dict[str, Any] | None = None
    distance_m: float | None = None
    band: str | None = None
    # watch alerts
    old_addresses: list[dict[str, Any]] = field(default_factory=list)
    new_addresses: list[dict[str, Any]] = field(default_factory=list)
    # The offender's registry revision: one offender's alerts are ordered by it, since two
    # revisions can carry the same occurred_at (0 in alerts stored before 2026-12).
    revision: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        return cls(**d)


def alert_id_for(*parts: object) -> str:
    """Deterministic id: the same event re-processed yields the same alert ids."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8"))
    return h.hexdigest()[:32]
