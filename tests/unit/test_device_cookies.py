"""Device cookies on their own: good only for the account, key and time they were made for."""

from __future__ import annotations

from streams.web import device_cookies as dc
from streams.web.security import Limit, RateLimiter

KEY = "k" * 40
NOW = 1_800_000_000.0


def test_a_device_cookie_proves_its_account_only() -> None:
    cookie = dc.remember(KEY, None, "acct-a", NOW)
    assert dc.device_for(KEY, cookie, "acct-a", NOW + 60) is not None
    assert dc.device_for(KEY, cookie, "acct-b", NOW) is None  # another account
    assert dc.device_for("x" * 40, cookie, "acct-a", NOW) is None  # another site's key
    assert dc.device_for(KEY, cookie, "acct-a", NOW + dc.LIFETIME_S) is None  # too old
    nonce, issued, sig = cookie.split(".")
    assert dc.device_for(KEY, f"{nonce}.{issued}.{sig[:-2]}AA", "acct-a", NOW) is None  # forged
    assert dc.device_for(KEY, f"{nonce}.{int(NOW) + 5}.{sig}", "acct-a", NOW + 10) is None  # re-dated
    assert dc.device_for(KEY, "garbage", "acct-a", NOW) is None


def test_one_browser_is_remembered_for_a_few_accounts_newest_first() -> None:
    cookie = None
    for n in range(dc.MAX_ACCOUNTS + 2):
        cookie = dc.remember(KEY, cookie, f"acct-{n}", NOW)
    found = [n for n in range(dc.MAX_ACCOUNTS + 2) if dc.device_for(KEY, cookie, f"acct-{n}", NOW)]
    assert found == list(range(2, dc.MAX_ACCOUNTS + 2))
    again = dc.remember(KEY, cookie, "acct-3", NOW)  # renewed, not added twice
    assert len(again.split("~")) == dc.MAX_ACCOUNTS
    assert dc.device_for(KEY, again, "acct-3", NOW) != dc.device_for(KEY, cookie, "acct-3", NOW)


def test_the_limiter_tells_how_long_to_wait_and_forgets_on_clear() -> None:
    limiter = RateLimiter(limits={"r": Limit(2, 900)})
    limiter.record("r", "k", now=100.0)
    assert not limiter.exceeded("r", "k", now=100.0) and limiter.retry_after("r", "k", now=100.0) == 0
    limiter.record("r", "k", now=400.0)
    assert limiter.exceeded("r", "k", now=500.0) and limiter.retry_after("r", "k", now=500.0) == 500
    assert not limiter.exceeded("r", "k", now=1000.0)  # the first one is out of the window
    limiter.clear("r", "k")
    assert not limiter.exceeded("r", "k", now=500.0)
    assert not limiter.exceeded("unknown rule", "k")
