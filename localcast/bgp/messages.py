"""The five BGP messages, their capabilities and path attributes, as frozen dataclasses.

These are what the codec produces from bytes and turns back into bytes, and
what the FSM consumes. They hold values, never wire details that the codec
can derive (lengths, flags of known attributes, marker). Prefixes are packed
ints (:mod:`localcast.bgp.prefix`); IPv4 unicast NLRI sit in ``Update.nlri``
and ``Update.withdrawn``, every other family in ``MpReach``/``MpUnreach``
(RFC 4760). Addresses (BGP identifier, next hops) are text.

Nothing here parses, validates or does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from localcast.bgp.prefix import Afi, Safi


class MessageType(enum.IntEnum):
    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


# --- OPEN and its capabilities (RFC 5492) -------------------------------------------------


class CapabilityCode(enum.IntEnum):
    MULTIPROTOCOL = 1  # RFC 4760
    ROUTE_REFRESH = 2  # RFC 2918
    GRACEFUL_RESTART = 64  # RFC 4724 (advertised empty: we understand End-of-RIB)
    FOUR_OCTET_AS = 65  # RFC 6793


@dataclass(frozen=True)
class Multiprotocol:
    afi: int
    safi: int


@dataclass(frozen=True)
class RouteRefreshCapability:
    pass


@dataclass(frozen=True)
class FourOctetAs:
    asn: int


@dataclass(frozen=True)
class GracefulRestart:
    """Restart flags + time, and per family (afi, safi, flags); kept, not acted on."""

    flags: int = 0
    restart_time_s: int = 0
    families: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True)
class UnknownCapability:
    code: int
    data: bytes


Capability = (
    Multiprotocol | RouteRefreshCapability | FourOctetAs | GracefulRestart | UnknownCapability
)

#: ``my_as`` in an OPEN from a speaker whose real AS does not fit in 16 bits (RFC 6793).
AS_TRANS = 23456


@dataclass(frozen=True)
class Open:
    my_as: int  # the 16-bit field; see :attr:`asn`
    hold_time: int
    bgp_id: str
    capabilities: tuple[Capability, ...] = ()
    version: int = 4

    @property
    def asn(self) -> int:
        """The sender's AS: from the 4-octet AS capability when present."""
        for cap in self.capabilities:
            if isinstance(cap, FourOctetAs):
                return cap.asn
        return self.my_as

    @property
    def four_octet_as(self) -> bool:
        return any(isinstance(c, FourOctetAs) for c in self.capabilities)

    @property
    def route_refresh(self) -> bool:
        return any(isinstance(c, RouteRefreshCapability) for c in self.capabilities)

    @property
    def families(self) -> frozenset[tuple[int, int]]:
        """Multiprotocol families; none advertised means IPv4 unicast only (RFC 4760 §8)."""
        fams = frozenset((c.afi, c.safi) for c in self.capabilities if isinstance(c, Multiprotocol))
        return fams or frozenset({(Afi.IPV4, Safi.UNICAST)})


# --- UPDATE and its path attributes ------------------------------------------------------


class AttrType(enum.IntEnum):
    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MULTI_EXIT_DISC = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    MP_REACH_NLRI = 14
    MP_UNREACH_NLRI = 15
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    LARGE_COMMUNITIES = 32


class AttrFlag(enum.IntFlag):
    OPTIONAL = 0x80
    TRANSITIVE = 0x40
    PARTIAL = 0x20
    EXTENDED_LENGTH = 0x10


class Origin(enum.IntEnum):
    IGP = 0
    EGP = 1
    INCOMPLETE = 2


class SegmentType(enum.IntEnum):
    AS_SET = 1
    AS_SEQUENCE = 2
    AS_CONFED_SEQUENCE = 3  # RFC 5065
    AS_CONFED_SET = 4


@dataclass(frozen=True, slots=True)  # a full table holds hundreds of thousands of these
class AsPathSegment:
    type: SegmentType
    asns: tuple[int, ...]


_ORIGIN_SEGMENTS = (SegmentType.AS_SEQUENCE, SegmentType.AS_SET)  # not confederation ones


@dataclass(frozen=True)
class RawAttribute:
    """An attribute we keep but do not model (extended communities, unknown optional ones)."""

    flags: int
    type: int
    value: bytes


@dataclass(frozen=True, slots=True, weakref_slot=True)  # interned by the codec's cache
class PathAttributes:
    """The attributes of one UPDATE, shared by all its prefixes.

    ``as_path`` is ``None`` when absent and ``()`` when empty (a route from
    inside the peer's own AS over iBGP). ``next_hop`` is the NEXT_HOP
    attribute for IPv4 unicast NLRI; the Adj-RIB-In stores, per family, a
    copy whose ``next_hop`` is the one that applies (MP_REACH's for IPv6).
    """

    origin: Origin | None = None
    as_path: tuple[AsPathSegment, ...] | None = None
    next_hop: str | None = None
    med: int | None = None
    local_pref: int | None = None
    atomic_aggregate: bool = False
    aggregator: tuple[int, str] | None = None  # (AS, address)
    communities: tuple[int, ...] = ()  # each 32 bits: ASN << 16 | value
    large_communities: tuple[tuple[int, int, int], ...] = ()
    other: tuple[RawAttribute, ...] = ()

    def flat_as_path(self) -> tuple[int, ...]:
        """Every AS on the path, left (nearest) to right (origin), sets flattened."""
        segments = self.as_path or ()
        if len(segments) == 1:
            return segments[0].asns  # the common case: no copy
        return tuple(a for seg in segments for a in seg.asns)

    def origin_as(self, peer_as: int) -> int | None:
        """The AS that originated the route (RFC 6811 §2): the last AS of the path.

        ``None`` when the path ends in an AS_SET (no single origin); ``peer_as``
        when the path is empty (originated inside the peer's AS).
        """
        segments = [s for s in self.as_path or () if s.type in _ORIGIN_SEGMENTS]
        if not segments:
            return peer_as
        last = segments[-1]
        if last.type != SegmentType.AS_SEQUENCE:
            return None
        return last.asns[-1]


@dataclass(frozen=True)
class MpReach:
    """MP_REACH_NLRI (RFC 4760): prefixes of a family and their next hop."""

    afi: int
    safi: int
    next_hop: str
    nlri: tuple[int, ...]
    link_local_next_hop: str | None = None  # IPv6: the optional second next hop (RFC 2545)


@dataclass(frozen=True)
class MpUnreach:
    afi: int
    safi: int
    withdrawn: tuple[int, ...]


@dataclass(frozen=True)
class Update:
    """One UPDATE. ``attribute_error`` (RFC 7606): the attributes were malformed in a
    way that does not justify a session reset, so every NLRI is to be treated
    as withdrawn; it holds the NOTIFICATION that RFC 4271 would have sent."""

    withdrawn: tuple[int, ...] = ()
    attributes: PathAttributes | None = None
    nlri: tuple[int, ...] = ()
    mp_reach: MpReach | None = None
    mp_unreach: MpUnreach | None = None
    attribute_error: Notification | None = None

    def end_of_rib(self) -> tuple[int, int] | None:
        """The family this UPDATE marks as fully sent (RFC 4724 §2), else None."""
        if self.withdrawn or self.nlri or self.mp_reach is not None:
            return None
        if self.mp_unreach is None:
            return (Afi.IPV4, Safi.UNICAST) if self.attributes is None else None
        if self.mp_unreach.withdrawn:
            return None
        return (self.mp_unreach.afi, self.mp_unreach.safi)


# --- the others ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Keepalive:
    pass


@dataclass(frozen=True)
class Notification:
    code: int
    subcode: int
    data: bytes = b""


@dataclass(frozen=True)
class RouteRefresh:
    """RFC 2918: please send your Adj-RIB-Out for this family again."""

    afi: int
    safi: int
    subtype: int = 0  # RFC 7313 demarcation; 0 for a plain request


Message = Open | Update | Keepalive | Notification | RouteRefresh
