"""The appliance page (``GET /portal/appliances/{id}``) and its actions: drain, disable, enable.

Shows the appliance's status with each health component and why, its
turn-up checks, its BGP sessions (state, uptime, prefixes received /
accepted / filtered and why), its fill progress, the traffic its site served
and how steering treats it now. The actions are forms (POST, CSRF token):

* ``POST .../drain`` and ``.../disable``: ``duration`` (a preset, 3 hours to
  30 days), ``duration_other`` (typed, e.g. ``36h``; wins over the preset
  when given) and ``reason``. A duration that does not parse or lies outside
  3 hours .. 30 days answers the page again, 422, with the message next to
  the field; success redirects (303) to the page with a notice.
* ``POST .../enable``: ends the drain or disable now.

A partner's user sees and acts on its own partner's appliances only: any
other id is the same 404 as an unknown one. The stored reason names who
acted (``"<reason> (by <email>)"``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select

from localcast.control import repository as repo
from localcast.control.deps import Plane
from localcast.control.errors import NotFound
from localcast.control.health import describe_steering
from localcast.control.models import (
    FillStatusRow,
    FillTransfer,
    SteeringDaily,
    TrafficDaily,
    unix,
)
from localcast.control.service import ControlPlane
from localcast.core.fleet import Appliance, FleetSnapshot
from localcast.core.maintenance import DurationError, MaintenanceMode, format_duration
from localcast.core.traffic import (
    PartnerTraffic,
    SteeringRecord,
    TrafficRecord,
    partner_traffic,
    utc_day,
)
from localcast.portal import scope
from localcast.portal.auth import Csrf, CurrentViewer, Viewer
from localcast.portal.render import page, see_other, url
from localcast.portal.views.fleet_view import (
    appliance_row,
    bgp_rows,
    component_rows,
    fill_row,
    fill_summary,
    format_time,
    site_traffic,
    steering_view,
    turnup_view,
)

log = logging.getLogger(__name__)
router = APIRouter()

#: The duration select's choices: (value, label); any other duration can be typed.
DURATION_PRESETS = (
    ("3h", "3 hours"),
    ("6h", "6 hours"),
    ("12h", "12 hours"),
    ("1d", "1 day"),
    ("2d", "2 days"),
    ("3d", "3 days"),
    ("7d", "1 week"),
    ("14d", "2 weeks"),
    ("30d", "30 days"),
)
OTHER = "other"
MAX_REASON = 200
MAX_DURATION_TEXT = 32
TRAFFIC_DAYS = 7

#: What each mode does, for the forms and the notices.
EFFECTS = {
    MaintenanceMode.DRAIN: "no new sessions; sessions in flight finish",
    MaintenanceMode.DISABLE: "out of steering: players in flight move to their next pathway",
}


@dataclass
class FormState:
    """What was posted to a maintenance form that failed, to show it again with its errors."""

    mode: str = ""
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _fill(plane: ControlPlane, snap: FleetSnapshot, a: Appliance) -> dict[str, Any] | None:
    """The appliance's fill row (None: nothing is placed on it, e.g. an origin)."""
    stored = plane.fills.view.manifests.get(a.id)
    with plane.sessions() as s:
        inventory = repo.load_inventory(s, a.id)
        row = s.get(FillStatusRow, a.id)
        fetched = {
            kind: int(total or 0)
            for kind, total in s.execute(
                select(FillTransfer.source_kind, func.sum(FillTransfer.bytes))
                .where(FillTransfer.appliance_id == a.id)
                .group_by(FillTransfer.source_kind)
            )
        }
    if stored is None and row is None and not fetched:
        return None
    status = repo.FillStatus(row.state, row.alarm, unix(row.reported_at) or 0.0) if row else None
    return fill_row(snap, a, stored.manifest if stored else None, inventory, status, fetched)


def _traffic(
    plane: ControlPlane, partner: str | None, site_id: str, now: float
) -> list[PartnerTraffic]:
    """The figures of the partners whose clients the site serves (its own partner, else: an
    IX or origin site, seen by an operator, every partner) over the last ``TRAFFIC_DAYS``
    UTC days, from the site's own rows: :func:`site_traffic` reads the site's figures only,
    which count its rows only (one query per table, not every partner's figures in turn)."""
    plane.traffic.flush()  # the counts not in the database yet, as partner_traffic does
    last = utc_day(now)
    first = last - TRAFFIC_DAYS + 1
    known = {partner} if partner else set(scope.partners(plane))
    with plane.sessions() as s:
        tq = select(TrafficDaily).where(
            TrafficDaily.site_id == site_id, TrafficDaily.day.between(first, last)
        )
        sq = select(SteeringDaily).where(
            SteeringDaily.site_id == site_id, SteeringDaily.day.between(first, last)
        )
        if partner:
            tq = tq.where(TrafficDaily.partner_id == partner)
            sq = sq.where(SteeringDaily.partner_id == partner)
        traffic = [
            TrafficRecord(
                r.day,
                r.partner_id,
                r.kind,
                r.source_kind,
                site_id,
                r.requests,
                r.bytes,
                r.errors_5xx,
            )
            for r in s.scalars(tq)
            if r.partner_id in known
        ]
        steering = [
            SteeringRecord(r.day, r.partner_id, r.site_id, r.event, r.decisions)
            for r in s.scalars(sq)
            if r.partner_id in known
        ]
    kinds = {sid: site.kind.value for sid, site in plane.snapshot.sites.items()}
    found = {r.partner for r in traffic} | {r.partner for r in steering}
    return [partner_traffic(p, first, last, traffic, steering, kinds) for p in sorted(found)]


def _render(
    request: Request,
    viewer: Viewer,
    plane: ControlPlane,
    appliance_id: str,
    form: FormState | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    a = scope.appliance_or_404(viewer, plane, appliance_id)
    now = plane.clock()
    snap = plane.health.update([a.id], now)  # its status observed now
    a = snap.appliances.get(a.id, a)
    site = snap.sites.get(a.site_id)
    partner = site.partner if site is not None else None
    health = plane.health
    status = health.statuses.get(a.id)
    steering = health.steering(a.id, now)
    rib = snap.routes.learned.ribs.get(a.id)
    return page(
        request,
        viewer,
        "appliance.html",
        f"Appliance {a.id}",
        status_code=status_code,
        partner=partner,
        a=appliance_row(snap, a, status, now, steering),
        site_partner=partner,
        components=component_rows(status, now),
        turnup=turnup_view(
            health.turnups.get(a.id),
            health.turned_up_at.get(a.id),
            plane.settings.turnup_required,
            now,
        ),
        steering=steering_view(steering, health.maintenance.get(a.id), now),
        sessions=bgp_rows(plane.routes.sessions(a.id), now),
        routes_held=len(rib) if rib is not None else None,
        speaks_bgp=a.site_id in snap.speaking_sites,
        fill=fill_summary(_fill(plane, snap, a), now),
        traffic=site_traffic(_traffic(plane, partner, a.site_id, now), a.site_id),
        traffic_days=TRAFFIC_DAYS,
        active_connections=a.load.active_connections,
        presets=DURATION_PRESETS,
        other=OTHER,
        max_reason=MAX_REASON,
        effects={m.value: e for m, e in EFFECTS.items()},
        form=form or FormState(),
    )


@router.get("/portal/appliances/{appliance_id}", response_class=HTMLResponse)
def appliance_page(
    request: Request,
    appliance_id: str,
    viewer: CurrentViewer,
    plane: Plane,
    partner: str | None = None,
) -> Response:
    """``partner``: an operator who picks another partner in the layout's picker goes to
    that partner's home page (the appliance belongs to one partner)."""
    if viewer.is_operator and partner:
        a = scope.appliance_or_404(viewer, plane, appliance_id)
        site = plane.snapshot.sites.get(a.site_id)
        if site is None or site.partner != partner:
            return see_other(request, url("/portal/", partner=partner))
    return _render(request, viewer, plane, appliance_id)


def _stored_reason(reason: str, viewer: Viewer) -> str:
    who = f"by {viewer.email}"
    return f"{reason} ({who})" if reason else who


def _maintain(
    request: Request,
    viewer: Viewer,
    plane: ControlPlane,
    appliance_id: str,
    mode: MaintenanceMode,
    duration: str,
    duration_other: str,
    reason: str,
) -> Response:
    a = scope.appliance_or_404(viewer, plane, appliance_id)
    reason = " ".join(reason.split())
    chosen = duration_other.strip() or duration.strip()
    errors: dict[str, str] = {}
    if not chosen or chosen == OTHER:
        errors["duration"] = "Choose a duration, or type one under “Other duration” (e.g. 36h)."
    elif len(chosen) > MAX_DURATION_TEXT:
        errors["duration"] = f"A duration is at most {MAX_DURATION_TEXT} characters (e.g. 1d12h)."
    if len(reason) > MAX_REASON:
        errors["reason"] = f"At most {MAX_REASON} characters ({len(reason)} given)."
    if not errors:
        try:
            m = plane.set_maintenance(a.id, mode, chosen, _stored_reason(reason, viewer))
        except DurationError as exc:
            errors["duration"] = str(exc)
    if errors:
        values = {"duration": duration, "duration_other": duration_other, "reason": reason}
        state = FormState(mode.value, values, errors)
        return _render(request, viewer, plane, a.id, state, status_code=422)
    log.info("portal: %s %s %s for %s", viewer.email, mode.value, a.id, chosen)
    verb = "drained" if mode is MaintenanceMode.DRAIN else "disabled"
    return see_other(
        request,
        f"/portal/appliances/{a.id}",
        flash=(
            f"{a.id} {verb} for {format_duration(m.until - m.since)}, until "
            f"{format_time(m.until)}: {EFFECTS[mode]}."
        ),
    )


FormText = Annotated[str, Form()]


@router.post("/portal/appliances/{appliance_id}/enable", dependencies=[Csrf])
def enable(request: Request, appliance_id: str, viewer: CurrentViewer, plane: Plane) -> Response:
    a = scope.appliance_or_404(viewer, plane, appliance_id)
    ended = plane.end_maintenance(a.id)
    if ended is None:
        flash = f"{a.id} was neither drained nor disabled: nothing to end."
    else:
        log.info("portal: %s enabled %s (%s ended early)", viewer.email, a.id, ended.mode.value)
        st = plane.health.steering(a.id, plane.clock())
        flash = f"{a.id} enabled: its {ended.mode.value} ended. Steering: {describe_steering(st)}"
        if not st.new_sessions:
            flash += f" ({st.reason})"
        flash += "."
    return see_other(request, f"/portal/appliances/{a.id}", flash=flash)


# after /enable: the routes are matched in order
@router.post("/portal/appliances/{appliance_id}/{mode}", dependencies=[Csrf])
def maintain(
    request: Request,
    appliance_id: str,
    mode: str,
    viewer: CurrentViewer,
    plane: Plane,
    duration: FormText = "",
    duration_other: FormText = "",
    reason: FormText = "",
) -> Response:
    """Drain or disable (``mode``) for a duration."""
    if mode not in (MaintenanceMode.DRAIN.value, MaintenanceMode.DISABLE.value):
        scope.appliance_or_404(viewer, plane, appliance_id)  # another's appliance: 404 first
        raise NotFound("no such action")
    return _maintain(
        request,
        viewer,
        plane,
        appliance_id,
        MaintenanceMode(mode),
        duration,
        duration_other,
        reason,
    )
