"""What agents, services and the site run with: settings, engine, mail, geocoder, circle index."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from streams import topics
from streams.adapters import db_calls
from streams.adapters.broker import Publisher, ensure_topics
from streams.adapters.broker_probe import needs_single_record_batches
from streams.adapters.mail import MailSender
from streams.domain.cell_circles import CellCircles
from streams.domain.geocoding import Geocoder
from streams.settings import Settings

T = TypeVar("T")


@dataclass
class Runtime:
    """Built once by the composition root (`streams.bootstrap`) and handed to whoever needs it."""

    settings: Settings
    engine: Engine
    mail: MailSender
    geocoder: Geocoder
    circles: CellCircles = field(default_factory=CellCircles)

    async def db(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run a repository call off the loop; while the database is unreachable, wait."""
        return await db_calls.call(self.engine, fn, *args, wait_while_down=True, **kw)

    async def db_once(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run a repository call off the loop; an unreachable database is the caller's error."""
        return await db_calls.call(self.engine, fn, *args, **kw)

    def publisher(self, broker_url: str) -> Any:
        return publisher_for(self.settings, broker_url)

    def local_period(self, now: datetime | None = None) -> str:
        """The service's local date: the digest period a moment belongs to."""
        now = now or datetime.now(UTC)
        return now.astimezone(self.settings.zone).date().isoformat()


@asynccontextmanager
async def publisher_for(settings: Settings, broker_url: str) -> AsyncIterator[Publisher]:
    """Every publish goes through here: topics first, or the broker invents them.

    Needs no database: the registry's side can publish while ours is down.
    """
    await ensure_topics(
        broker_url, topics.topic_configs(settings.app_id), settings.partitions, settings.topic_replication
    )
    single = await needs_single_record_batches(
        broker_url, settings.single_record_batches, settings.topic_replication
    )
    async with Publisher(broker_url, single_record_batches=single) as pub:
        yield pub
