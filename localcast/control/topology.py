"""The topology file: partners, sites and appliances, validated, and the plan to apply it.

A topology file (TOML, see ``examples/topology.toml``) is the desired state
of the fleet. Applying it is idempotent and declarative: entities in the
file are created or updated, entities missing from it are removed, and
applying the same file twice changes nothing. Every validation error names
the field (``sites[2].tz: unknown IANA time zone 'Europe/Pariss'``).

Fill fields: a site's ``fill_window`` (``"HH:MM-HH:MM"`` site-local, default
``02:00-14:00``, may wrap midnight) and ``region`` (the popularity feed it
shares with other sites; default its own id); an appliance's ``class``
(``storage``, ``flash``, ``small``: its fill rate cap, see
:data:`localcast.core.fillwindow.APPLIANCE_CLASSES`) and ``fill_mbps`` (an
override of that cap).

This module is pure: parsing, validation and :func:`plan` (the diff between
the state in the database and the file). The repository executes plans.
"""

from __future__ import annotations

import ipaddress
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from localcast.control.validation import describe
from localcast.core.fillwindow import APPLIANCE_CLASSES, parse_window
from localcast.core.fleet import SiteKind

Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
GB = 10**9
MBIT = 10**6
DEFAULT_FILL_WINDOW = "02:00-14:00"
DEFAULT_CLASS = "storage"
T = TypeVar("T")


class TopologyError(ValueError):
    """The topology file is unreadable or invalid; one line per problem, naming the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartnerSpec(_Strict):
    name: Ident
    asns: list[Annotated[int, Field(ge=1, le=4294967295)]] = []


class SiteSpec(_Strict):
    id: Ident
    kind: SiteKind
    partner: str | None = None
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    tz: str
    prefixes: list[str] = []
    region: Ident | None = None
    fill_window: str = DEFAULT_FILL_WINDOW

    @field_validator("tz")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("prefixes")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        out = []
        for i, p in enumerate(value):
            try:
                out.append(str(ipaddress.ip_network(p, strict=True)))
            except ValueError as exc:
                raise ValueError(f"[{i}] {p!r} is not a network prefix: {exc}") from exc
        return out

    @field_validator("fill_window")
    @classmethod
    def _window(cls, value: str, info: ValidationInfo) -> str:
        parse_window(value, str(info.data.get("tz") or "UTC"))  # ValueError names the problem
        return value.strip()


class ApplianceSpec(_Strict):
    """An appliance; ``class`` in the file is ``appliance_class`` here (a Python keyword)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: Ident
    site: str
    url: str
    disk_gb: float = Field(gt=0)
    gbps: float = Field(gt=0)
    drained: bool = False
    appliance_class: str = Field(default=DEFAULT_CLASS, alias="class")
    fill_mbps: float | None = Field(default=None, gt=0, le=10**6, allow_inf_nan=False)

    @field_validator("appliance_class")
    @classmethod
    def _known_class(cls, value: str) -> str:
        if value not in APPLIANCE_CLASSES:
            known = ", ".join(sorted(APPLIANCE_CLASSES))
            raise ValueError(f"unknown appliance class {value!r} (known: {known})")
        return value

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} must be http(s)://host[:port]")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"{value!r}: bad port") from exc
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{value!r} must be a base URL without path or query")
        return f"{parts.scheme}://{parts.netloc}"


class TopologySpec(_Strict):
    partners: list[PartnerSpec] = []
    sites: list[SiteSpec] = []
    appliances: list[ApplianceSpec] = []


def _cross_check(spec: TopologySpec) -> list[str]:
    """Problems pydantic cannot see: duplicates and references between sections."""
    errors: list[str] = []
    for section, ids in (
        ("partners", [p.name for p in spec.partners]),
        ("sites", [s.id for s in spec.sites]),
        ("appliances", [a.id for a in spec.appliances]),
    ):
        seen: set[str] = set()
        for i, ident in enumerate(ids):
            if ident in seen:
                key = "name" if section == "partners" else "id"
                errors.append(f"{section}[{i}].{key}: duplicate {ident!r}")
            seen.add(ident)
    partners = {p.name for p in spec.partners}
    sites = {s.id: s for s in spec.sites}
    for i, s in enumerate(spec.sites):
        if s.partner is not None and s.partner not in partners:
            known = ", ".join(sorted(partners)) or "none"
            errors.append(f"sites[{i}].partner: unknown partner {s.partner!r} (declared: {known})")
        if s.kind in (SiteKind.EMBEDDED, SiteKind.PNI) and s.partner is None:
            errors.append(f"sites[{i}].partner: a {s.kind} site needs its ISP partner")
        if s.kind in (SiteKind.EMBEDDED, SiteKind.PNI) and not s.prefixes:
            errors.append(
                f"sites[{i}].prefixes: a {s.kind} site serves only its prefixes; none given"
            )
    for i, a in enumerate(spec.appliances):
        if a.site not in sites:
            known = ", ".join(sorted(sites)) or "none"
            errors.append(f"appliances[{i}].site: unknown site {a.site!r} (declared: {known})")
    return errors


def parse_topology(data: Mapping[str, Any], where: str = "") -> TopologySpec:
    """Validate a topology document (already parsed TOML or JSON)."""
    try:
        spec = TopologySpec.model_validate(data)
    except ValidationError as exc:
        raise TopologyError(describe(exc, where)) from exc
    problems = _cross_check(spec)
    if problems:
        raise TopologyError("\n".join(where + p for p in problems))
    return spec


def load_topology(path: Path) -> TopologySpec:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise TopologyError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TopologyError(f"{path}: {exc}") from exc
    return parse_topology(data, f"{path}: ")


# --- the declarative state and the plan ------------------------------------------------------


@dataclass(frozen=True)
class PartnerState:
    name: str
    asns: frozenset[int]


@dataclass(frozen=True)
class SiteState:
    id: str
    kind: str
    partner: str | None
    lat: float
    lon: float
    tz: str
    prefixes: frozenset[str]
    region: str | None = None
    fill_window: str = DEFAULT_FILL_WINDOW


@dataclass(frozen=True)
class ApplianceConfig:
    id: str
    site: str
    url: str
    disk_bytes: int
    gbps: float
    drained: bool
    appliance_class: str = DEFAULT_CLASS
    fill_bps: float | None = None


@dataclass(frozen=True)
class FleetConfig:
    """The configured part of the fleet, as stored or as desired."""

    partners: Mapping[str, PartnerState]
    sites: Mapping[str, SiteState]
    appliances: Mapping[str, ApplianceConfig]


def desired_state(spec: TopologySpec) -> FleetConfig:
    return FleetConfig(
        partners={p.name: PartnerState(p.name, frozenset(p.asns)) for p in spec.partners},
        sites={
            s.id: SiteState(
                s.id,
                s.kind.value,
                s.partner,
                s.lat,
                s.lon,
                s.tz,
                frozenset(s.prefixes),
                s.region,
                s.fill_window,
            )
            for s in spec.sites
        },
        appliances={
            a.id: ApplianceConfig(
                a.id,
                a.site,
                a.url,
                int(a.disk_gb * GB),
                a.gbps,
                a.drained,
                a.appliance_class,
                None if a.fill_mbps is None else a.fill_mbps * MBIT,
            )
            for a in spec.appliances
        },
    )


@dataclass(frozen=True)
class Changes(Generic[T]):
    create: tuple[T, ...] = ()
    update: tuple[T, ...] = ()
    remove: tuple[str, ...] = ()
    unchanged: int = 0


@dataclass(frozen=True)
class TopologyPlan:
    partners: Changes[PartnerState] = field(default_factory=Changes)
    sites: Changes[SiteState] = field(default_factory=Changes)
    appliances: Changes[ApplianceConfig] = field(default_factory=Changes)

    @property
    def empty(self) -> bool:
        return not any(
            c.create or c.update or c.remove for c in (self.partners, self.sites, self.appliances)
        )

    def summary(self) -> dict[str, dict[str, list[str]]]:
        def names(c: Changes[Any]) -> dict[str, list[str]]:
            key = "name" if c is self.partners else "id"
            return {
                "created": [getattr(x, key) for x in c.create],
                "updated": [getattr(x, key) for x in c.update],
                "removed": list(c.remove),
            }

        return {
            "partners": names(self.partners),
            "sites": names(self.sites),
            "appliances": names(self.appliances),
        }


def _diff(current: Mapping[str, T], desired: Mapping[str, T]) -> Changes[T]:
    create = tuple(v for k, v in sorted(desired.items()) if k not in current)
    update = tuple(v for k, v in sorted(desired.items()) if k in current and current[k] != v)
    remove = tuple(sorted(k for k in current if k not in desired))
    unchanged = sum(1 for k, v in desired.items() if current.get(k) == v)
    return Changes(create, update, remove, unchanged)


def plan(current: FleetConfig, desired: FleetConfig) -> TopologyPlan:
    """What to change so that the stored fleet becomes ``desired``."""
    return TopologyPlan(
        partners=_diff(current.partners, desired.partners),
        sites=_diff(current.sites, desired.sites),
        appliances=_diff(current.appliances, desired.appliances),
    )
