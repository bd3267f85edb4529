"""Send the due digests: claim one per subscriber and period, mail it, never mail it twice."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr
from typing import Any, Callable

import structlog
from sqlalchemy.engine import Engine

from streams.adapters import metrics, repository
from streams.adapters.mail import (
    MailSender,
    MailServerUnavailable,
    PermanentMailError,
    TemporaryMailError,
)
from streams.adapters.rendering import render_digest
from streams.domain.digest import build_digest

logger = structlog.get_logger()

# A claimed digest whose run has not finished it after this long is taken to be orphaned
# (the worker died mid-send) and is retried. Far above one SMTP attempt (30 s timeout).
DEFAULT_STALE_AFTER = timedelta(minutes=30)

# Backoff after a temporary failure: 10 minutes, doubling, at most 2 hours, each wait cut by
# up to a quarter at random so that digests deferred together do not all come back at once.
# Two hours at most: once the server is back, the news goes out within two hours.
RETRY_FIRST = timedelta(minutes=10)
RETRY_MAX = timedelta(hours=2)
RETRY_JITTER = 0.25
# Then give up: RFC 5321 (4.5.4.1) asks for at least 4-5 days, Postfix's queue lifetime is 5.
# Late news about who lives nearby is still worth having, so retries go on long past the
# 24-hour promise; a digest given up on is failed, and its alerts go into the next digest.
GIVE_UP_AFTER = timedelta(days=5)
# Hard bounces in a row after which a subscriber's digests stop (SOR_SUSPEND_AFTER_BOUNCES).
DEFAULT_SUSPEND_AFTER = 3


@dataclass
class DigestRunReport:
    sent: int = 0
    empty: int = 0  # nothing left to say (e.g. every alert was about an offender removed since)
    failed: int = 0  # refused for good, or given up on: its alerts wait for the next digest
    skipped_already_sent: int = 0  # the period's digest was already done
    deferred: int = 0  # temporary failure: stays claimed, retried after a backoff
    suspended: int = 0  # subscribers whose digests this run stopped after repeated hard bounces


def message_domain(from_addr: str) -> str:
    domain = parseaddr(from_addr)[1].rpartition("@")[2].strip().lower()
    return domain or "sor-notify"


def retry_delay(failures: int, rand: float) -> timedelta:
    """The wait after the `failures`-th temporary failure in a row; `rand` in [0, 1) is the jitter."""
    if failures < 1:
        raise ValueError(f"failures={failures}: expected at least 1")
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand={rand}: expected a number in [0, 1)")
    full = min(RETRY_FIRST * 2 ** min(failures - 1, 20), RETRY_MAX)
    return full * (1.0 - RETRY_JITTER * rand)


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
    suspend_after: int = DEFAULT_SUSPEND_AFTER,
    rand: Callable[[], float] = random.random,
) -> DigestRunReport:
    """Retry the claimed digests that are due, then claim and send this period's.

    `claim_new=False` only retries (for a more frequent retry schedule that must not send
    the day's digest early). Once the mail server is found unavailable, the run tries no
    other digest: the rest are deferred untried to the same retry time.
    """
    if suspend_after < 1:
        raise ValueError(f"suspend_after={suspend_after}: expected at least 1")
    run = _Run(
        engine, sender, from_addr=from_addr, public_url=public_url,
        unsubscribe_url_for=unsubscribe_url_for, now=now.astimezone(timezone.utc),
        suspend_after=suspend_after, rand=rand,
    )
    report = run.report

    retries = await run.db(
        repository.take_over_claimed_digests, now=run.now, stale_before=run.now - stale_after
    )
    for digest_id in retries:
        await run.deliver(digest_id)

    if claim_new:
        domain = message_domain(from_addr)
        due = await run.db(repository.subscribers_with_unassigned_alerts)
        for subscriber_id in due:
            if subscriber_id in run.refused:
                continue  # its alerts just came back from a refused digest: not twice in one run
            digest_id = await run.db(
                repository.claim_digest, subscriber_id, period, now=run.now, message_domain=domain
            )
            if digest_id is None:
                status = await run.db(repository.digest_status, subscriber_id, period)
                if status in repository.FINAL_DIGEST_STATUSES:
                    report.skipped_already_sent += 1
                # else: another run holds it right now, or the subscriber just left.
                continue
            await run.deliver(digest_id)

    logger.info(
        "digest run finished", period=period, retried=len(retries), not_tried=run.not_tried,
        mail_server_down=run.down is not None, **report.__dict__,
    )
    return report


@dataclass
class _Run:
    engine: Engine
    sender: MailSender
    from_addr: str
    public_url: str
    unsubscribe_url_for: Callable[[int], str]
    now: datetime
    suspend_after: int
    rand: Callable[[], float]
    report: DigestRunReport = field(default_factory=DigestRunReport)
    down: MailServerUnavailable | None = None  # the server failed us in this run
    down_retry_at: datetime | None = None  # when the digest that found it down is retried
    not_tried: int = 0
    refused: set[int] = field(default_factory=set)  # subscribers with a digest failed in this run

    async def db(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, self.engine, *args, **kw)

    async def deliver(self, digest_id: int) -> None:
        work = await self.db(repository.load_digest, digest_id)
        log = logger.bind(digest_id=digest_id, subscriber_id=work.subscriber_id, period=work.period)
        if not work.deliverable:
            await self.db(repository.mark_digest_empty, digest_id, note="subscriber not active")
            self._count("empty")
            log.info("digest not sent: subscriber no longer active")
            return
        if work.mail_suspended:
            # Claimed before the suspension (a retry): not sent, and its alerts wait for a resume.
            await self._fail(work, "not sent: mail to this subscriber is suspended", bounce=False,
                             attempted=False, log=log)
            return
        digest = build_digest(work.subscriber_id, work.alerts)
        if digest is None:
            await self.db(repository.mark_digest_empty, digest_id)
            self._count("empty")
            log.info("digest empty: nothing to send", withheld=work.withheld)
            return
        if self.down is not None:
            self.not_tried += 1
            await self._defer(work, f"not tried: {self.down.reason}", attempted=False,
                              server_down=True, log=log)
            return

        message_id = work.message_id or f"<digest-{digest_id}@{message_domain(self.from_addr)}>"
        try:
            msg = render_digest(
                digest,
                to_addr=work.email,
                from_addr=self.from_addr,
                public_url=self.public_url,
                unsubscribe_url=self.unsubscribe_url_for(work.subscriber_id),
                message_id=message_id,
                period=work.period,
                date=self.now,
            )
            await self.sender.send(msg)
        except MailServerUnavailable as exc:
            self.down = exc
            await self._defer(work, exc.reason, attempted=True, server_down=True, log=log)
            return
        except TemporaryMailError as exc:
            await self._defer(work, exc.reason, attempted=True, server_down=False, log=log)
            return
        except PermanentMailError as exc:
            await self._fail(work, exc.reason, bounce=True, attempted=True, log=log)
            return
        except Exception as exc:  # noqa: BLE001 - one bad digest must not stop everyone else's
            # Only the type: a message could quote the recipient.
            log.error("digest: unexpected error", error=type(exc).__name__)
            await self._defer(work, type(exc).__name__, attempted=True, server_down=False, log=log)
            return

        await self.db(repository.mark_digest_sent, digest_id, now=self.now, message_id=message_id)
        self._count("sent")
        log.info("digest sent", changes=digest.change_count, withheld=work.withheld, attempt=work.attempts + 1)

    async def _defer(self, work: repository.DigestWork, reason: str, *, attempted: bool,
                     server_down: bool, log: Any) -> None:
        if work.created_at is not None and self.now - work.created_at >= GIVE_UP_AFTER:
            # A recipient's server saying "later" for days is a bounce, as in any mail system;
            # our own server being down says nothing about the subscriber.
            days = GIVE_UP_AFTER.days
            await self._fail(work, f"gave up after {days} days: {reason}", bounce=not server_down,
                             attempted=attempted, log=log)
            return
        if not attempted and self.down_retry_at is not None:
            retry_at = self.down_retry_at
        else:
            retry_at = self.now + retry_delay(work.attempts + 1, self.rand())
            if server_down:
                self.down_retry_at = retry_at
        await self.db(repository.release_digest, work.digest_id, error=reason, retry_at=retry_at,
                      attempted=attempted)
        self._count("deferred")
        if attempted:
            log.warning("digest deferred: temporary mail failure", error=reason, attempt=work.attempts + 1,
                        retry_in_s=round((retry_at - self.now).total_seconds()))

    async def _fail(self, work: repository.DigestWork, reason: str, *, bounce: bool, attempted: bool,
                    log: Any) -> None:
        result = await self.db(
            repository.mark_digest_failed, work.digest_id, error=reason, now=self.now, bounce=bounce,
            suspend_after=self.suspend_after, attempted=attempted,
        )
        if result is None:  # finished by someone else meanwhile
            return
        self.refused.add(work.subscriber_id)
        self._count("failed")
        if bounce:
            metrics.DIGEST_BOUNCES.inc()
        log.warning("digest failed: its alerts wait for the next digest", error=reason, bounce=bounce,
                    bounces_in_a_row=result.bounces)
        if result.suspended:
            self.report.suspended += 1
            metrics.MAIL_SUSPENSIONS.inc()
            log.warning("digests suspended after repeated hard bounces", bounces_in_a_row=result.bounces)

    def _count(self, outcome: str) -> None:
        setattr(self.report, outcome, getattr(self.report, outcome) + 1)
        metrics.DIGESTS.labels(outcome=outcome).inc()
