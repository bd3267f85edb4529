"""The `sor-notify` command: the argument parser, and dispatch to the command modules."""

from __future__ import annotations

import argparse
import os
import sys

import structlog

from streams.adapters.broker import BrokerError
from streams.adapters.schema_migrations import SchemaOutOfStep
from streams.entrypoints.isolation import drop_library_variables
from streams.entrypoints.usage import UsageError
from streams.logs import configure_logging
from streams.settings import SettingsError, load_settings

logger = structlog.get_logger()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    # Here, not at the top: the commands import faust (through the composition root), and
    # faust reads its environment when imported, so `main` drops those variables first.
    from streams.entrypoints import data_commands as data
    from streams.entrypoints import db_commands as db
    from streams.entrypoints import dkim_commands as dkim
    from streams.entrypoints import ops_commands as ops
    from streams.entrypoints import run_commands as run

    p = argparse.ArgumentParser(
        prog="sor-notify",
        description="Community notification: registry changes in, daily digest e-mails out.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything: embedded broker (unless SOR_BROKER_URL), worker")
    up.add_argument("--demo", action="store_true", help="seed demo subscribers and events, mail a digest")
    up.set_defaults(fn=run.cmd_up)
    worker = sub.add_parser("worker", help="run a stream worker against SOR_BROKER_URL")
    worker.add_argument("--demo", action="store_true", help=argparse.SUPPRESS)  # `up --demo`'s worker
    worker.set_defaults(fn=run.cmd_worker)
    sub.add_parser("web", help="run the subscriber web site (SOR_WEB_HOST:SOR_WEB_PORT)").set_defaults(
        fn=run.cmd_web
    )
    sub.add_parser(
        "resync", help="re-publish circles, watches and offender states from the database"
    ).set_defaults(fn=run.cmd_resync)
    sub.add_parser("topics", help="create every topic with SOR_PARTITIONS partitions").set_defaults(
        fn=run.cmd_topics
    )

    reg = sub.add_parser("registry", help="registry side").add_subparsers(dest="registry_cmd", required=True)
    pub = reg.add_parser("publish", help="publish registry events from a JSON-lines file")
    pub.add_argument("file")
    pub.add_argument("--baseline", action="store_true", help="record state, alert nobody (bulk load)")
    pub.set_defaults(fn=data.cmd_registry_publish)

    subs = sub.add_parser("subscribers", help="subscribers").add_subparsers(dest="sub_cmd", required=True)
    imp = subs.add_parser("import", help="import subscribers from a JSON-lines file (legacy migration)")
    imp.add_argument("file")
    imp.set_defaults(fn=data.cmd_subscribers_import)

    gaz = sub.add_parser("gazetteer", help="the local address gazetteer").add_subparsers(
        dest="gaz_cmd", required=True
    )
    gimp = gaz.add_parser("import", help="load address points (OpenAddresses) or TIGER/Line address ranges")
    gimp.add_argument("file")
    gimp.add_argument(
        "--format", choices=["oa-csv", "oa-geojson", "tiger"], help="default: from the file name"
    )
    gimp.add_argument("--no-progress", action="store_true", help="no progress bar")
    gimp.set_defaults(fn=data.cmd_gazetteer_import)

    dig = sub.add_parser("digest", help="digests").add_subparsers(dest="digest_cmd", required=True)
    send = dig.add_parser("send", help="send due digests now (a period is never mailed twice)")
    send.add_argument("--period", help="local date YYYY-MM-DD (default: today in SOR_TIMEZONE)")
    send.set_defaults(fn=data.cmd_digest_send)

    dbp = sub.add_parser(
        "db", help="the database schema: upgrade it on purpose, see where it is"
    ).add_subparsers(dest="db_cmd", required=True)
    dbp.add_parser(
        "upgrade", help="bring the schema to this release's (back the database up first)"
    ).set_defaults(fn=db.cmd_db_upgrade)
    down = dbp.add_parser(
        "downgrade",
        help="take the schema back to an older revision, to run an older release (back up first)",
    )
    down.add_argument("revision", help="the revision to go back to, as `db history` lists it")
    down.set_defaults(fn=db.cmd_db_downgrade)
    dbp.add_parser(
        "current", help="the schema revision the database is at (exit 1 unless this release's)"
    ).set_defaults(fn=db.cmd_db_current)
    dbp.add_parser("history", help="every schema revision this release knows, oldest first").set_defaults(
        fn=db.cmd_db_history
    )
    rev = dbp.add_parser(
        "revision", help="contributors: a new revision from what the models add beyond the head"
    )
    rev.add_argument("-m", "--message", required=True, help="what the revision changes, in a few words")
    rev.set_defaults(fn=db.cmd_db_revision)

    dk = sub.add_parser("dkim", help="the mail's DKIM signature").add_subparsers(
        dest="dkim_cmd", required=True
    )
    dk.add_parser(
        "record", help="the DNS TXT record to publish: <selector>._domainkey.<domain>"
    ).set_defaults(fn=dkim.cmd_dkim_record)

    st = sub.add_parser("status", help="lag per topic and partition, database counts, last digest run")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(fn=ops.cmd_status)

    dlq = sub.add_parser("dlq", help="the dead-letter queue of registry events").add_subparsers(
        dest="dlq_cmd", required=True
    )
    dls = dlq.add_parser("list", help="the most recent dead letters with their reasons (no event content)")
    dls.add_argument("--limit", type=_positive, default=50, help="how many, newest last (default 50)")
    dls.add_argument("--json", action="store_true", help="machine-readable output")
    dls.set_defaults(fn=ops.cmd_dlq_list)
    dsh = dlq.add_parser("show", help="one dead letter with its original event, to correct it")
    dsh.add_argument("id", help="PARTITION:OFFSET, as `dlq list` shows it")
    dsh.set_defaults(fn=ops.cmd_dlq_show)
    drp = dlq.add_parser(
        "replay", help="send a dead letter (as received, or corrected) to registry-events again"
    )
    drp.add_argument("id", help="PARTITION:OFFSET, as `dlq list` shows it")
    drp.add_argument(
        "--file", metavar="FIXED.json", help="a corrected event (one JSON object) to send instead"
    )
    drp.add_argument("--force", action="store_true", help="replay an entry that was replayed before")
    drp.set_defaults(fn=ops.cmd_dlq_replay)
    return p


def main(argv: list[str] | None = None) -> int:
    ignored = drop_library_variables(os.environ)  # before anything imports faust
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except SettingsError as err:
        print(f"sor-notify: configuration error: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    if ignored:
        logger.warning(
            "environment variables meant for faust ignored: sor-notify takes its settings from SOR_* alone",
            names=ignored,
        )
    try:
        return int(args.fn(settings, args))
    except SettingsError as err:  # found by the composition root (the DKIM key's file)
        print(f"sor-notify: configuration error: {err}", file=sys.stderr)
        return 2
    except (UsageError, BrokerError, SchemaOutOfStep) as err:
        print(f"sor-notify: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
