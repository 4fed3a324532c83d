"""Learned routes as plain data: the route model, each appliance's Adj-RIB-In, deltas.

What lives here: what one appliance heard from its ISP's routers, as the
control plane keeps it, and the pure transition that applies a change. What
does not: the index over all appliances (:mod:`localcast.core.routeindex`),
ranking (:mod:`localcast.core.decision`), anything that speaks BGP on the
wire (:mod:`localcast.bgp`).

The model:

* A **prefix** is one int, ``(network << 8) | length``, always next to its IP
  version (4 or 6): the same packing as :mod:`localcast.bgp.prefix`, so routes
  cross from the BGP layer without conversion. :func:`parse_prefix` and
  :func:`prefix_text` convert at the edges.
* :class:`Attributes` are what the ISP uses to express preference (AS path,
  origin, MED, local preference, communities); :class:`Path` adds what is
  specific to the session and the moment (next hop, the :class:`Peer`,
  ``received_at``). Prefixes announced in one UPDATE share one ``Path``
  object, so a full table costs a dict entry per prefix, not an object.
* An :class:`AdjRibIn` maps prefix -> ``Path``, per IP version, for one
  appliance. A :class:`RouteDelta` is what the BGP layer relays: withdrawals
  and announcements, or a full resync (``full=True`` replaces everything;
  a session that went down is a full resync with nothing in it).

Conventions (documented here, applied by the decision process): a missing MED
is 0 (RFC 4271 9.1.2.2, "lowest"); a missing LOCAL_PREF is 100 (the common
default); ``as_path`` is flattened, so an AS_SET counts one AS per member
(the BGP layer may collapse sets before relaying if it wants RFC 4271's
"a set counts as one").

Pure: frozen data and pure transitions. No I/O, no clock (``received_at`` is
given by whoever received the route).
"""

from __future__ import annotations

import enum
import heapq
import ipaddress
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

#: Address width per IP version.
BITS = {4: 32, 6: 128}
DEFAULT_LOCAL_PREF = 100


class Origin(enum.IntEnum):
    """The ORIGIN attribute; lower is preferred."""

    IGP = 0
    EGP = 1
    INCOMPLETE = 2


@dataclass(frozen=True)
class Peer:
    """The BGP neighbor a route came from (one session of one appliance).

    ``router_id`` is its BGP identifier as an int; ``asn`` its AS; ``ebgp``
    whether the session is external (the neighbor's AS differs from ours).
    """

    router_id: int
    address: str
    asn: int
    ebgp: bool = True

    @cached_property
    def address_int(self) -> int:
        return int(ipaddress.ip_address(self.address))

    @property
    def router_id_text(self) -> str:
        return str(ipaddress.IPv4Address(self.router_id))


@dataclass(frozen=True)
class Attributes:
    """The path attributes that express the ISP's preference."""

    as_path: tuple[int, ...] = ()
    origin: Origin = Origin.IGP
    med: int = 0
    local_pref: int = DEFAULT_LOCAL_PREF
    communities: tuple[int, ...] = ()  # standard communities, ASN << 16 | value
    large_communities: tuple[tuple[int, int, int], ...] = ()

    @property
    def neighbor_as(self) -> int | None:
        """The AS the route was learned from (leftmost on the path), None when empty."""
        return self.as_path[0] if self.as_path else None


@dataclass(frozen=True)
class Path:
    """Attributes plus where and when: shared by every prefix of one UPDATE."""

    attributes: Attributes
    peer: Peer
    next_hop: str
    received_at: float


@dataclass(frozen=True)
class LearnedRoute:
    """One route as the BGP layer relays it and ``GET /v1/routes`` shows it."""

    prefix: str
    path: Path

    @property
    def attributes(self) -> Attributes:
        return self.path.attributes


def router_id(text: str) -> int:
    """A BGP identifier from its dotted form (``"192.0.2.1"``)."""
    return int(ipaddress.IPv4Address(text))


def parse_prefix(text: str) -> tuple[int, int]:
    """``(version, packed prefix)`` from text; ``ValueError`` for host bits or garbage."""
    net = ipaddress.ip_network(text.strip(), strict=True)
    return net.version, (int(net.network_address) << 8) | net.prefixlen


def prefix_text(version: int, key: int) -> str:
    """``"203.0.113.0/24"`` or ``"2001:db8::/32"`` from a packed prefix."""
    network, length = key >> 8, key & 0xFF
    if version == 4:
        return f"{socket.inet_ntoa(network.to_bytes(4, 'big'))}/{length}"
    return f"{ipaddress.IPv6Address(network)}/{length}"


def pack(network: int, length: int) -> int:
    return (network << 8) | length


def mask(version: int, length: int) -> int:
    bits = BITS[version]
    return ((1 << length) - 1) << (bits - length) if length else 0


def covering_keys(version: int, key: int) -> Iterator[int]:
    """Every strictly shorter prefix containing ``key``, longest first."""
    network, length = key >> 8, key & 0xFF
    for shorter in range(length - 1, -1, -1):
        yield pack(network & mask(version, shorter), shorter)


def _empty() -> Mapping[int, Path]:
    return MappingProxyType({})


@dataclass(frozen=True)
class AdjRibIn:
    """What one appliance heard, after the appliance's import policy: prefix -> path.

    An appliance with an ``AdjRibIn`` (even an empty one) is a *BGP speaker*:
    steering trusts only its routes for it, never configured prefixes.
    """

    appliance_id: str
    v4: Mapping[int, Path] = field(default_factory=_empty)
    v6: Mapping[int, Path] = field(default_factory=_empty)

    def __len__(self) -> int:
        return len(self.v4) + len(self.v6)

    def table(self, version: int) -> Mapping[int, Path]:
        return self.v4 if version == 4 else self.v6

    def get(self, prefix: str) -> Path | None:
        version, key = parse_prefix(prefix)
        return self.table(version).get(key)

    def routes(self, start: int = 0, stop: int | None = None) -> Iterator[LearnedRoute]:
        """Every route (or those from ``start`` to ``stop``), IPv4 first, each family in
        prefix order. A small page near the start is picked without sorting the table."""
        for version in (4, 6):
            table = self.table(version)
            n = len(table)
            end = n if stop is None else min(n, stop)
            if start < end:
                keys = heapq.nsmallest(end, table) if end <= n // 8 else sorted(table)
                for key in keys[start:end]:
                    yield LearnedRoute(prefix_text(version, key), table[key])
            start = max(0, start - n)
            if stop is not None:
                stop = max(0, stop - n)


@dataclass(frozen=True)
class RouteDelta:
    """A change to one appliance's Adj-RIB-In, as relayed by its BGP layer.

    Applied as one UPDATE is: withdrawals first, then announcements (an
    announcement replaces the previous path of that prefix). ``full``: the
    announcements are the whole new RIB (resync after a reconnect; a session
    that went down is ``full`` with no announcement).
    """

    announced_v4: Mapping[int, Path] = field(default_factory=_empty)
    announced_v6: Mapping[int, Path] = field(default_factory=_empty)
    withdrawn_v4: frozenset[int] = frozenset()
    withdrawn_v6: frozenset[int] = frozenset()
    full: bool = False

    @classmethod
    def of(
        cls,
        announced: Iterable[LearnedRoute] = (),
        withdrawn: Iterable[str] = (),
        full: bool = False,
    ) -> RouteDelta:
        """A delta from text prefixes; equal paths are shared (one object per UPDATE)."""
        interned: dict[Path, Path] = {}
        ann: dict[int, dict[int, Path]] = {4: {}, 6: {}}
        for route in announced:
            version, key = parse_prefix(route.prefix)
            ann[version][key] = interned.setdefault(route.path, route.path)
        wd: dict[int, set[int]] = {4: set(), 6: set()}
        for text in withdrawn:
            version, key = parse_prefix(text)
            wd[version].add(key)
        return cls(
            MappingProxyType(ann[4]),
            MappingProxyType(ann[6]),
            frozenset(wd[4]),
            frozenset(wd[6]),
            full,
        )

    @classmethod
    def session_down(cls) -> RouteDelta:
        """Every route of the appliance withdrawn (its session went down)."""
        return cls(full=True)

    def announced(self, version: int) -> Mapping[int, Path]:
        return self.announced_v4 if version == 4 else self.announced_v6

    def withdrawn(self, version: int) -> frozenset[int]:
        return self.withdrawn_v4 if version == 4 else self.withdrawn_v6

    def __len__(self) -> int:
        return (
            len(self.announced_v4)
            + len(self.announced_v6)
            + len(self.withdrawn_v4)
            + len(self.withdrawn_v6)
        )


def _copy(table: Mapping[int, Path]) -> dict[int, Path]:
    """A dict copy; a read-only view copies its dict at C speed (``dict(view)`` would not)."""
    if isinstance(table, MappingProxyType | dict):
        return table.copy()
    return dict(table)


def apply_delta(rib: AdjRibIn, delta: RouteDelta) -> AdjRibIn:
    """The next Adj-RIB-In (copy on write: ``rib`` is unchanged)."""
    tables: dict[int, Mapping[int, Path]] = {}
    for version in (4, 6):
        if delta.full:
            new = dict(delta.announced(version))
        else:
            withdrawn, announced = delta.withdrawn(version), delta.announced(version)
            if not withdrawn and not announced:
                tables[version] = rib.table(version)
                continue
            new = _copy(rib.table(version))
            for key in withdrawn:
                new.pop(key, None)
            new.update(announced)
        tables[version] = MappingProxyType(new)
    return AdjRibIn(rib.appliance_id, tables[4], tables[6])


def changed_keys(before: AdjRibIn, delta: RouteDelta, version: int) -> set[int]:
    """Prefixes of ``version`` whose presence in the RIB ``delta`` may change."""
    if delta.full:
        old, new = before.table(version), delta.announced(version)
        return set(old.keys() ^ new.keys())
    return set(delta.withdrawn(version)) | set(delta.announced(version))
