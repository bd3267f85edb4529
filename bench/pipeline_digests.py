"""Digests rendered and delivered per second: the real `send_due_digests` to a loopback SMTP server.

    .venv/bin/python -m bench.pipeline_digests                # PostgreSQL database `bench`
    .venv/bin/python -m bench.pipeline_digests --db sqlite    # SQLite in a temporary folder
    SOR_BENCH_DATABASE=bench_digests .venv/bin/python -m bench.pipeline_digests \
        --circles 600000 --digests 100000                    # issue 13's size: 100k digests due

Loads a seeded workload (bench.workload circles as subscribers' tracked addresses, offenders,
and the alerts a day of address changes gives them, computed with the pipeline's own domain
code and stored with `repository.record_alerts`), then per run:

- full: `services.digests.send_digests(runtime)` (what `sor-notify digest send` and the 06:00 schedule call)
  with the real SmtpSender to an aiosmtpd server on loopback, in its own process;
- no SMTP: the same call with a sender that drops the message (claim, load, render, mark);
- render only: `build_digest` + rendering the message to bytes, nothing else;
- SMTP only: SmtpSender.send of already rendered messages, one after another (one connection
  each), the same over one connection kept open, and (where the code has them) over the
  sender's lanes, as a digest run sends.

Between runs the digests are deleted and their alerts detached (then VACUUM ANALYZE on
PostgreSQL), so each run sends them all. `--phases` leaves phases out (a "before" at size).
The same script measures older checkouts: it uses `streams.adapters.digest_store` where there
is one and the digest functions of `streams.adapters.repository` where not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import workload
from bench.pipeline_common import (
    SmtpServer,
    WorkerRules,
    alert_key,
    bench_database,
    city_name,
    create_tables,
    describe_database,
    dkim_key_file,
    load_now,
    load_subscribers,
    machine,
    median,
    offender_id,
    pick_watches,
    print_table,
    reference_places,
    reference_watchers,
    registry_event,
    write_json,
)

PHASES = ("full", "nosmtp", "render", "smtp")


def digest_module() -> Any:
    """Where the checkout keeps its digest SQL."""
    try:
        from streams.adapters import digest_store

        return digest_store
    except ImportError:
        from streams.adapters import repository

        return repository


def message_bytes(msg: Any) -> bytes:
    data = getattr(msg, "data", None)
    return data if isinstance(data, bytes) else msg.as_bytes()


class DroppingSender:
    """Takes every message and sends nothing: the run without SMTP."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, msg: Any) -> None:
        message_bytes(msg)  # what a sender would serialize
        self.sent += 1


def seed_database(engine: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Subscribers, offenders (stored as the worker stores them) and their pending alerts."""
    from streams.adapters import repository

    cs = workload.circles(args.circles, args.seed)
    offenders = [offender_id(i) for i in range(args.offenders)]
    watches = pick_watches(sorted(set(cs.subscriber_id.tolist())), offenders, args.watch_share, args.seed)
    if len(set(cs.subscriber_id.tolist())) < 1.5 * args.digests:
        # Drawing events until nearly every subscriber has news would not end in reasonable time.
        raise SystemExit(
            f"--circles {args.circles} gives too few subscribers for --digests {args.digests}: "
            "take more circles (e.g. 600000 for 100000 digests)"
        )
    n_subs, n_circles = load_subscribers(engine, cs, watches)
    from collections import Counter

    from tests.reference_model import Reference

    rules = WorkerRules(cs.domain_circles(), watches)
    ref = Reference(reference_places(cs), reference_watchers(watches))
    points = workload.events(args.offenders + 50 * args.digests, args.seed)

    def doc(j: int, rev: int, baseline: bool = False) -> dict[str, Any]:
        oid = offenders[j % len(offenders)]
        return registry_event(
            oid,
            rev,
            j,
            float(points.lat[j]),
            float(points.lon[j]),
            city_name(int(points.city[j])),
            baseline=baseline,
        )

    for j in range(args.offenders):
        d = doc(j, 1, baseline=True)
        rules.apply(d)
        ref.publish(d)
        repository.save_offender_state(engine, rules.states[d["offender_id"]])
    # Address changes until --digests subscribers have something to read.
    alerts: list[Any] = []
    due: set[int] = set()
    j = args.offenders
    while j < len(points):
        if len(due) >= args.digests:
            due = set(ref.digests())  # net of changes that cancel out
            if len(due) >= args.digests:
                break
        d = doc(j, 2 + (j - args.offenders) // args.offenders)
        new = rules.apply(d)
        ref.publish(d)
        alerts += new
        due.update(a.subscriber_id for a in new)
        repository.save_offender_state(engine, rules.states[d["offender_id"]])
        j += 1
    made, want = Counter(alert_key(a) for a in alerts), ref.alerts()
    if made != want:
        raise SystemExit(
            f"the seeded alerts differ from the reference model's: {(want - made).total()} missing, "
            f"{(made - want).total()} unexpected, e.g. {list((want - made) + (made - want))[:3]}"
        )
    due = set(ref.digests())  # subscribers whose day does not net to nothing
    for i in range(0, len(alerts), 1000):
        repository.record_alerts(engine, alerts[i : i + 1000])
    return {
        "subscribers": n_subs,
        "circles": n_circles,
        "offenders": args.offenders,
        "events": j - args.offenders,
        "alerts": len(alerts),
        "digests_due": len(due),
        "alerts_per_digest": round(len(alerts) / max(1, len(due)), 1),
    }


def reset_digests(engine: Any) -> None:
    from sqlalchemy import delete, update

    from streams.adapters.db import digests, pending_alerts

    with engine.begin() as conn:
        conn.execute(update(pending_alerts).values(digest_id=None))
        conn.execute(delete(digests))
    if engine.dialect.name == "postgresql":
        # Every run rewrites each alert row twice: start each from the same table state.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("vacuum analyze pending_alerts, digests, subscribers")


def digest_ids(engine: Any) -> list[int]:
    from sqlalchemy import select

    from streams.adapters.db import digests

    with engine.connect() as conn:
        return [int(i) for i in conn.execute(select(digests.c.id).order_by(digests.c.id)).scalars()]


async def timed_send(services: Any, sender: Any, profile: Path | None = None) -> tuple[Any, float, float]:
    """(report, wall seconds, CPU seconds of this process) of one `send_digests` call."""
    services.mail = sender
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled", interval=0.0005)
        profiler.start()
    t = time.perf_counter()
    cpu = time.process_time()
    from streams.services.digests import send_digests

    report = await send_digests(services)
    elapsed = time.perf_counter() - t
    cpu = time.process_time() - cpu
    if profiler is not None:
        profiler.stop()
        profile.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    return report, elapsed, cpu


class DbTimer:
    """Wall time inside each repository call the digest run makes (in its worker thread)."""

    NAMES = (
        "subscribers_with_unassigned_alerts",
        "claim_digest",
        "load_digest",
        "mark_digest_sent",
        "take_over_claimed_digests",
        "digest_status",
        "claim_digests",
        "load_digests",
        "mark_digests_sent",
    )

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {}

    def __enter__(self) -> DbTimer:
        module = digest_module()
        self.saved = {n: getattr(module, n) for n in self.NAMES if hasattr(module, n)}
        for name, fn in self.saved.items():
            setattr(module, name, self._wrap(name, fn))
        return self

    def _wrap(self, name: str, fn: Any) -> Any:
        def timed(*args: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                c = self.calls.setdefault(name, [0, 0.0])
                c[0] += 1
                c[1] += time.perf_counter() - t

        return timed

    def __exit__(self, *exc: object) -> None:
        module = digest_module()
        for name, fn in self.saved.items():
            setattr(module, name, fn)

    def per_digest_ms(self, n: int) -> dict[str, float]:
        return {k: round(1000 * t / n, 2) for k, (_c, t) in sorted(self.calls.items())}


def render_only(services: Any, ids: list[int], keep: int) -> tuple[list[Any], float, float]:
    """(the first `keep` messages, seconds to render all, seconds to load all from the database),
    each the way the checkout's digest run does it (a block per query and bytes, or one by one)."""
    from email.utils import parseaddr

    from streams.adapters import rendering
    from streams.domain import links
    from streams.domain.digest import build_digest

    module = digest_module()
    s = services.settings
    t = time.perf_counter()
    if hasattr(module, "load_digests"):
        works = [
            w for i in range(0, len(ids), 500) for w in module.load_digests(services.engine, ids[i : i + 500])
        ]
    else:
        works = [module.load_digest(services.engine, i) for i in ids]
    loaded = time.perf_counter() - t
    to_bytes = getattr(rendering, "render_digest_bytes", None)
    t = time.perf_counter()
    msgs = []
    for w in works:
        digest = build_digest(w.subscriber_id, w.alerts)
        assert digest is not None
        kw = dict(
            to_addr=w.email,
            from_addr=s.mail_from,
            public_url=s.public_url,
            unsubscribe_url=links.unsubscribe_url(
                s.public_url, s.secret_key, w.subscriber_id, getattr(w, "link_key", None)
            ),
            message_id=w.message_id or "<x@y>",
            period=w.period,
        )
        if to_bytes is not None:
            from streams.adapters.mail import OutgoingMail

            msg: Any = OutgoingMail(
                parseaddr(s.mail_from)[1], w.email, to_bytes(digest, **kw), kw["message_id"]
            )
        else:
            msg = rendering.render_digest(digest, **kw)
            msg.as_bytes()
        if len(msgs) < keep:
            msgs.append(msg)
    return msgs, time.perf_counter() - t, loaded


async def smtp_only(sender: Any, msgs: list[Any]) -> float:
    t = time.perf_counter()
    for m in msgs:
        await sender.send(m)
    return time.perf_counter() - t


async def smtp_one_connection(host: str, port: int, msgs: list[Any]) -> float:
    """What SmtpSender would do if it kept one connection for a run (it opens one per message)."""
    import aiosmtplib

    t = time.perf_counter()
    async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=30) as smtp:
        for m in msgs:
            if isinstance(getattr(m, "data", None), bytes):
                await smtp.sendmail(m.mail_from, [m.to], m.data)
            else:
                await smtp.send_message(m)
    return time.perf_counter() - t


async def smtp_lanes(sender: Any, msgs: list[Any], lanes: int) -> float | None:
    """The messages over the sender's pool of kept-open connections, `lanes` at a time."""
    if not hasattr(sender, "connections"):
        return None
    t = time.perf_counter()
    async with sender.connections(lanes) as pool:
        it = iter(msgs)

        async def lane() -> None:
            for m in it:
                await pool.send(m)

        await asyncio.gather(*(lane() for _ in range(lanes)))
    return time.perf_counter() - t


def set_lanes(lanes: int | None) -> int | None:
    """The lanes a digest run uses: the checkout's default, or --lanes (None: no lanes there)."""
    from streams.services import digests

    defaults = digests.send_due_digests.__kwdefaults__ or {}
    if "lanes" not in defaults:
        return None
    if lanes is not None:
        defaults["lanes"] = lanes
    return defaults["lanes"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline_digests", description=__doc__.split("\n")[0])
    p.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    p.add_argument("--circles", type=int, default=20_000, help="tracked circles (bench.workload)")
    p.add_argument("--offenders", type=int, default=2_000)
    p.add_argument(
        "--digests",
        type=int,
        default=1_000,
        help="address changes are drawn until this many subscribers have pending alerts",
    )
    p.add_argument("--watch-share", type=float, default=0.1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tag", default="", help="suffix of the results file name")
    p.add_argument(
        "--profile", help="write a pyinstrument profile of one more full run here (not in the figures)"
    )
    p.add_argument("--lanes", type=int, help="mail lanes of a digest run (default: the code's own)")
    p.add_argument(
        "--maps",
        choices=["true", "false"],
        help="SOR_DIGEST_MAPS for the runs: the digests' map pictures on or off (default: the code's own)",
    )
    p.add_argument(
        "--smtp-sample",
        type=int,
        default=5000,
        help="messages the SMTP-only phase sends each way (one connection each is slow)",
    )
    p.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)} (default: all)"
    )
    p.add_argument(
        "--json", help="write every figure here (default: bench/results/pipeline_digests[-TAG].json)"
    )
    args = p.parse_args(argv)
    phases = set(args.phases.split(","))
    if not phases <= set(PHASES) or "full" not in phases:
        p.error(f"--phases {args.phases!r}: expected 'full' and any of {', '.join(PHASES[1:])}")

    from streams.bootstrap import build_runtime
    from streams.logs import configure_logging
    from streams.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="sor-bench-digests-"))
    smtp = SmtpServer.start()
    started = machine()
    results: list[dict[str, Any]] = []
    try:
        url = bench_database(args.db, tmp)
        create_tables(url).dispose()  # PostgreSQL is upgraded on purpose (bootstrap.upgrades_on_start)
        env = {
            "SOR_DATABASE_URL": url,
            "SOR_DATA_DIR": str(tmp / "data"),
            "SOR_SMTP_HOST": "127.0.0.1",
            "SOR_SMTP_PORT": str(smtp.port),
            "SOR_SMTP_STARTTLS": "false",
            "SOR_DKIM_PRIVATE_KEY_FILE": dkim_key_file(tmp),
            "SOR_LOG_FORMAT": "json",
            "SOR_LOG_LEVEL": "warning",
            "SOR_PUBLIC_URL": "https://notify.example.test",
            "SOR_SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
        }
        if args.maps is not None:
            env["SOR_DIGEST_MAPS"] = args.maps
        settings = load_settings(env)
        configure_logging(settings.log_format, settings.log_level)
        services = build_runtime(settings)
        t = time.monotonic()
        workload_info = seed_database(services.engine, args)
        workload_info["seed_s"] = round(time.monotonic() - t, 1)
        print(f"database: {describe_database(url)}; workload: {json.dumps(workload_info)}", flush=True)
        # The composition root's sender, as `digest send` has it: DKIM-signing over SmtpSender.
        smtp_sender = services.mail

        lanes = set_lanes(args.lanes)
        workload_info["lanes"] = lanes
        workload_info["maps"] = settings.digest_maps
        for r in range(1, args.runs + 1):
            load0 = load_now()
            reset_digests(services.engine)
            report, full_s, full_cpu = asyncio.run(timed_send(services, smtp_sender))
            assert report.sent == workload_info["digests_due"], report
            n = report.sent
            assert len(digest_ids(services.engine)) == n
            row: dict[str, Any] = {
                "run": r,
                "digests": n,
                "lanes": lanes,
                "full_per_s": round(n / full_s, 1),
                "full_ms_per_digest": round(1000 * full_s / n, 3),
                # CPU of this process (all threads) per digest in the full run: with every wait
                # overlapped, one process could not go faster than 1000 / this per second.
                "full_cpu_ms": round(1000 * full_cpu / n, 3),
                "load_1m": load0,
            }
            if "nosmtp" in phases or "render" in phases or "smtp" in phases:
                reset_digests(services.engine)
                dropping = DroppingSender()
                with DbTimer() as db_timer:
                    report2, nosmtp_s, _ = asyncio.run(timed_send(services, dropping))
                assert report2.sent == dropping.sent == n, report2
                row |= {
                    "no_smtp_per_s": round(n / nosmtp_s, 1),
                    "db_ms_per_digest": db_timer.per_digest_ms(n),
                }
            if "render" in phases or "smtp" in phases:
                msgs, render_s, load_s = render_only(
                    services, digest_ids(services.engine), keep=args.smtp_sample
                )
                row |= {
                    "render_only_per_s": round(n / render_s, 1),
                    "render_ms": round(1000 * render_s / n, 3),
                    "db_and_rest_ms": round(1000 * (nosmtp_s - render_s) / n, 3),
                    "load_digest_ms": round(1000 * load_s / n, 3),
                    "mean_message_kb": round(sum(len(message_bytes(m)) for m in msgs) / len(msgs) / 1024, 1),
                }
            if "smtp" in phases:
                k = len(msgs)
                smtp_s = asyncio.run(smtp_only(smtp_sender, msgs))
                smtp1_s = asyncio.run(smtp_one_connection("127.0.0.1", smtp.port, msgs))
                lanes_s = asyncio.run(smtp_lanes(smtp_sender, msgs, lanes or 1))
                row |= {
                    "smtp_sample": k,
                    "smtp_only_per_s": round(k / smtp_s, 1),
                    "smtp_1conn_per_s": round(k / smtp1_s, 1),
                    "smtp_lanes_per_s": None if lanes_s is None else round(k / lanes_s, 1),
                    "smtp_ms": round(1000 * smtp_s / k, 3),
                    "smtp_1conn_ms": round(1000 * smtp1_s / k, 3),
                }
            results.append(row)
            print(json.dumps(results[-1]), flush=True)
        profile_text = None
        if args.profile:
            reset_digests(services.engine)
            asyncio.run(timed_send(services, smtp_sender, Path(args.profile)))
            profile_text = Path(args.profile).read_text()
        services.engine.dispose()
    finally:
        delivered = smtp.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    cols = [
        "run",
        "digests",
        "lanes",
        "full_per_s",
        "no_smtp_per_s",
        "render_only_per_s",
        "smtp_only_per_s",
        "smtp_1conn_per_s",
        "smtp_lanes_per_s",
        "full_ms_per_digest",
        "full_cpu_ms",
        "render_ms",
        "smtp_ms",
        "smtp_1conn_ms",
        "db_and_rest_ms",
        "load_digest_ms",
        "mean_message_kb",
        "load_1m",
    ]
    cols = [c for c in cols if any(x.get(c) is not None for x in results)]
    print()
    print_table(cols, [[x.get(c) for c in cols] for x in results])
    summary = {
        k: median(x[k] for x in results if x.get(k) is not None)
        for k in cols
        if k not in ("run", "digests", "lanes", "load_1m")
    }
    print(
        f"\nmedian of {args.runs} runs, {describe_database(url)}; the loopback server accepted "
        f"{delivered.get('messages')} messages in all:"
    )
    for k, v in summary.items():
        print(f"  {k:20} {v}")
    if profile_text:
        print(f"\npyinstrument profile of one more full run: {args.profile}")
    saved = write_json(
        args.json,
        {
            "machine_at_start": started,
            "load_at_end": load_now(),
            "args": vars(args),
            "workload": workload_info,
            "results": results,
            "summary": summary,
            "smtp_server": delivered,
        },
        "pipeline_digests" + (f"-{args.tag}" if args.tag else ""),
    )
    print(f"figures written to {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
