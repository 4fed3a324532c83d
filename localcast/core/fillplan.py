"""Planning the fill: the snapshot, observed demand and releases -> one manifest per appliance.

The steps, each a pure core function:

1. :func:`localcast.core.forecast.forecast` over every popularity region of
   the placed sites (a site's ``region``, else its id);
2. per embedded, PNI and IX site, :func:`localcast.core.placement.place_site`
   with its region's forecast (titles without demand fill the room left, one
   copy each: the placement's cold fill). ``floor_sessions`` > 0 gives every
   catalog title at least that demand, so a small catalog is replicated like
   demanded titles (every title on every appliance when each has at least
   ``replica_share`` of the demand). Origin sites are not placed: they hold
   the whole catalog;
3. :func:`localcast.core.placement.next_manifests` against the stored
   manifests: a version moves only when an appliance's title set changes.

A title's size is the bytes an appliance must hold to serve it (its
``required_files``, the unit steering checks). No I/O: ``control.fills``
reads the inputs and stores the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from localcast.core.fleet import CatalogTitle, FleetSnapshot, Site, SiteKind
from localcast.core.forecast import DemandRecord, Forecast, ForecastParams, Release, forecast
from localcast.core.placement import (
    ApplianceManifest,
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


@dataclass(frozen=True)
class PlanParams:
    forecast: ForecastParams = field(default_factory=ForecastParams)
    placement: PlacementParams = field(default_factory=PlacementParams)
    floor_sessions: float = 0.0


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


def placed_sites(snapshot: FleetSnapshot) -> list[Site]:
    """The sites that are filled (every kind but origin), by id."""
    return sorted(
        (s for s in snapshot.sites.values() if s.kind is not SiteKind.ORIGIN),
        key=lambda s: s.id,
    )


def site_demand(
    region_forecast: Mapping[str, float], sizes: Mapping[str, int], floor: float
) -> dict[str, float]:
    """The demand a site places by: its region's forecast, catalog titles only, floored."""
    if floor <= 0:
        return {t: d for t, d in region_forecast.items() if t in sizes}
    return {t: max(region_forecast.get(t, 0.0), floor) for t in sizes}


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
        placements.append(place_site(site.id, appliances, sizes, demand, params.placement, catalog))
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
