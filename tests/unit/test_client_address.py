"""The client a rate limit counts: X-Forwarded-For is read only from trusted proxies, right to left."""

from __future__ import annotations

import ipaddress

from streams.web.client_address import client_address

PROXIES = (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/8"))


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() -> None:
    assert client_address("192.0.2.7", ["203.0.113.9"], ()) == "192.0.2.7"


def test_a_header_from_a_peer_that_is_not_a_trusted_proxy_is_ignored() -> None:
    assert client_address("192.0.2.7", ["203.0.113.9"], PROXIES) == "192.0.2.7"


def test_behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() -> None:
    assert client_address("10.0.0.2", ["203.0.113.9"], PROXIES) == "203.0.113.9"
    # What the client wrote itself (left) does not count; two proxies of ours (right) are skipped.
    assert client_address("10.0.0.2", ["1.2.3.4, 203.0.113.9", "10.0.0.3"], PROXIES) == "203.0.113.9"
    # Only proxies all the way: the left-most one is where the request came from.
    assert client_address("10.0.0.2", ["10.0.0.4, 10.0.0.3"], PROXIES) == "10.0.0.4"


def test_a_garbled_entry_stops_the_walk_at_the_last_trusted_proxy() -> None:
    assert client_address("10.0.0.2", ["203.0.113.9, not-an-ip"], PROXIES) == "10.0.0.2"
    assert client_address("10.0.0.2", [], PROXIES) == "10.0.0.2"


def test_an_ipv6_client_is_its_slash_64_and_a_mapped_ipv4_is_the_ipv4() -> None:
    assert client_address("2001:db8:1:2:aaaa::1", [], ()) == "2001:db8:1:2::/64"
    assert client_address("fd00::1", ["2001:db8:1:2::99"], PROXIES) == "2001:db8:1:2::/64"
    assert client_address("::ffff:192.0.2.7", [], ()) == "192.0.2.7"
    assert client_address(None, [], PROXIES) == "unknown"
