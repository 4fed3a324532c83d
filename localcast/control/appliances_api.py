"""Appliance routes: registration, heartbeats, and the fleet as operators see it.

* ``POST /v1/appliances/{id}/register``   bearer credential; ``{software?, heartbeat_interval_s?,
  base_url?}`` -> the interval to beat at; a full inventory is expected next
* ``POST /v1/appliances/{id}/heartbeat``  bearer credential; ``{interval_s?, load, disk,
  inventory?}`` where inventory is ``{"kind": "full", seq, titles: {title: [files]}}`` or
  ``{"kind": "delta", seq, base_seq, added, removed}``; a delta whose ``base_seq`` is not
  the stored sequence is not applied and the answer says ``resync: true``
* ``GET /v1/appliances``, ``GET /v1/appliances/{id}``  state, liveness, status and reason
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from localcast.control.credentials import bearer
from localcast.control.deps import Plane
from localcast.control.errors import NotFound
from localcast.control.schemas import (
    ApplianceOut,
    FullInventory,
    HeartbeatRequest,
    HeartbeatResponse,
    LoadOut,
    RegisterRequest,
    RegisterResponse,
)
from localcast.control.service import HeartbeatReport, InventoryReport
from localcast.core.fleet import Appliance, FleetSnapshot, Load
from localcast.core.health import liveness, status
from localcast.core.inventory import Delta, freeze

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


def appliance_out(snap: FleetSnapshot, a: Appliance, now: float) -> ApplianceOut:
    st = status(a, now)
    last = a.health.last_heartbeat_at
    site = snap.sites.get(a.site_id)
    return ApplianceOut(
        id=a.id,
        site_id=a.site_id,
        kind=site.kind.value if site else "",
        base_url=a.base_url,
        state=a.state.value,
        drained=a.drained,
        alive=liveness(a.health, now).alive,
        status=st.level.value,
        reason=st.reason,
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
    )


@router.get("/v1/appliances", response_model=list[ApplianceOut])
async def list_appliances(plane: Plane) -> list[ApplianceOut]:
    snap, now = plane.snapshot, plane.clock()
    return [appliance_out(snap, a, now) for _, a in sorted(snap.appliances.items())]


@router.get("/v1/appliances/{appliance_id}", response_model=ApplianceOut)
async def get_appliance(appliance_id: str, plane: Plane) -> ApplianceOut:
    snap = plane.snapshot
    a = snap.appliances.get(appliance_id)
    if a is None:
        raise NotFound(f"unknown appliance {appliance_id!r}")
    return appliance_out(snap, a, plane.clock())
