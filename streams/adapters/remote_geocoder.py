"""Remote geocoding services (Nominatim, Pelias, ArcGIS) behind the domain's Geocoder contract."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog
from geopy import exc as gexc
from geopy.adapters import AdapterHTTPError, AioHTTPAdapter
from geopy.geocoders import Nominatim, Pelias

from streams.adapters.geocoder_answers import (
    ARCGIS_OUT_FIELDS,
    US_STATES,
    ArcGISClient,
    Candidate,
    arcgis_candidate,
    nominatim_candidate,
    pelias_candidate,
    query_number,
    town,
)
from streams.domain.addresses import zip5
from streams.domain.geocoding import (
    PRECISIONS,
    GeocodeFailure,
    GeocodeQuery,
    GeocodeResult,
    GeocoderUnavailable,
)

logger = structlog.get_logger()

KINDS: tuple[str, ...] = ("nominatim", "pelias", "arcgis")

NOT_FOUND_MESSAGE = "The map service could not find this address; check the spelling or try a nearby address."
CITY_LEVEL_MESSAGE = (
    "The map service could only place this address at city level, which is too coarse for "
    "alerts; check the street name and house number."
)
OTHER_TOWN_MESSAGE = (
    "The map service found this street only in a different town or ZIP code; check the city and ZIP code."
)

# A wrong key, a refused query or a spent quota will not heal by retrying within seconds.
_NEVER_RETRY = (
    gexc.ConfigurationError,
    gexc.GeocoderAuthenticationFailure,
    gexc.GeocoderInsufficientPrivileges,
    gexc.GeocoderQueryError,
)


def query_hash(query: GeocodeQuery) -> str:
    """A short tag that lets log lines about one lookup be correlated without the address."""
    text = "|".join(" ".join(p.upper().split()) for p in (query.street, query.city, query.state, query.zip))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Clock(Protocol):
    """Where the pacing and the retries read the time and wait; tests pass a virtual one."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: time.monotonic() and asyncio.sleep()."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def backoff_jitter() -> float:
    """The factor (0.5 to 1.0) a retry's back-off is multiplied by, so callers do not retry in step."""
    return random.uniform(0.5, 1.0)


class _Pacer:
    """Spaces request starts by min_interval across every concurrent caller of one geocoder."""

    def __init__(self, min_interval: float, clock: Clock) -> None:
        self.min_interval = min_interval
        self.clock = clock
        self._lock = asyncio.Lock()
        self._next = float("-inf")  # no request yet: the first one goes at once

    async def turn(self, max_wait: float) -> bool:
        async with self._lock:
            wait = self._next - self.clock.now()
            if wait > max_wait:
                return False
            if wait > 0:
                await self.clock.sleep(wait)
            self._next = self.clock.now() + self.min_interval
            return True

    def hold_off(self, seconds: float) -> None:
        self._next = max(self._next, self.clock.now() + seconds)


def _status(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, AdapterHTTPError):
        return str(cause.status_code)
    if isinstance(exc, gexc.GeocoderTimedOut):
        return "timeout"
    if isinstance(exc, gexc.GeocoderUnavailable):
        return "unreachable"
    return type(exc).__name__


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, _NEVER_RETRY):
        return False
    if isinstance(exc, gexc.GeocoderQuotaExceeded) and not isinstance(exc, gexc.GeocoderRateLimited):
        return False
    cause = exc.__cause__
    if isinstance(cause, AdapterHTTPError) and 400 <= cause.status_code < 500:
        return cause.status_code in {408, 429}
    return True


class RemoteGeocoder:
    """One remote geocoding service, paced, retried, and judged on how exactly it placed the address.

    Request starts are spaced by `min_interval` seconds across all callers. A failed request that
    may heal is retried up to `retries` times, the k-th retry after `backoff * 2**(k-1)` seconds
    times a jitter factor in [0.5, 1.0]; a Retry-After of the service holds every caller off that
    long, and one longer than `max_retry_after` gives up at once. All waiting goes through `clock`
    and the jitter comes from `jitter`: the real time and random jitter unless a test passes its
    own (latencies in the logs are always measured on the real monotonic clock).
    """

    def __init__(
        self,
        kind: str,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.5,
        min_interval: float = 1.0,
        user_agent: str = "sor-notify/0.1",
        api_key: str | None = None,
        state: str = "MO",
        max_retry_after: float = 30.0,
        clock: Clock | None = None,
        jitter: Callable[[], float] = backoff_jitter,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"geocoder kind {kind!r}: expected one of {', '.join(KINDS)}")
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"geocoder url {url!r}: expected http(s)://host[:port][/path]")
        if state.upper() not in US_STATES:
            raise ValueError(f"state {state!r}: expected a two-letter US state code")
        self.kind = kind
        self.state = state.upper()
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.clock: Clock = clock or MonotonicClock()
        self.jitter = jitter
        self._pacer = _Pacer(min_interval, self.clock)
        path = parts.path.rstrip("/")
        common: dict[str, Any] = dict(
            scheme=parts.scheme,
            timeout=timeout,
            user_agent=user_agent,
            adapter_factory=AioHTTPAdapter,
        )
        self._geopy: Any
        if kind == "nominatim":
            self._geopy = Nominatim(domain=parts.netloc + path, **common)
        elif kind == "pelias":
            self._geopy = Pelias(parts.netloc + path, api_key=api_key, **common)
        elif path.endswith("/GeocodeServer"):
            # A self-hosted locator: the URL names the service, not the host of Esri's World one.
            self._geopy = ArcGISClient(api_key=api_key, domain=parts.netloc, **common)
            self._geopy.api = f"{parts.scheme}://{parts.netloc}{path}/findAddressCandidates"
        else:
            self._geopy = ArcGISClient(api_key=api_key, domain=parts.netloc + path, **common)

    async def __aenter__(self) -> RemoteGeocoder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._geopy.__aexit__(None, None, None)

    async def geocode(self, query: GeocodeQuery) -> GeocodeResult | GeocodeFailure:
        qhash = query_hash(query)
        if query.state.strip().upper() != self.state:
            return GeocodeFailure(
                "outside_state",
                f"This address is not in {US_STATES[self.state]}; only "
                f"{US_STATES[self.state]} addresses can be tracked.",
            )
        started = time.monotonic()
        raws, attempts = await self._fetch(query, qhash)
        answer = self._choose(query, raws)
        logger.info(
            "geocoded",
            service=self.kind,
            qhash=qhash,
            attempts=attempts,
            latency_ms=round((time.monotonic() - started) * 1000),
            precision=getattr(answer, "precision", None),
            failure=getattr(answer, "reason", None),
        )
        return answer

    # --- the request -------------------------------------------------------------------

    def _request(self, query: GeocodeQuery) -> Any:
        one_line = f"{query.street}, {query.city}, {query.state} {query.zip}".strip()
        if self.kind == "nominatim":
            structured = {
                "street": query.street,
                "city": query.city,
                "state": US_STATES.get(query.state.strip().upper(), query.state),
                "postalcode": zip5(query.zip),
                "country": "us",
            }
            return self._geopy.geocode(
                {k: v for k, v in structured.items() if v},
                exactly_one=False,
                limit=5,
                addressdetails=True,
                country_codes="us",
            )
        if self.kind == "pelias":
            return self._geopy.geocode(one_line, exactly_one=False, countries=["USA"])
        return self._geopy.geocode(one_line, exactly_one=False, out_fields=ARCGIS_OUT_FIELDS)

    async def _fetch(self, query: GeocodeQuery, qhash: str) -> tuple[list[dict[str, Any]], int]:
        """The raw candidates, or GeocoderUnavailable once the retries are spent."""
        attempt = 0
        while True:
            attempt += 1
            if not await self._pacer.turn(self.max_retry_after):
                logger.warning("geocoder asked us to wait", service=self.kind, qhash=qhash)
                raise GeocoderUnavailable(f"{self.kind} asked us to wait before the next request")
            t0 = time.monotonic()
            try:
                locations = await self._request(query)
            except (gexc.GeopyError, AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
                latency_ms = round((time.monotonic() - t0) * 1000)
                status = _status(exc)
                retry_after = getattr(exc, "retry_after", None)
                give_up = (
                    not _retryable(exc)
                    or attempt > self.retries
                    or (retry_after is not None and retry_after > self.max_retry_after)
                )
                logger.warning(
                    "geocoder request failed",
                    service=self.kind,
                    qhash=qhash,
                    attempt=attempt,
                    status=status,
                    latency_ms=latency_ms,
                    retry_after=retry_after,
                    giving_up=give_up,
                )
                if retry_after is not None:
                    self._pacer.hold_off(retry_after)  # everyone waits, not only this caller
                if give_up:
                    raise GeocoderUnavailable(f"{self.kind} unavailable ({status})") from exc
                await self.clock.sleep(self.backoff * 2 ** (attempt - 1) * self.jitter())
                continue
            logger.debug(
                "geocoder request",
                service=self.kind,
                qhash=qhash,
                attempt=attempt,
                status="ok",
                latency_ms=round((time.monotonic() - t0) * 1000),
            )
            return [loc.raw for loc in (locations or [])], attempt

    # --- the verdict -------------------------------------------------------------------

    def _candidates(self, query: GeocodeQuery, raws: list[dict[str, Any]]) -> list[Candidate]:
        number = query_number(query.street)
        out: list[Candidate] = []
        for raw in raws:
            try:
                if self.kind == "nominatim":
                    cand: Candidate | None = nominatim_candidate(raw, number)
                elif self.kind == "pelias":
                    cand = pelias_candidate(raw, number)
                else:
                    cand = arcgis_candidate(raw, number)
            except (AttributeError, KeyError, IndexError, TypeError, ValueError):
                cand = None  # a malformed candidate is no evidence either way
            if cand is not None:
                out.append(cand)
        return out

    def _choose(self, query: GeocodeQuery, raws: list[dict[str, Any]]) -> GeocodeResult | GeocodeFailure:
        cands = self._candidates(query, raws)
        if not cands:
            return GeocodeFailure("not_found", NOT_FOUND_MESSAGE)
        in_state = [c for c in cands if c.state == self.state]
        if not in_state:
            if any(c.state is not None for c in cands):
                name = US_STATES[self.state]
                return GeocodeFailure(
                    "outside_state",
                    f"The map service placed this address outside {name}; "
                    f"check the city and ZIP code, only {name} addresses can be tracked.",
                )
            return GeocodeFailure("not_found", NOT_FOUND_MESSAGE)
        here = [c for c in in_state if self._same_place(query, c)]
        if not here:
            return GeocodeFailure("not_found", OTHER_TOWN_MESSAGE)
        placed = [c for c in here if c.precision is not None]
        if not placed:
            return GeocodeFailure("not_found", CITY_LEVEL_MESSAGE)
        best = min(placed, key=lambda c: PRECISIONS.index(c.precision))
        return GeocodeResult(best.lat, best.lon, best.precision, self.kind, best.matched)  # type: ignore[arg-type]

    @staticmethod
    def _same_place(query: GeocodeQuery, cand: Candidate) -> bool:
        """Main Street exists in a hundred Missouri towns: the answer must be in the asked one."""
        wanted_zip = zip5(query.zip)
        if wanted_zip and cand.postcode == wanted_zip:
            return True
        if town(query.city) and town(query.city) in {town(t) for t in cand.towns}:
            return True
        # USPS town names often differ from municipalities and OSM lacks many postcodes: only a
        # different ZIP code with a different town contradicts the question.
        return not (wanted_zip and cand.postcode)
