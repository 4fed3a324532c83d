"""Views and profiles: where each profile stopped in each title (the seed's ``views``).

* ``PUT /v1/views/{profile_id}/{title_id}``  ``{offset_s, platform, client_time?}``
  record an offset; newest write wins, stale writes are answered, not applied
* ``GET /v1/views/{profile_id}/{title_id}``  the stored view and its resume point (404 if none)
* ``PUT /v1/profiles/{profile_id}`` ``{name}`` / ``GET /v1/profiles/{profile_id}``

Profiles are created on their first view if not created explicitly.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from localcast.control.deps import Plane
from localcast.control.errors import NotFound
from localcast.control.schemas import ProfileOut, ProfilePut, ViewOut, ViewPut
from localcast.core.views import ViewRecord, resume_point
from localcast.media.manifest import TITLE_ID_RE

router = APIRouter()
ProfileId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
TitleId = Annotated[str, Path(pattern=TITLE_ID_RE.pattern)]


def _out(plane: Plane, record: ViewRecord) -> ViewOut:
    entry = plane.snapshot.catalog.get(record.title_id)
    if entry is None:
        raise NotFound(f"unknown title {record.title_id!r}")
    resume = resume_point(record.offset_s, entry.manifest)
    return ViewOut(
        profile_id=record.profile_id,
        title_id=record.title_id,
        offset_s=record.offset_s,
        platform=record.platform,
        client_time=record.client_time,
        updated_at=record.updated_at,
        resume_offset_s=resume.offset_s,
        resume_reason=resume.reason,
    )


@router.put("/v1/views/{profile_id}/{title_id}", response_model=ViewOut)
def put_view(profile_id: ProfileId, title_id: TitleId, body: ViewPut, plane: Plane) -> ViewOut:
    verdict = plane.put_view(profile_id, title_id, body.offset_s, body.platform, body.client_time)
    out = _out(plane, verdict.record)
    return out.model_copy(update={"applied": verdict.applied, "reason": verdict.reason})


@router.get("/v1/views/{profile_id}/{title_id}", response_model=ViewOut)
def get_view(profile_id: ProfileId, title_id: TitleId, plane: Plane) -> ViewOut:
    if title_id not in plane.snapshot.catalog:
        raise NotFound(f"unknown title {title_id!r}")
    record = plane.get_view(profile_id, title_id)
    if record is None:
        raise NotFound(f"no view of {title_id!r} by profile {profile_id!r}")
    return _out(plane, record)


@router.put("/v1/profiles/{profile_id}", response_model=ProfileOut)
def put_profile(profile_id: ProfileId, body: ProfilePut, plane: Plane) -> ProfileOut:
    row = plane.put_profile(profile_id, body.name)
    return ProfileOut(id=row.id, name=row.name, created_at=row.created_at.timestamp())


@router.get("/v1/profiles/{profile_id}", response_model=ProfileOut)
def get_profile(profile_id: ProfileId, plane: Plane) -> ProfileOut:
    row = plane.get_profile(profile_id)
    if row is None:
        raise NotFound(f"unknown profile {profile_id!r}")
    return ProfileOut(id=row.id, name=row.name, created_at=row.created_at.timestamp())
