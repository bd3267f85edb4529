"""Give registry addresses without coordinates a point, without ever guessing one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from streams.domain.geocoding import (
    GeocodeFailure,
    GeocodeQuery,
    Geocoder,
    GeocodeResult,
    GeocoderUnavailable,
)
from streams.domain.model import Address, OffenderState, RegistryEvent


@dataclass(frozen=True)
class Located:
    event: RegistryEvent
    failures: tuple[tuple[Address, GeocodeFailure], ...] = ()
    geocoded: int = 0
    reused: int = 0


async def locate_event(
    event: RegistryEvent,
    old: OffenderState | None,
    geocoder: Geocoder,
    *,
    timeout_s: float,
    give_up: bool = False,
) -> Located:
    """Fill in lat/lon/precision for addresses that came without them.

    An address whose identity the offender already had keeps its earlier point (a second
    geocode of the same text could only wobble, and must not alert anyone). A slow or down
    geocoder raises GeocoderUnavailable so the caller can retry the event later; with
    `give_up` (retries exhausted) the address is kept without a point instead.
    """
    known = {a.identity: a for a in (old.addresses if old else ()) if a.has_point}
    out: list[Address] = []
    failures: list[tuple[Address, GeocodeFailure]] = []
    geocoded = reused = 0
    for a in event.addresses:
        if a.has_point:
            out.append(a)
            continue
        prev = known.get(a.identity)
        if prev is not None:
            out.append(replace(a, lat=prev.lat, lon=prev.lon, precision=prev.precision))
            reused += 1
            continue
        query = GeocodeQuery(a.street, a.city, a.state, a.zip)
        try:
            answer = await asyncio.wait_for(geocoder.geocode(query), timeout_s)
        except (TimeoutError, GeocoderUnavailable):
            if not give_up:
                raise GeocoderUnavailable("geocoder slow or unavailable") from None
            failures.append((a, GeocodeFailure("not_found", "geocoder unavailable; retries exhausted")))
            out.append(a)
            continue
        if isinstance(answer, GeocodeResult):
            out.append(replace(a, lat=answer.lat, lon=answer.lon, precision=answer.precision))
            geocoded += 1
        else:
            failures.append((a, answer))
            out.append(a)
    return Located(replace(event, addresses=tuple(out)), tuple(failures), geocoded, reused)
