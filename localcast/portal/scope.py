"""What a viewer may see: an operator every partner, a partner's user its own partner only.

Every portal page and API asks here before it reads; out of scope answers the
same 404 as a missing id, so a partner cannot even learn another partner's ids
exist. A partner owns its embedded and PNI sites and their appliances; IX and
origin sites are the operator's.
"""

from __future__ import annotations

from sqlalchemy import select

from localcast.control.errors import NotFound
from localcast.control.models import Partner
from localcast.control.service import ControlPlane
from localcast.core.fleet import Appliance, Site
from localcast.portal.auth import Viewer


def partners(plane: ControlPlane) -> list[str]:
    """Every partner id, sorted."""
    with plane.sessions() as s:
        return list(s.scalars(select(Partner.id).order_by(Partner.id)))


def partner_for(viewer: Viewer, plane: ControlPlane, partner: str | None) -> str:
    """The partner a page is about: a partner's user always its own (another -> 404); an
    operator the one asked for (unknown -> 404), else the first partner."""
    if not viewer.is_operator:
        if partner not in (None, "", viewer.partner) or viewer.partner is None:
            raise NotFound("no such partner")
        return viewer.partner
    known = partners(plane)
    if partner:
        if partner not in known:
            raise NotFound("no such partner")
        return partner
    if not known:
        raise NotFound("no partner is declared yet: apply a topology with partners first")
    return known[0]


def may_see_site(viewer: Viewer, site: Site) -> bool:
    return viewer.is_operator or (viewer.partner is not None and site.partner == viewer.partner)


def site_or_404(viewer: Viewer, plane: ControlPlane, site_id: str) -> Site:
    site = plane.snapshot.sites.get(site_id)
    if site is None or not may_see_site(viewer, site):
        raise NotFound("no such site")
    return site


def appliance_or_404(viewer: Viewer, plane: ControlPlane, appliance_id: str) -> Appliance:
    snap = plane.snapshot
    appliance = snap.appliances.get(appliance_id)
    if appliance is None:
        raise NotFound("no such appliance")
    site = snap.sites.get(appliance.site_id)
    if site is None or not may_see_site(viewer, site):
        raise NotFound("no such appliance")
    return appliance


def partner_sites(plane: ControlPlane, partner: str) -> list[Site]:
    """The partner's sites (embedded and PNI), by id."""
    return sorted(
        (s for s in plane.snapshot.sites.values() if s.partner == partner), key=lambda s: s.id
    )


def partner_appliances(plane: ControlPlane, partner: str) -> list[Appliance]:
    """The appliances at the partner's sites, by site then id."""
    snap = plane.snapshot
    return [
        a
        for site in partner_sites(plane, partner)
        for a in sorted(snap.appliances_at(site.id), key=lambda a: a.id)
    ]
