"""The routes API's bodies (pydantic): what an appliance's BGP relay posts, what operators read.

``POST /v1/appliances/{id}/routes`` takes a :class:`RoutesReport`, the
contract of :mod:`localcast.bgp.relay` (one BGP session per report)::

    {"kind": "full" | "delta", "seq": 8, "base_seq": 7,    # per (appliance, session)
     "more": false,                                         # a full in parts: more follow
     "sent_at": 1700000000.5,                               # appliance wall clock
     "session": {"neighbor": "127.0.0.2", "local_as": 65001, "ebgp": true,
                 "state": "established", "remote_as": 65002,
                 "peer_router_id": "192.0.2.254", ...},     # + NeighborStatus.as_dict()
     "announce": [{"prefixes": ["203.0.113.0/24"], "next_hop": "192.0.2.1",
                   "as_path": [65002], "as_path_length": 1, "origin_as": 65002,
                   "origin": "igp", "med": null, "local_pref": null,
                   "communities": ["65002:100"], "large_communities": [],
                   "atomic_aggregate": false}],
     "withdraw": ["198.51.100.0/24"]}

``session.filtered_prefixes`` is optional (relays before it send only the
counts, ``session.filtered``): per filter reason, ``{"count": 3, "prefixes":
["10.0.0.0/8", ...]}``, the prefixes the session's import policy refuses now,
the first few listed (at most :data:`MAX_FILTERED_LISTED` per reason,
:data:`MAX_FILTER_REASONS` reasons); a report without it keeps the session's
last one while its counts stay the same.

Validation names the field (``announce[3].prefixes``, through FastAPI's
422) and, for a list of prefixes, the bad one's index in the message:
prefixes must be networks without host bits, ASNs 1..4294967295, MED and
local preference 32-bit, addresses real addresses. A full table is 900k
routes in a few thousand attribute groups, so models are per group, never
per route, and prefixes are parsed once, with :func:`fast_prefix` (sockets,
not ``ipaddress``), into the packed keys the core uses.

Pure data and validation; the conversion to the core's values is in
:mod:`localcast.control.route_feed`.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from localcast.core.rib import BITS, mask, pack

MAX_U32 = 2**32 - 1
Asn = Annotated[int, Field(ge=1, le=MAX_U32)]
U32 = Annotated[int, Field(ge=0, le=MAX_U32)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


def fast_prefix(text: str) -> tuple[int, int]:
    """``(IP version, packed prefix)`` like :func:`localcast.core.rib.parse_prefix`, 5x faster.

    ``ValueError`` for anything but ``address/length`` without host bits.
    """
    address, sep, length = text.strip().partition("/")
    if not sep or not length.isdigit() or len(length) > 3:
        raise ValueError("expected address/length")
    plen = int(length)
    try:
        if ":" in address:
            version, network = 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, address))
        else:
            version, network = 4, int.from_bytes(socket.inet_pton(socket.AF_INET, address))
    except OSError as exc:
        raise ValueError(f"{address!r} is not an IP address") from exc
    if plen > BITS[version]:
        raise ValueError(f"/{plen} is longer than {BITS[version]} bits")
    if network & ~mask(version, plen):
        raise ValueError("host bits set")
    return version, pack(network, plen)


@functools.lru_cache(maxsize=4096)  # next hops, peers and router ids repeat over a table
def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an IP address") from exc


@functools.lru_cache(maxsize=4096)
def _router_id(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text.strip()))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a BGP identifier (dotted IPv4)") from exc


def _community(text: str) -> str:
    high, sep, low = text.partition(":")
    if (
        not sep
        or not high.isdigit()
        or not low.isdigit()
        or int(high) > 0xFFFF
        or int(low) > 0xFFFF
    ):
        raise ValueError(f"{text!r} is not a standard community (ASN:value, 16 bits each)")
    return f"{int(high)}:{int(low)}"


def _large_community(text: str) -> str:
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() and int(p) <= MAX_U32 for p in parts):
        raise ValueError(f"{text!r} is not a large community (a:b:c, 32 bits each)")
    return ":".join(str(int(p)) for p in parts)


Address = Annotated[str, AfterValidator(_address)]
RouterId = Annotated[str, AfterValidator(_router_id)]
Community = Annotated[str, AfterValidator(_community)]
LargeCommunity = Annotated[str, AfterValidator(_large_community)]
OriginName = Literal["igp", "egp", "incomplete"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- what the relay posts ----------------------------------------------------------------------

Keys = tuple[tuple[int, int], ...]  # (IP version, packed prefix), as the core keys routes
ESTABLISHED = "established"


class Prefixes(list[str]):
    """Prefix texts as sent, plus ``keys``: each parsed once, as the core keys routes."""

    keys: Keys = ()


def _prefixes(texts: list[str]) -> Prefixes:
    """Every prefix parsed, in order; ``ValueError`` naming the first bad one's index."""
    parse = fast_prefix
    out: list[tuple[int, int]] = []
    append = out.append
    for i, text in enumerate(texts):
        try:
            append(parse(text))
        except ValueError as exc:
            raise ValueError(f"[{i}] {text!r} is not a network prefix: {exc}") from exc
    parsed = Prefixes(texts)
    parsed.keys = tuple(out)
    return parsed


def _keys_of(texts: list[str]) -> Keys:
    return texts.keys if isinstance(texts, Prefixes) else _prefixes(texts).keys


PrefixList = Annotated[list[str], AfterValidator(_prefixes)]

#: Filter reasons a session may list prefixes for, and prefixes listed per reason (the relay
#: sends its first :data:`localcast.bgp.relay.FILTERED_LISTED`): past these, a 422.
MAX_FILTER_REASONS = 32
MAX_FILTERED_LISTED = 1000
ReasonName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class FilteredPrefixes(BaseModel):
    """The prefixes a session's import policy refuses now for one reason: how many, and the
    first few of them (a bounded sample: a leaked full table does not bloat the report)."""

    count: int = Field(ge=0)
    prefixes: PrefixList = Field(default_factory=Prefixes, max_length=MAX_FILTERED_LISTED)

    @model_validator(mode="after")
    def _count_covers_the_list(self) -> FilteredPrefixes:
        if self.count < len(self.prefixes):
            raise ValueError(f"count {self.count} is less than the {len(self.prefixes)} listed")
        return self


class BgpSession(BaseModel):
    """One BGP session of the appliance, as its speaker sees it now.

    What the relay sends: ``NeighborStatus.as_dict()`` plus ``neighbor``,
    ``local_as`` and ``ebgp``. Fields the control plane does not use are
    kept as sent (extra allowed), so the speaker's status can grow.
    """

    model_config = ConfigDict(extra="allow")

    neighbor: Address
    local_as: Asn
    ebgp: bool
    remote_as: Asn
    state: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    peer_router_id: RouterId | None = None
    description: str = ""
    uptime_s: Finite | None = Field(default=None, ge=0)
    last_error: str | None = None
    received: int = Field(default=0, ge=0)
    accepted: int = Field(default=0, ge=0)
    filtered: dict[
        Annotated[str, StringConstraints(max_length=64)], Annotated[int, Field(ge=0)]
    ] = {}
    # per filter reason, which prefixes (a bounded sample); None: not sent (a relay older than
    # the field, or a delta of a relay whose filtered prefixes did not change: the last kept)
    filtered_prefixes: (
        Annotated[dict[ReasonName, FilteredPrefixes], Field(max_length=MAX_FILTER_REASONS)] | None
    ) = None

    @property
    def established(self) -> bool:
        return self.state == ESTABLISHED


class AnnounceGroup(_Strict):
    """Prefixes the appliance accepted (after its import policy) sharing one attribute set."""

    prefixes: PrefixList = Field(min_length=1)
    next_hop: Address
    as_path: list[Asn] = Field(default_factory=list, max_length=1024)
    as_path_length: int = Field(default=0, ge=0)
    origin_as: Asn | None = None
    origin: OriginName | None = "igp"  # None: the UPDATE had no ORIGIN
    med: U32 | None = None
    local_pref: U32 | None = None
    communities: list[Community] = Field(default_factory=list, max_length=4096)
    large_communities: list[LargeCommunity] = Field(default_factory=list, max_length=4096)
    atomic_aggregate: bool = False

    @model_validator(mode="after")
    def _path_length(self) -> AnnounceGroup:
        if self.as_path_length > len(self.as_path):
            raise ValueError("as_path_length is longer than as_path")
        return self

    @property
    def keys(self) -> Keys:
        """``(IP version, packed prefix)`` of every prefix (see :mod:`localcast.core.rib`)."""
        return _keys_of(self.prefixes)


class RoutesReport(_Strict):
    """One session's whole Adj-RIB-In (``kind="full"``) or a change since ``base_seq``.

    A full in parts: the first part has no ``base_seq``, each next part the
    previous part's ``seq``; every part but the last says ``more``.
    """

    kind: Literal["full", "delta"]
    seq: int = Field(ge=1)
    base_seq: int | None = Field(default=None, ge=0)
    sent_at: Finite | None = None
    session: BgpSession
    announce: list[AnnounceGroup] = Field(default_factory=list)
    withdraw: PrefixList = Field(default_factory=Prefixes)
    more: bool = False  # a full sent in parts: true on every part but the last

    @model_validator(mode="after")
    def _delta_has_base(self) -> RoutesReport:
        if self.kind == "delta" and self.base_seq is None:
            raise ValueError("base_seq is required for a delta")
        if self.kind == "delta" and self.more:
            raise ValueError("more is for the parts of a full report")
        if self.kind == "full" and self.withdraw:
            raise ValueError("a full report replaces the session's routes: withdraw must be empty")
        return self

    @property
    def withdraw_keys(self) -> Keys:
        return _keys_of(self.withdraw)

    @property
    def route_count(self) -> int:
        return sum(len(g.prefixes) for g in self.announce)


class RoutesAck(BaseModel):
    """The answer: applied (``resync`` false) or send a full report (``resync`` true)."""

    seq: int  # the session's last sequence applied (0: none since this control plane started)
    resync: bool
    reason: str
    routes: int  # the appliance's routes held now (every session)
    snapshot_version: int


# --- what operators read -----------------------------------------------------------------------


class AttributesOut(BaseModel):
    """What expresses the ISP's preference (MED and local pref with their defaults applied)."""

    as_path: list[int]
    origin: str
    med: int
    local_pref: int
    communities: list[str]
    large_communities: list[str]


class RouteOut(AttributesOut):
    appliance_id: str
    site_id: str | None
    prefix: str
    next_hop: str
    peer: str
    peer_as: int
    peer_router_id: str
    ebgp: bool
    received_at: float


class SessionOut(BgpSession):
    """A BGP session as last reported, with its report sequence."""

    seq: int  # last report applied for this session
    reported_at: float  # control plane clock
    sent_at: float | None  # appliance clock


class ApplianceRoutesOut(BaseModel):
    """One BGP-speaking appliance: its sessions as last reported, its route count."""

    appliance_id: str
    site_id: str | None
    routes: int
    reported_at: float | None  # the latest report of any session
    sessions: list[SessionOut]  # by neighbor


class RoutesPage(BaseModel):
    snapshot_version: int
    total: int
    limit: int
    offset: int
    routes: list[RouteOut]
    appliances: list[ApplianceRoutesOut]


class AdvertisementDiffOut(BaseModel):
    prefix: str
    heard_by: list[str]
    missing_from: list[str]
    off_site: list[str]
    attributes: dict[str, AttributesOut]  # per appliance, when they differ
    reason: str


class SiteConsistencyOut(BaseModel):
    site_id: str
    appliances: list[str]
    consistent: bool
    missing_count: int
    attribute_count: int
    diffs: list[AdvertisementDiffOut]


class UnprotectedRouteOut(BaseModel):
    prefix: str
    heard_by: list[str]
    sites: list[str]


class NoAlternateOut(BaseModel):
    count: int
    routes: list[UnprotectedRouteOut]


class RouteReportsOut(BaseModel):
    snapshot_version: int
    site_consistency: list[SiteConsistencyOut]
    no_alternate_source: NoAlternateOut
