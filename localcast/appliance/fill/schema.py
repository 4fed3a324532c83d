"""The fill agent's wire formats: the manifest it reads and the report it sends (pydantic).

``GET /v1/appliances/{id}/fill`` answers a :class:`FillManifest`;
``POST /v1/appliances/{id}/fill/report`` takes a :class:`FillReport`. Unknown
fields are ignored (the control plane may add some); everything the agent
relies on is checked, and names that become file paths (title ids, file
names) must match the store's patterns, so a manifest can never make the
agent write outside ``<store>/<title_id>/<sha256>.<ext>``.

A manifest that is not JSON or does not validate raises :class:`ManifestError`
from :func:`parse_manifest`: the agent logs it and asks again later.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from localcast.core.fillsources import FillSource, Holding, SourceKind
from localcast.core.inventory import FILE_NAME_RE
from localcast.media.manifest import TITLE_ID_RE


class ManifestError(ValueError):
    """The control plane's answer is not a usable fill manifest."""


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WindowIn(_In):
    spec: str = ""
    tz: str = "UTC"
    open: bool
    next_open_at: float | None = None
    closes_at: float | None = None


class EscalationIn(_In):
    wait_s: float = Field(default=600.0, ge=0)
    max_tier_sites: int = Field(default=2, ge=0)


class FileIn(_In):
    name: str
    size: int = Field(ge=0)

    @field_validator("name")
    @classmethod
    def _content_name(cls, v: str) -> str:
        if not FILE_NAME_RE.match(v):
            raise ValueError("must be <sha256>.<ext> with a known extension")
        return v

    @property
    def sha256(self) -> str:
        return self.name.split(".", 1)[0]


class SourceIn(_In):
    appliance_id: str = Field(min_length=1)
    site_id: str = ""
    kind: SourceKind
    holding: Holding
    hop: int = Field(ge=0)
    base_url: str

    @field_validator("base_url")
    @classmethod
    def _http_base(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v if v.endswith("/") else v + "/"


class TitleIn(_In):
    title_id: str
    urgent: bool = False
    files: tuple[FileIn, ...]
    sources: tuple[SourceIn, ...] = ()

    @field_validator("title_id")
    @classmethod
    def _title_id(cls, v: str) -> str:
        if not TITLE_ID_RE.match(v):
            raise ValueError(f"must match {TITLE_ID_RE.pattern}")
        return v


class FillManifest(_In):
    """What the control plane wants this appliance to hold, where from, and how fast."""

    appliance_id: str
    version: int = Field(ge=0)
    day: int = 0
    generated_at: float = 0.0
    window: WindowIn
    rate_bps: float = Field(ge=0)  # what to fill at now (0: do not fill)
    cap_bps: float = Field(default=0.0, ge=0)
    capacity_bytes: int = Field(default=0, ge=0)  # 0: no limit beyond the filesystem's
    escalation: EscalationIn = EscalationIn()
    titles: tuple[TitleIn, ...] = ()

    @property
    def title_ids(self) -> frozenset[str]:
        return frozenset(t.title_id for t in self.titles)

    def source(self, s: SourceIn) -> FillSource:
        return FillSource(s.appliance_id, s.site_id, s.kind, s.holding, s.hop)


def parse_manifest(content: bytes, appliance_id: str) -> FillManifest:
    """The manifest in ``content``, checked to be this appliance's; :class:`ManifestError` else."""
    try:
        manifest = FillManifest.model_validate_json(content)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise ManifestError(f"invalid fill manifest: {errors}{more}") from exc
    if manifest.appliance_id != appliance_id:
        raise ManifestError(
            f"fill manifest is for {manifest.appliance_id!r}, this appliance is {appliance_id!r}"
        )
    return manifest


class FillState(StrEnum):
    FILLING = "filling"  # transferring
    IDLE = "idle"  # everything in the manifest is in the store
    WAITING = "waiting"  # files missing, every source waiting (planned leader or backoff)
    CLOSED = "closed"  # outside the fill window, nothing urgent
    ALARM = "alarm"  # stopped: disk full (see ``alarm``)


class TransferOut(BaseModel):
    """Bytes of one stored file that came from one source (a file resumed elsewhere has two)."""

    title_id: str
    name: str
    source_id: str
    bytes: int
    completed_at: float


class FillReport(BaseModel):
    state: FillState
    alarm: str | None = None
    transfers: list[TransferOut] = Field(default_factory=list)
