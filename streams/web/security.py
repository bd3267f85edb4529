"""Rate limits and security headers; CSRF is checked in the app's middleware."""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limit:
    count: int
    window_s: float


# Per client (IP) and per account (e-mail hash); deliberately generous for people, not bots.
# Log-in: every try per client; wrong passwords only per account, from browsers the account
# never logged in from; a browser it did (its device cookie) has a budget of its own. A
# logged-in session's wrong current passwords (change of password or address, delete) count
# per session.
DEFAULT_LIMITS: dict[str, Limit] = {
    "login:client": Limit(30, 900),
    "login:account": Limit(10, 900),
    "login:device": Limit(10, 900),
    "reauth:session": Limit(10, 900),
    "enroll:client": Limit(10, 3600),
    "enroll:account": Limit(3, 3600),
    "reset:client": Limit(10, 3600),
    "reset:account": Limit(3, 3600),
    "delete:client": Limit(10, 3600),
    "delete:account": Limit(3, 3600),
    "search:client": Limit(60, 60),
    "near:client": Limit(60, 60),  # the near page and /api/near together
    # Codes after a right password, and passkey sign-ins (the account key is the subscriber).
    "second_step:client": Limit(30, 900),
    "second_step:account": Limit(10, 900),
}


def account_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


_SWEEP_AT = 100_000  # windows kept before the empty ones are dropped


@dataclass
class RateLimiter:
    """Sliding windows in this process (the site runs as one process; see README)."""

    limits: dict[str, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    _hits: dict[tuple[str, str], deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def allow(self, rule: str, key: str, now: float | None = None) -> bool:
        """Counts this try, unless the window is full already."""
        if self.exceeded(rule, key, now):
            return False
        self.record(rule, key, now)
        return True

    def exceeded(self, rule: str, key: str, now: float | None = None) -> bool:
        """Whether one more would be too many; counts nothing."""
        limit = self.limits.get(rule)
        return limit is not None and len(self._window(rule, key, limit, now)) >= limit.count

    def record(self, rule: str, key: str, now: float | None = None) -> None:
        limit = self.limits.get(rule)
        if limit is None:
            return
        if len(self._hits) > _SWEEP_AT:
            self._sweep(now)
        self._window(rule, key, limit, now).append(_now(now))

    def retry_after(self, rule: str, key: str, now: float | None = None) -> int:
        """Whole seconds until one more is allowed (0: now)."""
        limit = self.limits.get(rule)
        if limit is None:
            return 0
        hits = self._window(rule, key, limit, now)
        if len(hits) < limit.count:
            return 0
        return max(1, math.ceil(hits[len(hits) - limit.count] + limit.window_s - _now(now)))

    def clear(self, rule: str, key: str) -> None:
        self._hits.pop((rule, key), None)

    def clear_prefix(self, rule: str, prefix: str) -> None:
        for found in [k for k in self._hits if k[0] == rule and k[1].startswith(prefix)]:
            del self._hits[found]

    def _window(self, rule: str, key: str, limit: Limit, now: float | None) -> deque[float]:
        hits = self._hits[(rule, key)]
        while hits and hits[0] <= _now(now) - limit.window_s:
            hits.popleft()
        return hits

    def _sweep(self, now: float | None) -> None:
        for rule, key in list(self._hits):
            limit = self.limits.get(rule)
            if limit is None or not self._window(rule, key, limit, now):
                del self._hits[(rule, key)]


def _now(now: float | None) -> float:
    return time.monotonic() if now is None else now


def content_security_policy(tiles_origin: str | None) -> str:
    img = "'self' data:" + (f" {tiles_origin}" if tiles_origin else "")
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {img}; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
