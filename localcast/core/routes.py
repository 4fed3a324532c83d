"""Client routes: which sites and appliances can serve a client address, by longest prefix match.

Two sources, one function: whatever the source, route selection stays
behind :func:`select_routes`, the one function steering calls.

* **Learned** (BGP): the routes each appliance hears from its ISP's routers,
  held as a :class:`~localcast.core.routeindex.RouteIndex` (an Adj-RIB-In per
  appliance and one longest-prefix-match index over all of them). An
  appliance serves only the clients its own routes cover.
* **Configured** (the v0 source, kept as the fallback): the prefixes the
  topology file gives a site. They count only for a site none of whose
  appliances speaks BGP; as soon as one appliance of a site has an
  Adj-RIB-In (even an empty one: its session is down), the site's configured
  prefixes are ignored, so withdrawing a route really stops steering to it.

Configured prefixes are indexed by address family and prefix length, so a
lookup costs one dict probe per distinct prefix length (at most 33 for IPv4,
129 for IPv6); there are a handful per site.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from localcast.core.rib import Path, prefix_text
from localcast.core.routeindex import RouteIndex

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Route:
    """A configured route: ``prefix`` is reachable through ``site_id``."""

    prefix: IPNetwork
    site_id: str


@dataclass(frozen=True)
class RouteMatch:
    """A covering route: a configured prefix of a site, or a prefix an appliance heard.

    ``appliance_id`` and ``path`` are set for learned (BGP) routes only.
    """

    site_id: str
    prefix: str
    prefix_len: int
    appliance_id: str | None = None
    path: Path | None = None

    @property
    def learned(self) -> bool:
        return self.appliance_id is not None


@dataclass(frozen=True, eq=False)
class RouteTable:
    """Configured routes by (IP version, prefix length) -> network int -> site ids,
    and the learned routes of every BGP-speaking appliance."""

    by_len: Mapping[tuple[int, int], Mapping[int, tuple[str, ...]]]
    lengths: Mapping[int, tuple[int, ...]]  # IP version -> prefix lengths, longest first
    configured_count: int
    learned: RouteIndex = field(default_factory=RouteIndex.empty)

    @classmethod
    def build(cls, routes: Iterable[Route], learned: RouteIndex | None = None) -> RouteTable:
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
        return cls(
            MappingProxyType(by_len),
            MappingProxyType(lengths),
            size,
            learned if learned is not None else RouteIndex.empty(),
        )

    @property
    def size(self) -> int:
        """Configured routes plus learned ones (a prefix heard by two appliances counts twice)."""
        return self.configured_count + self.learned.route_count

    def with_learned(self, learned: RouteIndex) -> RouteTable:
        return replace(self, learned=learned)

    def with_configured(self, routes: Iterable[Route]) -> RouteTable:
        """New configured routes, the learned ones kept (a topology reload)."""
        return RouteTable.build(routes, self.learned)


def _mask(version: int, prefix_len: int) -> int:
    bits = 32 if version == 4 else 128
    return ((1 << prefix_len) - 1) << (bits - prefix_len) if prefix_len else 0


def parse_address(client_ip: str) -> IPAddress:
    """The client address, with IPv4-mapped IPv6 (``::ffff:10.1.2.3``) unwrapped."""
    addr = ipaddress.ip_address(client_ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def bgp_sites(table: RouteTable, appliance_sites: Mapping[str, str]) -> frozenset[str]:
    """Sites with at least one BGP-speaking appliance (their configured prefixes are ignored)."""
    return frozenset(appliance_sites[a] for a in table.learned.ribs if a in appliance_sites)


def select_routes(
    table: RouteTable,
    client_ip: str | IPAddress,
    appliance_sites: Mapping[str, str] | None = None,
    speaking_sites: frozenset[str] | None = None,
) -> tuple[RouteMatch, ...]:
    """Every route covering ``client_ip``, most specific first.

    Learned routes: each appliance of ``appliance_sites`` (appliance id ->
    site id; routes of appliances not in it are ignored) once, by its most
    specific covering prefix. Configured routes: each site once, by its most
    specific covering prefix, for sites not in ``speaking_sites`` (default:
    :func:`bgp_sites`). Raises ``ValueError`` for a malformed address.
    """
    addr = parse_address(client_ip) if isinstance(client_ip, str) else client_ip
    value = int(addr)
    version = addr.version
    matches: list[RouteMatch] = []
    if appliance_sites and table.learned.ribs:
        ribs = table.learned.ribs
        seen_apps: set[str] = set()
        for key, route_set in table.learned.covering(version, value):
            for aid in route_set:
                site_id = appliance_sites.get(aid)
                if site_id is None or aid in seen_apps:
                    continue
                seen_apps.add(aid)
                path = ribs[aid].table(version)[key]
                text = prefix_text(version, key)
                matches.append(RouteMatch(site_id, text, key & 0xFF, aid, path))
    if speaking_sites is None:
        speaking_sites = bgp_sites(table, appliance_sites or {})
    seen: set[str] = set()
    for plen in table.lengths.get(version, ()):
        network = value & _mask(version, plen)
        for site_id in table.by_len[(version, plen)].get(network, ()):
            if site_id in seen or site_id in speaking_sites:
                continue
            seen.add(site_id)
            prefix = ipaddress.ip_network((network, plen))
            matches.append(RouteMatch(site_id=site_id, prefix=str(prefix), prefix_len=plen))
    matches.sort(key=lambda m: -m.prefix_len)  # stable: learned before configured on a tie
    return tuple(matches)
