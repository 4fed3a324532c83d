"""The control plane's settings: the ``[control]`` section of config.toml, validated.

Example::

    [control]
    listen = "127.0.0.1"
    port = 8000
    database_url = "postgresql+psycopg://lc@db/localcast"   # default: SQLite at paths.database
    public_url = "http://cdn.example:8000"   # how players reach us (default: the request's)
    trusted_proxies = ["127.0.0.1"]          # peers whose X-Forwarded-For is believed
    heartbeat_interval_s = 5                 # appliances are told to beat this often
    session_ttl_s = 21600                    # sessions and the URL tokens they carry
    steering_ttl_s = 10                      # players reload the steering manifest this often
    max_pathways = 4
    per_site = 2
    admin_token = "..."                      # if set, topology/title writes need it as bearer
    geoip_database = "/var/lib/GeoLite2-City.mmdb"  # MaxMind-format file locating clients
    fill_wait_s = 600            # an agent waits this long per hop for a nearer planned copy
    fill_max_tier_sites = 2      # IX/PNI sites tried before the origin
    fill_ratio = 0.9             # placement uses at most this share of each appliance's disk
    fill_replica_share = 0.05    # a title with this share of a site's demand goes everywhere
    fill_floor_sessions = 0.0    # every catalog title's least demand (sessions/day); > 0 places
                                 # a small catalog like a demanded one (replicated)
    fill_token_ttl_s = 86400     # fill URLs handed to agents stay valid this long
    live_min_sites = 1           # a title is live in a region once this many of its sites...
    live_min_copies = 1          # ...hold it complete on at least this many appliances
    turnup_required = true       # a new appliance takes no sessions until its turn-up checks pass
    turnup_fill_share = 1.0      # share of its fill manifest's titles it must hold to turn up
    probe_timeout_s = 2.0        # the turn-up prober's HTTP timeout per request
    peeringdb_file = "peeringdb.json"  # PeeringDB export: where we peer (the portal's page)
    operator_asn = 64496         # our network in that export (needed when it has several)

Without ``geoip_database``, steering places a client at the site whose route
matched it best (see :mod:`localcast.core.decision`). Command-line options
override the file. Errors name the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from localcast.config import CONFIG_NAME, Config, ConfigError
from localcast.control.validation import describe
from localcast.core.clientip import parse_trusted

DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_PORT = 8000


class ControlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = DEFAULT_LISTEN
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    database_url: str | None = None
    public_url: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=3600)
    session_ttl_s: int = Field(default=6 * 3600, gt=0)
    steering_ttl_s: int = Field(default=10, ge=1, le=86400)
    max_pathways: int = Field(default=4, ge=1, le=16)
    per_site: int = Field(default=2, ge=1, le=16)
    refresh_interval_s: float = Field(default=1.0, gt=0, le=60)
    admin_token: str | None = Field(default=None, min_length=16)
    geoip_database: str | None = Field(default=None, min_length=1)
    fill_wait_s: float = Field(default=600.0, gt=0, le=7 * 86400)
    fill_max_tier_sites: int = Field(default=2, ge=0, le=64)
    fill_ratio: float = Field(default=0.9, gt=0, le=1)
    fill_replica_share: float = Field(default=0.05, gt=0, le=1)
    fill_floor_sessions: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    fill_token_ttl_s: int = Field(default=86400, ge=60, le=30 * 86400)
    live_min_sites: int = Field(default=1, ge=1)
    live_min_copies: int = Field(default=1, ge=1)
    turnup_required: bool = True
    turnup_fill_share: float = Field(default=1.0, gt=0, le=1)
    probe_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # the portal's peering page: a PeeringDB JSON export (a bad file shows on the page only)
    peeringdb_file: str | None = Field(default=None, min_length=1)
    operator_asn: int | None = Field(default=None, ge=1, le=4294967295)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_trusted(value)
        return value

    @field_validator("geoip_database")
    @classmethod
    def _geoip_database_is_a_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise ValueError(f"{value!r} is not a file (a MaxMind-format .mmdb database)")
        return str(Path(value).expanduser()) if value else value

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


def load_settings(config: Config, **overrides: Any) -> ControlSettings:
    """``[control]`` of ``config`` with the non-None ``overrides`` applied."""
    raw = dict(config.section("control"))
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ControlSettings.model_validate(raw)
    except ValidationError as exc:
        where = f"{config.paths.home / CONFIG_NAME} [control]."
        raise ConfigError(describe(exc, where)) from exc


def database_url(settings: ControlSettings, database_path: Path) -> str:
    """The configured URL, else SQLite at ``paths.database``."""
    return settings.database_url or f"sqlite:///{database_path}"
