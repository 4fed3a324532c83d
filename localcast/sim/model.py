"""The simulated fleet: sites, appliances, routes and links, as the control plane would hold them.

:func:`build_model` turns a :class:`~localcast.sim.config.SimSpec` into the
same values the control plane builds from its database and its BGP feed:

* core :class:`~localcast.core.fleet.Site` and :class:`~localcast.core.fleet.Appliance`
  values (registered, alive for the whole run, serving), ids ``<site>-NN``;
* the route table as :func:`localcast.control.snapshot.build_snapshot` makes it:
  every site's prefixes as configured routes (:meth:`RouteTable.build`), and for
  each appliance of a BGP site an Adj-RIB-In holding the site's prefixes as its
  ISP's router announces them (:func:`localcast.core.rib.apply_delta` of a
  :class:`~localcast.core.rib.RouteDelta`), indexed by
  :meth:`localcast.core.routeindex.RouteIndex.build`;
* :meth:`SimModel.snapshot`: a :class:`~localcast.core.fleet.FleetSnapshot` with
  the titles each appliance holds complete now.

Links (what capacity is enforced on and reported per): an embedded site's link
from its ISP, a PNI site's interconnect, each ISP's port at each IX site,
each ISP's transit (traffic from origin sites). A client outside every ISP
prefix belongs to the pseudo-ISP ``other`` (no capacity limits).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from localcast.core.fleet import (
    Appliance,
    ApplianceState,
    FleetSnapshot,
    Health,
    Site,
    SiteKind,
    frozen_map,
)
from localcast.core.health import SATURATION_RATIO
from localcast.core.lpm import LpmIndex
from localcast.core.rib import (
    AdjRibIn,
    Attributes,
    LearnedRoute,
    Origin,
    Path,
    Peer,
    RouteDelta,
    apply_delta,
    router_id,
)
from localcast.core.routeindex import RouteIndex
from localcast.core.routes import Route, RouteTable
from localcast.sim.catalog import SimCatalog, sim_catalog
from localcast.sim.config import SimSpec, SiteSpec
from localcast.sim.demand import Populations, populations

TB = 10**12
OTHER = "other"
#: Source kinds in report order (the site kind serving the bytes; origin is over transit).
SOURCES = ("embedded", "pni", "ix", "transit")
SOURCE_OF_KIND = {SiteKind.EMBEDDED: 0, SiteKind.PNI: 1, SiteKind.IX: 2, SiteKind.ORIGIN: 3}

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


def _alive_health(start: float) -> Health:
    """Heartbeating, and alive for the whole run: a very long interval, two beats in."""
    return Health(interval_s=1e9, last_heartbeat_at=start - 1.0, run_started_at=start - 2.0,
                  beats_in_run=2)  # fmt: skip


def isp_path(asn: int, site: SiteSpec) -> Path:
    """The path an ISP's router announces the site's prefixes with."""
    return Path(
        Attributes(as_path=(asn,), origin=Origin.IGP, med=site.med, local_pref=site.local_pref),
        Peer(router_id("192.0.2.1"), "192.0.2.1", asn, True),
        "192.0.2.1",
        0.0,
    )


@dataclass(frozen=True, eq=False)
class Links:
    ids: tuple[str, ...]
    kinds: tuple[str, ...]  # embedded, pni, ix, transit
    isp: tuple[str | None, ...]  # the ISP a link carries (None: a site's own link)
    capacity_bps: F64  # inf: unlimited
    of: npt.NDArray[np.int32]  # (sites, isps + 1) -> link index (last column: other)


@dataclass(frozen=True, eq=False)
class SimModel:
    spec: SimSpec
    catalog: SimCatalog
    sites: tuple[Site, ...]
    site_index: Mapping[str, int]
    site_kind: npt.NDArray[np.int8]  # SOURCE_OF_KIND per site
    site_isp: tuple[str | None, ...]
    appliances: tuple[Appliance, ...]  # holding nothing; origin appliances hold everything
    app_index: Mapping[str, int]
    app_site: I32
    routes: RouteTable
    prefixes: tuple[str, ...]  # every prefix of every site (the union the LPM batches use)
    isps: tuple[str, ...]  # ISP ids, then "other"
    pops: Populations
    pop_index: LpmIndex  # ISP prefixes (entry i + 1 = population i)
    links: Links
    site_capacity_bps: F64  # what steering may use: SATURATION_RATIO x appliance Gbit/s
    start: float

    @property
    def origin_apps(self) -> frozenset[str]:
        return frozenset(
            a.id
            for a in self.appliances
            if self.sites[self.app_site[self.app_index[a.id]]].kind is SiteKind.ORIGIN
        )

    def snapshot(self, holdings: Mapping[str, frozenset[str]], version: int = 1) -> FleetSnapshot:
        """The steering snapshot with ``holdings`` (appliance id -> titles held complete);
        origin appliances hold the whole catalog."""
        every = frozenset(self.catalog.ids)
        apps = {}
        for a in self.appliances:
            site = self.sites[self.site_index[a.site_id]]
            titles = every if site.kind is SiteKind.ORIGIN else holdings.get(a.id, frozenset())
            apps[a.id] = replace(a, titles=titles)
        return self.snapshot_of(apps, version)

    def snapshot_of(self, appliances: Mapping[str, Appliance], version: int) -> FleetSnapshot:
        """The steering snapshot of these appliance entries (ids as in the model)."""
        return FleetSnapshot(
            version=version,
            sites=frozen_map({s.id: s for s in self.sites}),
            appliances=frozen_map(appliances),
            catalog=self.catalog.entries,
            routes=self.routes,
        )


def build_model(spec: SimSpec, catalog: SimCatalog | None = None) -> SimModel:
    catalog = catalog if catalog is not None else sim_catalog(spec.catalog, spec.sim.seed)
    start = spec.sim.start_ts
    isp_by_id = {i.id: i for i in spec.isps}
    sites: list[Site] = []
    apps: list[Appliance] = []
    ribs: dict[str, AdjRibIn] = {}
    configured: list[Route] = []
    health = _alive_health(start)
    capacity: list[float] = []
    for s in spec.sites:
        sites.append(
            Site(
                s.id,
                s.kind,
                s.isp,
                s.lat,
                s.lon,
                s.tz,
                tuple(s.prefixes),
                region=s.region,
                fill_window=s.fill_window,
            )
        )
        configured += [Route(ipaddress.ip_network(p), s.id) for p in s.prefixes]
        n = 0
        gbps = 0.0
        groups = list(s.appliances)
        if s.kind is SiteKind.ORIGIN and not any(g.count for g in groups):
            groups = []
            apps.append(
                Appliance(
                    id=f"{s.id}-01",
                    site_id=s.id,
                    base_url=f"http://{s.id}-01.sim",
                    disk_bytes=0,
                    gbps=100.0,
                    state=ApplianceState.REGISTERED,
                    health=health,
                )
            )
        for g in groups:
            for _ in range(g.count):
                n += 1
                aid = f"{s.id}-{n:02d}"
                apps.append(
                    Appliance(
                        id=aid,
                        site_id=s.id,
                        base_url=f"http://{aid}.sim",
                        disk_bytes=int(g.disk_tb * TB),
                        gbps=g.gbps,
                        state=ApplianceState.REGISTERED,
                        health=health,
                        appliance_class=g.appliance_class,
                        fill_bps=None if g.fill_mbps is None else g.fill_mbps * 1e6,
                    )
                )
                gbps += g.gbps
                if s.bgp and s.prefixes and s.kind is not SiteKind.ORIGIN:
                    asn = isp_by_id[s.isp].asn if s.isp in isp_by_id else 64500
                    path = isp_path(asn, s)
                    delta = RouteDelta.of([LearnedRoute(p, path) for p in s.prefixes], full=True)
                    ribs[aid] = apply_delta(AdjRibIn(aid), delta)
        capacity.append(math.inf if s.kind is SiteKind.ORIGIN else SATURATION_RATIO * gbps * 1e9)
    routes = RouteTable.build(configured, RouteIndex.build(ribs) if ribs else None)
    site_index = {s.id: i for i, s in enumerate(sites)}
    pops = populations(spec)
    return SimModel(
        spec=spec,
        catalog=catalog,
        sites=tuple(sites),
        site_index=MappingProxyType(site_index),
        site_kind=np.array([SOURCE_OF_KIND[s.kind] for s in sites], dtype=np.int8),
        site_isp=tuple(s.isp for s in spec.sites),
        appliances=tuple(apps),
        app_index=MappingProxyType({a.id: i for i, a in enumerate(apps)}),
        app_site=np.array([site_index[a.site_id] for a in apps], dtype=np.int32),
        routes=routes,
        prefixes=tuple(sorted({p for s in spec.sites for p in s.prefixes})),
        isps=(*(i.id for i in spec.isps), OTHER),
        pops=pops,
        pop_index=LpmIndex.from_prefixes(_v4_first(pops.prefixes)),
        links=_links(spec),
        site_capacity_bps=np.array(capacity),
        start=start,
    )


def _v4_first(prefixes: tuple[str, ...]) -> list[str]:
    """``prefixes`` with IPv4 first, each family in order (the LPM's entry numbering)."""
    v4 = [p for p in prefixes if ":" not in p]
    return v4 + [p for p in prefixes if ":" in p]


def population_entries(prefixes: tuple[str, ...]) -> npt.NDArray[np.int32]:
    """LPM entry -> population index (-1 for entry 0), for :attr:`SimModel.pop_index`."""
    order = _v4_first(prefixes)
    pos = {p: i for i, p in enumerate(prefixes)}
    out = np.full(len(order) + 1, -1, dtype=np.int32)
    for entry, p in enumerate(order, start=1):
        out[entry] = pos[p]
    return out


def _links(spec: SimSpec) -> Links:
    isps = [i.id for i in spec.isps]
    cols = len(isps) + 1
    ids: list[str] = []
    kinds: list[str] = []
    owner: list[str | None] = []
    cap: list[float] = []
    of = np.zeros((len(spec.sites), cols), dtype=np.int32)

    def add(link_id: str, kind: str, isp: str | None, gbps: float | None) -> int:
        ids.append(link_id)
        kinds.append(kind)
        owner.append(isp)
        cap.append(math.inf if gbps is None else gbps * 1e9)
        return len(ids) - 1

    transit = [add(f"transit/{i.id}", "transit", i.id, i.transit_gbps) for i in spec.isps]
    transit.append(add(f"transit/{OTHER}", "transit", OTHER, None))
    for si, s in enumerate(spec.sites):
        if s.kind is SiteKind.ORIGIN:
            of[si] = transit
        elif s.kind is SiteKind.IX:
            for c, isp in enumerate([*isps, OTHER]):
                gbps = s.link_gbps if isp != OTHER else None
                of[si, c] = add(f"{s.id}/{isp}", "ix", isp, gbps)
        else:
            of[si] = add(s.id, str(s.kind), s.isp, s.link_gbps)
    return Links(tuple(ids), tuple(kinds), tuple(owner), np.array(cap), of)


def topology_doc(model: SimModel, port: int = 18000) -> dict[str, Any]:
    """The control plane's topology document (``control apply``) of this simulated fleet:
    the same sites and appliance ids, each appliance at ``http://127.0.0.1:<port + i>``."""
    spec = model.spec
    isp_by_id = {i.id: i for i in spec.isps}
    partners = [{"name": i.id, "asns": [i.asn]} for i in spec.isps]
    sites = []
    for s in spec.sites:
        doc: dict[str, Any] = {
            "id": s.id,
            "kind": str(s.kind),
            "lat": s.lat,
            "lon": s.lon,
            "tz": s.tz,
            "prefixes": list(s.prefixes),
            "fill_window": s.fill_window,
        }
        if s.isp is not None and s.isp in isp_by_id:
            doc["partner"] = s.isp
        if s.region is not None:
            doc["region"] = s.region
        sites.append(doc)
    appliances = []
    for i, a in enumerate(model.appliances):
        row: dict[str, Any] = {
            "id": a.id,
            "site": a.site_id,
            "url": f"http://127.0.0.1:{port + i}",
            "disk_gb": max(a.disk_bytes / 1e9, 1.0),
            "gbps": a.gbps,
            "class": a.appliance_class,
        }
        if a.fill_bps is not None:
            row["fill_mbps"] = a.fill_bps / 1e6
        appliances.append(row)
    return {"partners": partners, "sites": sites, "appliances": appliances}
