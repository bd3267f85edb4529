"""What each subscriber's digest must say, worked out the slow and obvious way.

Written from the contract in the README, apart from the production path: no import of
streams.domain's matching, circle index or geometry. Per offender, events in the order they
arrive, state a plain dict; every circle checked by brute-force WGS84 geodesic distance
(inclusive at the radius); plain sets for moved in and out; the period's net at the end.

Asked per event (`Reference.step`) or for the whole period (`alerts`, `digests`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from pyproj import Geod

GEOD = Geod(ellps="WGS84")
ALERTING = ("home", "work", "school")
# Only a point this exact may claim "within 500 ft" (README, "Precision is part of every
# answer"); coordinates that came with a registry event are "provided".
POINT_GRADES = ("address_point", "interpolated", "provided")
FOOT_M, MILE_M = 0.3048, 1609.344
# No two points a geodesic d metres apart differ by more than d / 110,000 degrees of latitude
# (a degree of meridian is 110,574 m at its shortest): used only to skip far circles in bulk.
METRES_PER_DEGREE_LAT_AT_LEAST = 110_000.0


def radius_metres(code: str) -> float:
    """'500ft' -> 152.4, '0.5mi' -> 804.672: the radius a subscriber chose, in metres."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ft|mi)", code)
    assert m, code
    return float(m.group(1)) * (FOOT_M if m.group(2) == "ft" else MILE_M)


@dataclass(frozen=True)
class Place:
    circle_id: int
    subscriber_id: int
    label: str
    lat: float
    lon: float
    radius_m: float

    def holds(self, lat: float, lon: float) -> bool:
        _, _, d = GEOD.inv(self.lon, self.lat, lon, lat)
        return d <= self.radius_m


def places_of(subscribers: Iterable[dict[str, Any]]) -> list[Place]:
    """The circles of subscribers in import form, numbered as an import into an empty database
    numbers them: subscribers 1, 2, ... and their addresses 1, 2, ... in file order."""
    out: list[Place] = []
    for sid, s in enumerate(subscribers, start=1):
        for a in s["addresses"]:
            out.append(Place(len(out) + 1, sid, a["label"], a["lat"], a["lon"], radius_metres(a["radius"])))
    return out


def watchers_of(subscribers: Iterable[dict[str, Any]]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for sid, s in enumerate(subscribers, start=1):
        for oid in s.get("offenders", ()):
            out.setdefault(oid, set()).add(sid)
    return out


class _Band:
    """Circles of one radius in latitude order."""

    def __init__(self, places: list[Place]) -> None:
        self.places = sorted(places, key=lambda p: p.lat)
        self.lats = np.array([p.lat for p in self.places], dtype=np.float64)
        self.lons = np.array([p.lon for p in self.places], dtype=np.float64)
        self.radius_m = self.places[0].radius_m
        self.reach = self.radius_m / METRES_PER_DEGREE_LAT_AT_LEAST


class Places:
    """Every circle, asked "which of you hold this point?" by geodesic distance to each one,
    inclusive at the radius. Circles are grouped by radius and kept in latitude order only so
    that the ones too far north or south to matter can be passed over in bulk."""

    def __init__(self, places: Iterable[Place]) -> None:
        by_radius: dict[float, list[Place]] = {}
        for p in places:
            by_radius.setdefault(p.radius_m, []).append(p)
        self.bands = [_Band(group) for group in by_radius.values()]

    def holding(self, lat: float, lon: float) -> list[Place]:
        return [p for p, _ in self.holding_at(lat, lon)]

    def holding_at(self, lat: float, lon: float) -> list[tuple[Place, float]]:
        """The circles holding the point, each with its geodesic distance from the centre."""
        out: list[tuple[Place, float]] = []
        for b in self.bands:
            lo = int(np.searchsorted(b.lats, lat - b.reach, side="left"))
            hi = int(np.searchsorted(b.lats, lat + b.reach, side="right"))
            if lo < hi:
                n = hi - lo
                _, _, dist = GEOD.inv(b.lons[lo:hi], b.lats[lo:hi], np.full(n, lon), np.full(n, lat))
                dist = np.asarray(dist, dtype=float)
                out += [(b.places[lo + int(i)], float(dist[i])) for i in np.flatnonzero(dist <= b.radius_m)]
        return out


class Pending(NamedTuple):
    subscriber_id: int
    offender_id: str
    kind: str
    revision: int
    event_id: str
    circle_id: int | None
    # moved in/out: (place label, offender name, address identity, street);
    # watch: (offender name, addresses before, addresses after), each {identity: address}
    details: Any

    def key(self) -> tuple[Any, ...]:
        """(subscriber, offender, kind, event id, tracked address id or None, street or None)."""
        return (
            self.subscriber_id,
            self.offender_id,
            self.kind,
            self.event_id,
            self.circle_id,
            self.details[3] if self.circle_id is not None else None,
        )

    def watch_streets(self) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """A watch alert's old and new streets, each sorted; None for moved in/out."""
        if self.circle_id is not None:
            return None
        _, before, after = self.details
        return tuple(sorted(a["street"] for a in before.values())), tuple(
            sorted(a["street"] for a in after.values())
        )


class Step(NamedTuple):
    """What one event does: "applied", "duplicate" (an id already applied, same content),
    "conflicting" (an id already applied, other content) or "stale" (not newer than the
    offender's revision); the alerts it makes; whether it makes pending news of the offender
    go (removed from the registry, or juvenile: then only "left the registry" stays)."""

    outcome: str
    alerts: tuple[Pending, ...]
    forgets: bool


# A digest line, as a reader of the e-mail sees it:
#   ("near", place label, offender name, "in" | "out", street)
#   ("watch", offender name, removed, old streets, new streets); a removal names no streets
Line = tuple[Any, ...]


def _content(ev: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in ev.items() if k != "schema"}, sort_keys=True)


def _public(ev: dict[str, Any] | None) -> bool:
    return ev is not None and ev["kind"] == "upsert" and not ev["offender"]["juvenile"]


# USPS Pub 28: directionals (C2) and the common street suffixes (C1), written out -> standard.
_USPS = {
    "NORTH": "N",
    "SOUTH": "S",
    "EAST": "E",
    "WEST": "W",
    "NORTHEAST": "NE",
    "NORTHWEST": "NW",
    "SOUTHEAST": "SE",
    "SOUTHWEST": "SW",
    "ALLEY": "ALY",
    "AVENUE": "AVE",
    "AV": "AVE",
    "BOULEVARD": "BLVD",
    "CIRCLE": "CIR",
    "COURT": "CT",
    "DRIVE": "DR",
    "EXPRESSWAY": "EXPY",
    "HIGHWAY": "HWY",
    "LANE": "LN",
    "PARKWAY": "PKWY",
    "PLACE": "PL",
    "ROAD": "RD",
    "SQUARE": "SQ",
    "STREET": "ST",
    "TERRACE": "TER",
    "TRAIL": "TRL",
}


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w#/-]+", " ", re.sub(r"[.']", "", text.upper())).split()


def identity(a: dict[str, Any]) -> tuple[str, ...]:
    """What tells a move from a re-spelling (README, "Address identity"): the address type and
    its text in USPS form, words written out or abbreviated alike, five-digit ZIP."""
    zip5 = re.sub(r"\D", "", str(a.get("zip") or ""))[:5]
    return (
        a["type"],
        " ".join(_USPS.get(w, w) for w in _words(a["street"])),
        " ".join(_words(a.get("city") or "")),
        (a.get("state") or "").upper(),
        zip5,
    )


def _placed(a: dict[str, Any]) -> bool:
    """A point exact enough for proximity: coordinates, and a point-grade precision (an
    address geocoded only to its street or ZIP is kept and shown to watchers, never near)."""
    return (
        a.get("lat") is not None
        and a.get("lon") is not None
        and a.get("precision", "provided") in POINT_GRADES
    )


def _view(ev: dict[str, Any] | None) -> dict[tuple[str, ...], dict[str, Any]]:
    """Public alerting addresses by identity: what proximity and watches compare."""
    if not _public(ev):
        return {}
    assert ev is not None
    return {identity(a): a for a in ev["addresses"] if a["type"] in ALERTING}


def _name(ev: dict[str, Any]) -> str:
    return f"{ev['offender']['first_name']} {ev['offender']['last_name']}"


def event_alerts(
    circles: Places, watchers: dict[str, set[int]], old: dict[str, Any] | None, ev: dict[str, Any]
) -> list[Pending]:
    """The alerts one event makes when applied over `old`, the offender's last applied event
    (None if never seen): moved out of every circle holding an alerting address it no longer
    has, moved in to every circle holding one it newly has, a watch alert for each watcher.
    A baseline event makes none."""
    if ev.get("baseline"):
        return []
    oid = ev["offender_id"]
    made: list[Pending] = []
    before, after = _view(old), _view(ev)
    if _public(ev):
        for direction, gone in (("out", before.keys() - after.keys()), ("in", after.keys() - before.keys())):
            source = before if direction == "out" else after
            for key in gone:
                a = source[key]
                if not _placed(a):
                    continue
                who = old if direction == "out" else ev
                for p in circles.holding(a["lat"], a["lon"]):
                    made.append(
                        Pending(
                            p.subscriber_id,
                            oid,
                            f"moved_{direction}",
                            ev["revision"],
                            ev["event_id"],
                            p.circle_id,
                            (p.label, _name(who), key, a["street"]),
                        )
                    )
    if _public(ev) and (not _public(old) or before.keys() != after.keys()):
        for sid in watchers.get(oid, ()):
            made.append(
                Pending(
                    sid,
                    oid,
                    "watch_changed",
                    ev["revision"],
                    ev["event_id"],
                    None,
                    (_name(ev), before, after),
                )
            )
    elif ev["kind"] == "remove" and _public(old):
        assert old is not None
        for sid in watchers.get(oid, ()):
            made.append(
                Pending(
                    sid, oid, "watch_removed", ev["revision"], ev["event_id"], None, (_name(old), before, {})
                )
            )
    return made


@dataclass
class Reference:
    places: Iterable[Place]
    watchers: dict[str, set[int]]  # offender id -> subscriber ids
    state: dict[str, dict[str, Any]] = field(default_factory=dict)  # offender -> last applied event
    last_upsert: dict[str, dict[str, Any]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # event id -> content, once applied
    pending: list[Pending] = field(default_factory=list)  # in the order made
    outcomes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.circles = Places(self.places)

    def publish(self, ev: dict[str, Any]) -> str:
        return self.step(ev).outcome

    def step(self, ev: dict[str, Any]) -> Step:
        """Apply one event; what it did."""
        made: list[Pending] = []
        outcome = self._publish(ev, made)
        self.outcomes.append(outcome)
        self.pending += made
        return Step(outcome, tuple(made), outcome == "applied" and not _public(ev))

    def _publish(self, ev: dict[str, Any], made: list[Pending]) -> str:
        oid, content = ev["offender_id"], _content(ev)
        if ev["event_id"] in self.ids:
            return "duplicate" if self.ids[ev["event_id"]] == content else "conflicting"
        old = self.state.get(oid)
        if old is not None and ev["revision"] <= old["revision"]:
            return "stale"
        self.ids[ev["event_id"]] = content
        self.state[oid] = ev
        if ev["kind"] == "upsert":
            self.last_upsert[oid] = ev
        if not _public(ev):
            juvenile = self.last_upsert.get(oid, {}).get("offender", {}).get("juvenile", False)
            # Not public any more: pending news of them goes, but for "left the registry".
            self.pending = [
                p
                for p in self.pending
                if p.offender_id != oid or (p.kind == "watch_removed" and not juvenile)
            ]
        made += event_alerts(self.circles, self.watchers, old, ev)
        return "applied"

    def alerts(self) -> Counter[tuple[Any, ...]]:
        """The alerts waiting for a digest, each as (subscriber, offender, kind, event id,
        tracked address id or None, street or None): once each."""
        return Counter(p.key() for p in self.pending)

    def digests(self) -> dict[int, set[Line]]:
        """Each subscriber's digest lines, net of what cancelled out within the period."""
        shown = []
        for p in self.pending:
            now = self.state[p.offender_id]
            juvenile = self.last_upsert.get(p.offender_id, {}).get("offender", {}).get("juvenile", False)
            if juvenile or (now["kind"] == "remove" and p.kind != "watch_removed"):
                continue
            shown.append(p)
        shown.sort(key=lambda p: p.revision)  # one offender's registry order
        out: dict[int, set[Line]] = {}
        near: dict[tuple[int, str, Any], list[tuple[str, Any]]] = {}
        watch: dict[tuple[int, str], list[tuple[str, Any]]] = {}
        for sid, oid, kind, *_, details in shown:
            if kind.startswith("moved"):
                near.setdefault((sid, oid, (details[0], details[2])), []).append((kind, details))
            else:
                watch.setdefault((sid, oid), []).append((kind, details))
        for (sid, _, _), group in near.items():
            if group[0][0] == group[-1][0]:  # in then out (or out then in): nothing changed
                label, name, _, street = group[-1][1]
                out.setdefault(sid, set()).add(
                    ("near", label, name, group[-1][0].removeprefix("moved_"), street)
                )
        for (sid, _), group in watch.items():
            removed = group[-1][0] == "watch_removed"
            old, new = group[0][1][1], ({} if removed else group[-1][1][2])
            if not removed and old.keys() == new.keys():
                continue  # changed and changed back
            if removed:
                old = {}
            out.setdefault(sid, set()).add(
                (
                    "watch",
                    group[-1][1][0],
                    removed,
                    tuple(sorted(a["street"] for a in old.values())),
                    tuple(sorted(a["street"] for a in new.values())),
                )
            )
        return {sid: lines for sid, lines in out.items() if lines}


# --- Grid cells (schemas/circle-batch.schema.json): `row:col`, floor(lat / 0.1):floor(lon / 0.1).
# A circle is sent to every cell its box touches; the box is the code's to choose, so what is
# said here is only what any right box gives: every cell some point of the circle lies in, and
# nothing past the circle's own extent by more than a tenth of its radius.
CELL_DEG = 0.1


def cell_name(lat: float, lon: float) -> str:
    return f"{math.floor(lat / CELL_DEG)}:{math.floor(lon / CELL_DEG)}"


def cells_of_circle(
    lat: float, lon: float, radius_m: float, slack: float = 1.1, n: int = 360
) -> tuple[set[str], set[str]]:
    """(cells the circle must be sent to, cells it may be sent to).

    Must: every cell holding one of the centre and points on rings at half and all of the
    radius, `n` azimuths each (a sliver may be missed, never a cell added): a point there has to
    find the circle. May: every cell touching the circle's latitude and longitude extent
    widened by `slack` (away from the poles and the antimeridian): a copy past that is waste
    no right box makes.
    """
    az = np.linspace(0.0, 360.0, n, endpoint=False)
    lats, lons = [np.array([lat])], [np.array([lon])]
    for f in (0.5, 1.0):
        lo, la, _ = GEOD.fwd(np.full(n, lon), np.full(n, lat), az, np.full(n, radius_m * f))
        lats.append(np.asarray(la))
        lons.append(np.asarray(lo))
    all_lat, all_lon = np.concatenate(lats), np.concatenate(lons)
    must = {cell_name(a, b) for a, b in zip(all_lat.tolist(), all_lon.tolist())}
    dlat = (all_lat.max() - all_lat.min()) / 2 * slack
    dlon = (all_lon.max() - all_lon.min()) / 2 * slack
    rows = range(math.floor((lat - dlat) / CELL_DEG), math.floor((lat + dlat) / CELL_DEG) + 1)
    cols = range(math.floor((lon - dlon) / CELL_DEG), math.floor((lon + dlon) / CELL_DEG) + 1)
    return must, {f"{r}:{c}" for r in rows for c in cols}
