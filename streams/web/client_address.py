"""Who the client is for rate limits: the peer, or behind trusted reverse proxies the address they saw."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# One IPv6 subscriber usually holds a whole /64: its addresses are one client.
_IPV6_CLIENT_PREFIX = 64


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str:
    """The right-most address of X-Forwarded-For that is not a trusted proxy, when the peer is one;
    else the peer. Entries left of it were written by the client and prove nothing."""
    here = _address(peer)
    if here is None:
        return peer or "unknown"
    if trusted:
        hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
        for hop in reversed(hops):
            if not _trusted(here, trusted):
                break
            seen = _address(hop)
            if seen is None:  # not written by a proxy of ours: stop at the last one that is
                break
            here = seen
    return _key(here)


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _key(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, _IPV6_CLIENT_PREFIX), strict=False))
    return str(address)
