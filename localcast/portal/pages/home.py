"""The home page (``GET /portal/``): the partner's sites and appliances, and what to act on.

Sites with their appliances, each with its status (Unknown / OK / Warning /
Error) and why, its steering state, and utilisation against capacity (egress
against Gbit/s, disk used against its size); above them the actionable items
(``plane.alerts``: appliance down and why, BGP session down, routes differing
across a site, fill behind, disk near full). An operator picks the partner
with ``?partner=``. The partner's appliances are observed now (their statuses and the
actionable items about them are fresh), the rest of the fleet is not looked at.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from localcast.control.deps import Plane
from localcast.portal import scope
from localcast.portal.auth import CurrentViewer
from localcast.portal.render import page
from localcast.portal.views.fleet_view import (
    alert_rows,
    appliance_rows,
    level_counts,
    site_rows,
    total_usage,
)

router = APIRouter()


@router.get("/portal/", response_class=HTMLResponse)
def home(
    request: Request, viewer: CurrentViewer, plane: Plane, partner: str | None = None
) -> HTMLResponse:
    pid = scope.partner_for(viewer, plane, partner)
    now = plane.clock()
    # The partner's appliances observed now, then its actionable items: what the page shows
    # reads nothing else (``plane.alerts`` would observe every appliance of the fleet first;
    # the refresh tick does that every second anyway).
    plane.health.update([a.id for a in scope.partner_appliances(plane, pid)], now)
    alerts = plane.health.alerts(pid, now)
    snap = plane.snapshot
    appliances = scope.partner_appliances(plane, pid)
    steering = {a.id: plane.health.steering(a.id, now) for a in appliances}
    rows = appliance_rows(snap, appliances, plane.health.statuses, now, steering)
    sites = site_rows(scope.partner_sites(plane, pid), rows, alerts)
    egress, disk = total_usage(rows)
    return page(
        request,
        viewer,
        "home.html",
        f"{pid}: sites and appliances" if viewer.is_operator else "Sites and appliances",
        partner=pid,
        partner_id=pid,
        sites=sites,
        alerts=alert_rows(alerts, now),
        counts=level_counts(rows),
        appliance_count=len(rows),
        egress=egress,
        disk=disk,
        operator=viewer.is_operator,
    )
