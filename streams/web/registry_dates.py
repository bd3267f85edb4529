"""The "Registry data as of …" sentence of every page that lists offenders (the digests' rule, in the site's zone)."""

from __future__ import annotations

from aiohttp import web

from streams.domain.digest_dates import registry_as_of
from streams.web.keys import NEAR, runtime_of


async def registry_as_of_text(request: web.Request) -> str:
    """Checked against the database at most every few seconds (near_index.NearIndex.as_of)."""
    runtime = runtime_of(request)
    return registry_as_of(await request.app[NEAR].as_of(runtime.db_once), runtime.settings.zone)
