"""A random registry day (replays, conflicting repeats, stale revisions, removals, juvenile
flags, baselines) through the real broker, worker and SMTP server: the e-mails say what the
reference model says, and every conflicting repeat is in the DLQ."""

from __future__ import annotations

import json
import random
import re

from tests.e2e.test_operations import _dlq, _wait_for
from tests.property.registry_sequences import places, registry_day, subscribers, watchers
from tests.reference_model import Line, Reference

SEED = 20261495  # chosen (with the asserts below) so the day holds every case, and one where a replay taking
# the repeated message's flags instead of the stored ones gives another digest


def digest_lines(text: str) -> set[Line]:
    """The lines of a digest's text part, as the reference model writes them."""
    out: set[Line] = set()
    label = direction = name = None
    watch: dict | None = None
    mode = None

    def close_watch() -> None:
        if watch is not None:
            out.add(("watch", watch["name"], watch["removed"], tuple(sorted(watch["old"])), tuple(sorted(watch["new"]))))

    in_watches = False
    for line in text.splitlines():
        if line == "OFFENDERS YOU TRACK":
            in_watches = True
        elif line == "WHY YOU RECEIVED THIS":
            break
        elif not in_watches:
            if m := re.fullmatch(r"Tracked address: (.*)", line):
                label = m.group(1)
            elif "(moved in):" in line:
                direction = "in"
            elif "(moved out):" in line:
                direction = "out"
            elif m := re.fullmatch(r"  \* (.*)", line):
                name = m.group(1)
            elif m := re.fullmatch(r"      (?:Former )?\w+ address: ([^,]*),.*", line):
                out.add(("near", label, name, direction, m.group(1)))
        else:
            if m := re.fullmatch(r"\* (.*)", line):
                close_watch()
                watch, mode = {"name": m.group(1), "removed": False, "old": [], "new": []}, None
            elif watch is not None and "No longer appears on the public registry" in line:
                watch["removed"] = True
            elif "Registered addresses before:" in line:
                mode = "old"
            elif "Registered addresses now:" in line:
                mode = "new"
            elif watch is not None and mode and (m := re.fullmatch(r"      - \w+: ([^,]*),.*", line)):
                watch[mode].append(m.group(1))
    close_watch()
    return out


def test_a_random_registry_day_through_the_pipeline_gives_the_reference_digests(system) -> None:
    rng = random.Random(SEED)
    ids, sequences = registry_day(rng, offenders=10, steps=7)
    subs = subscribers(ids)
    ref = Reference(places(subs), watchers(subs))
    system.run("subscribers", "import", str(system.write_jsonl("subs.jsonl", [
        {"email": s.email, "confirmed": True, "addresses": list(s.addresses), "offenders": list(s.offenders)}
        for s in subs
    ])))
    system.start_worker()

    def quiet() -> None:
        _wait_for(lambda: json.loads(system.run("status", "--json").stdout), lambda s: s["total_lag"] == 0)

    # In waves, each offender's next event: a removal's purge then lands before the next wave,
    # as it would in a day spread over hours.
    waves = max(len(s) for s in sequences)
    for k in range(waves):
        wave = [s[k] for s in sequences if len(s) > k]
        for doc in wave:
            ref.publish(doc)
        system.run("registry", "publish", str(system.write_jsonl(f"wave-{k}.jsonl", wave)))
        quiet()

    expected = ref.digests()
    conflicting = ref.outcomes.count("conflicting")
    assert conflicting >= 4 and ref.outcomes.count("duplicate") >= 4 and ref.outcomes.count("stale") >= 2
    kinds = {(ln[0], ln[3] if ln[0] == "near" else ln[2]) for v in expected.values() for ln in v}
    assert kinds == {("near", "in"), ("near", "out"), ("watch", True), ("watch", False)} and len(expected) == 3
    listing = _wait_for(lambda: _dlq(system), lambda d: d["total"] >= conflicting)
    assert [e["reason"] for e in listing["entries"]] == ["conflicting_duplicate"] * conflicting

    sent = system.run("digest", "send")
    assert f"{len(expected)} sent" in sent.stdout, (sent.stdout, expected)
    messages = system.catcher.wait_for(len(expected))
    got = {}
    for msg, (_, rcpts) in zip(messages, system.catcher.envelopes):
        got[rcpts[0]] = digest_lines(msg.get_body(preferencelist=("plain",)).get_content())
    want = {subs[sid - 1].email: lines for sid, lines in expected.items()}
    assert got == want
