"""Request and response bodies of the fill API (releases, plans, agent reports).

Times are unix seconds, sizes bytes, rates bits/s. Errors name the field
(FastAPI's 422 body).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from localcast.control.schemas import Finite, Ident, ReleaseOut, TitleId
from localcast.core.forecast import Release
from localcast.core.inventory import is_content_file

__all__ = [
    "FillPlanOut",
    "FillReport",
    "FillReportOut",
    "ReleaseOut",
    "ReleasePut",
    "TransferIn",
    "release_out",
]
MAX_TRANSFERS = 10_000


def _content_file(name: str) -> str:
    if not is_content_file(name):
        raise ValueError(f"{name!r} is not a <sha256>.<ext> file name")
    return name


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReleasePut(_Request):
    release_at: Finite = Field(ge=0, description="Release time, unix seconds")
    expected_sessions: Finite = Field(ge=0, description="Expected sessions per day per region")
    regions: list[Ident] | None = Field(
        default=None, min_length=1, description="Popularity regions (default: every region)"
    )


def release_out(r: Release) -> ReleaseOut:
    return ReleaseOut(
        title_id=r.title_id,
        release_at=r.release_at,
        expected_sessions=r.expected_sessions,
        regions=None if r.regions is None else list(r.regions),
    )


class FillPlanOut(BaseModel):
    day: int
    generated_at: float
    appliances: int
    changed: list[str]
    churn: int
    left_out: dict[str, list[str]]
    seconds: float


class TransferIn(_Request):
    title_id: TitleId
    name: Annotated[str, AfterValidator(_content_file)]
    source_id: Ident
    bytes: int = Field(ge=0)
    completed_at: Finite = Field(ge=0)


class FillReport(_Request):
    state: Literal["filling", "idle", "waiting", "closed", "alarm"]
    alarm: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    transfers: list[TransferIn] = Field(default=[], max_length=MAX_TRANSFERS)

    @model_validator(mode="after")
    def _alarm_goes_with_its_state(self) -> FillReport:
        if self.state == "alarm" and self.alarm is None:
            raise ValueError('state "alarm" needs the alarm reason in "alarm"')
        if self.state != "alarm" and self.alarm is not None:
            raise ValueError(f'"alarm" is for state "alarm" only, not {self.state!r}')
        return self


class FillReportOut(BaseModel):
    ok: bool
    stored: int
    duplicates: int
