"""The simulation file: topology, catalog, demand, run settings; validated, naming the field.

A simulation file is TOML (or JSON, by extension) with these sections
(``examples/sim.toml`` shows each one)::

    [sim]        seed, start (UTC date), days, slot_minutes, warm_start
    [steering]   max_pathways, per_site (as the control plane's settings)
    [fill]       forecast and placement parameters, escalation (as the control plane's)
    [[isps]]     id, asn, tz, transit_gbps, and [[isps.prefixes]]: prefix, subscribers,
                 region, tz (the subscribers: where demand comes from)
    [[sites]]    id, kind, isp, lat, lon, tz, region, fill_window, prefixes (as BGP
                 would deliver them to the site's appliances), bgp, link_gbps,
                 local_pref, med, and [[sites.appliances]]: count, disk_tb, gbps,
                 class, fill_mbps
    [catalog]    the catalog model (titles, renditions, durations, releases) or ``file``
    [demand]     the demand model (Zipf exponent, diurnal curve, regional skew, launch
                 spike) or ``trace`` (a CSV of sessions)
    [planner]    defaults of ``localcast sim plan``

Link capacities: an embedded site's ``link_gbps`` is the ISP's link to it, a PNI
site's its private interconnect, an IX site's the port of *each* ISP at that
exchange; an ISP's ``transit_gbps`` its transit. Unset means unlimited.

Every problem is reported on one line naming the field
(``sites[3].appliances[0].disk_tb: Input should be greater than 0``).
"""

from __future__ import annotations

import ipaddress
import json
import tomllib
import zoneinfo
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from localcast.control.topology import Ident
from localcast.control.validation import describe
from localcast.core.fillwindow import APPLIANCE_CLASSES, parse_window
from localcast.core.fleet import SiteKind

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]

#: Local-hour weights of viewing, midnight first: a quiet morning, an evening peak at 21:00.
DEFAULT_DIURNAL: tuple[float, ...] = (
    0.60, 0.36, 0.21, 0.13, 0.09, 0.08, 0.11, 0.18, 0.27, 0.35, 0.42, 0.48,
    0.55, 0.58, 0.58, 0.61, 0.69, 0.84, 1.04, 1.30, 1.56, 1.72, 1.55, 1.06,
)  # fmt: skip


class SimConfigError(ValueError):
    """The simulation file is unreadable or invalid; one line per problem, naming the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network prefix: {exc}") from exc


# --- run settings ---------------------------------------------------------------------------


class RunSpec(_Strict):
    seed: int = 1
    start: date = date(2025, 3, 3)  # the first simulated UTC day
    days: int = Field(default=2, ge=1, le=60)
    slot_minutes: int = 15  # steering batch and capacity period
    warm_start: bool = True  # appliances start with the plan of the day before, filled
    prior_days: int = Field(default=1, ge=0, le=28)  # expected demand as history before start

    @field_validator("slot_minutes")
    @classmethod
    def _divides_hour(cls, value: int) -> int:
        if value <= 0 or 60 % value:
            raise ValueError(
                f"must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60), not {value}"
            )
        return value

    @property
    def start_ts(self) -> float:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC).timestamp()


class SteeringSpec(_Strict):
    max_pathways: int = Field(default=4, ge=1, le=16)
    per_site: int = Field(default=2, ge=1, le=16)


class FillSpec(_Strict):
    """The control plane's fill settings (same names, same defaults)."""

    half_life_days: Positive = 3.0
    lookback_days: int = Field(default=28, ge=0)
    release_lead_days: float = Field(default=2.0, ge=0)
    release_boost_days: float = Field(default=7.0, ge=0)
    fill_ratio: float = Field(default=0.9, gt=0, le=1)
    replica_share: float = Field(default=0.05, gt=0, le=1)
    floor_sessions: float = Field(default=0.0, ge=0)
    wait_s: Positive = 600.0
    max_tier_sites: int = Field(default=2, ge=0, le=64)


# --- topology -------------------------------------------------------------------------------


class PrefixSpec(_Strict):
    """Subscribers behind one prefix of an ISP."""

    prefix: str
    subscribers: int = Field(ge=0)
    region: Ident | None = None  # popularity region (default: the ISP's id)
    tz: str | None = None  # their local time (default: the ISP's)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return _network(value)

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return value if value is None else _zone(value)


class IspSpec(_Strict):
    id: Ident
    asn: int = Field(default=64500, ge=1, le=4294967295)
    tz: str = "UTC"
    transit_gbps: Positive | None = None
    prefixes: list[PrefixSpec] = []

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _zone(value)


class ApplianceGroupSpec(_Strict):
    """``count`` identical appliances; ``class`` in the file is ``appliance_class`` here."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    count: int = Field(default=1, ge=0, le=1000)
    disk_tb: Positive
    gbps: Positive
    appliance_class: str = Field(default="storage", alias="class")
    fill_mbps: Positive | None = None

    @field_validator("appliance_class")
    @classmethod
    def _known_class(cls, value: str) -> str:
        if value not in APPLIANCE_CLASSES:
            known = ", ".join(sorted(APPLIANCE_CLASSES))
            raise ValueError(f"unknown appliance class {value!r} (known: {known})")
        return value


class SiteSpec(_Strict):
    id: Ident
    kind: SiteKind
    isp: Ident | None = None
    lat: float = Field(default=0.0, ge=-90, le=90)
    lon: float = Field(default=0.0, ge=-180, le=180)
    tz: str = "UTC"
    region: Ident | None = None
    fill_window: str = "02:00-14:00"
    prefixes: list[str] = []  # what the site's appliances hear (bgp) or are configured with
    bgp: bool = True  # the appliances learn ``prefixes`` over BGP (else: configured prefixes)
    local_pref: int = Field(default=100, ge=0, le=4294967295)
    med: int = Field(default=0, ge=0, le=4294967295)
    link_gbps: Positive | None = None
    appliances: list[ApplianceGroupSpec] = []

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _zone(value)

    @field_validator("prefixes")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        out = []
        for i, p in enumerate(value):
            try:
                out.append(_network(p))
            except ValueError as exc:
                raise ValueError(f"[{i}] {exc}") from exc
        return out

    @field_validator("fill_window")
    @classmethod
    def _window(cls, value: str, info: ValidationInfo) -> str:
        parse_window(value, str(info.data.get("tz") or "UTC"))
        return value.strip()


# --- catalog --------------------------------------------------------------------------------


class RenditionSpec(_Strict):
    id: Ident
    mbps: Positive  # average bit rate
    share: float = Field(default=0.0, ge=0)  # share of sessions played at this rendition
    height: int = Field(default=720, ge=0)


DEFAULT_LADDER = (
    RenditionSpec(id="v360", mbps=0.75, share=0.10, height=360),
    RenditionSpec(id="v540", mbps=1.6, share=0.15, height=540),
    RenditionSpec(id="v720", mbps=3.0, share=0.30, height=720),
    RenditionSpec(id="v1080", mbps=5.8, share=0.40, height=1080),
    RenditionSpec(id="v2160", mbps=16.0, share=0.05, height=2160),
)


class ReleaseSpec(_Strict):
    title: str  # a title id of the catalog
    day: int = Field(ge=0)  # simulated day index (0: the first day)
    hour: float = Field(default=0.0, ge=0, lt=24)  # UTC
    boost: float = Field(default=30.0, ge=0)  # launch-day demand: (1 + boost) x its base
    announce: float = Field(default=1.0, ge=0)  # the expected figure given to the forecast


class CatalogSpec(_Strict):
    titles: int = Field(default=1000, ge=1, le=1_000_000)
    duration_minutes: tuple[float, float] = (25.0, 140.0)  # uniform range
    renditions: list[RenditionSpec] = list(DEFAULT_LADDER)
    audio_kbps: float = Field(default=128.0, ge=0)
    releases: list[ReleaseSpec] = []
    releases_per_day: int = Field(default=0, ge=0)  # further releases drawn per day
    file: Path | None = None  # a real catalog: JSON list of title manifests, or an origin dir

    @field_validator("duration_minutes")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = value
        if not 0 < lo <= hi:
            raise ValueError(f"must be [min, max] minutes with 0 < min <= max, not {list(value)}")
        return value

    @field_validator("renditions")
    @classmethod
    def _ladder(cls, value: list[RenditionSpec]) -> list[RenditionSpec]:
        if not value:
            raise ValueError("at least one rendition")
        ids = [r.id for r in value]
        if len(set(ids)) != len(ids):
            raise ValueError(f"rendition ids must differ: {ids}")
        return value


# --- demand ---------------------------------------------------------------------------------


class DemandSpec(_Strict):
    zipf: float = Field(default=0.9, ge=0, le=4)
    sessions_per_subscriber: float = Field(default=1.0, ge=0)  # per day
    session_minutes: Positive = 45.0  # mean (exponential), capped at the title's length
    diurnal: list[float] = list(DEFAULT_DIURNAL)  # 24 local-hour weights
    regional_skew: float = Field(default=0.3, ge=0, le=4)  # lognormal spread between regions
    launch_days: Positive = 3.0  # a release's spike decays with this time constant
    trace: Path | None = None  # CSV: time, client_ip, title, bitrate[, duration_s]

    @field_validator("diurnal")
    @classmethod
    def _curve(cls, value: list[float]) -> list[float]:
        if len(value) != 24:
            raise ValueError(f"24 local-hour weights needed, got {len(value)}")
        if any(v < 0 for v in value) or sum(value) <= 0:
            raise ValueError("weights must be >= 0 and not all 0")
        return value


class PlannerSpec(_Strict):
    isp: Ident | None = None  # default: the only ISP, or the first
    target: float = Field(default=0.95, gt=0, le=1)  # share of the ISP's bytes served inside
    at: Literal["peak", "day"] = "peak"
    disk_tb: list[Positive] = [25.0, 50.0, 100.0, 200.0]
    max_per_site: int = Field(default=8, ge=1, le=64)
    appliance_gbps: Positive = 100.0
    appliance_class: str = "storage"
    eligibility_gbps: Positive = 5.0  # peak traffic an ISP needs for embedded appliances


class SimSpec(_Strict):
    sim: RunSpec = RunSpec()
    steering: SteeringSpec = SteeringSpec()
    fill: FillSpec = FillSpec()
    isps: list[IspSpec] = []
    sites: list[SiteSpec] = []
    catalog: CatalogSpec = CatalogSpec()
    demand: DemandSpec = DemandSpec()
    planner: PlannerSpec = PlannerSpec()


def _cross_check(spec: SimSpec) -> list[str]:
    errors: list[str] = []
    for section, ids in (
        ("isps", [i.id for i in spec.isps]),
        ("sites", [s.id for s in spec.sites]),
    ):
        seen: set[str] = set()
        for i, ident in enumerate(ids):
            if ident in seen:
                errors.append(f"{section}[{i}].id: duplicate {ident!r}")
            seen.add(ident)
    isps = {i.id for i in spec.isps}
    known = ", ".join(sorted(isps)) or "none"
    for i, s in enumerate(spec.sites):
        if s.isp is not None and s.isp not in isps:
            errors.append(f"sites[{i}].isp: unknown ISP {s.isp!r} (declared: {known})")
        if s.kind in (SiteKind.EMBEDDED, SiteKind.PNI):
            if s.isp is None:
                errors.append(f"sites[{i}].isp: a {s.kind} site needs its ISP")
            if not s.prefixes:
                errors.append(f"sites[{i}].prefixes: a {s.kind} site serves only its prefixes")
        if s.kind is not SiteKind.ORIGIN and not any(g.count for g in s.appliances):
            errors.append(f"sites[{i}].appliances: a {s.kind} site needs at least one appliance")
    if not any(s.kind is SiteKind.ORIGIN for s in spec.sites):
        errors.append("sites: no origin site (every title must be servable from somewhere)")
    nets: dict[str, str] = {}
    for i, isp in enumerate(spec.isps):
        for j, p in enumerate(isp.prefixes):
            if p.prefix in nets:
                errors.append(
                    f"isps[{i}].prefixes[{j}].prefix: {p.prefix} already given for {nets[p.prefix]}"
                )
            nets[p.prefix] = isp.id
    if spec.demand.trace is None and not any(p.subscribers for i in spec.isps for p in i.prefixes):
        errors.append("isps: no subscribers (give isps[].prefixes[].subscribers, or demand.trace)")
    if spec.catalog.file is None:
        n = spec.catalog.titles
        for i, r in enumerate(spec.catalog.releases):
            if not _is_model_title(r.title, n):
                errors.append(
                    f"catalog.releases[{i}].title: {r.title!r} is not a title of the model "
                    f"({title_id(0)} .. {title_id(n - 1)})"
                )
    if spec.planner.isp is not None and spec.planner.isp not in isps:
        errors.append(f"planner.isp: unknown ISP {spec.planner.isp!r} (declared: {known})")
    if spec.planner.appliance_class not in APPLIANCE_CLASSES:
        errors.append(f"planner.appliance_class: unknown class {spec.planner.appliance_class!r}")
    return errors


def title_id(i: int) -> str:
    """The model catalog's i-th title id."""
    return f"t{i:06d}"


def _is_model_title(text: str, n: int) -> bool:
    return len(text) == 7 and text[0] == "t" and text[1:].isdigit() and int(text[1:]) < n


def parse_sim(data: Any, where: str = "", base: Path | None = None) -> SimSpec:
    """Validate a simulation document (parsed TOML or JSON); relative paths from ``base``."""
    try:
        spec = SimSpec.model_validate(data)
    except ValidationError as exc:
        raise SimConfigError(describe(exc, where)) from exc
    if base is not None:
        spec = _resolve_paths(spec, base)
    problems = _cross_check(spec)
    if problems:
        raise SimConfigError("\n".join(where + p for p in problems))
    return spec


def _resolve_paths(spec: SimSpec, base: Path) -> SimSpec:
    cat, dem = spec.catalog, spec.demand
    if cat.file is not None and not cat.file.is_absolute():
        cat = cat.model_copy(update={"file": base / cat.file})
    if dem.trace is not None and not dem.trace.is_absolute():
        dem = dem.model_copy(update={"trace": base / dem.trace})
    return spec.model_copy(update={"catalog": cat, "demand": dem})


def load_sim(path: Path) -> SimSpec:
    """Read and validate a simulation file (``.json``: JSON, anything else: TOML)."""
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise SimConfigError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SimConfigError(f"{path}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SimConfigError(f"{path}: {exc}") from exc
    return parse_sim(data, f"{path}: ", path.parent)
