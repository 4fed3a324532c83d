"""Operator pages: the fleet across partners, the catalog and where each title is live,
and the users (invite a partner's user or another operator).
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from localcast.portal.accounts import ROLES, AccountError
from localcast.portal.auth import Csrf, OperatorViewer, accounts_of, plane_of
from localcast.portal.render import page, see_other
from localcast.portal.scope import partners
from localcast.portal.views.catalog_view import catalog_figures, title_rows
from localcast.portal.views.fleet_view import (
    ApplianceRow,
    alert_rows,
    appliance_rows,
    format_time,
    level_counts,
    site_rows,
    total_usage,
)

router = APIRouter()


@router.get("/portal/operator/fleet", response_class=HTMLResponse)
def fleet(request: Request, viewer: OperatorViewer) -> Response:
    """Every site of every partner and the operator's own (IX, origin), worst first."""
    plane = plane_of(request)
    now = plane.clock()
    pids = partners(plane)
    plane.health.refresh(now)  # every status observed now, once (not once per partner)
    alerts = [a for pid in pids for a in plane.health.alerts(pid, now)]
    snap = plane.snapshot
    appliances = sorted(snap.appliances.values(), key=lambda a: (a.site_id, a.id))
    steering = {a.id: plane.health.steering(a.id, now) for a in appliances}
    rows = appliance_rows(snap, appliances, plane.health.statuses, now, steering)
    sites = site_rows(sorted(snap.sites.values(), key=lambda s: s.id), rows, alerts)
    by_partner: dict[str, list[ApplianceRow]] = {}
    for r in rows:
        by_partner.setdefault(r.partner or "", []).append(r)
    site_count = Counter(s.partner for s in sites)
    alert_count = Counter(
        site.partner for site in (snap.sites.get(a.site_id) for a in alerts) if site is not None
    )
    summary = [
        {
            "partner": pid,
            "sites": site_count[pid],
            "appliances": len(by_partner.get(pid, [])),
            "counts": level_counts(by_partner.get(pid, [])),
            "egress": total_usage(by_partner.get(pid, []))[0],
            "alerts": alert_count[pid],
        }
        for pid in pids
    ]
    egress, disk = total_usage(rows)
    return page(
        request,
        viewer,
        "operator_fleet.html",
        "Fleet",
        summary=summary,
        sites=sorted(sites, key=lambda s: (-_SEVERITY[s.level.value], s.id)),
        counts=level_counts(rows),
        appliance_count=len(rows),
        egress=egress,
        disk=disk,
        alerts=alert_rows(alerts, now),
    )


_SEVERITY = {"error": 3, "warning": 2, "unknown": 1, "ok": 0}


@router.get("/portal/operator/catalog", response_class=HTMLResponse)
def catalog(request: Request, viewer: OperatorViewer) -> Response:
    plane = plane_of(request)
    snap = plane.snapshot
    figures = catalog_figures(snap, plane.settings.live_min_sites, plane.settings.live_min_copies)
    releases = {t: r.release_at for t, r in plane.fills.view.releases.items()}
    return page(
        request,
        viewer,
        "operator_catalog.html",
        "Catalog and where titles are live",
        rows=title_rows(snap, figures.live, releases, figures.copies),
        regions=list(figures.regions),
        min_sites=plane.settings.live_min_sites,
        min_copies=plane.settings.live_min_copies,
        when=format_time,
    )


def _users_page(
    request: Request,
    viewer: OperatorViewer,
    status_code: int = 200,
    error: str = "",
    field: str | None = None,
    form: dict[str, str] | None = None,
    invite_link: str = "",
) -> Response:
    plane = plane_of(request)
    return page(
        request,
        viewer,
        "operator_users.html",
        "Users and invitations",
        status_code=status_code,
        users=accounts_of(request).users(),
        partners=partners(plane),
        roles=ROLES,
        error=error,
        field=field,
        form=form or {"email": "", "role": "partner", "partner": ""},
        invite_link=invite_link,
    )


@router.get("/portal/operator/users", response_class=HTMLResponse)
def users(request: Request, viewer: OperatorViewer) -> Response:
    return _users_page(request, viewer)


@router.post("/portal/operator/users/invite", response_class=HTMLResponse, dependencies=[Csrf])
def invite(
    request: Request,
    viewer: OperatorViewer,
    email: Annotated[str, Form(max_length=254)] = "",
    role: Annotated[str, Form(max_length=16)] = "partner",
    partner: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    form = {"email": email, "role": role, "partner": partner}
    try:
        inv = accounts_of(request).invite(
            email, role, partner or None, viewer.user_id, plane_of(request).clock()
        )
    except AccountError as exc:
        return _users_page(request, viewer, 422, exc.reason, exc.field, form)
    link = str(request.base_url).rstrip("/") + f"/portal/invite/{inv.token}"
    # The link is shown once, to the operator who made it, to pass on over their own channel.
    return _users_page(request, viewer, 201, invite_link=link, form=form)


@router.post(
    "/portal/operator/users/{user_id}/disable", response_class=HTMLResponse, dependencies=[Csrf]
)
def disable(request: Request, viewer: OperatorViewer, user_id: int) -> Response:
    if user_id == viewer.user_id:
        return _users_page(request, viewer, 422, "you cannot disable your own account")
    try:
        accounts_of(request).set_disabled(user_id, True)
    except AccountError as exc:
        return _users_page(request, viewer, 404, exc.reason)
    return see_other(request, "/portal/operator/users", flash="The user is disabled.")


@router.post(
    "/portal/operator/users/{user_id}/enable", response_class=HTMLResponse, dependencies=[Csrf]
)
def enable(request: Request, viewer: OperatorViewer, user_id: int) -> Response:
    try:
        accounts_of(request).set_disabled(user_id, False)
    except AccountError as exc:
        return _users_page(request, viewer, 404, exc.reason)
    return see_other(request, "/portal/operator/users", flash="The user is enabled.")
