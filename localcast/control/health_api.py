"""Health routes: drain / disable / enable an appliance, and a partner's alerts.

* ``POST   /v1/appliances/{id}/maintenance``  admin; ``{mode: "drain"|"disable",
  duration: "3h".."30d", reason?}`` -> the maintenance and the steering state it
  gives; a duration that does not parse or lies outside 3 hours .. 30 days is a
  422 naming ``duration``; unknown appliance 404
* ``DELETE /v1/appliances/{id}/maintenance``  admin; enable: ends the drain or
  disable now (``maintenance`` is the ended record, null when there was none)
* ``GET    /v1/partners/{id}/alerts``  the partner's actionable items, errors first:
  ``[{severity, kind, appliance_id, site_id, message, since}]``; unknown partner 404
"""

from __future__ import annotations

from fastapi import APIRouter

from localcast.control.appliances_api import maintenance_out, steering_out
from localcast.control.deps import Admin, PartnerReader, Plane
from localcast.control.errors import Invalid
from localcast.control.schemas import AlertOut, MaintenanceAnswer, MaintenanceRequest
from localcast.core.maintenance import DurationError

router = APIRouter()


@router.post(
    "/v1/appliances/{appliance_id}/maintenance",
    response_model=MaintenanceAnswer,
    dependencies=[Admin],
)
def start_maintenance(
    appliance_id: str, body: MaintenanceRequest, plane: Plane
) -> MaintenanceAnswer:
    try:
        m = plane.set_maintenance(appliance_id, body.mode, body.duration, body.reason)
    except DurationError as exc:
        raise Invalid(f"duration: {exc}", field="duration") from exc
    now = plane.clock()
    return MaintenanceAnswer(
        appliance_id=appliance_id,
        maintenance=maintenance_out(m, now),
        steering=steering_out(plane.health.steering(appliance_id, now)),
        snapshot_version=plane.snapshot.version,
    )


@router.delete(
    "/v1/appliances/{appliance_id}/maintenance",
    response_model=MaintenanceAnswer,
    dependencies=[Admin],
)
def end_maintenance(appliance_id: str, plane: Plane) -> MaintenanceAnswer:
    m = plane.end_maintenance(appliance_id)
    now = plane.clock()
    return MaintenanceAnswer(
        appliance_id=appliance_id,
        maintenance=maintenance_out(m, now) if m is not None else None,
        steering=steering_out(plane.health.steering(appliance_id, now)),
        snapshot_version=plane.snapshot.version,
    )


@router.get(
    "/v1/partners/{partner_id}/alerts", response_model=list[AlertOut], dependencies=[PartnerReader]
)
def partner_alerts(partner_id: str, plane: Plane) -> list[AlertOut]:
    return [
        AlertOut(
            severity=a.severity,
            kind=a.kind,
            appliance_id=a.appliance_id,
            site_id=a.site_id,
            message=a.message,
            since=a.since,
        )
        for a in plane.alerts(partner_id)
    ]
