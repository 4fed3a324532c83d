"""The control plane API's request and response bodies (pydantic models).

Requests are validated here (FastAPI answers 422 naming the field); the
appliance reporter builds its bodies from the same models, so both ends
agree. Times are unix seconds; sizes bytes; rates bits per second.
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

from localcast.core.inventory import is_content_file
from localcast.media.manifest import TITLE_ID_RE

Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
TitleId = Annotated[str, StringConstraints(pattern=TITLE_ID_RE.pattern)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


def _content_files(names: list[str]) -> list[str]:
    for i, name in enumerate(names):
        if not is_content_file(name):
            raise ValueError(f"[{i}] {name!r} is not a <sha256>.<ext> file name")
    return names


FileNames = Annotated[list[str], AfterValidator(_content_files)]
FilesByTitle = dict[TitleId, FileNames]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- playback ----------------------------------------------------------------------------------


class Device(_Request):
    codecs: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = Field(
        default=None,
        min_length=1,
        description='Codec prefixes the device decodes, e.g. ["avc1", "mp4a"]',
    )
    max_height: int | None = Field(default=None, gt=0, le=8640)


class PlaybackRequest(_Request):
    title_id: TitleId
    profile_id: Ident
    device: Device = Device()
    platform: Annotated[str, StringConstraints(max_length=64)] | None = None


class PathwayOut(BaseModel):
    id: str  # HLS PATHWAY-ID / DASH serviceLocation
    appliance_id: str
    site_id: str
    kind: str
    base_url: str  # signed: appliance URL + /<token>/<title_id>/
    appliance_url: str
    rank: int
    rule: str
    reason: str


class PlaybackResponse(BaseModel):
    session_id: str
    multivariant_url: str
    mpd_url: str
    steering_url: str
    pathways: list[PathwayOut]
    resume_offset_s: float
    resume_reason: str
    expires_at: int
    client_ip: str
    client_ip_reason: str
    snapshot_version: int


# --- views -------------------------------------------------------------------------------------


class ViewPut(_Request):
    offset_s: Finite
    platform: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "unknown"
    client_time: Finite | None = Field(
        default=None, description="Client timestamp or sequence number; older writes are ignored"
    )


class ViewOut(BaseModel):
    profile_id: str
    title_id: str
    offset_s: float
    platform: str
    client_time: float | None
    updated_at: float
    resume_offset_s: float
    resume_reason: str
    applied: bool | None = None
    reason: str | None = None


class ProfilePut(_Request):
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]


class ProfileOut(BaseModel):
    id: str
    name: str
    created_at: float


# --- appliances --------------------------------------------------------------------------------


class RegisterRequest(_Request):
    software: Annotated[str, StringConstraints(max_length=64)] | None = None
    heartbeat_interval_s: float | None = Field(default=None, ge=0.05, le=3600)
    base_url: str | None = None


class RegisterResponse(BaseModel):
    appliance_id: str
    site_id: str
    base_url: str
    heartbeat_interval_s: float
    inventory_seq: int
    reason: str


class LoadIn(_Request):
    active_connections: int = Field(default=0, ge=0)
    egress_bps: float = Field(default=0.0, ge=0, allow_inf_nan=False)


class DiskIn(_Request):
    used_bytes: int = Field(default=0, ge=0)
    free_bytes: int = Field(default=0, ge=0)


class ServingIn(_Request):
    """Requests the appliance answered over the last ``window_s`` seconds, and how many 5xx."""

    requests: int = Field(ge=0)
    errors_5xx: int = Field(ge=0)
    window_s: float = Field(gt=0, le=86400, allow_inf_nan=False)

    @model_validator(mode="after")
    def _errors_within_requests(self) -> ServingIn:
        if self.errors_5xx > self.requests:
            raise ValueError("errors_5xx must not exceed requests")
        return self


class FullInventory(_Request):
    kind: Literal["full"] = "full"
    seq: int = Field(ge=1)
    titles: FilesByTitle


class DeltaInventory(_Request):
    kind: Literal["delta"] = "delta"
    seq: int = Field(ge=1)
    base_seq: int = Field(ge=0)
    added: FilesByTitle = {}
    removed: FilesByTitle = {}


class HeartbeatRequest(_Request):
    interval_s: float | None = Field(default=None, ge=0.05, le=3600)
    load: LoadIn = LoadIn()
    disk: DiskIn = DiskIn()
    inventory: Annotated[FullInventory | DeltaInventory, Field(discriminator="kind")] | None = None
    sent_at: Finite | None = None
    serving: ServingIn | None = None


class HeartbeatResponse(BaseModel):
    inventory_seq: int
    resync: bool
    alive: bool
    status: str
    reason: str
    titles_complete: int
    snapshot_version: int


class LoadOut(BaseModel):
    active_connections: int
    egress_bps: float
    disk_used_bytes: int
    disk_free_bytes: int


class ComponentOut(BaseModel):
    """One part of an appliance's status: the level held (hysteresis) and the last one seen."""

    name: str
    level: str
    observed: str
    reason: str
    since: float


class CheckOut(BaseModel):
    check: str
    outcome: str
    reason: str


class TurnupOut(BaseModel):
    required: bool
    turned_up: bool
    turned_up_at: float | None
    reason: str
    checks: list[CheckOut]


class MaintenanceOut(BaseModel):
    mode: str
    since: float
    until: float
    reason: str
    active: bool
    description: str


class SteeringOut(BaseModel):
    new_sessions: bool
    keep_in_flight: bool
    reason: str


class ApplianceOut(BaseModel):
    id: str
    site_id: str
    kind: str
    base_url: str
    state: str
    drained: bool
    alive: bool
    status: str
    reason: str
    last_heartbeat_age_s: float | None
    heartbeat_interval_s: float
    inventory_titles: int
    inventory_files: int
    gbps: float
    disk_bytes: int
    load: LoadOut
    since: float | None = None  # when the status last changed
    reasons: list[str] = []  # "<component> <level>: <reason>" per component not OK
    components: list[ComponentOut] = []
    turnup: TurnupOut | None = None
    maintenance: MaintenanceOut | None = None
    steering: SteeringOut | None = None


class MaintenanceRequest(_Request):
    mode: Literal["drain", "disable"]
    duration: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description="3h .. 30d, e.g. 6h, 2d, 1d12h"
    )
    reason: Annotated[str, StringConstraints(max_length=255)] = ""


class MaintenanceAnswer(BaseModel):
    appliance_id: str
    maintenance: MaintenanceOut | None
    steering: SteeringOut
    snapshot_version: int


class AlertOut(BaseModel):
    severity: str  # error | warning
    kind: str  # appliance-down | bgp-down | route-inconsistency | fill-behind | disk-near-full
    appliance_id: str | None
    site_id: str
    message: str
    since: float | None


# --- catalog and topology ----------------------------------------------------------------------


class RenditionOut(BaseModel):
    id: str
    kind: str
    codec: str
    bandwidth: int
    width: int
    height: int
    segments: int


class ReleaseOut(BaseModel):
    title_id: str
    release_at: float
    expected_sessions: float
    regions: list[str] | None


class TitleOut(BaseModel):
    id: str
    name: str
    duration_s: float
    segment_duration_s: float
    total_bytes: int
    files: int
    renditions: list[RenditionOut]
    appliances_holding: list[str]
    release: ReleaseOut | None = None
    live_regions: list[str] = []


class TitleImported(BaseModel):
    title_id: str
    created: bool
    snapshot_version: int


class TopologyApplied(BaseModel):
    dry_run: bool
    changed: bool
    changes: dict[str, dict[str, list[str]]]
    credentials: dict[str, str]
    snapshot_version: int
