"""Rate limits and security headers; CSRF is checked in the app's middleware."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limit:
    count: int
    window_s: float


# Per client (IP) and per account (e-mail hash); deliberately generous for people, not bots.
DEFAULT_LIMITS: dict[str, Limit] = {
    "login:client": Limit(30, 900),
    "login:account": Limit(10, 900),
    "enroll:client": Limit(10, 3600),
    "enroll:account": Limit(3, 3600),
    "reset:client": Limit(10, 3600),
    "reset:account": Limit(3, 3600),
    "delete:client": Limit(10, 3600),
    "delete:account": Limit(3, 3600),
    "search:client": Limit(60, 60),
    # Codes after a right password, and passkey sign-ins (the account key is the subscriber).
    "second_step:client": Limit(30, 900),
    "second_step:account": Limit(10, 900),
}


def account_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


@dataclass
class RateLimiter:
    """Sliding windows in this process (the site runs as one process; see README)."""

    limits: dict[str, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    _hits: dict[tuple[str, str], deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def allow(self, rule: str, key: str, now: float | None = None) -> bool:
        limit = self.limits.get(rule)
        if limit is None:
            return True
        now = time.monotonic() if now is None else now
        hits = self._hits[(rule, key)]
        while hits and hits[0] <= now - limit.window_s:
            hits.popleft()
        if len(hits) >= limit.count:
            return False
        hits.append(now)
        return True


def content_security_policy(tiles_origin: str | None) -> str:
    img = "'self' data:" + (f" {tiles_origin}" if tiles_origin else "")
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {img}; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
