"""When a digest the mail server deferred is tried again, and when it is given up on."""

from __future__ import annotations

from datetime import timedelta

# Backoff after a temporary failure: 10 minutes, doubling, at most 2 hours, each wait cut by
# up to a quarter at random so that digests deferred together do not all come back at once.
# Two hours at most: once the server is back, the news goes out within two hours.
RETRY_FIRST = timedelta(minutes=10)
RETRY_MAX = timedelta(hours=2)
RETRY_JITTER = 0.25
# Then give up: RFC 5321 (4.5.4.1) asks for at least 4-5 days, Postfix's queue lifetime is 5.
# Late news about who lives nearby is still worth having, so retries go on long past the
# 24-hour promise; a digest given up on is failed, and its alerts go into the next digest.
GIVE_UP_AFTER = timedelta(days=5)


def retry_delay(failures: int, rand: float) -> timedelta:
    """The wait after the `failures`-th temporary failure in a row; `rand` in [0, 1) is the jitter."""
    if failures < 1:
        raise ValueError(f"failures={failures}: expected at least 1")
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand={rand}: expected a number in [0, 1)")
    doublings: int = 2 ** min(failures - 1, 20)
    full = min(RETRY_FIRST * doublings, RETRY_MAX)
    return full * (1.0 - RETRY_JITTER * rand)
