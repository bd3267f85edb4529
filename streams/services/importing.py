"""`subscribers import`: the legacy migration path, one subscriber per JSON line."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from streams.adapters import repository
from streams.adapters.subscriber_import import (
    ImportedAddress,
    ImportedSubscriber,
    InvalidLine,
    iter_import_file,
)
from streams.bootstrap import Services
from streams.domain.geocoding import GeocodeQuery, GeocodeResult, GeocoderUnavailable
from streams.services.publishing import publish_subscriber_changes

logger = structlog.get_logger()


# Subscribers stored per transaction.
IMPORT_BLOCK = 500


@dataclass
class ImportReport:
    imported: int = 0
    confirmed: int = 0
    published: bool = False
    rejected: list[tuple[int, str]] = field(default_factory=list)


async def import_subscribers(services: Services, path: Path, bootstrap: str | None) -> ImportReport:
    """Good lines are stored (and published when a broker runs); bad ones are reported."""
    report = ImportReport()
    changes: list[repository.SubscriberChange] = []
    block: list[ImportedSubscriber] = []

    async def store() -> None:
        # One transaction per block of lines; the order of the file is kept.
        for item, change in zip(block, await services.db(repository.upsert_subscribers, list(block))):
            report.imported += 1
            if item.confirmed:
                report.confirmed += 1
            else:
                # Unconfirmed subscribers get nothing: withdraw anything published before.
                change = replace(
                    change,
                    circles=[],
                    removed_circles=[*change.removed_circles, *change.circles],
                    watches=[],
                    removed_watches=[*change.removed_watches, *change.watches],
                )
            changes.append(change)
        block.clear()

    for n, item in iter_import_file(path):
        if isinstance(item, InvalidLine):
            report.rejected.append((n, str(item)))
            continue
        try:
            item = await locate_subscriber(services, item)
        except InvalidLine as err:
            report.rejected.append((n, str(err)))
            continue
        block.append(item)
        if len(block) >= IMPORT_BLOCK:
            await store()
    await store()
    if bootstrap and changes:
        async with services.publisher(bootstrap) as pub:
            # All of them at once: circles batched by cell across subscribers.
            await publish_subscriber_changes(pub, changes)
        report.published = True
    logger.info("subscribers imported", imported=report.imported, rejected=len(report.rejected))
    return report


async def locate_subscriber(services: Services, sub: ImportedSubscriber) -> ImportedSubscriber:
    """Geocode tracked addresses that came without coordinates; refuse anything coarse."""
    located: list[ImportedAddress] = []
    for i, a in enumerate(sub.addresses):
        if a.lat is not None:
            located.append(a)
            continue
        query = GeocodeQuery(a.street, a.city, a.state, a.zip)
        try:
            answer = await asyncio.wait_for(
                services.geocoder.geocode(query), services.settings.geocode_timeout_s
            )
        except (GeocoderUnavailable, asyncio.TimeoutError):
            raise InvalidLine(
                f"addresses[{i}]: the geocoder is unavailable right now; import this line again later"
            ) from None
        if isinstance(answer, GeocodeResult) and answer.supports_proximity:
            located.append(replace(a, lat=answer.lat, lon=answer.lon, precision=answer.precision))
            continue
        if isinstance(answer, GeocodeResult):
            message = (
                f"could only be placed at {answer.precision.replace('_', ' ')} level, "
                "not exactly enough for a radius"
            )
            suggestions: tuple = ()
        else:
            message, suggestions = answer.message, answer.suggestions
        hint = (
            " Addresses that can be mapped nearby: " + "; ".join(s.one_line for s in suggestions[:3]) + "."
            if suggestions else ""
        )
        if hint and not message.endswith((".", "?", "!")):
            message += "."
        raise InvalidLine(f"addresses[{i}]: {message}{hint}")
    return replace(sub, addresses=tuple(located))
