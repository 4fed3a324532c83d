"""Traffic accounting: client networks, partners, and the per-day figures of a partner.

The data plane counts, per client network and request kind, the requests,
body bytes and 5xx answers it served; the control plane attributes each
count to the client's **partner** (ISP) and to the **source kind** of the
serving site, and keeps them per UTC day. Playback decisions are counted per
day, partner and site too. This module is the arithmetic over those counts.

Attribution:

* **Client network** (:func:`client_net`): the /24 of an IPv4 client, the /48
  of an IPv6 one (an IPv4-mapped IPv6 address counts as IPv4). The data plane
  never reports single addresses.
* **Partner of a network** (:func:`partner_of`): the partner of the site of
  the most specific route covering the network's first address
  (:func:`localcast.core.routes.select_routes`: BGP-learned routes of the
  appliances, else the sites' configured prefixes), skipping sites with no
  partner (IX, origin). No such route: no partner (``None``).
* **Partner of a playback decision** (:func:`decision_partner`): the partner
  of the best-ranked candidate site that covers the client by a route
  (``bgp-route`` or ``prefix-match``), in steering order.
* **Source kind**: the kind of the serving appliance's site, ``embedded``,
  ``pni``, ``ix`` or ``origin`` (:data:`SOURCE_KINDS`).

Figures (per partner and UTC day; the same over a window of days):

* **bytes by source**: viewer body bytes served to the partner's clients,
  per source kind. Fill traffic (requests carrying a fill credential, from
  one appliance to another) is counted apart and is in no ratio.
* **offload ratio** (:func:`offload_ratio`): viewer bytes from ``embedded``
  sites / all viewer bytes served to the partner's clients; ``None`` with no
  bytes. Embedded sites serve only the clients their routes cover, i.e. the
  partner's own.
* **misses by class**: playback decisions for the partner's clients whose
  outcome (:mod:`localcast.control.steering_stats`) is ``content_miss`` (a
  better-ranked site was passed over because it lacked the title) or
  ``health_miss`` (one was passed over because it was saturated).
* per **site** that served or was passed over for the partner's clients:

  - ``served``: decisions whose first pathway is at the site;
  - ``content_misses`` / ``health_misses``: decisions where the site ranked
    above the first pathway's site and was passed over for a content miss
    (some appliance there lacked the title complete) / for a health miss only;
  - **caching efficiency** (:func:`caching_efficiency`):
    ``served / (served + content_misses)``, the share of the sessions the
    site was first in line for (and not saturated) that it could serve from
    its cache; ``None`` when it was in line for none;
  - ``bytes`` (viewer bytes it served to the partner's clients) and
    **byte share** (:func:`share`): those bytes / all the partner's viewer bytes.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kept light at run time: the data plane workers import this module
    from localcast.core.fleet import FleetSnapshot, Site
    from localcast.core.routes import IPAddress, IPNetwork
    from localcast.core.steering import SteeringDecision

DAY_S = 86400
VIEWER = "viewer"
FILL = "fill"
REQUEST_KINDS = (VIEWER, FILL)
SOURCE_KINDS = ("embedded", "pni", "ix", "origin")
OUTCOMES = ("embedded", "pni", "ix", "origin", "content_miss", "health_miss")
MISS_CLASSES = ("content_miss", "health_miss")
#: Steering events at a site that was ranked above the serving one and passed over.
PASSED_CONTENT = "passed_content"
PASSED_HEALTH = "passed_health"
V4_NET_BITS = 24
V6_NET_BITS = 48
NO_PARTNER = ""  # the stored partner of counts no partner's route covers


def utc_day(now: float) -> int:
    """The UTC day number of unix time ``now`` (days since 1970-01-01)."""
    return int(now // DAY_S)


def day_date(day: int) -> str:
    """``2027-01-15`` for a UTC day number."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


# --- attribution ---------------------------------------------------------------------------------


def client_net(client_ip: str) -> str | None:
    """The reporting network of a client address (/24 or /48), or None if not an address."""
    try:
        addr = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    bits = V4_NET_BITS if addr.version == 4 else V6_NET_BITS
    return str(ipaddress.ip_network((addr, bits), strict=False))


def parse_net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A reported client network: a CIDR with no host bits set; ``ValueError`` otherwise."""
    return ipaddress.ip_network(text, strict=True)


def partner_of(snapshot: FleetSnapshot, where: IPNetwork | IPAddress | str) -> str | None:
    """The partner whose route covers ``where`` (a network: its first address); see module."""
    from localcast.core.routes import select_routes  # the route index needs numpy

    if isinstance(where, str):
        where = ipaddress.ip_network(where, strict=False)
    if isinstance(where, ipaddress.IPv4Network | ipaddress.IPv6Network):
        addr = where.network_address
    else:
        addr = where
    matches = select_routes(
        snapshot.routes, addr, snapshot.appliance_sites, snapshot.speaking_sites
    )
    for m in matches:  # most specific first
        site = snapshot.sites.get(m.site_id)
        if site is not None and site.partner:
            return site.partner
    return None


_ROUTED = ("bgp-route", "prefix-match")  # core.decision.Rule values: a route covers the client


def decision_partner(decision: SteeringDecision, sites: Mapping[str, Site]) -> str | None:
    """The partner of a playback decision's client (see module text)."""
    for candidate in decision.sites:  # steering order
        if candidate.rule not in _ROUTED:
            continue
        site = sites.get(candidate.site_id)
        if site is not None and site.partner:
            return site.partner
    return None


# --- figures -------------------------------------------------------------------------------------


def share(part: int | float, whole: int | float) -> float | None:
    """``part / whole``, or None when ``whole`` is 0."""
    return part / whole if whole else None


def offload_ratio(bytes_by_source: Mapping[str, int]) -> float | None:
    """Embedded bytes / all bytes (viewer bytes of one partner); None with no bytes."""
    return share(bytes_by_source.get("embedded", 0), sum(bytes_by_source.values()))


def caching_efficiency(served: int, content_misses: int) -> float | None:
    """``served / (served + content_misses)``; None when both are 0."""
    return share(served, served + content_misses)


@dataclass(frozen=True)
class TrafficRecord:
    """Counts for one (UTC day, partner, request kind, source kind, serving site)."""

    day: int
    partner: str
    kind: str  # viewer | fill
    source_kind: str  # embedded | pni | ix | origin
    site_id: str
    requests: int
    bytes: int
    errors_5xx: int = 0


@dataclass(frozen=True)
class SteeringRecord:
    """Playback decisions for one (UTC day, partner, site, event).

    ``event`` is the decision's outcome (:data:`OUTCOMES`) at the site of its
    first pathway, or :data:`PASSED_CONTENT` / :data:`PASSED_HEALTH` at a
    better-ranked site passed over.
    """

    day: int
    partner: str
    site_id: str
    event: str
    decisions: int


@dataclass
class Counts:
    requests: int = 0
    bytes: int = 0
    errors_5xx: int = 0

    def add(self, requests: int, nbytes: int, errors_5xx: int) -> None:
        self.requests += requests
        self.bytes += nbytes
        self.errors_5xx += errors_5xx


@dataclass
class SiteFigures:
    site_id: str
    kind: str
    bytes: int = 0
    requests: int = 0
    errors_5xx: int = 0
    served: int = 0
    content_misses: int = 0
    health_misses: int = 0
    byte_share: float | None = None
    caching_efficiency: float | None = None


@dataclass
class Figures:
    """A partner's figures over one day (``day``) or a window (``day`` None)."""

    day: int | None
    viewer: Counts = field(default_factory=Counts)
    bytes_by_source: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCE_KINDS, 0))
    requests_by_source: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(SOURCE_KINDS, 0)
    )
    fill: Counts = field(default_factory=Counts)
    fill_bytes_by_source: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(SOURCE_KINDS, 0)
    )
    decisions: int = 0
    by_outcome: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    sites: dict[str, SiteFigures] = field(default_factory=dict)
    offload_ratio: float | None = None

    @property
    def misses(self) -> dict[str, int]:
        return {m: self.by_outcome.get(m, 0) for m in MISS_CLASSES}

    def _site(self, site_id: str, kind: str) -> SiteFigures:
        s = self.sites.get(site_id)
        if s is None:
            s = self.sites[site_id] = SiteFigures(site_id, kind)
        elif s.kind == "" and kind:
            s.kind = kind
        return s

    def add_traffic(self, r: TrafficRecord) -> None:
        if r.kind == FILL:
            self.fill.add(r.requests, r.bytes, r.errors_5xx)
            by = self.fill_bytes_by_source
            by[r.source_kind] = by.get(r.source_kind, 0) + r.bytes
            return
        self.viewer.add(r.requests, r.bytes, r.errors_5xx)
        self.bytes_by_source[r.source_kind] = self.bytes_by_source.get(r.source_kind, 0) + r.bytes
        req = self.requests_by_source
        req[r.source_kind] = req.get(r.source_kind, 0) + r.requests
        s = self._site(r.site_id, r.source_kind)
        s.bytes += r.bytes
        s.requests += r.requests
        s.errors_5xx += r.errors_5xx

    def add_steering(self, r: SteeringRecord, site_kind: str) -> None:
        s = self._site(r.site_id, site_kind)
        if r.event == PASSED_CONTENT:
            s.content_misses += r.decisions
        elif r.event == PASSED_HEALTH:
            s.health_misses += r.decisions
        else:
            s.served += r.decisions
            self.decisions += r.decisions
            self.by_outcome[r.event] = self.by_outcome.get(r.event, 0) + r.decisions

    def finish(self) -> Figures:
        """Compute the ratios once every record is in."""
        self.offload_ratio = offload_ratio(self.bytes_by_source)
        for s in self.sites.values():
            s.byte_share = share(s.bytes, self.viewer.bytes)
            s.caching_efficiency = caching_efficiency(s.served, s.content_misses)
        self.sites = dict(sorted(self.sites.items()))
        return self


@dataclass(frozen=True)
class PartnerTraffic:
    partner: str
    first_day: int
    last_day: int
    days: tuple[Figures, ...]  # oldest first, one per day of the window (zeros included)
    total: Figures


def partner_traffic(
    partner: str,
    first_day: int,
    last_day: int,
    traffic: Iterable[TrafficRecord],
    steering: Iterable[SteeringRecord],
    site_kinds: Mapping[str, str],
) -> PartnerTraffic:
    """The partner's figures per day of ``[first_day, last_day]`` and over the whole window.

    Records of other partners or days are ignored. ``site_kinds`` names the
    kind of sites passed over (steering records carry no kind); a site
    unknown there keeps the kind its traffic was counted under, else ``""``.
    """
    per_day = {d: Figures(d) for d in range(first_day, last_day + 1)}
    total = Figures(None)
    for t in traffic:
        if t.partner == partner and t.day in per_day:
            per_day[t.day].add_traffic(t)
            total.add_traffic(t)
    for st in steering:
        if st.partner == partner and st.day in per_day:
            kind = site_kinds.get(st.site_id, "")
            per_day[st.day].add_steering(st, kind)
            total.add_steering(st, kind)
    days = tuple(per_day[d].finish() for d in sorted(per_day))
    return PartnerTraffic(partner, first_day, last_day, days, total.finish())
