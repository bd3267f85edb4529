"""Random registry days through the production rules give the reference model's digests, and
no conflicting repeat ever changes an alert."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.adapters.event_codec import decode_registry_event
from streams.domain.circle_index import CircleIndex
from streams.domain.digest import build_digest
from streams.domain.matching import apply_event, proximity_alerts, watch_alerts
from streams.domain.model import Alert, Circle, OffenderState, SeenEvent
from tests.property.registry_sequences import interleave, places, registry_day, subscribers, watchers
from tests.reference_model import Line, Reference


class Production:
    """The worker's path in process: decode, apply, match, record, purge; then the digests."""

    def __init__(self, subs, place_list) -> None:
        self.index = CircleIndex()
        self.labels = {}
        for p in place_list:
            self.index.upsert(
                Circle(p.circle_id, p.subscriber_id, p.label, p.label, p.lat, p.lon, p.radius_m, "x")
            )
            self.labels[p.circle_id] = p.label
        self.watchers = watchers(subs)
        self.states: dict[str, OffenderState] = {}
        self.known: dict[str, SeenEvent] = {}  # the registry_event_ids table
        self.pending: dict[str, Alert] = {}
        self.statuses: list[str] = []

    def publish(self, doc: dict) -> None:
        ev = decode_registry_event(json.dumps(doc).encode(), doc["offender_id"])
        # Stored and read back each time, as the table and the database keep it.
        old = self.states.get(ev.offender_id)
        out = apply_event(old, ev, known=self.known.get(ev.event_id))
        self.statuses.append(out.status)
        if out.status not in ("applied", "replayed"):
            return
        if out.state is not None:
            self.states[ev.offender_id] = OffenderState.from_dict(out.state.to_dict())
            self.known[ev.event_id] = SeenEvent(ev.event_id, out.digest, ev.revision)
        if out.purge:  # at the batch's commit; the event's own alerts are recorded after it
            juvenile = bool(out.state and out.state.profile and out.state.profile.juvenile) or (
                out.state is None and bool(old and old.profile and old.profile.juvenile)
            )
            self.pending = {
                k: a
                for k, a in self.pending.items()
                if a.offender_id != ev.offender_id or (a.kind == "watch_removed" and not juvenile)
            }
        made = [a for ch in out.address_changes for a in proximity_alerts(ch, self.index)]
        if out.watch_change is not None:
            made += watch_alerts(out.watch_change, sorted(self.watchers.get(ev.offender_id, ())))
        for a in made:
            self.pending.setdefault(a.alert_id, a)

    def digests(self) -> dict[int, set[Line]]:
        out: dict[int, set[Line]] = {}
        for sid in {a.subscriber_id for a in self.pending.values()}:
            shown = []
            for a in self.pending.values():
                s = self.states[a.offender_id]
                juvenile = bool(s.profile and s.profile.juvenile)
                if a.subscriber_id == sid and not juvenile and (not s.removed or a.kind == "watch_removed"):
                    shown.append(a)
            d = build_digest(sid, shown)
            if d is None:
                continue
            lines: set[Line] = set()
            for place in d.places:
                for ln in place.lines:
                    lines.add(("near", place.label, ln.name, ln.direction, ln.address.split(",")[0]))
            for w in d.watches:
                old = () if w.removed else w.old_addresses  # the e-mail says "no longer appears", no streets
                lines.add(
                    (
                        "watch",
                        w.name,
                        w.removed,
                        tuple(sorted(a.one_line.split(",")[0] for a in old)),
                        tuple(sorted(a.one_line.split(",")[0] for a in w.new_addresses)),
                    )
                )
            out[sid] = lines
        return out


def run_day(seed: int, offenders: int = 8, steps: int = 12) -> tuple[Reference, Production, list[dict]]:
    rng = random.Random(seed)
    ids, sequences = registry_day(rng, offenders, steps)
    subs = subscribers(ids)
    stream = interleave(rng, sequences)
    ref, prod = Reference(places(subs), watchers(subs)), Production(subs, places(subs))
    for doc in stream:
        ref.publish(doc)
        prod.publish(doc)
    return ref, prod, stream


@settings(max_examples=300, deadline=None, database=None)
@given(st.integers(0, 2**32 - 1))
def test_random_registry_days_give_the_reference_digests(seed: int) -> None:
    ref, prod, _ = run_day(seed)
    # The reference has no replay: an exact repeat of the latest event changes nothing there.
    assert ["duplicate" if s == "replayed" else s for s in prod.statuses] == ref.outcomes
    assert prod.digests() == ref.digests()


@settings(max_examples=150, deadline=None, database=None)
@given(st.integers(0, 2**32 - 1))
def test_a_conflicting_repeat_never_changes_an_alert(seed: int) -> None:
    """The same day without its conflicting repeats makes exactly the same alerts."""
    ref, prod, stream = run_day(seed)
    kept = [doc for doc, outcome in zip(stream, ref.outcomes) if outcome != "conflicting"]
    subs = subscribers(sorted({d["offender_id"] for d in stream}))
    again = Production(subs, places(subs))
    for doc in kept:
        again.publish(doc)
    assert again.pending.keys() == prod.pending.keys()
    assert {k: a.to_dict() for k, a in again.pending.items()} == {
        k: a.to_dict() for k, a in prod.pending.items()
    }


def test_the_generated_days_hold_every_case() -> None:
    """The generator really makes what the tests above claim to cover."""
    outcomes: dict[str, int] = {}
    flags = {"baseline": 0, "juvenile": 0, "remove": 0}
    for seed in range(40):
        ref, _, stream = run_day(seed)
        for o in ref.outcomes:
            outcomes[o] = outcomes.get(o, 0) + 1
        flags["baseline"] += sum(bool(d.get("baseline")) for d in stream)
        flags["juvenile"] += sum(d["kind"] == "upsert" and d["offender"]["juvenile"] for d in stream)
        flags["remove"] += sum(d["kind"] == "remove" for d in stream)
        lines = [ln for v in ref.digests().values() for ln in v]
    assert all(outcomes.get(k, 0) >= 20 for k in ("applied", "duplicate", "stale", "conflicting")), outcomes
    assert all(v >= 20 for v in flags.values()), flags
    assert lines
