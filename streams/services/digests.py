"""Send the due digests: claim one per subscriber and period, mail it, never mail it twice.

A run works in blocks: it claims a block of due subscribers in one transaction, loads their
alerts in one query, renders each digest to bytes, and hands it to one of several mail lanes
(for SMTP, connections kept open for the run). The first message of a run goes alone: a server
that is down is tried once, and the first digest is marked sent before any other is offered.
Then a lane marks what the server accepted before it offers its next message; the marks of all
lanes are committed together (one transaction for whatever was accepted meanwhile). So a run
killed at any moment leaves at most one accepted but unmarked digest per lane, which the next
run sends again with the same Message-ID, as a run killed between sending and marking always did.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from email.utils import parseaddr
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from streams.adapters import db_calls, digest_store, metrics, registry_freshness
from streams.adapters.digest_store import DigestWork
from streams.adapters.mail import (
    MailLanes,
    MailSender,
    MailServerUnavailable,
    NotTried,
    OutgoingMail,
    PermanentMailError,
    TemporaryMailError,
    lanes_of,
)
from streams.adapters.map_images import MapCache
from streams.adapters.rendering import DigestMap, render_digest_bytes
from streams.domain import digest_dates, digest_schedule, links
from streams.domain.digest import Digest, build_digest
from streams.domain.digest_map import alt_text, map_spec
from streams.domain.retry_policy import GIVE_UP_AFTER, retry_delay
from streams.runtime import Runtime

logger = structlog.get_logger()

# A claimed digest whose run has not finished it after this long is taken to be orphaned
# (the worker died mid-send) and is retried. Far above one SMTP attempt (30 s timeout).
DEFAULT_STALE_AFTER = timedelta(minutes=30)

# Hard bounces in a row after which a subscriber's digests stop (SOR_SUSPEND_AFTER_BOUNCES).
DEFAULT_SUSPEND_AFTER = 3
# Mail lanes (SMTP connections kept open) a run sends over side by side.
DEFAULT_LANES = 16
# Subscribers claimed (and digests loaded) per transaction. A run killed mid-way leaves at most
# two blocks claimed and not sent: taken over after the stale time, like any orphaned claim.
BLOCK = 500


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


def _blocks(values: Sequence[int]) -> list[Sequence[int]]:
    return [values[i : i + BLOCK] for i in range(0, len(values), BLOCK)]


async def send_due_digests(
    engine: Engine,
    sender: MailSender,
    *,
    period: str,
    from_addr: str,
    public_url: str,
    unsubscribe_url_for: Callable[[int, str | None], str],
    now: datetime,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    claim_new: bool = True,
    suspend_after: int = DEFAULT_SUSPEND_AFTER,
    rand: Callable[[], float] = random.random,
    lanes: int = DEFAULT_LANES,
    zone: tzinfo = UTC,
    maps: bool = True,
    map_cache: MapCache | None = None,
) -> DigestRunReport:
    """Retry the claimed digests that are due, then claim and send this period's.

    `claim_new=False` only retries (for a more frequent retry schedule that must not send
    the day's digest early). Once the mail server is found unavailable, the run tries no
    other digest: the rest are deferred untried to the same retry time. `zone` is the one
    the digests' dates are in (the period's); `maps=False` leaves the map pictures out, and
    each distinct picture is drawn once a run (in `map_cache`, a new one by default).
    """
    if suspend_after < 1:
        raise ValueError(f"suspend_after={suspend_after}: expected at least 1")
    if lanes < 1:
        raise ValueError(f"lanes={lanes}: expected at least 1")
    run = _Run(
        engine,
        from_addr=from_addr,
        public_url=public_url,
        unsubscribe_url_for=unsubscribe_url_for,
        now=now.astimezone(UTC),
        suspend_after=suspend_after,
        rand=rand,
        map_cache=(map_cache or MapCache()) if maps else None,
        zone=zone,
    )
    report = run.report
    # Read once: every digest of the run says the same.
    as_of = await run.db(registry_freshness.registry_as_of)
    run.registry_as_of = digest_dates.registry_as_of(as_of, zone)
    async with lanes_of(sender, lanes) as pool, run.lanes(pool):
        retries = await run.db(
            digest_store.take_over_claimed_digests, now=run.now, stale_before=run.now - stale_after
        )
        for block in _blocks(retries):
            await run.deliver(await run.db(digest_store.load_digests, block))
        # Retries first, to the end: a refused one gives its alerts back, and those must
        # not go out again in this run's new digest.
        await run.drain()

        if claim_new:
            domain = message_domain(from_addr)
            await run.db(digest_store.refresh_statistics)
            # A weekly subscriber whose weekday's run did not happen is sent now, not a week late.
            missed = digest_schedule.missed_weekly_cutoffs(date.fromisoformat(period), zone)
            due = await run.db(digest_store.subscribers_with_unassigned_alerts, period, missed)
            due = [s for s in due if s not in run.refused]
            for block in _blocks(due):
                claimed = await run.db(
                    digest_store.claim_digests,
                    block,
                    period,
                    now=run.now,
                    message_domain=domain,
                    missed=missed,
                )
                # Unclaimed and not final: another run holds it right now, or the subscriber just left.
                report.skipped_already_sent += claimed.already_final
                await run.deliver(await run.db(digest_store.load_digests, claimed.digest_ids))

    logger.info(
        "digest run finished",
        period=period,
        retried=len(retries),
        not_tried=run.not_tried,
        mail_server_down=run.down is not None,
        lanes=pool.lanes,
        **report.__dict__,
    )
    return report


async def send_digests(
    runtime: Runtime, period: str | None = None, *, claim_new: bool = True
) -> DigestRunReport:
    """A run with the service's settings: what `digest send`, 06:00 and the retry timer call."""
    settings = runtime.settings
    return await send_due_digests(
        runtime.engine,
        runtime.mail,
        period=period or runtime.local_period(),
        from_addr=settings.mail_from,
        public_url=settings.public_url,
        unsubscribe_url_for=lambda sid, key: links.unsubscribe_url(
            settings.public_url, settings.secret_key, sid, key
        ),
        now=datetime.now(UTC),
        stale_after=timedelta(seconds=settings.digest_stale_after_s),
        suspend_after=settings.suspend_after_bounces,
        claim_new=claim_new,
        lanes=settings.smtp_connections,
        zone=settings.zone,
        maps=settings.digest_maps,
    )


@dataclass
class _Run:
    engine: Engine
    from_addr: str
    public_url: str
    unsubscribe_url_for: Callable[[int, str | None], str]
    now: datetime
    suspend_after: int
    rand: Callable[[], float]
    map_cache: MapCache | None = None  # None: digests without map pictures
    registry_as_of: str | None = None
    zone: tzinfo = UTC  # the one the digests' dates are written in
    report: DigestRunReport = field(default_factory=DigestRunReport)
    down: MailServerUnavailable | None = None  # the server failed us in this run
    down_retry_at: datetime | None = None  # when the digest that found it down is retried
    not_tried: int = 0
    refused: set[int] = field(default_factory=set)  # subscribers with a digest failed in this run
    _pool: MailLanes | None = None
    _queue: asyncio.Queue[tuple[DigestWork, Digest, OutgoingMail] | None] | None = None
    _workers: list[asyncio.Task[None]] = field(default_factory=list)
    _untried: list[DigestWork] = field(default_factory=list)  # released together at the end
    _marks: list[tuple[int, str, asyncio.Future[None]]] = field(default_factory=list)
    _marking: asyncio.Task[None] | None = None
    _error: BaseException | None = None  # what stopped a lane (the database, most likely)
    _first_done: asyncio.Event = field(default_factory=asyncio.Event)  # the run's first message

    def __post_init__(self) -> None:
        self.envelope_from = parseaddr(self.from_addr)[1]

    async def db(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await db_calls.call(self.engine, fn, *args, **kw)

    # --- the lanes ------------------------------------------------------------------------

    def lanes(self, pool: MailLanes) -> _Lanes:
        return _Lanes(self, pool)

    def _start(self, pool: MailLanes) -> None:
        self._pool = pool
        self._queue = asyncio.Queue(maxsize=BLOCK)
        self._workers = [asyncio.create_task(self._lane(first=n == 0)) for n in range(pool.lanes)]

    async def drain(self) -> None:
        """Wait until every digest handed to the lanes is done with."""
        assert self._queue is not None
        await self._queue.join()
        self._raise_lane_error()

    async def _stop(self, ok: bool) -> None:
        assert self._queue is not None
        if ok:
            for _ in self._workers:
                await self._queue.put(None)
            await asyncio.gather(*self._workers)
        else:
            for w in self._workers:
                w.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
        if self._marking is not None:
            await asyncio.gather(self._marking, return_exceptions=not ok)
        if ok:
            self._raise_lane_error()
            await self._release_untried()

    def _raise_lane_error(self) -> None:
        if self._error is not None:
            raise self._error

    async def _lane(self, first: bool) -> None:
        assert self._queue is not None
        if not first:
            await self._first_done.wait()
        while True:
            item = await self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:  # after a lane's error the rest stay claimed, untouched
                    await self._offer(*item)
            except Exception as exc:  # noqa: BLE001 - handed to the run, which raises it
                self._error = self._error or exc
            finally:
                self._queue.task_done()
                if first:
                    self._first_done.set()

    async def _offer(self, work: DigestWork, digest: Digest, mail: OutgoingMail) -> None:
        if self.down is not None:
            self._not_tried(work)
            return
        assert self._pool is not None
        try:
            await self._pool.send(mail)
        except NotTried as exc:
            self.down = self.down or exc
            self._not_tried(work)
            return
        except MailServerUnavailable as exc:
            self.down = self.down or exc
            await self._defer(work, exc.reason, attempted=True, server_down=True)
            return
        except TemporaryMailError as exc:
            await self._defer(work, exc.reason, attempted=True, server_down=False)
            return
        except PermanentMailError as exc:
            await self._fail(work, exc.reason, bounce=True, attempted=True)
            return
        except Exception as exc:  # noqa: BLE001 - one bad digest must not stop everyone else's
            # Only the type: a message could quote the recipient.
            logger.error("digest: unexpected error", error=type(exc).__name__, digest_id=work.digest_id)
            await self._defer(work, type(exc).__name__, attempted=True, server_down=False)
            return
        # Marked before this lane offers its next message (the marks of all lanes go together).
        await self._mark_sent(work.digest_id, mail.message_id)
        self._count("sent")
        logger.info(
            "digest sent",
            digest_id=work.digest_id,
            subscriber_id=work.subscriber_id,
            period=work.period,
            changes=digest.change_count,
            withheld=work.withheld,
            attempt=work.attempts + 1,
        )

    async def _mark_sent(self, digest_id: int, message_id: str) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._marks.append((digest_id, message_id, done))
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._commit_marks())
        await done

    async def _commit_marks(self) -> None:
        while self._marks:
            batch, self._marks = self._marks, []
            try:
                await self.db(digest_store.mark_digests_sent, [(d, m) for d, m, _ in batch], now=self.now)
            except BaseException as exc:
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                raise
            for *_, done in batch:
                if not done.done():
                    done.set_result(None)

    # --- one digest at a time, in the order claimed ----------------------------------------

    async def deliver(self, works: list[DigestWork]) -> None:
        assert self._queue is not None
        for work in works:
            self._raise_lane_error()
            item = await self._prepare(work)
            if item is not None:
                await self._queue.put(item)

    async def _prepare(self, work: DigestWork) -> tuple[DigestWork, Digest, OutgoingMail] | None:
        if not work.deliverable:
            await self.db(digest_store.mark_digest_empty, work.digest_id, note="subscriber not active")
            self._count("empty")
            logger.info(
                "digest not sent: subscriber no longer active",
                digest_id=work.digest_id,
                subscriber_id=work.subscriber_id,
                period=work.period,
            )
            return None
        if work.mail_suspended:
            # Claimed before the suspension (a retry): not sent, and its alerts wait for a resume.
            await self._fail(
                work, "not sent: mail to this subscriber is suspended", bounce=False, attempted=False
            )
            return None
        digest = build_digest(work.subscriber_id, work.alerts)
        if digest is None:
            await self.db(digest_store.mark_digest_empty, work.digest_id)
            self._count("empty")
            logger.info(
                "digest empty: nothing to send",
                digest_id=work.digest_id,
                subscriber_id=work.subscriber_id,
                period=work.period,
                withheld=work.withheld,
            )
            return None
        if self.down is not None:
            self._not_tried(work)
            return None
        message_id = work.message_id or f"<digest-{work.digest_id}@{message_domain(self.from_addr)}>"
        try:
            data = render_digest_bytes(
                digest,
                to_addr=work.email,
                from_addr=self.from_addr,
                public_url=self.public_url,
                unsubscribe_url=self.unsubscribe_url_for(work.subscriber_id, work.link_key),
                message_id=message_id,
                period=work.period,
                date=self.now,
                registry_as_of=self.registry_as_of,
                weekly=self._weekly(work),
                # Drawn off the loop (a millisecond or two a new picture, more for a place whose
                # base-layer tiles this process has not drawn yet): the mail lanes keep sending.
                maps=await asyncio.to_thread(self._maps, digest, work) if self.map_cache is not None else [],
            )
        except Exception as exc:  # noqa: BLE001 - one bad digest must not stop everyone else's
            logger.error("digest: unexpected error", error=type(exc).__name__, digest_id=work.digest_id)
            await self._defer(work, type(exc).__name__, attempted=True, server_down=False)
            return None
        return work, digest, OutgoingMail(self.envelope_from, work.email, data, message_id)

    def _weekly(self, work: DigestWork) -> digest_dates.WeeklyWords | None:
        """A weekly digest names the days it covers: from its alerts' start to its claim."""
        if not work.schedule.weekly:
            return None
        end = work.created_at or self.now
        return digest_dates.weekly_words(work.covers_from or end, end, self.zone)

    def _maps(self, digest: Digest, work: DigestWork) -> list[DigestMap]:
        """A picture per tracked address with changes that can be drawn; one that fails to draw
        is left out (the digest says the same in words)."""
        assert self.map_cache is not None
        out = []
        for place in digest.places:
            circle = work.circles.get(place.tracked_address_id)
            spec = map_spec(place, circle) if circle is not None else None
            if circle is None or spec is None:
                continue
            try:
                png = self.map_cache.png(spec)
            except Exception as exc:  # noqa: BLE001 - the digest goes without its picture
                logger.error("digest map not drawn", error=type(exc).__name__, digest_id=work.digest_id)
                continue
            alt = alt_text(place.label, circle.radius_code, spec)
            out.append(DigestMap(place.tracked_address_id, spec.content_id, alt, png))
        return out

    # --- outcomes other than sent -----------------------------------------------------------

    def _not_tried(self, work: DigestWork) -> None:
        """Deferred untried (the server is down): released together, to the same retry time."""
        self.not_tried += 1
        self._untried.append(work)

    async def _release_untried(self) -> None:
        untried, self._untried = self._untried, []
        if not untried:
            return
        assert self.down is not None
        reason = f"not tried: {self.down.reason}"
        keep: list[DigestWork] = []
        for work in untried:
            if self._given_up(work):
                await self._fail(
                    work, f"gave up after {GIVE_UP_AFTER.days} days: {reason}", bounce=False, attempted=False
                )
            else:
                keep.append(work)
        if not keep:
            return
        retry_at = self.down_retry_at or self.now + retry_delay(keep[0].attempts + 1, self.rand())
        await self.db(
            digest_store.release_digests,
            [w.digest_id for w in keep],
            error=reason,
            retry_at=retry_at,
            attempted=False,
        )
        for _ in keep:
            self._count("deferred")

    def _given_up(self, work: DigestWork) -> bool:
        return work.created_at is not None and self.now - work.created_at >= GIVE_UP_AFTER

    async def _defer(self, work: DigestWork, reason: str, *, attempted: bool, server_down: bool) -> None:
        if self._given_up(work):
            # A recipient's server saying "later" for days is a bounce, as in any mail system;
            # our own server being down says nothing about the subscriber.
            days = GIVE_UP_AFTER.days
            await self._fail(
                work, f"gave up after {days} days: {reason}", bounce=not server_down, attempted=attempted
            )
            return
        # Decided before any wait: digests found untried meanwhile take this retry time.
        retry_at = self.now + retry_delay(work.attempts + 1, self.rand())
        if server_down:
            self.down_retry_at = retry_at
        await self.db(
            digest_store.release_digest, work.digest_id, error=reason, retry_at=retry_at, attempted=attempted
        )
        self._count("deferred")
        if attempted:
            logger.warning(
                "digest deferred: temporary mail failure",
                digest_id=work.digest_id,
                subscriber_id=work.subscriber_id,
                period=work.period,
                error=reason,
                attempt=work.attempts + 1,
                retry_in_s=round((retry_at - self.now).total_seconds()),
            )

    async def _fail(self, work: DigestWork, reason: str, *, bounce: bool, attempted: bool) -> None:
        result = await self.db(
            digest_store.mark_digest_failed,
            work.digest_id,
            error=reason,
            now=self.now,
            bounce=bounce,
            suspend_after=self.suspend_after,
            attempted=attempted,
        )
        if result is None:  # finished by someone else meanwhile
            return
        self.refused.add(work.subscriber_id)
        self._count("failed")
        if bounce:
            metrics.DIGEST_BOUNCES.inc()
        log = logger.bind(digest_id=work.digest_id, subscriber_id=work.subscriber_id, period=work.period)
        log.warning(
            "digest failed: its alerts wait for the next digest",
            error=reason,
            bounce=bounce,
            bounces_in_a_row=result.bounces,
        )
        if result.suspended:
            self.report.suspended += 1
            metrics.MAIL_SUSPENSIONS.inc()
            log.warning("digests suspended after repeated hard bounces", bounces_in_a_row=result.bounces)

    def _count(self, outcome: str) -> None:
        setattr(self.report, outcome, getattr(self.report, outcome) + 1)
        metrics.DIGESTS.labels(outcome=outcome).inc()


class _Lanes:
    """`async with run.lanes(pool)`: the lane tasks for the length of the run."""

    def __init__(self, run: _Run, pool: MailLanes) -> None:
        self.run = run
        self.pool = pool

    async def __aenter__(self) -> _Run:
        self.run._start(self.pool)
        return self.run

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self.run._stop(ok=exc_type is None)
