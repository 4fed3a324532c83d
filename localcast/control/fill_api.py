"""Fill routes: releases, planning, the agent's manifest and reports, progress, links, stats.

* ``PUT    /v1/titles/{id}/release``   admin; ``{release_at, expected_sessions, regions?}``
  -> the release (placed ahead of ``release_at``: see ``core.forecast``)
* ``DELETE /v1/titles/{id}/release``   admin; 204
* ``POST   /v1/fill/plan``             admin; plan now -> day, manifests changed, churn
* ``GET    /v1/appliances/{id}/fill``  appliance credential -> the fill manifest: window,
  rates, escalation, titles with files and ranked sources with fill-signed base URLs
  (see ``control.fill_manifest``); 409 for an origin appliance, 503 before the first plan
* ``POST   /v1/appliances/{id}/fill/report``  appliance credential;
  ``{state, alarm?, transfers: [{title_id, name, source_id, bytes, completed_at}]}``
  -> ``{ok, stored, duplicates}`` (a retried report is not counted twice)
* ``GET    /v1/fill/progress``         per site and appliance: wanted vs held, state, alarm
* ``GET    /v1/fill/links?detail=true`` bytes and file crossings per link (source site -> site)
* ``GET    /v1/steering/stats``        playback decisions by outcome since start
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response

from localcast.control.credentials import bearer
from localcast.control.deps import Admin, FleetReader, Plane
from localcast.control.fill_schemas import (
    FillPlanOut,
    FillReport,
    FillReportOut,
    ReleaseOut,
    ReleasePut,
    release_out,
)
from localcast.core.forecast import Release

router = APIRouter()
Authorization = Annotated[str | None, Header()]


@router.put("/v1/titles/{title_id}/release", response_model=ReleaseOut, dependencies=[Admin])
def put_release(title_id: str, body: ReleasePut, plane: Plane) -> ReleaseOut:
    release = Release(
        title_id=title_id,
        release_at=body.release_at,
        expected_sessions=body.expected_sessions,
        regions=None if body.regions is None else tuple(dict.fromkeys(body.regions)),
    )
    plane.set_release(release)
    return release_out(release)


@router.delete("/v1/titles/{title_id}/release", status_code=204, dependencies=[Admin])
def delete_release(title_id: str, plane: Plane) -> Response:
    plane.clear_release(title_id)
    return Response(status_code=204)


@router.post("/v1/fill/plan", response_model=FillPlanOut, dependencies=[Admin])
def plan(plane: Plane) -> FillPlanOut:
    out = plane.plan_fills()
    return FillPlanOut(
        day=out.day,
        generated_at=out.generated_at,
        appliances=out.appliances,
        changed=list(out.changed),
        churn=out.churn,
        left_out={k: list(v) for k, v in out.left_out.items()},
        seconds=round(out.seconds, 6),
    )


@router.get("/v1/appliances/{appliance_id}/fill")
def fill_manifest(
    appliance_id: str, plane: Plane, authorization: Authorization = None
) -> dict[str, Any]:
    return plane.fill_manifest(appliance_id, bearer(authorization))


@router.post("/v1/appliances/{appliance_id}/fill/report", response_model=FillReportOut)
def fill_report(
    appliance_id: str, body: FillReport, plane: Plane, authorization: Authorization = None
) -> FillReportOut:
    stored, duplicates = plane.fill_report(appliance_id, bearer(authorization), body)
    return FillReportOut(ok=True, stored=stored, duplicates=duplicates)


@router.get("/v1/fill/progress", dependencies=[FleetReader])
def fill_progress(plane: Plane) -> dict[str, Any]:
    return plane.fills.progress(plane.clock())


@router.get("/v1/fill/links", dependencies=[FleetReader])
def fill_links(plane: Plane, detail: bool = True) -> list[dict[str, Any]]:
    return plane.fills.links(detail)


@router.get("/v1/steering/stats", dependencies=[FleetReader])
async def steering_stats(plane: Plane) -> dict[str, Any]:
    return plane.fills.stats.view()
