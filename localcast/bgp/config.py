"""The ``[appliance.bgp]`` section of a node's config.toml, validated (pydantic).

Example::

    [appliance.bgp]
    local_as = 65001
    router_id = "192.0.2.10"
    listen = ["127.0.0.1", "::1"]    # one address or a list; loopback in tests
    port = 1179                      # 179 in production
    hold_time = 90                   # default for every neighbor
    error_handling = "revised"       # RFC 7606 (default) or "strict" (RFC 4271)

    [[appliance.bgp.neighbors]]
    address = "127.0.0.2"
    remote_as = 65002
    description = "isp-rtr-1"
    passive = true                   # wait for the router to connect (default false)
    port = 179                       # where to connect when active
    local_address = "127.0.0.1"      # source address when active
    hold_time = 9
    families = ["ipv4", "ipv6"]
    allowed_origins = [65002, "AS65010"]   # origin ASes registered to the partner
    max_prefixes = 1000000
    max_length_v4 = 24
    max_length_v6 = 48
    allow_loopback = false
    rpki_file = "rpki/vrps.json"     # relative to the node home; JSON as rpki-client exports
    error_handling = "strict"        # override the speaker's
    connect_retry_time = 5           # seconds between connection attempts when active
    idle_hold_time = 1               # seconds in Idle after a session ends, before restarting

Errors name the field (``appliance.bgp.neighbors[0].remote_as: ...``). This
module validates and builds the per-neighbor :class:`ImportPolicy`; it
starts nothing.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from localcast.bgp.policy import ImportPolicy
from localcast.bgp.prefix import Afi, Safi
from localcast.bgp.rpki import RpkiFileError, VrpTable, load_vrps
from localcast.config import CONFIG_NAME, Config, ConfigError


def _asn(value: Any) -> Any:
    if isinstance(value, str) and value.upper().startswith("AS"):
        return int(value[2:])
    return value


Asn = Annotated[int, BeforeValidator(_asn), Field(ge=1, le=2**32 - 1)]
HoldTime = Annotated[int, Field(ge=0, le=65535)]
FAMILIES = {"ipv4": (Afi.IPV4, Safi.UNICAST), "ipv6": (Afi.IPV6, Safi.UNICAST)}


def _hold_time(value: int | None) -> int | None:
    if value in (1, 2):
        raise ValueError("hold time must be 0 or at least 3 seconds (RFC 4271)")
    return value


def _address(value: str) -> str:
    return str(ipaddress.ip_address(value))


class NeighborConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    remote_as: Asn
    description: str = ""
    passive: bool = False
    port: int = Field(default=179, ge=1, le=65535)
    local_address: str | None = None
    hold_time: HoldTime | None = None  # None: the speaker's
    families: tuple[Literal["ipv4", "ipv6"], ...] = ("ipv4", "ipv6")
    allowed_origins: tuple[Asn, ...] | None = None  # None: any origin
    max_prefixes: int | None = Field(default=None, ge=1)
    max_length_v4: int = Field(default=24, ge=1, le=32)
    max_length_v6: int = Field(default=48, ge=1, le=128)
    allow_loopback: bool = False
    rpki_file: Path | None = None
    error_handling: Literal["revised", "strict"] | None = None  # None: the speaker's
    connect_retry_time: float = Field(default=5.0, gt=0, le=3600)
    idle_hold_time: float = Field(default=1.0, ge=0, le=3600)

    _check_hold = field_validator("hold_time")(_hold_time)

    @field_validator("address", "local_address")
    @classmethod
    def _is_address(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    @field_validator("families")
    @classmethod
    def _some_family(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one of ipv4, ipv6")
        return tuple(dict.fromkeys(value))

    @property
    def family_set(self) -> frozenset[tuple[int, int]]:
        return frozenset(FAMILIES[f] for f in self.families)


class BgpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    local_as: Asn
    router_id: str
    listen: tuple[str, ...] = ("127.0.0.1",)
    port: int = Field(default=179, ge=0, le=65535)
    hold_time: HoldTime = 90
    error_handling: Literal["revised", "strict"] = "revised"
    neighbors: tuple[NeighborConfig, ...] = ()

    _check_hold = field_validator("hold_time")(_hold_time)

    @field_validator("listen", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("listen")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(v) for v in value)

    @field_validator("router_id")
    @classmethod
    def _router_id(cls, value: str) -> str:
        rid = ipaddress.IPv4Address(value)
        if int(rid) == 0:
            raise ValueError("router_id must not be 0.0.0.0")
        return str(rid)

    @model_validator(mode="after")
    def _unique_neighbors(self) -> BgpConfig:
        seen: set[str] = set()
        for n in self.neighbors:
            if n.address in seen:
                raise ValueError(f"neighbor {n.address} is configured twice")
            seen.add(n.address)
        return self

    def hold_time_of(self, neighbor: NeighborConfig) -> int:
        return self.hold_time if neighbor.hold_time is None else neighbor.hold_time

    def revised_errors(self, neighbor: NeighborConfig) -> bool:
        """RFC 7606 error handling for this neighbor (else plain RFC 4271)."""
        return (neighbor.error_handling or self.error_handling) == "revised"

    def neighbor(self, address: str) -> NeighborConfig | None:
        address = _address(address)
        return next((n for n in self.neighbors if n.address == address), None)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def parse_bgp_config(raw: dict[str, Any], home: Path | None = None) -> BgpConfig:
    """Validate a ``[appliance.bgp]`` table; relative ``rpki_file`` paths resolve under home."""
    try:
        cfg = BgpConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            lines.append(f"{CONFIG_NAME}: appliance.bgp{_where(tuple(err['loc']))}: {msg}")
        raise ConfigError("\n".join(lines)) from None
    if home is None:
        return cfg
    neighbors = tuple(
        n.model_copy(update={"rpki_file": home / n.rpki_file})
        if n.rpki_file is not None and not n.rpki_file.is_absolute()
        else n
        for n in cfg.neighbors
    )
    return cfg.model_copy(update={"neighbors": neighbors})


def bgp_config(config: Config) -> BgpConfig | None:
    """The node's ``[appliance.bgp]``, or None when it has none."""
    raw = config.section("appliance").get("bgp")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{CONFIG_NAME}: [appliance.bgp] must be a table")
    return parse_bgp_config(raw, config.paths.home)


def import_policy(
    bgp: BgpConfig, neighbor: NeighborConfig, rpki_cache: dict[Path, VrpTable] | None = None
) -> ImportPolicy:
    """The neighbor's policy; reads its RPKI file (once per path with ``rpki_cache``)."""
    rpki = None
    if neighbor.rpki_file is not None:
        cache = rpki_cache if rpki_cache is not None else {}
        if neighbor.rpki_file not in cache:
            try:
                cache[neighbor.rpki_file] = load_vrps(neighbor.rpki_file)
            except RpkiFileError as exc:
                raise ConfigError(f"neighbor {neighbor.address}: rpki_file: {exc}") from None
        rpki = cache[neighbor.rpki_file]
    return ImportPolicy(
        local_as=bgp.local_as,
        peer_as=neighbor.remote_as,
        allowed_origins=(
            frozenset(neighbor.allowed_origins) if neighbor.allowed_origins is not None else None
        ),
        max_length_v4=neighbor.max_length_v4,
        max_length_v6=neighbor.max_length_v6,
        allow_loopback=neighbor.allow_loopback,
        max_prefixes=neighbor.max_prefixes,
        rpki=rpki,
    )
