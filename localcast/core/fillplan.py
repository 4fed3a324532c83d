"""Planning the fill: the snapshot, observed demand and releases -> one manifest per appliance.

The steps, each a pure core function:

1. :func:`localcast.core.forecast.forecast` over every popularity region of
   the placed sites (a site's ``region``, else its id);
2. per embedded, PNI and IX site, :func:`localcast.core.placement.place_site`
   with the site's demand (:func:`site_demand`; titles without demand fill the
   room left, one copy each: the placement's cold fill). ``floor_sessions`` > 0
   gives every catalog title at least that demand, so a small catalog is
   replicated like demanded titles (every title on every appliance when each
   has at least ``replica_share`` of the demand). Origin sites are not placed:
   they hold the whole catalog;
3. :func:`localcast.core.placement.next_manifests` against the stored
   manifests: a version moves only when an appliance's title set changes.

**Fallback demand.** A playback counts in one region, that of the client's
best site (:func:`demand_region`), but a client whose best site lacks the title
is steered to its next candidate: an IX site, a PNI behind an embedded site.
So a site also places by the demand of the regions it is a *fallback* for
(:func:`fallback_regions`): sites are placed in steering-tier order (embedded,
PNI, IX; then id), and a site is a fallback for the region of every site
placed before it that shares clients with it: every such site when it is an
IX reachable over peering from any network (no prefixes, no BGP: steering's
``peering-default``), else those whose configured prefixes overlap its own
(learned routes are not read). Its demand from such a region is that
region's forecast times the share of the region's clients that the sites
placed before it leave without the title (the region's own sites share its
clients evenly; a fallback placed before reaches all those they miss): the
*residual*, what those clients will miss; plus ``spill_share`` of the rest
(sessions that spill when a site is saturated or down). Without it an IX site
that is no client's first choice had no demand and held the catalog's first
titles by id: ``examples/sim.toml`` with an IX of 8 TB served 7.8 TB from it
and 19.7 TB over transit in two days; with it 13.3 TB and 14.0 TB.

**Keeping.** A title the site's previous manifests list places with its demand
times ``1 + keep_bonus``: near the edge of a full disk titles differ by little,
and a new title takes a listed one's room only when it is clearly ahead, not
on a night's noise (the national benchmark fleet at 100,000 subscribers,
third day: 236 TB of fill instead of 592 TB, offload 82.3% instead of 82.0%).

A title's size is the bytes an appliance must hold to serve it (its
``required_files``, the unit steering checks). No I/O: ``control.fills``
reads the inputs and stores the result.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from localcast.core.fleet import CatalogTitle, FleetSnapshot, Site, SiteKind
from localcast.core.forecast import DemandRecord, Forecast, ForecastParams, Release, forecast
from localcast.core.placement import (
    ApplianceManifest,
    Catalog,
    PlacementAppliance,
    PlacementParams,
    SitePlacement,
    churn,
    next_manifests,
    place_site,
    prepare_catalog,
)
from localcast.core.steering import SteeringDecision

DAY_S = 86400
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PlanParams:
    forecast: ForecastParams = field(default_factory=ForecastParams)
    placement: PlacementParams = field(default_factory=PlacementParams)
    floor_sessions: float = 0.0
    spill_share: float = 0.01  # of a fallback region's demand for titles held before it
    keep_bonus: float = 0.5  # a title the site's manifests list already: demand x (1 + this)

    def __post_init__(self) -> None:
        if not 0.0 <= self.spill_share <= 1.0:
            raise ValueError(f"spill_share must be in [0, 1], not {self.spill_share}")
        if not 0.0 <= self.keep_bonus < float("inf"):
            raise ValueError(f"keep_bonus must be >= 0 and finite, not {self.keep_bonus}")


@dataclass(frozen=True)
class FillPlan:
    day: int
    forecast: Forecast
    placements: tuple[SitePlacement, ...]
    manifests: Mapping[str, ApplianceManifest]  # every appliance of a placed site
    changed: tuple[str, ...]  # appliances whose manifest is new or has a new version
    churn: int  # title copies added, against the previous manifests


def title_bytes(entry: CatalogTitle) -> int:
    """Bytes of the files an appliance must hold to serve the title (each file once)."""
    return sum(
        {f.name: f.size for f in entry.manifest.files() if f.name in entry.required_files}.values()
    )


def title_sizes(catalog: Mapping[str, CatalogTitle]) -> dict[str, int]:
    return {t: title_bytes(c) for t, c in catalog.items()}


_TIER = {SiteKind.EMBEDDED: 0, SiteKind.PNI: 1, SiteKind.IX: 2}


def placed_sites(snapshot: FleetSnapshot) -> list[Site]:
    """The sites that are filled (every kind but origin), by id."""
    return sorted(
        (s for s in snapshot.sites.values() if s.kind is not SiteKind.ORIGIN),
        key=lambda s: s.id,
    )


def placement_order(sites: Iterable[Site]) -> list[Site]:
    """``sites`` in the order they are placed: steering's tiers (embedded, PNI, IX), then id."""
    return sorted(sites, key=lambda s: (_TIER.get(s.kind, len(_TIER)), s.id))


def serves_everyone(site: Site, speaking: frozenset[str]) -> bool:
    """An IX site reachable over peering from any network (steering's ``peering-default``)."""
    return site.kind is SiteKind.IX and not site.prefixes and site.id not in speaking


def _overlapping(sites: Sequence[Site]) -> dict[str, set[str]]:
    """Site id -> the other sites one of whose configured prefixes covers or is covered by
    one of its own (CIDR prefixes overlap only by containment)."""
    owners: dict[tuple[int, int, int], set[str]] = {}
    for site in sites:
        for text in site.prefixes:
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                continue
            key = (net.version, int(net.network_address), net.prefixlen)
            owners.setdefault(key, set()).add(site.id)
    out: dict[str, set[str]] = {s.id: set() for s in sites}
    for (version, value, plen), mine in owners.items():
        bits = 32 if version == 4 else 128
        for length in range(plen, -1, -1):  # itself and every supernet
            mask = ((1 << length) - 1) << (bits - length) if length else 0
            others = owners.get((version, value & mask, length))
            if not others:
                continue
            for a in mine:
                for b in others:
                    if a != b:
                        out[a].add(b)
                        out[b].add(a)
    return out


def fallback_regions(sites: Sequence[Site], speaking: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """Site id -> the regions it is a fallback for (see the module text), ``sites`` in
    placement order (:func:`placement_order`); its own region is never one."""
    overlap = _overlapping(sites)
    out: dict[str, tuple[str, ...]] = {}
    for i, site in enumerate(sites):
        everyone = serves_everyone(site, speaking)
        regions = {t.region_id for t in sites[:i] if everyone or t.id in overlap[site.id]} - {
            site.region_id
        }
        out[site.id] = tuple(sorted(regions))
    return out


def site_demand(
    region_forecast: Mapping[str, float], sizes: Mapping[str, int], floor: float
) -> dict[str, float]:
    """The demand a site places by from its own region: the forecast, catalog titles only,
    floored."""
    if floor <= 0:
        return {t: d for t, d in region_forecast.items() if t in sizes}
    return {t: max(region_forecast.get(t, 0.0), floor) for t in sizes}


def _vector(demand: Mapping[str, float], catalog: Catalog) -> FloatArray:
    """``demand`` as an array over the catalog (titles not in it dropped)."""
    out = np.zeros(len(catalog.ids))
    for t, d in demand.items():
        i = catalog.index.get(t)
        if i is not None and d > 0:
            out[i] = d
    return out


class _Reach:
    """Per region and title, the share of the region's clients that the sites placed so far
    leave without the title (1: no site of theirs holds it)."""

    def __init__(self, n_titles: int) -> None:
        self._n = n_titles
        self._own: dict[str, tuple[FloatArray, int]] = {}  # holders among its sites, sites
        self._after: dict[str, FloatArray] = {}  # product of (1 - held) over its fallbacks

    def miss(self, region: str) -> FloatArray:
        """Its own sites share its clients evenly; every fallback reaches those they miss."""
        own = self._own.get(region)
        share = np.ones(self._n) if own is None else 1.0 - own[0] / own[1]
        after = self._after.get(region)
        return share if after is None else share * after

    def placed(self, region: str, fallback_for: Iterable[str], holds: BoolArray) -> None:
        held, n = self._own.get(region, (np.zeros(self._n), 0))
        self._own[region] = (held + holds, n + 1)
        for r in fallback_for:
            self._after[r] = self._after.get(r, np.ones(self._n)) * ~holds


def plan_fill(
    snapshot: FleetSnapshot,
    history: Iterable[DemandRecord],
    releases: Iterable[Release],
    previous: Mapping[str, ApplianceManifest],
    now: float,
    params: PlanParams | None = None,
) -> FillPlan:
    params = params or PlanParams()
    day = int(now // DAY_S)
    sites = placed_sites(snapshot)
    sizes = title_sizes(snapshot.catalog)
    fc = forecast(history, releases, sorted({s.region_id for s in sites}), now, params.forecast)
    catalog = prepare_catalog(sizes)
    sites = placement_order(sites)
    fallback = fallback_regions(sites, snapshot.speaking_sites)
    reach = _Reach(len(catalog.ids))
    vectors: dict[str, FloatArray] = {}  # region -> its forecast over the catalog
    placements = []
    placed: set[str] = set()
    for site in sites:
        appliances = [
            PlacementAppliance(a.id, a.site_id, a.disk_bytes)
            for a in sorted(snapshot.appliances_at(site.id), key=lambda a: a.id)
        ]
        if not appliances:
            continue
        placed.update(a.id for a in appliances)
        demand = site_demand(fc.get(site.region_id, {}), sizes, params.floor_sessions)
        if fallback[site.id]:
            total = _vector(demand, catalog)
            for region in fallback[site.id]:
                miss = reach.miss(region)
                weight = miss + params.spill_share * (1.0 - miss)
                if region not in vectors:
                    vectors[region] = _vector(fc.get(region, {}), catalog)
                total += vectors[region] * weight
            demand = {catalog.ids[i]: float(total[i]) for i in np.flatnonzero(total > 0).tolist()}
        if params.keep_bonus > 0:
            listed = set().union(*(previous[a.id].titles for a in appliances if a.id in previous))
            demand = {
                t: d * (1.0 + params.keep_bonus) if t in listed else d for t, d in demand.items()
            }
        p = place_site(site.id, appliances, sizes, demand, params.placement, catalog)
        placements.append(p)
        holds = np.zeros(len(catalog.ids), dtype=bool)
        holds[[catalog.index[t] for t in p.replicas]] = True
        reach.placed(site.region_id, fallback[site.id], holds)
    placements.sort(key=lambda p: p.site_id)
    manifests = {
        aid: m for aid, m in next_manifests(placements, previous, day).items() if aid in placed
    }
    changed = tuple(
        sorted(
            aid
            for aid, m in manifests.items()
            if aid not in previous or previous[aid].version != m.version
        )
    )
    before = {aid: m.titles for aid, m in previous.items() if aid in manifests}
    after = {aid: m.titles for aid, m in manifests.items()}
    return FillPlan(day, fc, tuple(placements), manifests, changed, churn(before, after))


# --- where a playback counts ---------------------------------------------------------

DEFAULT_REGION = "default"  # clients only the origin can serve


def demand_region(decision: SteeringDecision, sites: Mapping[str, Site]) -> str:
    """The popularity region a decision's client belongs to (see the module text)."""
    for candidate in decision.sites:  # in steering order
        if candidate.kind is SiteKind.ORIGIN:
            continue
        site = sites.get(candidate.site_id)
        return site.region_id if site is not None else candidate.site_id
    return DEFAULT_REGION
