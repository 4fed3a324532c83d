"""Fill sources: for a title an appliance lacks, where to fetch it from, nearest first.

Rules of :func:`fill_sources` (the list is ordered; each entry carries its hop):

- **Hop 0, peers** (the target's own site): every other appliance of the site
  holding the title, COMPLETE before PARTIAL; then, unless the target is the
  site's **leader** for the title, the leader as PLANNED. The leader is listed
  as PLANNED even when it also appears as a holder: a holder can be in backoff
  (it answered 404 while it was PARTIAL, or failed), and the PLANNED entry
  keeps the target waiting for its site's copy instead of pulling another one
  over a link.
- The **leader** of a site for a title is the appliance, among those whose
  manifest lists the title (``planned``), with the best weighted rendezvous
  score (:func:`localcast.core.steering.rendezvous_score`, key = title id,
  weight = the node's weight; ties: appliance id). Every appliance of the site
  computes the same leader, with no coordination.
- **Hops 1..k, tier**: PNI and IX sites other than the target's, nearest first
  by great-circle distance from the target (ties: site id), one hop per site,
  at most ``policy.max_tier_sites`` sites that have something to offer. Per
  site: its appliances holding the title (COMPLETE before PARTIAL), then — only
  for an **embedded** target — the site's leader as PLANNED. A PNI/IX target's
  tier is other PNI/IX sites' *holders* only: it never waits on another tier
  site, it goes to origin instead.
- **Last hop, origin**: the appliances of origin sites (nearest site first),
  kind ORIGIN. The origin holds every imported title, so an origin appliance
  is COMPLETE unless ``holding`` says PARTIAL.
- Embedded sites other than the target's are never sources (another ISP's
  network, or another site's access links). An origin target gets peers and
  other origin sites only. The target itself is never a source.
- Within a group of holders, equal holdings are ordered by weighted rendezvous
  on ``(title, target)``: different targets start on different holders, so a
  popular copy's upstream load spreads.

Why this converges with each file crossing each link once: only leaders are
ever waited on (PLANNED), and a wait edge always goes up the tiers: a
non-leader waits on its own site's leader; an embedded site's leader waits on
the tier sites' leaders; a tier site's leader waits on nobody (it fetches from
a tier holder or the origin). So there is no wait cycle, and per title the
origin -> tier link carries one copy (the tier leader's), each tier -> embedded
link one copy (the embedded leader's), and everything else is peer fill —
provided the waits (:class:`EscalationPolicy`, applied by
:func:`localcast.core.fillqueue.next_step`) outlast the transfers; when they do
not, the waiter escalates and a link carries a second copy, never a deadlock.

``holding`` is for the unit the caller fetches: per title (COMPLETE = the whole
title, PARTIAL = some of its files) as the control plane reports it, or per
file (COMPLETE = holds that file). ``nodes`` are the appliances that may serve
fill (the caller leaves out dead ones); leaders are chosen among them.

Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from localcast.core.fleet import SiteKind
from localcast.core.geo import haversine_km
from localcast.core.steering import rendezvous_score

_TIER_KINDS = frozenset({SiteKind.PNI, SiteKind.IX})


class SourceKind(enum.StrEnum):
    PEER = "peer"  # same site
    TIER = "tier"  # a PNI or IX site
    ORIGIN = "origin"  # an origin site


class Holding(enum.StrEnum):
    COMPLETE = "complete"  # holds it all: fetch now
    PARTIAL = "partial"  # holds some of it: fetch what it has
    PLANNED = "planned"  # the site's leader: it will hold it, wait for it (up to the policy)


@dataclass(frozen=True)
class FillNode:
    """An appliance as fill sees it: where it is and how much of the key space it takes."""

    appliance_id: str
    site_id: str
    site_kind: SiteKind
    lat: float
    lon: float
    weight: float = 1.0


@dataclass(frozen=True)
class FillSource:
    appliance_id: str
    site_id: str
    kind: SourceKind
    holding: Holding
    hop: int


@dataclass(frozen=True)
class EscalationPolicy:
    """How long to wait for a nearer planned copy, and how wide to look.

    A target waits for a PLANNED source at hop ``h`` until
    ``first_wanted_at + wait_s * (h + 1)``; it considers at most
    ``max_tier_sites`` tier sites.
    """

    wait_s: float = 600.0
    max_tier_sites: int = 2


def _leader_key(title_id: str, n: FillNode) -> tuple[float, str]:
    return (-rendezvous_score(title_id, n.appliance_id, n.weight), n.appliance_id)


def site_leader(title_id: str, planned_at_site: Iterable[FillNode]) -> str | None:
    """The site's leader for ``title_id``: rendezvous-first of the nodes planning it."""
    best = min(planned_at_site, key=lambda n: _leader_key(title_id, n), default=None)
    return None if best is None else best.appliance_id


def _holders(
    title_id: str,
    target: FillNode,
    site_nodes: Sequence[FillNode],
    holding: Mapping[str, Holding],
) -> list[FillNode]:
    """Nodes of a site holding the title: COMPLETE first, then PARTIAL; spread per target."""
    spread_key = f"{title_id}\x00{target.appliance_id}"
    held = [
        n for n in site_nodes if holding.get(n.appliance_id) in (Holding.COMPLETE, Holding.PARTIAL)
    ]
    return sorted(
        held,
        key=lambda n: (
            holding[n.appliance_id] is not Holding.COMPLETE,
            -rendezvous_score(spread_key, n.appliance_id, n.weight),
            n.appliance_id,
        ),
    )


def _site_group(
    title_id: str,
    target: FillNode,
    site_nodes: Sequence[FillNode],
    holding: Mapping[str, Holding],
    planned: frozenset[str],
    kind: SourceKind,
    hop: int,
    may_wait: bool,
) -> list[FillSource]:
    """One site's sources: its holders, then its leader as PLANNED when ``may_wait``."""
    out = [
        FillSource(n.appliance_id, n.site_id, kind, holding[n.appliance_id], hop)
        for n in _holders(title_id, target, site_nodes, holding)
    ]
    if may_wait:
        leader = site_leader(title_id, (n for n in site_nodes if n.appliance_id in planned))
        if leader is not None and leader != target.appliance_id:
            out.append(FillSource(leader, site_nodes[0].site_id, kind, Holding.PLANNED, hop))
    return out


def _sites_by_distance(
    target: FillNode, by_site: Mapping[str, list[FillNode]], site_ids: Iterable[str]
) -> list[str]:
    def distance(site_id: str) -> tuple[float, str]:
        anchor = by_site[site_id][0]
        return (haversine_km(target.lat, target.lon, anchor.lat, anchor.lon), site_id)

    return sorted(site_ids, key=distance)


def fill_sources(
    target: FillNode,
    title_id: str,
    nodes: Sequence[FillNode],
    holding: Mapping[str, Holding],
    planned: frozenset[str],
    policy: EscalationPolicy = EscalationPolicy(),
) -> tuple[FillSource, ...]:
    """Where ``target`` may fetch ``title_id`` from, in order (see the module rules)."""
    by_site: dict[str, list[FillNode]] = {}
    for n in sorted(nodes, key=lambda n: n.appliance_id):
        if n.appliance_id != target.appliance_id:
            by_site.setdefault(n.site_id, []).append(n)
    # the target's own site, with the target in it: the leader is chosen among all planners
    own = [n for n in nodes if n.site_id == target.site_id]
    own_leader = site_leader(title_id, (n for n in own if n.appliance_id in planned))

    sources: list[FillSource] = []
    peers = by_site.get(target.site_id, [])
    if peers:
        sources += _site_group(
            title_id,
            target,
            peers,
            holding,
            planned,
            SourceKind.PEER,
            0,
            may_wait=own_leader is not None and own_leader != target.appliance_id,
        )

    hop = 1
    if target.site_kind is not SiteKind.ORIGIN:
        kinds = {site_id: site_nodes[0].site_kind for site_id, site_nodes in by_site.items()}
        tier_sites = [s for s, k in kinds.items() if k in _TIER_KINDS and s != target.site_id]
        used = 0
        for site_id in _sites_by_distance(target, by_site, tier_sites):
            if used >= policy.max_tier_sites:
                break
            group = _site_group(
                title_id,
                target,
                by_site[site_id],
                holding,
                planned,
                SourceKind.TIER,
                hop,
                may_wait=target.site_kind is SiteKind.EMBEDDED,
            )
            if group:
                sources += group
                used += 1
                hop += 1

    origin_sites = [
        s
        for s, site_nodes in by_site.items()
        if site_nodes[0].site_kind is SiteKind.ORIGIN and s != target.site_id
    ]
    for site_id in _sites_by_distance(target, by_site, origin_sites):
        origin_holding = {
            n.appliance_id: (
                Holding.PARTIAL
                if holding.get(n.appliance_id) is Holding.PARTIAL
                else Holding.COMPLETE
            )
            for n in by_site[site_id]
        }
        sources += [
            FillSource(
                n.appliance_id, n.site_id, SourceKind.ORIGIN, origin_holding[n.appliance_id], hop
            )
            for n in _holders(title_id, target, by_site[site_id], origin_holding)
        ]
    return tuple(sources)
