"""`subscribers import`: the legacy migration path, one subscriber per JSON line."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from streams.adapters import repository
from streams.adapters.subscriber_import import InvalidLine, iter_import_file
from streams.bootstrap import Services
from streams.services.publishing import publish_subscriber_change

logger = structlog.get_logger()


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
    for n, item in iter_import_file(path):
        if isinstance(item, InvalidLine):
            report.rejected.append((n, str(item)))
            continue
        change = await services.db(repository.upsert_subscriber, item)
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
    if bootstrap and changes:
        async with services.publisher(bootstrap) as pub:
            for change in changes:
                await publish_subscriber_change(pub, change)
        report.published = True
    logger.info("subscribers imported", imported=report.imported, rejected=len(report.rejected))
    return report
