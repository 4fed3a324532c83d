"""The routes API's bodies (pydantic): what an appliance's BGP relay posts, what operators read.

``POST /v1/appliances/{id}/routes`` takes a :class:`RoutesReport`, the
agreed relay contract::

    {"kind": "full" | "delta", "seq": 7, "base_seq": 6,          # base_seq: deltas only
     "sessions": [{"peer": "127.0.0.2", "remote_as": 65001, "state": "established",
                   "uptime_s": 12.5, "received": 10, "accepted": 9,
                   "filtered": {"bogon": 1}}],
     "announce": [{"prefix": "203.0.113.0/24", "as_path": [65001], "origin": "igp",
                   "med": null, "local_pref": null, "communities": ["65001:100"],
                   "next_hop": "192.0.2.1", "peer": "127.0.0.2", "peer_as": 65001,
                   "peer_router_id": "10.0.0.1", "ebgp": true, "received_at": 1.7e9}],
     "withdraw": [{"prefix": "198.51.100.0/24", "peer": "127.0.0.2"}]}

Validation names the field (``announce[3].prefix``, through FastAPI's 422):
prefixes must be networks without host bits, ASNs 1..4294967295, MED and
local preference 32-bit, addresses real addresses. A full table is 900k
routes, so prefixes are parsed with :func:`fast_prefix` (sockets, not
``ipaddress``) and repeated addresses are validated once. The appliance's
relay may import these models to build its bodies.

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

from localcast.core.rib import BITS, mask, pack, prefix_text

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


def _prefix(text: str) -> str:
    try:
        return prefix_text(*fast_prefix(text))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a network prefix: {exc}") from exc


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


PrefixText = Annotated[str, AfterValidator(_prefix)]
Address = Annotated[str, AfterValidator(_address)]
RouterId = Annotated[str, AfterValidator(_router_id)]
Community = Annotated[str, AfterValidator(_community)]
LargeCommunity = Annotated[str, AfterValidator(_large_community)]
OriginName = Literal["igp", "egp", "incomplete"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- what the relay posts ----------------------------------------------------------------------


class BgpSession(_Strict):
    """One BGP session of the appliance, as its speaker sees it now."""

    peer: Address
    remote_as: Asn
    state: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    uptime_s: Finite | None = Field(default=None, ge=0)
    received: int = Field(default=0, ge=0)
    accepted: int = Field(default=0, ge=0)
    filtered: dict[
        Annotated[str, StringConstraints(max_length=64)], Annotated[int, Field(ge=0)]
    ] = {}


class Announce(_Strict):
    """One route the appliance accepted (after its import policy)."""

    prefix: PrefixText
    as_path: list[Asn] = Field(default_factory=list, max_length=1024)
    origin: OriginName = "igp"
    med: U32 | None = None
    local_pref: U32 | None = None
    communities: list[Community] = Field(default_factory=list, max_length=4096)
    large_communities: list[LargeCommunity] = Field(default_factory=list, max_length=4096)
    next_hop: Address
    peer: Address
    peer_as: Asn
    peer_router_id: RouterId
    ebgp: bool = True
    received_at: Finite = 0.0

    @property
    def key(self) -> tuple[int, int]:
        """``(IP version, packed prefix)`` (see :mod:`localcast.core.rib`)."""
        return fast_prefix(self.prefix)  # no private attribute: pydantic copies those per route


class Withdraw(_Strict):
    """A route the peer withdrew (or lost with its session)."""

    prefix: PrefixText
    peer: Address


class RoutesReport(_Strict):
    """A full Adj-RIB-In (``kind="full"``) or a change since ``base_seq`` (``"delta"``)."""

    kind: Literal["full", "delta"]
    seq: int = Field(ge=1)
    base_seq: int | None = Field(default=None, ge=0)
    sessions: list[BgpSession] = Field(default_factory=list)
    announce: list[Announce] = Field(default_factory=list)
    withdraw: list[Withdraw] = Field(default_factory=list)

    @model_validator(mode="after")
    def _delta_has_base(self) -> RoutesReport:
        if self.kind == "delta" and self.base_seq is None:
            raise ValueError("base_seq is required for a delta")
        if self.kind == "full" and self.withdraw:
            raise ValueError("a full report replaces the table: withdraw must be empty")
        return self


class RoutesAck(BaseModel):
    """The answer: applied (``resync`` false) or send a full report (``resync`` true)."""

    seq: int  # the last sequence applied (0: none since this control plane started)
    resync: bool
    reason: str
    routes: int  # the appliance's routes held now
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


class ApplianceRoutesOut(BaseModel):
    """One BGP-speaking appliance: its sessions as last reported, its route count."""

    appliance_id: str
    site_id: str | None
    routes: int
    seq: int  # last report applied; 0 = none since the control plane started
    reported_at: float | None
    sessions: list[BgpSession]


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
