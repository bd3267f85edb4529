"""Send the due digests: claim one per subscriber and period, mail it, never mail it twice."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr
from typing import Callable

import structlog
from sqlalchemy.engine import Engine

from streams.adapters import metrics, repository
from streams.adapters.mail import MailSender, PermanentMailError, TemporaryMailError
from streams.adapters.rendering import render_digest
from streams.domain.digest import build_digest

logger = structlog.get_logger()

# A claimed digest whose run has not finished it after this long is taken to be orphaned
# (the worker died mid-send) and is retried. Far above one SMTP attempt (30 s timeout).
DEFAULT_STALE_AFTER = timedelta(minutes=30)


@dataclass
class DigestRunReport:
    sent: int = 0
    empty: int = 0  # nothing left to say (e.g. every alert was about an offender removed since)
    failed: int = 0  # permanent refusal: not retried
    skipped_already_sent: int = 0  # the period's digest was already done
    deferred: int = 0  # temporary failure: stays claimed, retried by the next run


def message_domain(from_addr: str) -> str:
    domain = parseaddr(from_addr)[1].rpartition("@")[2].strip().lower()
    return domain or "sor-notify"


async def send_due_digests(
    engine: Engine,
    sender: MailSender,
    *,
    period: str,
    from_addr: str,
    public_url: str,
    unsubscribe_url_for: Callable[[int], str],
    now: datetime,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    claim_new: bool = True,
) -> DigestRunReport:
    """Retry the digests left claimed, then claim and send this period's.

    `claim_new=False` only retries (for a more frequent retry schedule that must not send
    the day's digest early).
    """
    now = now.astimezone(timezone.utc)
    report = DigestRunReport()

    async def deliver(digest_id: int) -> None:
        await _deliver(
            engine, sender, digest_id, report,
            from_addr=from_addr, public_url=public_url,
            unsubscribe_url_for=unsubscribe_url_for, now=now,
        )

    retries = await asyncio.to_thread(
        repository.take_over_claimed_digests, engine, now=now, stale_before=now - stale_after
    )
    for digest_id in retries:
        await deliver(digest_id)

    if claim_new:
        domain = message_domain(from_addr)
        due = await asyncio.to_thread(repository.subscribers_with_unassigned_alerts, engine)
        for subscriber_id in due:
            digest_id = await asyncio.to_thread(
                repository.claim_digest, engine, subscriber_id, period, now=now, message_domain=domain
            )
            if digest_id is None:
                status = await asyncio.to_thread(repository.digest_status, engine, subscriber_id, period)
                if status in repository.FINAL_DIGEST_STATUSES:
                    report.skipped_already_sent += 1
                # else: another run holds it right now, or the subscriber just left.
                continue
            await deliver(digest_id)

    logger.info("digest run finished", period=period, retried=len(retries), **report.__dict__)
    return report


async def _deliver(
    engine: Engine,
    sender: MailSender,
    digest_id: int,
    report: DigestRunReport,
    *,
    from_addr: str,
    public_url: str,
    unsubscribe_url_for: Callable[[int], str],
    now: datetime,
) -> None:
    work = await asyncio.to_thread(repository.load_digest, engine, digest_id)
    log = logger.bind(digest_id=digest_id, subscriber_id=work.subscriber_id, period=work.period)
    if not work.deliverable:
        await asyncio.to_thread(repository.mark_digest_empty, engine, digest_id, note="subscriber not active")
        report.empty += 1
        metrics.DIGESTS.labels(outcome="empty").inc()
        log.info("digest not sent: subscriber no longer active")
        return
    digest = build_digest(work.subscriber_id, work.alerts)
    if digest is None:
        await asyncio.to_thread(repository.mark_digest_empty, engine, digest_id)
        report.empty += 1
        metrics.DIGESTS.labels(outcome="empty").inc()
        log.info("digest empty: nothing to send", withheld=work.withheld)
        return

    message_id = work.message_id or f"<digest-{digest_id}@{message_domain(from_addr)}>"
    try:
        msg = render_digest(
            digest,
            to_addr=work.email,
            from_addr=from_addr,
            public_url=public_url,
            unsubscribe_url=unsubscribe_url_for(work.subscriber_id),
            message_id=message_id,
            period=work.period,
            date=now,
        )
        await sender.send(msg)
    except TemporaryMailError as exc:
        await asyncio.to_thread(repository.release_digest, engine, digest_id, error=exc.reason)
        report.deferred += 1
        metrics.DIGESTS.labels(outcome="deferred").inc()
        log.warning("digest deferred: temporary mail failure", error=exc.reason, attempt=work.attempts + 1)
        return
    except PermanentMailError as exc:
        await asyncio.to_thread(repository.mark_digest_failed, engine, digest_id, error=exc.reason)
        report.failed += 1
        metrics.DIGESTS.labels(outcome="failed").inc()
        log.warning("digest failed: mail refused for good", error=exc.reason)
        return
    except Exception as exc:  # noqa: BLE001 - one bad digest must not stop everyone else's
        # Only the type: a message could quote the recipient.
        await asyncio.to_thread(repository.release_digest, engine, digest_id, error=type(exc).__name__)
        report.deferred += 1
        metrics.DIGESTS.labels(outcome="deferred").inc()
        log.error("digest deferred: unexpected error", error=type(exc).__name__)
        return

    await asyncio.to_thread(repository.mark_digest_sent, engine, digest_id, now=now, message_id=message_id)
    report.sent += 1
    metrics.DIGESTS.labels(outcome="sent").inc()
    log.info(
        "digest sent",
        changes=digest.change_count,
        withheld=work.withheld,
        attempt=work.attempts + 1,
    )
