"""Helpers for BGP steering tests: routes, paths and snapshots with learned routes."""

from __future__ import annotations

from control_fixtures import appliance, snapshot

from localcast.core.fleet import Appliance, FleetSnapshot, Site, SiteKind
from localcast.core.rib import (
    Attributes,
    LearnedRoute,
    Origin,
    Path,
    Peer,
    RouteDelta,
    router_id,
)
from localcast.core.routeindex import RouteIndex, with_delta
from localcast.core.routes import RouteTable

ISP_AS = 64500


def bgp_path(
    *as_path: int,
    local_pref: int = 100,
    origin: Origin = Origin.IGP,
    med: int = 0,
    ebgp: bool = True,
    peer: str = "192.0.2.1",
    rid: str | None = None,
    at: float = 0.0,
) -> Path:
    attrs = Attributes(as_path if as_path else (ISP_AS,), origin, med, local_pref)
    return Path(attrs, Peer(router_id(rid or peer), peer, ISP_AS, ebgp), peer, at)


def heard(*prefixes: str, p: Path | None = None) -> RouteDelta:
    return RouteDelta.of([LearnedRoute(x, p or bgp_path()) for x in prefixes])


def site_at(
    sid: str,
    kind: SiteKind,
    lat: float = 0.0,
    lon: float = 0.0,
    prefixes: tuple[str, ...] = (),
) -> Site:
    return Site(sid, kind, "isp", lat, lon, "UTC", prefixes)


def bgp_snapshot(
    sites: list[Site],
    appliances: list[Appliance],
    learned: dict[str, RouteDelta | list[RouteDelta]],
    title_ids: tuple[str, ...] = ("t1",),
) -> FleetSnapshot:
    """A snapshot whose appliances heard ``learned`` (appliance id -> delta(s))."""
    base = snapshot(sites, appliances, title_ids)
    index = RouteIndex.empty()
    for aid, ds in learned.items():
        for d in ds if isinstance(ds, list) else [ds]:
            index = with_delta(index, aid, d)
    routes: RouteTable = base.routes.with_learned(index)
    from dataclasses import replace

    return replace(base, routes=routes)


__all__ = ["appliance", "bgp_path", "bgp_snapshot", "heard", "site_at"]
