"""Appliance routes: registration, heartbeats, and the fleet as operators see it.

* ``POST /v1/appliances/{id}/register``   bearer credential; ``{software?, heartbeat_interval_s?,
  base_url?}`` -> the interval to beat at; a full inventory is expected next
* ``POST /v1/appliances/{id}/heartbeat``  bearer credential; ``{interval_s?, load, disk,
  inventory?}`` where inventory is ``{"kind": "full", seq, titles: {title: [files]}}`` or
  ``{"kind": "delta", seq, base_seq, added, removed}``; a delta whose ``base_seq`` is not
  the stored sequence is not applied and the answer says ``resync: true``
  and an optional ``serving: {requests, errors_5xx, window_s}`` (the appliance's recent
  answers, for the status's serving component)
* ``GET /v1/appliances``, ``GET /v1/appliances/{id}``  state, liveness, status (observed
  now: ``status``, ``since``, ``reason``, ``reasons``, ``components`` each with its held
  ``level``, last ``observed`` level, ``reason`` and ``since``), ``turnup`` (``required``,
  ``turned_up``, ``turned_up_at``, ``checks``), ``maintenance`` (null when none recorded)
  and ``steering`` (``new_sessions``, ``keep_in_flight``, ``reason``)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from localcast.control.credentials import bearer
from localcast.control.deps import FleetReader, Plane
from localcast.control.errors import NotFound
from localcast.control.health import status_reason
from localcast.control.schemas import (
    ApplianceOut,
    CheckOut,
    ComponentOut,
    FullInventory,
    HeartbeatRequest,
    HeartbeatResponse,
    LoadOut,
    MaintenanceOut,
    RegisterRequest,
    RegisterResponse,
    SteeringOut,
    TurnupOut,
)
from localcast.control.service import ControlPlane, HeartbeatReport, InventoryReport
from localcast.core.fleet import Appliance, ApplianceState, FleetSnapshot, Load, SteeringState
from localcast.core.health import liveness
from localcast.core.inventory import Delta, freeze
from localcast.core.maintenance import Maintenance, effective
from localcast.core.status import ServingWindow, StatusLevel

router = APIRouter()
Authorization = Annotated[str | None, Header()]


@router.post("/v1/appliances/{appliance_id}/register", response_model=RegisterResponse)
def register(
    appliance_id: str,
    plane: Plane,
    body: RegisterRequest | None = None,
    authorization: Authorization = None,
) -> RegisterResponse:
    body = body or RegisterRequest()
    reg = plane.register(
        appliance_id,
        bearer(authorization),
        software=body.software,
        interval_s=body.heartbeat_interval_s,
        advertised_url=body.base_url,
    )
    return RegisterResponse(
        appliance_id=reg.appliance_id,
        site_id=reg.site_id,
        base_url=reg.base_url,
        heartbeat_interval_s=reg.heartbeat_interval_s,
        inventory_seq=reg.inventory_seq,
        reason=reg.reason,
    )


def _inventory(body: HeartbeatRequest) -> InventoryReport | None:
    inv = body.inventory
    if inv is None:
        return None
    if isinstance(inv, FullInventory):
        return InventoryReport(seq=inv.seq, full=freeze(inv.titles))
    delta = Delta(freeze(inv.added), freeze(inv.removed))
    return InventoryReport(seq=inv.seq, delta=delta, base_seq=inv.base_seq)


@router.post("/v1/appliances/{appliance_id}/heartbeat", response_model=HeartbeatResponse)
def heartbeat(
    appliance_id: str,
    body: HeartbeatRequest,
    plane: Plane,
    authorization: Authorization = None,
) -> HeartbeatResponse:
    report = HeartbeatReport(
        interval_s=body.interval_s,
        load=Load(
            active_connections=body.load.active_connections,
            egress_bps=body.load.egress_bps,
            disk_used_bytes=body.disk.used_bytes,
            disk_free_bytes=body.disk.free_bytes,
        ),
        inventory=_inventory(body),
        serving=(
            ServingWindow(body.serving.requests, body.serving.errors_5xx, body.serving.window_s)
            if body.serving is not None
            else None
        ),
    )
    out = plane.heartbeat(appliance_id, bearer(authorization), report)
    return HeartbeatResponse(
        inventory_seq=out.inventory_seq,
        resync=out.resync,
        alive=out.alive,
        status=out.status.level.value,
        reason=out.status.reason,
        titles_complete=out.titles_complete,
        snapshot_version=out.snapshot_version,
    )


def maintenance_out(m: Maintenance, now: float) -> MaintenanceOut:
    return MaintenanceOut(
        mode=m.mode.value,
        since=m.since,
        until=m.until,
        reason=m.reason,
        active=effective(m, now) is not None,
        description=m.describe(now),
    )


def steering_out(st: SteeringState) -> SteeringOut:
    return SteeringOut(
        new_sessions=st.new_sessions, keep_in_flight=st.keep_in_flight, reason=st.reason
    )


def appliance_out(
    plane: ControlPlane, snap: FleetSnapshot, a: Appliance, now: float
) -> ApplianceOut:
    health = plane.health
    held = health.statuses.get(a.id)
    last = a.health.last_heartbeat_at
    site = snap.sites.get(a.site_id)
    components = []
    if held is not None:
        recover = held.observed.recover_after_s
        components = [
            ComponentOut(
                name=c.name.value,
                level=c.level.value,
                observed=c.observed.level.value,
                reason=c.reason(recover, held.at),
                since=c.since,
            )
            for c in held.components
        ]
    turnup = health.turnups.get(a.id)
    turned_at = health.turned_up_at.get(a.id)
    m = health.maintenance.get(a.id)
    return ApplianceOut(
        id=a.id,
        site_id=a.site_id,
        kind=site.kind.value if site else "",
        base_url=a.base_url,
        state=a.state.value,
        drained=a.drained,
        alive=liveness(a.health, now).alive,
        status=(held.level if held is not None else StatusLevel.UNKNOWN).value,
        reason=(
            status_reason(a, held)
            if held is not None
            else "registered: its first heartbeat is due"
            if a.state is ApplianceState.REGISTERED
            else "not observed yet"
        ),
        last_heartbeat_age_s=None if last is None else round(now - last, 3),
        heartbeat_interval_s=a.health.interval_s,
        inventory_titles=len(a.titles),
        inventory_files=a.file_count,
        gbps=a.gbps,
        disk_bytes=a.disk_bytes,
        load=LoadOut(
            active_connections=a.load.active_connections,
            egress_bps=a.load.egress_bps,
            disk_used_bytes=a.load.disk_used_bytes,
            disk_free_bytes=a.load.disk_free_bytes,
        ),
        since=held.since if held is not None else None,
        reasons=list(held.reasons) if held is not None else [],
        components=components,
        turnup=TurnupOut(
            required=plane.settings.turnup_required,
            turned_up=turned_at is not None,
            turned_up_at=turned_at,
            reason=(
                turnup.reason
                if turnup is not None
                else "turned up"
                if turned_at is not None
                else "not registered yet"
            ),
            checks=[
                CheckOut(check=c.check.value, outcome=c.outcome.value, reason=c.reason)
                for c in (turnup.checks if turnup is not None else ())
            ],
        ),
        maintenance=maintenance_out(m, now) if m is not None else None,
        steering=steering_out(health.steering(a.id, now)),
    )


@router.get("/v1/appliances", response_model=list[ApplianceOut], dependencies=[FleetReader])
def list_appliances(plane: Plane) -> list[ApplianceOut]:
    now = plane.clock()
    snap = plane.health.refresh(now)  # statuses move with time: observe them now
    return [appliance_out(plane, snap, a, now) for _, a in sorted(snap.appliances.items())]


@router.get(
    "/v1/appliances/{appliance_id}", response_model=ApplianceOut, dependencies=[FleetReader]
)
def get_appliance(appliance_id: str, plane: Plane) -> ApplianceOut:
    now = plane.clock()
    snap = plane.health.refresh(now)
    a = snap.appliances.get(appliance_id)
    if a is None:
        raise NotFound(f"unknown appliance {appliance_id!r}")
    return appliance_out(plane, snap, a, now)
