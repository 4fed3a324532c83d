"""Routes API: what appliances hear over BGP, in and out.

* ``POST /v1/appliances/{id}/routes``  bearer = the appliance credential; a
  :class:`~localcast.control.route_schemas.RoutesReport` for one BGP session
  (``kind`` full or delta, ``seq``, ``base_seq``, ``sent_at``, ``session``,
  ``announce`` groups, ``withdraw``; the contract of :mod:`localcast.bgp.relay`)
  -> :class:`~localcast.control.route_schemas.RoutesAck`; a delta whose
  ``base_seq`` is not the session's last sequence applied (or any delta after
  a control plane restart: routes are held in memory only) answers
  ``resync: true``
* ``GET /v1/routes``  learned routes, filtered by ``appliance``, ``site``,
  ``prefix`` (who heard exactly that prefix, with which attributes) or ``ip``
  (the routes covering that address, longest first); paginated with
  ``limit`` (default 100) and ``offset``; plus the BGP sessions of each
  appliance concerned (state as last reported, sequence per session)
* ``GET /v1/routes/reports``  the ISP reports: appliances of one site that
  hear different advertisements (and the clients sent off-site), routes with
  no alternate source (:mod:`localcast.core.route_reports`)

Thin: the feed (:mod:`localcast.control.route_feed`) applies reports; reading
is over the current snapshot, never the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Annotated

from fastapi import APIRouter, Header, Query

from localcast.control.credentials import bearer
from localcast.control.deps import FleetReader, Plane
from localcast.control.errors import Invalid, NotFound
from localcast.control.route_feed import RouteFeed
from localcast.control.route_schemas import (
    AdvertisementDiffOut,
    ApplianceRoutesOut,
    AttributesOut,
    NoAlternateOut,
    RouteOut,
    RouteReportsOut,
    RoutesAck,
    RoutesPage,
    RoutesReport,
    SessionOut,
    SiteConsistencyOut,
    UnprotectedRouteOut,
)
from localcast.core.fleet import FleetSnapshot
from localcast.core.rib import Attributes, LearnedRoute, Path, parse_prefix, prefix_text
from localcast.core.route_reports import no_alternate_source, site_consistency
from localcast.core.routes import parse_address

router = APIRouter()
Authorization = Annotated[str | None, Header()]
DEFAULT_PAGE = 100
MAX_PAGE = 10_000


@router.post("/v1/appliances/{appliance_id}/routes", response_model=RoutesAck)
def post_routes(
    appliance_id: str,
    body: RoutesReport,
    plane: Plane,
    authorization: Authorization = None,
) -> RoutesAck:
    out = plane.ingest_routes(appliance_id, bearer(authorization), body)
    return RoutesAck(
        seq=out.seq,
        resync=out.resync,
        reason=out.reason,
        routes=out.routes,
        snapshot_version=out.snapshot_version,
    )


# --- reading -------------------------------------------------------------------------------------


def _communities(a: Attributes) -> tuple[list[str], list[str]]:
    return (
        [f"{c >> 16}:{c & 0xFFFF}" for c in a.communities],
        [f"{x}:{y}:{z}" for x, y, z in a.large_communities],
    )


def attributes_out(a: Attributes) -> AttributesOut:
    standard, large = _communities(a)
    return AttributesOut(
        as_path=list(a.as_path),
        origin=a.origin.name.lower(),
        med=a.med,
        local_pref=a.local_pref,
        communities=standard,
        large_communities=large,
    )


def route_out(snap: FleetSnapshot, appliance_id: str, prefix: str, path: Path) -> RouteOut:
    a, peer = path.attributes, path.peer
    standard, large = _communities(a)
    return RouteOut(
        appliance_id=appliance_id,
        site_id=snap.appliance_sites.get(appliance_id),
        prefix=prefix,
        as_path=list(a.as_path),
        origin=a.origin.name.lower(),
        med=a.med,
        local_pref=a.local_pref,
        communities=standard,
        large_communities=large,
        next_hop=path.next_hop,
        peer=peer.address,
        peer_as=peer.asn,
        peer_router_id=peer.router_id_text,
        ebgp=peer.ebgp,
        received_at=path.received_at,
    )


def _appliances(snap: FleetSnapshot, appliance: str | None, site: str | None) -> list[str]:
    """The BGP-speaking appliances the filters select, sorted."""
    speakers = snap.routes.learned.ribs
    if appliance is not None:
        if appliance not in snap.appliances and appliance not in speakers:
            raise NotFound(f"unknown appliance {appliance!r}")
        chosen = [appliance] if appliance in speakers else []
    else:
        chosen = sorted(speakers)
    if site is not None:
        if site not in snap.sites:
            raise NotFound(f"unknown site {site!r}")
        chosen = [a for a in chosen if snap.appliance_sites.get(a) == site]
    return chosen


def _routes_for(
    snap: FleetSnapshot, aids: list[str], prefix: str | None, ip: str | None
) -> list[tuple[str, str, Path]] | None:
    """(appliance, prefix, path) for a ``prefix`` or ``ip`` query; None without either."""
    learned = snap.routes.learned
    wanted = set(aids)
    if prefix is not None:
        try:
            version, key = parse_prefix(prefix)
        except ValueError as exc:
            raise Invalid(f"{prefix!r} is not a network prefix", field="prefix") from exc
        text = prefix_text(version, key)
        return [
            (a, text, learned.ribs[a].table(version)[key])
            for a in learned.route_set(version, key)
            if a in wanted
        ]
    if ip is not None:
        try:
            addr = parse_address(ip)
        except ValueError as exc:
            raise Invalid(f"{ip!r} is not an IP address", field="ip") from exc
        out: list[tuple[str, str, Path]] = []
        for key, route_set in learned.covering(addr.version, int(addr)):
            text = prefix_text(addr.version, key)
            out += [
                (a, text, learned.ribs[a].table(addr.version)[key])
                for a in route_set
                if a in wanted
            ]
        return out
    return None


@router.get("/v1/routes", response_model=RoutesPage, dependencies=[FleetReader])
def get_routes(
    plane: Plane,
    appliance: str | None = None,
    site: str | None = None,
    prefix: str | None = None,
    ip: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RoutesPage:
    """Learned routes, one row per (appliance, prefix), and the sessions of those appliances."""
    if prefix is not None and ip is not None:
        raise Invalid("give prefix or ip, not both", field="ip")
    snap = plane.snapshot
    aids = _appliances(snap, appliance, site)
    found = _routes_for(snap, aids, prefix, ip)
    if found is None:
        ribs = snap.routes.learned.ribs
        total = sum(len(ribs[a]) for a in aids)
        page = [
            route_out(snap, aid, r.prefix, r.path)
            for aid, r in islice(_with_owner(snap, aids, offset, limit), limit)
        ]
        involved = aids
    else:
        total = len(found)
        page = [route_out(snap, a, p, path) for a, p, path in found[offset : offset + limit]]
        involved = sorted({a for a, _, _ in found})
    return RoutesPage(
        snapshot_version=snap.version,
        total=total,
        limit=limit,
        offset=offset,
        routes=page,
        appliances=[_appliance_routes(snap, plane.routes, a) for a in involved],
    )


def _with_owner(
    snap: FleetSnapshot, aids: list[str], offset: int, limit: int
) -> Iterator[tuple[str, LearnedRoute]]:
    """Up to ``limit`` routes per appliance of ``aids`` in appliance order, from ``offset``
    (whole RIBs skipped; a small page does not sort a full table)."""
    ribs = snap.routes.learned.ribs
    for aid in aids:
        n = len(ribs[aid])
        if offset >= n:
            offset -= n
            continue
        for r in ribs[aid].routes(offset, offset + limit):
            yield aid, r
        offset = 0


def _appliance_routes(snap: FleetSnapshot, feed: RouteFeed, aid: str) -> ApplianceRoutesOut:
    rib = snap.routes.learned.ribs.get(aid)
    states = feed.sessions(aid)
    return ApplianceRoutesOut(
        appliance_id=aid,
        site_id=snap.appliance_sites.get(aid),
        routes=len(rib) if rib is not None else 0,
        reported_at=max((s.reported_at for s in states), default=None),
        sessions=[
            SessionOut(
                **s.session.model_dump(),
                seq=s.seq,
                reported_at=s.reported_at,
                sent_at=s.sent_at,
            )
            for s in states
        ],
    )


@router.get("/v1/routes/reports", response_model=RouteReportsOut, dependencies=[FleetReader])
def get_route_reports(
    plane: Plane, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE
) -> RouteReportsOut:
    """Site consistency (with the appliances that send clients off-site) and lonely routes."""
    snap = plane.snapshot
    sites = [
        SiteConsistencyOut(
            site_id=s.site_id,
            appliances=list(s.appliances),
            consistent=s.consistent,
            missing_count=s.missing_count,
            attribute_count=s.attribute_count,
            diffs=[
                AdvertisementDiffOut(
                    prefix=d.prefix,
                    heard_by=list(d.heard_by),
                    missing_from=list(d.missing_from),
                    off_site=list(d.off_site),
                    attributes={a: attributes_out(attrs) for a, attrs in d.attributes},
                    reason=d.reason,
                )
                for d in s.diffs
            ],
        )
        for s in site_consistency(snap, limit)
    ]
    lonely = no_alternate_source(snap, limit)
    return RouteReportsOut(
        snapshot_version=snap.version,
        site_consistency=sites,
        no_alternate_source=NoAlternateOut(
            count=lonely.count,
            routes=[
                UnprotectedRouteOut(prefix=r.prefix, heard_by=list(r.heard_by), sites=list(r.sites))
                for r in lonely.routes
            ],
        ),
    )
