"""Geocoder answers kept in the database, and a chain that asks several geocoders in turn."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import Column, DateTime, String, Table, delete, select
from sqlalchemy.engine import Engine

from streams.adapters import db_calls
from streams.adapters.db import JsonDoc, metadata, utcnow
from streams.adapters.remote_geocoder import query_hash
from streams.adapters.sql import insert as sql_insert
from streams.domain.addresses import normalize_address
from streams.domain.geocoding import (
    PRECISIONS,
    GeocodeFailure,
    GeocodeQuery,
    Geocoder,
    GeocodeResult,
    GeocoderUnavailable,
    Suggestion,
)

logger = structlog.get_logger()

geocode_cache = Table(
    "geocode_cache",
    metadata,
    # sha256 of "<source>|<normalized one-line address>": the address itself is not stored here.
    Column("key", String(64), primary_key=True),
    Column("source", String(32), nullable=False),
    Column("value", JsonDoc, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, default=utcnow),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)


def cache_key(query: GeocodeQuery, source: str) -> str:
    normalized = normalize_address(query.street, query.city, query.state, query.zip)
    return hashlib.sha256(f"{source}|{normalized}".encode()).hexdigest()


def _encode(answer: GeocodeResult | GeocodeFailure) -> dict[str, Any]:
    if isinstance(answer, GeocodeResult):
        return {
            "kind": "result",
            "lat": answer.lat,
            "lon": answer.lon,
            "precision": answer.precision,
            "matched": answer.matched,
        }
    return {
        "kind": "failure",
        "reason": answer.reason,
        "message": answer.message,
        "suggestions": [
            {
                "street": s.street,
                "city": s.city,
                "state": s.state,
                "zip": s.zip,
                "lat": s.lat,
                "lon": s.lon,
                "precision": s.precision,
            }
            for s in answer.suggestions
        ],
    }


def _decode(value: dict[str, Any], source: str) -> GeocodeResult | GeocodeFailure:
    if value["kind"] == "result":
        return GeocodeResult(
            float(value["lat"]),
            float(value["lon"]),
            value["precision"],
            f"cache:{source}",
            value.get("matched", ""),
        )
    return GeocodeFailure(
        value["reason"], value["message"], tuple(Suggestion(**s) for s in value.get("suggestions", ()))
    )


def cache_lookup(engine: Engine, key: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="DEFERRED")
        return conn.execute(
            select(geocode_cache.c.value).where(
                geocode_cache.c.key == key, geocode_cache.c.expires_at > utcnow()
            )
        ).scalar_one_or_none()


def cache_store(engine: Engine, key: str, source: str, value: dict[str, Any], ttl: timedelta) -> None:
    now = utcnow()
    row = {"key": key, "source": source, "value": value, "created_at": now, "expires_at": now + ttl}
    with engine.begin() as conn:
        stmt = sql_insert(conn, geocode_cache).values(**row)
        # Two workers may look up one new address at once: the later answer simply wins.
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[geocode_cache.c.key],
                set_={k: stmt.excluded[k] for k in ("source", "value", "created_at", "expires_at")},
            )
        )


def purge_expired(engine: Engine) -> int:
    with engine.begin() as conn:
        return conn.execute(delete(geocode_cache).where(geocode_cache.c.expires_at <= utcnow())).rowcount


class CachedGeocoder:
    """Answers from the database when it can; asks `inner` (and remembers) when it cannot."""

    def __init__(
        self,
        inner: Geocoder,
        engine: Engine,
        source_name: str,
        *,
        ttl_ok: timedelta = timedelta(days=180),
        ttl_fail: timedelta = timedelta(days=1),
    ) -> None:
        self.inner = inner
        self.engine = engine
        self.source_name = source_name
        self.ttl_ok = ttl_ok
        self.ttl_fail = ttl_fail

    async def geocode(self, query: GeocodeQuery) -> GeocodeResult | GeocodeFailure:
        key = cache_key(query, self.source_name)
        cached = await db_calls.call(self.engine, cache_lookup, key)
        if cached is not None:
            logger.debug("geocode cache hit", source=self.source_name, qhash=query_hash(query))
            return _decode(cached, self.source_name)
        # GeocoderUnavailable passes through: "try later" is not an answer worth keeping.
        answer = await self.inner.geocode(query)
        ttl = self.ttl_ok if isinstance(answer, GeocodeResult) else self.ttl_fail
        await db_calls.call(self.engine, cache_store, key, self.source_name, _encode(answer), ttl)
        return answer


class ChainGeocoder:
    """Asks each geocoder in turn until one places the address well enough for proximity alerts."""

    def __init__(self, *geocoders: Geocoder) -> None:
        if not geocoders:
            raise ValueError("ChainGeocoder needs at least one geocoder")
        self.geocoders = geocoders

    async def geocode(self, query: GeocodeQuery) -> GeocodeResult | GeocodeFailure:
        coarse: list[GeocodeResult] = []
        failures: list[GeocodeFailure] = []
        unavailable: GeocoderUnavailable | None = None
        for geocoder in self.geocoders:
            try:
                answer = await geocoder.geocode(query)
            except GeocoderUnavailable as exc:
                unavailable = unavailable or exc
                continue
            if isinstance(answer, GeocodeResult):
                if answer.supports_proximity:
                    return answer
                coarse.append(answer)
            else:
                if answer.reason == "unparseable":
                    return answer  # a verdict on the text: no other geocoder reads a PO box as a house
                failures.append(answer)
        if unavailable is not None:
            # The member that could not answer might have placed the house: ask again later
            # rather than settle for a coarse guess or a failure.
            raise unavailable
        if coarse:
            return min(coarse, key=lambda r: PRECISIONS.index(r.precision))
        # Suggestions beat none; a gazetteer's precise reason beats a remote "not found".
        return max(
            enumerate(failures),
            key=lambda item: (bool(item[1].suggestions), item[1].reason != "not_found", -item[0]),
        )[1]
