"""Catalog routes: the titles the control plane can steer to.

* ``GET  /v1/titles``            every title, with the appliances holding it complete
* ``GET  /v1/titles/{title_id}`` one title (404 if unknown), with its scheduled release and
  the popularity regions where it is live (see ``control.fill_progress.live_regions``)
* ``POST /v1/titles``            import an ingest manifest (JSON body); 201 new, 200 replaced,
  422 naming the manifest field that is wrong

Reads come from the snapshot, never the database.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from localcast.control.deps import Admin, Plane
from localcast.control.errors import Invalid, NotFound
from localcast.control.fill_schemas import release_out
from localcast.control.schemas import RenditionOut, TitleImported, TitleOut
from localcast.control.service import ControlPlane
from localcast.core.fleet import FleetSnapshot
from localcast.media.manifest import ManifestError, TitleManifest

router = APIRouter()


def title_out(snap: FleetSnapshot, title_id: str, plane: ControlPlane | None = None) -> TitleOut:
    m = snap.catalog[title_id].manifest
    release = plane.fills.release(title_id) if plane is not None else None
    live = plane.fills.live_regions().get(title_id, ()) if plane is not None else ()
    return TitleOut(
        id=m.title_id,
        name=m.name,
        duration_s=m.duration_s,
        segment_duration_s=m.segment_duration_s,
        total_bytes=m.total_bytes,
        files=sum(1 for _ in m.files()),
        renditions=[
            RenditionOut(
                id=r.id,
                kind=r.kind,
                codec=r.codec,
                bandwidth=r.bandwidth,
                width=r.width,
                height=r.height,
                segments=len(r.segments),
            )
            for r in m.renditions
        ],
        appliances_holding=sorted(a.id for a in snap.appliances.values() if title_id in a.titles),
        release=None if release is None else release_out(release),
        live_regions=list(live),
    )


@router.get("/v1/titles", response_model=list[TitleOut])
async def list_titles(plane: Plane) -> list[TitleOut]:
    snap = plane.snapshot
    return [title_out(snap, t, plane) for t in sorted(snap.catalog)]


@router.get("/v1/titles/{title_id}", response_model=TitleOut)
async def get_title(title_id: str, plane: Plane) -> TitleOut:
    snap = plane.snapshot
    if title_id not in snap.catalog:
        raise NotFound(f"unknown title {title_id!r}")
    return title_out(snap, title_id, plane)


@router.post("/v1/titles", response_model=TitleImported, dependencies=[Admin])
def import_title(
    plane: Plane, response: Response, manifest: Annotated[dict[str, Any], Body()]
) -> TitleImported:
    try:
        parsed = TitleManifest.from_json(manifest)
    except ManifestError as exc:
        field = str(exc).split(":", 1)[0]
        raise Invalid(str(exc), field=field) from exc
    created = plane.import_manifests([parsed])[parsed.title_id]
    response.status_code = 201 if created else 200
    return TitleImported(
        title_id=parsed.title_id, created=created, snapshot_version=plane.snapshot.version
    )
