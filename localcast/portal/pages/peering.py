"""Where the operator peers: ``GET /portal/peering``.

The exchanges (with the operator's ports: speed, addresses on the IX LAN,
route server) and the facilities where the operator is present, from the
PeeringDB export named by the ``peeringdb_file`` setting (the operator's
network: ``operator_asn``, or the export's only network); see
:mod:`localcast.portal.peeringdb`. Public information, the same for every
viewer; for a partner (or an operator's ``?partner=``) each facility with
coordinates also says how far it is from the partner's nearest site.
Without a file, or with a bad one, the page says so (no crash, no 500).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from localcast.control.errors import NotFound
from localcast.core.fleet import Site
from localcast.core.geo import haversine_km
from localcast.portal.auth import CurrentViewer, Viewer, plane_of
from localcast.portal.peeringdb import (
    Facility,
    PeeringdbError,
    PeeringLocations,
    load_cached,
    speed_text,
)
from localcast.portal.render import page
from localcast.portal.scope import partner_for, partner_sites

router = APIRouter()


@dataclass(frozen=True)
class FacilityRow:
    facility: Facility
    nearest_site: str
    distance: str


def facility_rows(locations: PeeringLocations, sites: list[Site]) -> list[FacilityRow]:
    """Each facility, with the partner's nearest site and its distance (when both are known)."""
    out = []
    for f in locations.facilities:
        nearest, distance = "", ""
        if f.latitude is not None and f.longitude is not None and sites:
            lat, lon = f.latitude, f.longitude
            km, site_id = min((haversine_km(s.lat, s.lon, lat, lon), s.id) for s in sites)
            nearest, distance = site_id, f"{km:,.0f} km"
        out.append(FacilityRow(f, nearest, distance))
    return out


def _partner(viewer: Viewer, request: Request, asked: str | None) -> str | None:
    try:
        return partner_for(viewer, plane_of(request), asked)
    except NotFound:
        if viewer.is_operator and not asked:
            return None
        raise


@router.get("/portal/peering", response_class=HTMLResponse)
def peering(request: Request, viewer: CurrentViewer, partner: str | None = None) -> Response:
    plane = plane_of(request)
    partner_id = _partner(viewer, request, partner)
    path = plane.settings.peeringdb_file
    operator_asn = plane.settings.operator_asn
    locations: PeeringLocations | None = None
    error = ""
    if path:
        try:
            locations = load_cached(path, operator_asn)
        except PeeringdbError as exc:
            error = str(exc)
    sites = partner_sites(plane, partner_id) if partner_id else []
    return page(
        request,
        viewer,
        "peering.html",
        "Peering locations",
        partner=partner_id,
        configured=bool(path),
        error=error,
        locations=locations,
        facilities=facility_rows(locations, sites) if locations else [],
        speed=speed_text,
        partner_id=partner_id or "",
    )
