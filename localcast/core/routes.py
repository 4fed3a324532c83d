"""Client routes: which sites can serve a client address, by longest prefix match.

v0 source: the prefixes configured per site in the topology file. The next
source is the BGP routes appliances learn from their ISPs; whatever the
source, route selection stays behind :func:`select_routes`, the one function
steering calls.

A :class:`RouteTable` indexes prefixes by address family and prefix length,
so a lookup costs one dict probe per distinct prefix length (at most 33 for
IPv4, 129 for IPv6), not one test per prefix.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Route:
    """``prefix`` is reachable through ``site_id``."""

    prefix: IPNetwork
    site_id: str


@dataclass(frozen=True)
class RouteMatch:
    """A site that covers the client, by its most specific covering prefix."""

    site_id: str
    prefix: str
    prefix_len: int


@dataclass(frozen=True)
class RouteTable:
    """Routes by (IP version, prefix length) -> network address int -> site ids."""

    by_len: Mapping[tuple[int, int], Mapping[int, tuple[str, ...]]]
    lengths: Mapping[int, tuple[int, ...]]  # IP version -> prefix lengths, longest first
    size: int

    @classmethod
    def build(cls, routes: Iterable[Route]) -> RouteTable:
        buckets: dict[tuple[int, int], dict[int, list[str]]] = {}
        size = 0
        for route in routes:
            key = (route.prefix.version, route.prefix.prefixlen)
            sites = buckets.setdefault(key, {}).setdefault(int(route.prefix.network_address), [])
            if route.site_id not in sites:
                sites.append(route.site_id)
                size += 1
        by_len = {
            key: MappingProxyType({net: tuple(sorted(s)) for net, s in nets.items()})
            for key, nets in buckets.items()
        }
        lengths = {
            v: tuple(sorted((plen for (ver, plen) in by_len if ver == v), reverse=True))
            for v in (4, 6)
        }
        return cls(MappingProxyType(by_len), MappingProxyType(lengths), size)


def _mask(version: int, prefix_len: int) -> int:
    bits = 32 if version == 4 else 128
    return ((1 << prefix_len) - 1) << (bits - prefix_len) if prefix_len else 0


def parse_address(client_ip: str) -> IPAddress:
    """The client address, with IPv4-mapped IPv6 (``::ffff:10.1.2.3``) unwrapped."""
    addr = ipaddress.ip_address(client_ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def select_routes(table: RouteTable, client_ip: str) -> tuple[RouteMatch, ...]:
    """Every site whose prefixes cover ``client_ip``, most specific first, each site once.

    Raises ``ValueError`` for a malformed address.
    """
    addr = parse_address(client_ip)
    value = int(addr)
    seen: set[str] = set()
    matches: list[RouteMatch] = []
    for plen in table.lengths.get(addr.version, ()):
        network = value & _mask(addr.version, plen)
        for site_id in table.by_len[(addr.version, plen)].get(network, ()):
            if site_id in seen:
                continue
            seen.add(site_id)
            prefix = ipaddress.ip_network((network, plen))
            matches.append(RouteMatch(site_id=site_id, prefix=str(prefix), prefix_len=plen))
    return tuple(matches)
