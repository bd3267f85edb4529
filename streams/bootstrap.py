"""The composition root: builds the engine, mail sender, index and stream graph once."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Callable, TypeVar

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from streams import topics
from streams.adapters import (  # noqa: F401 (tables)
    accounts,
    gazetteer_db,
    geocode_cache,
    offender_search,
    ops_db,
    web_db,
)
from streams.adapters.broker import Publisher, ensure_topics
from streams.adapters.broker_probe import needs_single_record_batches
from streams.adapters.db import create_schema, make_engine
from streams.adapters.gazetteer import LocalGazetteer
from streams.adapters.geocode_cache import CachedGeocoder, ChainGeocoder
from streams.adapters.mail import MaildirSender, MailSender, SmtpSender
from streams.adapters.remote_geocoder import RemoteGeocoder
from streams.domain.cell_circles import CellCircles
from streams.domain.geocoding import Geocoder
from streams.services import links
from streams.settings import Settings

logger = structlog.get_logger()
T = TypeVar("T")


def mail_sender_for(settings: Settings) -> MailSender:
    if settings.uses_smtp:
        return SmtpSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=30.0,
        )
    return MaildirSender(settings.maildir)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    mail: MailSender
    geocoder: Geocoder
    circles: CellCircles = field(default_factory=CellCircles)

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a repository call off the loop; while the database is unreachable, wait."""
        delay = 0.5
        while True:
            try:
                return await asyncio.to_thread(fn, self.engine, *args)
            except (OperationalError, InterfaceError) as exc:
                logger.warning("database unreachable, retrying", error=type(exc).__name__, in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def publisher(self, bootstrap: str) -> Any:
        return publisher_for(self.settings, bootstrap)

    def local_period(self, now: datetime | None = None) -> str:
        now = now or datetime.now(timezone.utc)
        return now.astimezone(self.settings.zone).date().isoformat()

    async def send_digests(self, period: str | None = None, *, claim_new: bool = True) -> Any:
        from streams.services.digests import send_due_digests

        return await send_due_digests(
            self.engine,
            self.mail,
            period=period or self.local_period(),
            from_addr=self.settings.mail_from,
            public_url=self.settings.public_url,
            unsubscribe_url_for=lambda sid: links.unsubscribe_url(self.settings, sid),
            now=datetime.now(timezone.utc),
            stale_after=timedelta(seconds=self.settings.digest_stale_after_s),
            suspend_after=self.settings.suspend_after_bounces,
            claim_new=claim_new,
            lanes=self.settings.smtp_connections,
        )


def geocoder_for(settings: Settings, engine: Engine) -> Geocoder:
    """The local gazetteer first; remote services (cached) only for what it cannot place."""
    remotes = [
        CachedGeocoder(
            RemoteGeocoder(
                kind,
                url,
                timeout=settings.geocode_timeout_s,
                min_interval=settings.geocode_min_interval_s,
                state=settings.service_state,
            ),
            engine,
            kind,
        )
        for kind, url in settings.remote_geocoders
    ]
    return ChainGeocoder(LocalGazetteer(engine, state=settings.service_state), *remotes)


@asynccontextmanager
async def publisher_for(settings: Settings, bootstrap: str) -> AsyncIterator[Publisher]:
    """Every publish goes through here: topics first, or the broker invents them.

    Needs no database: the registry's side can publish while ours is down.
    """
    await ensure_topics(
        bootstrap, topics.topic_configs(settings.app_id), settings.partitions, settings.topic_replication
    )
    single = await needs_single_record_batches(
        bootstrap, settings.single_record_batches, settings.topic_replication
    )
    async with Publisher(bootstrap, single_record_batches=single) as pub:
        yield pub


def build_services(settings: Settings) -> Services:
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    return Services(
        settings=settings,
        engine=engine,
        mail=mail_sender_for(settings),
        geocoder=geocoder_for(settings, engine),
    )


def build_stream_graph(
    settings: Settings, bootstrap: str, services: Services, *, single_record_batches: bool
) -> Any:
    from streams.agents import (
        address_changes,
        alerts,
        digests,
        health,
        offender_watches,
        registry_events,
        tracked_circles,
    )
    from streams.app import create_app

    graph = create_app(settings, bootstrap, single_record_batches=single_record_batches)
    for flow in (registry_events, offender_watches, tracked_circles, address_changes, alerts, digests, health):
        flow.register(graph, services)
    return graph
