"""The decision process: rank the sites that may serve a client, each with the step that placed it.

What lives here: the order of preference between candidate sites, as a
table of steps, and the explanation of every place in the ranking. What
does not: finding the candidates (routes, :mod:`localcast.core.steering`)
and choosing appliances inside a site (rendezvous hashing, also steering).

The steps, in order; the first one on which two candidates differ decides:

=====================  =====================================================
``origin-last``        origin sites (over transit) after every other site
``longest-prefix``     the more specific covering prefix; any route beats none
``connection-kind``    embedded > pni > ix > origin
``local-pref``         higher LOCAL_PREF
``as-path-length``     shorter AS path
``origin``             lower ORIGIN: IGP < EGP < INCOMPLETE
``med``                lower MED, only between routes from the same neighbor AS
``ebgp-over-ibgp``     a route from an external session over an internal one
``learned-over-configured``  a BGP route over a prefix from the topology file
``router-id``          lower BGP identifier of the neighbor
``oldest-route``       the route received first (the stablest)
``peer-address``       lower neighbor address (final BGP tie-break, RFC 4271)
``distance``           the site nearer the client (great circle)
``load``               the site with the lower utilisation (egress / capacity)
``site-id``            the lower site id (determinism)
=====================  =====================================================

Where connection kind sits: right after the prefix length, before any BGP
attribute. That is Open Connect's rule ("when the same prefix is heard from
an embedded appliance and from peering, the embedded appliance wins"): an
ISP moves clients between *its embedded sites* with local preference, AS path
prepending and MED, but cannot push them from an embedded site to peering by
prepending; to do that it stops advertising the prefix to the embedded
appliances (or advertises a more specific one elsewhere: the prefix length
still comes first, as in BGP).

MED: compared only between routes from the same neighbor AS (the leftmost AS
of the path), as RFC 4271 says. That comparison is not transitive, so the
ranking is built like "deterministic MED": repeatedly, the best route of
each neighbor AS is found with MED, the winners are compared without it,
and the overall winner takes the next place. A missing MED is 0.

Routes without BGP attributes (a site's configured prefixes, the peering
default of an IX site) compare as a direct announcement from the client's
network: local preference 100, AS path of length 1, origin IGP, eBGP, no MED.

Each :class:`RankedSite` carries the step that separates it from the site
ranked just above it (the first site: from the second) and a sentence that
says so, for ``GET /v1/steering/explain``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from localcast.core.fleet import KIND_PREFERENCE, Site, SiteKind
from localcast.core.geo import Locate, Location, distance_km
from localcast.core.rib import DEFAULT_LOCAL_PREF, Origin, Path


class Rule(enum.StrEnum):
    """Why a site is a candidate at all (the source of its route)."""

    BGP_ROUTE = "bgp-route"  # an appliance of the site heard a covering prefix over BGP
    PREFIX_MATCH = "prefix-match"  # a covering prefix configured for the site (no BGP there)
    PEERING_DEFAULT = "peering-default"  # an IX site with no route source: any network
    ORIGIN = "origin"  # origin sites serve everyone, over transit
    ORIGIN_LAST_RESORT = "origin-last-resort"  # nothing alive: an origin that is not heartbeating


class Step(enum.StrEnum):
    """The steps of the decision process, in order (see the module docstring)."""

    ONLY = "only-candidate"
    ORIGIN_LAST = "origin-last"
    LONGEST_PREFIX = "longest-prefix"
    CONNECTION_KIND = "connection-kind"
    LOCAL_PREF = "local-pref"
    AS_PATH = "as-path-length"
    ORIGIN = "origin"
    MED = "med"
    EBGP = "ebgp-over-ibgp"
    LEARNED = "learned-over-configured"
    ROUTER_ID = "router-id"
    AGE = "oldest-route"
    PEER_ADDRESS = "peer-address"
    DISTANCE = "distance"
    LOAD = "load"
    SITE_ID = "site-id"


@dataclass(frozen=True)
class Candidate:
    """A site that may serve the client, by its best route.

    ``prefix_len`` is -1 when the site has no route (peering default,
    origin); ``path`` is the BGP path of the best route and ``appliance_id``
    the appliance that heard it, both None for a configured prefix.
    ``utilisation`` is the site's egress over its capacity (0..1+).
    """

    site: Site
    rule: Rule
    prefix: str | None = None
    prefix_len: int = -1
    path: Path | None = None
    appliance_id: str | None = None
    utilisation: float = 0.0

    def describe(self) -> str:
        where = f"{self.site.kind} site {self.site.id}"
        if self.rule is Rule.BGP_ROUTE and self.path is not None:
            a = self.path.attributes
            as_path = " ".join(map(str, a.as_path)) or "(empty)"
            return (
                f"{where}: {self.appliance_id} heard {self.prefix} over BGP from "
                f"{self.path.peer.address} (AS path {as_path}, local pref {a.local_pref}, "
                f"origin {a.origin.name.lower()}, MED {a.med})"
            )
        if self.rule is Rule.PREFIX_MATCH:
            return f"{where}: configured prefix {self.prefix}"
        if self.rule is Rule.PEERING_DEFAULT:
            return f"{where}: no route source, reachable over peering from any network"
        return f"{where}: over transit"


@dataclass(frozen=True)
class RankedSite:
    rank: int  # 1 = best
    candidate: Candidate
    distance_km: float | None
    decided_by: Step  # the step separating it from the site above (rank 1: from rank 2)
    versus: str | None  # that other site's id
    reason: str

    @property
    def site_id(self) -> str:
        return self.candidate.site.id


# --- the steps as data -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scored:
    """A candidate with its distance and its sort key: one value per step, lower is better."""

    candidate: Candidate
    distance: float | None
    key: tuple[object, ...]
    neighbor_as: int | None


def _lp(c: Candidate) -> int:
    return c.path.attributes.local_pref if c.path else DEFAULT_LOCAL_PREF


def _path_len(c: Candidate) -> int:
    return len(c.path.attributes.as_path) if c.path else 1


def _origin(c: Candidate) -> Origin:
    return c.path.attributes.origin if c.path else Origin.IGP


def _ebgp(c: Candidate) -> bool:
    return c.path.peer.ebgp if c.path else True


#: A route without BGP attributes (configured prefix, no route): its values for the steps
#: local-pref .. peer-address.
_NO_BGP = (-DEFAULT_LOCAL_PREF, 1, int(Origin.IGP), 0, False, True, 0, 0.0, 0)


def _score(c: Candidate, client: Location | None) -> _Scored:
    """The key, in the order of :data:`STEPS` (one place computes every step's value)."""
    distance = distance_km(client, c.site.lat, c.site.lon) if client else None
    p = c.path
    if p is None:
        bgp: tuple[object, ...] = _NO_BGP
        neighbor = None
    else:
        a, peer = p.attributes, p.peer
        bgp = (
            -a.local_pref,
            len(a.as_path),
            int(a.origin),
            a.med,
            not peer.ebgp,
            False,
            peer.router_id,
            p.received_at,
            peer.address_int,
        )
        neighbor = a.as_path[0] if a.as_path else None
    site = c.site
    key = (
        site.kind is SiteKind.ORIGIN,
        -c.prefix_len,
        KIND_PREFERENCE[site.kind],
        *bgp,
        math.inf if distance is None else distance,
        c.utilisation,
        site.id,
    )
    return _Scored(c, distance, key, neighbor)


def _km(d: float | None) -> str:
    return "unknown" if d is None else f"{d:.0f} km"


def _bgp_show(text: Callable[[Path], str], without: str) -> Callable[[_Scored], str]:
    return lambda s: text(s.candidate.path) if s.candidate.path else without


#: The steps in key order, each with how to show a candidate's value in an explanation.
STEPS: tuple[tuple[Step, Callable[[_Scored], str]], ...] = (
    (
        Step.ORIGIN_LAST,
        lambda s: "origin" if s.candidate.site.kind is SiteKind.ORIGIN else "not origin",
    ),
    (
        Step.LONGEST_PREFIX,
        lambda s: f"/{s.candidate.prefix_len}" if s.candidate.prefix_len >= 0 else "no route",
    ),
    (Step.CONNECTION_KIND, lambda s: str(s.candidate.site.kind)),
    (Step.LOCAL_PREF, lambda s: f"local pref {_lp(s.candidate)}"),
    (Step.AS_PATH, lambda s: f"AS path length {_path_len(s.candidate)}"),
    (Step.ORIGIN, lambda s: _origin(s.candidate).name.lower()),
    (Step.MED, _bgp_show(lambda p: f"MED {p.attributes.med}", "MED 0")),
    (Step.EBGP, lambda s: "ebgp" if _ebgp(s.candidate) else "ibgp"),
    (Step.LEARNED, _bgp_show(lambda p: "bgp route", "no bgp route")),
    (Step.ROUTER_ID, _bgp_show(lambda p: f"router id {p.peer.router_id_text}", "no router id")),
    (Step.AGE, _bgp_show(lambda p: f"received at {p.received_at:.3f}", "not received")),
    (Step.PEER_ADDRESS, _bgp_show(lambda p: f"peer {p.peer.address}", "no peer")),
    (Step.DISTANCE, lambda s: _km(s.distance)),
    (Step.LOAD, lambda s: f"{100 * s.candidate.utilisation:.1f}% utilised"),
    (Step.SITE_ID, lambda s: f"site id {s.candidate.site.id}"),
)
_MED_AT = next(i for i, (step, _) in enumerate(STEPS) if step is Step.MED)


def _decisive(a: _Scored, b: _Scored) -> int:
    """Index of the first step on which ``a`` and ``b`` differ (MED only within one AS)."""
    same_as = a.neighbor_as == b.neighbor_as
    for i, (x, y) in enumerate(zip(a.key, b.key, strict=True)):
        if x != y and (i != _MED_AT or same_as):
            return i
    return len(STEPS) - 1


# --- ranking -----------------------------------------------------------------------------------


def _by_key(s: _Scored) -> tuple[object, ...]:
    return s.key


def _bare(s: _Scored) -> tuple[object, ...]:
    return (*s.key[:_MED_AT], *s.key[_MED_AT + 1 :])


def _order(scored: list[_Scored]) -> list[_Scored]:
    """Deterministic-MED order: best per neighbor AS with MED, winners compared without."""
    if len({s.neighbor_as for s in scored}) <= 1:
        return sorted(scored, key=_by_key)  # one neighbor AS: MED always compares
    remaining = list(scored)
    out: list[_Scored] = []
    while remaining:
        groups: dict[int | None, list[_Scored]] = {}
        for s in remaining:
            groups.setdefault(s.neighbor_as, []).append(s)
        best = min((min(g, key=_by_key) for g in groups.values()), key=_bare)
        out.append(best)
        remaining.remove(best)
    return out


def order(candidates: Iterable[Candidate], client: Location | None = None) -> list[Candidate]:
    """``candidates`` best first: :func:`rank_sites` without the explanations."""
    return [s.candidate for s in _order([_score(c, client) for c in candidates])]


def rank_sites(
    candidates: Iterable[Candidate], client: Location | None = None
) -> tuple[RankedSite, ...]:
    """``candidates`` (one per site) best first, each with the step that placed it."""
    ordered = _order([_score(c, client) for c in candidates])
    if len(ordered) == 1:
        (s,) = ordered
        c = s.candidate
        return (RankedSite(1, c, s.distance, Step.ONLY, None, f"{c.describe()}; only one"),)
    out: list[RankedSite] = []
    for i, s in enumerate(ordered):
        other = ordered[1] if i == 0 else ordered[i - 1]
        step, show = STEPS[_decisive(s, other) if i == 0 else _decisive(other, s)]
        verb = "ahead of" if i == 0 else "behind"
        c = s.candidate
        reason = (
            f"{c.describe()}; {verb} {other.candidate.site.id} by {step} "
            f"({show(s)} vs {show(other)})"
        )
        out.append(RankedSite(i + 1, c, s.distance, step, other.candidate.site.id, reason))
    return tuple(out)


# --- the client's location ---------------------------------------------------------------------


def client_location(
    client_ip: str, candidates: Sequence[Candidate], locate: Locate | None = None
) -> Location | None:
    """Where the client is: the GeoIP answer when one is configured and knows the address,
    else the coordinates of the site with the most specific route covering it (ties: the
    preferred connection kind, then the site id), else unknown."""
    if locate is not None:
        found = locate(client_ip)
        if found is not None:
            return found
    routed = [c for c in candidates if c.prefix_len >= 0 and c.site.kind is not SiteKind.ORIGIN]
    if not routed:
        return None
    best = min(routed, key=lambda c: (-c.prefix_len, KIND_PREFERENCE[c.site.kind], c.site.id))
    return Location(best.site.lat, best.site.lon, f"site {best.site.id} (its route {best.prefix})")


# --- one appliance's sessions ------------------------------------------------------------------

#: The site every path of :func:`best_path` is compared at: only the BGP steps can differ.
_ONE_SITE = Site("-", SiteKind.EMBEDDED, None, 0.0, 0.0, "UTC")


def best_path(paths: Sequence[Path]) -> Path:
    """The best of one prefix's paths heard by one appliance over several sessions.

    The same decision process as between sites (one implementation): at one
    site, with one prefix length, only the BGP steps (local pref .. peer
    address) can tell the paths apart.
    """
    if len(paths) == 1:
        return paths[0]
    best = order(Candidate(_ONE_SITE, Rule.BGP_ROUTE, None, 0, p) for p in paths)[0]
    assert best.path is not None
    return best.path
