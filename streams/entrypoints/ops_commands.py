"""The operator's commands: status, and the dead-letter queue's list, show and replay."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from streams import topics
from streams.adapters.broker import BrokerError
from streams.bootstrap import build_runtime
from streams.entrypoints.usage import UsageError, require_broker, running_broker
from streams.settings import Settings


def _broker_hint(err: BrokerError, broker_url: str) -> UsageError:
    return UsageError(
        f"{err}\n  is the broker running? start `sor-notify up`, or check SOR_BROKER_URL ({broker_url})"
    )


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]], right: set[int]) -> str:
    cells = [header, *[tuple("-" if v is None else str(v) for v in row) for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            (c.rjust(w) if i in right else c.ljust(w)) for i, (c, w) in enumerate(zip(r, widths))
        ).rstrip()
        for r in cells
    )


def _format_status(st: Any) -> str:
    out = [f"Consumer group {st.group_id!r} on broker {st.broker_url or '(none)'}", ""]
    if st.partitions:
        rows = [(p.topic, p.partition, p.end_offset, p.committed, p.lag) for p in st.partitions]
        out.append(_table(("TOPIC", "PARTITION", "END OFFSET", "COMMITTED", "LAG"), rows, {1, 2, 3, 4}))
        out.append(
            f"total lag: {st.total_lag} (- : not read by the workers' group; the DLQ is for `sor-notify dlq`)"
        )
    elif st.broker_error:
        out.append("offsets and lag unknown: the broker cannot be reached")
    else:
        out.append("no topics yet: `sor-notify topics` creates them")
    t = st.tables
    out += [
        "",
        f"Database (schema revision {st.schema_revision or 'none'})",
        (
            f"  subscribers        {t.subscribers:>8}  ({t.subscribers_confirmed} confirmed, "
            f"{t.subscribers_active} active, {t.subscribers_mail_suspended} with mail suspended "
            "after repeated bounces)"
        ),
        f"  tracked addresses  {t.tracked_addresses:>8}",
        f"  offender watches   {t.offender_watches:>8}",
        (
            f"  offenders          {t.offenders:>8}  ({t.offenders_public} public, "
            f"{t.offenders_removed} removed, {t.offenders_juvenile} juvenile)"
        ),
        f"  pending alerts     {t.pending_alerts:>8}  (not yet in a digest)",
        f"  geocode cache      {t.geocode_cache:>8}",
        f"  gazetteer points   {t.gazetteer_points:>8}  ({t.gazetteer_ranges} TIGER address ranges)",
        "",
        "Last digest run",
    ]
    d = st.to_dict()["last_digest"]
    if d["period"] is None:
        out.append("  none yet")
    else:
        counts = ", ".join(f"{n} {s}" for s, n in d["by_status"].items())
        out.append(f"  period {d['period']}: {counts}")
    out.append(f"  last digest mailed: {d['last_sent_at'] or 'never'}")
    return "\n".join(out)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.operations import status

    runtime = build_runtime(settings)
    st = asyncio.run(status(settings, runtime, running_broker(settings)))
    print(json.dumps(st.to_dict(), indent=2) if args.json else _format_status(st))
    if st.broker_error:
        raise UsageError(
            f"offsets and lag unavailable: {st.broker_error}"
            + ("" if st.broker_url is None else "; start `sor-notify up`, or check SOR_BROKER_URL")
        )
    return 0


def _dlq_call(settings: Settings, make: Any, still_invalid: str = "the event") -> Any:
    """Run one DLQ operation; its refusals become messages for the operator."""
    from streams.services.operations import OperationError, StillInvalid

    broker_url = require_broker(settings)
    try:
        return asyncio.run(make(broker_url))
    except StillInvalid as err:
        raise UsageError(
            f"refused: {still_invalid} would be dead-lettered again: {err.reason}: {err.detail}\n"
            "  correct it and replay it with --file FIXED.json (`sor-notify dlq show ID` prints the original)"
        ) from None
    except OperationError as err:
        raise UsageError(str(err)) from None
    except BrokerError as err:
        raise _broker_hint(err, broker_url) from None


def cmd_dlq_list(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.operations import dlq_list

    runtime = build_runtime(settings)
    listing = _dlq_call(settings, lambda b: dlq_list(b, args.limit, runtime=runtime))
    if args.json:
        print(
            json.dumps({"total": listing.total, "entries": [e.to_dict() for e in listing.entries]}, indent=2)
        )
        return 0
    if not listing.entries:
        print(f"the dead-letter queue ({topics.DEAD_LETTERS.name}) is empty")
        return 0
    rows = [
        (
            e.id,
            e.dead_lettered_at,
            e.reason,
            e.source.get("key"),
            f"yes, as {e.replayed_as}" if e.replayed_at else "no",
            e.detail,
        )
        for e in listing.entries
    ]
    print(_table(("ID", "DEAD-LETTERED AT", "REASON", "KEY", "REPLAYED", "DETAIL"), rows, set()))
    shown = len(listing.entries)
    print(
        f"\n{listing.total} dead letter{'s' if listing.total != 1 else ''}"
        + (f", the {shown} most recent shown (--limit)" if shown < listing.total else "")
        + "; `sor-notify dlq show ID` shows one with its original event"
    )
    return 0


def cmd_dlq_show(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.operations import dlq_show

    runtime = build_runtime(settings)
    shown = _dlq_call(settings, lambda b: dlq_show(b, args.id, runtime=runtime))
    e = shown.entry
    src = e.source
    replayed = f"yes, at {e.replayed_at} as event {e.replayed_as!r}" if e.replayed_at else "no"
    print(
        f"DLQ entry {e.id}\n"
        f"  reason:           {e.reason}\n"
        f"  detail:           {e.detail}\n"
        f"  dead-lettered at: {e.dead_lettered_at}\n"
        f"  received on:      {src.get('topic')} partition {src.get('partition')} offset {src.get('offset')}, "
        f"key {src.get('key')!r}\n"
        f"  replayed:         {replayed}\n"
    )
    note = "" if shown.valid_utf8 else " (NOT valid UTF-8: undecodable bytes shown as \ufffd)"
    print(
        f"===== BEGIN ORIGINAL EVENT as received{note} =====\n"
        "===== it may hold online identifiers: keep it out of tickets, chat and logs ====="
    )
    print(shown.original_text)
    print("===== END ORIGINAL EVENT =====")
    print(
        f"\nto replay: fix the cause upstream and run `sor-notify dlq replay {e.id}`, or save a "
        f"corrected event and run `sor-notify dlq replay {e.id} --file FIXED.json`"
    )
    return 0


def cmd_dlq_replay(settings: Settings, args: argparse.Namespace) -> int:
    from streams.services.operations import dlq_replay

    fixed = None
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        fixed = path.read_bytes()
    runtime = build_runtime(settings)
    result = _dlq_call(
        settings,
        lambda b: dlq_replay(runtime, b, args.id, fixed=fixed, force=args.force),
        still_invalid=f"the corrected event in {args.file}" if args.file else "the original event",
    )
    for warning in result.warnings:
        print(f"sor-notify: warning: {warning}", file=sys.stderr)
    how = f"corrected from {args.file}" if result.corrected else "as received"
    print(
        f"replayed DLQ entry {result.entry_id} {how}: event {result.event_id!r} for offender "
        f"{result.offender_id!r}, revision {result.revision}, sent to {topics.REGISTRY_EVENTS.name}"
    )
    return 0
