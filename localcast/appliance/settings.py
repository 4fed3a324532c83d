"""An appliance's settings: defaults, then ``[appliance]`` in config.toml, then command options.

``config.toml``::

    [appliance]
    listen = "127.0.0.1"
    port = 8080
    workers = 2                  # 0 = one per core
    cors_origins = ["https://player.example"]   # or ["*"]
    access_log = "logs/appliance-access.log"    # relative to home; "-" stderr, "off"
    access_log_sample = 1        # log one request in N
    header_timeout_s = 10        # request head must arrive within this
    idle_timeout_s = 60          # keep-alive connection with no request
    send_timeout_s = 30          # a blocked write makes no progress for this long
    metrics_allow = ["127.0.0.0/8", "::1/128"]  # who may GET /metrics (else 403)
    metrics_dir = "run/metrics"  # every process's metrics snapshot (default <run>/metrics)

Paths to the store and keyring come from ``[paths]`` (``store``, ``keys``).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from localcast.config import CONFIG_NAME, Config, ConfigError
from localcast.metrics import metrics_dir

ACCESS_LOG_OFF = "off"
ACCESS_LOG_STDERR = "-"


@dataclass(frozen=True)
class ApplianceSettings:
    store: Path
    keys: Path
    listen: str = "127.0.0.1"
    port: int = 8080
    workers: int = 0  # 0: one per core
    cors_origins: tuple[str, ...] = ()
    access_log: str = ACCESS_LOG_OFF  # a path, "-" (stderr) or "off"
    access_log_sample: int = 1
    log_json: bool = False
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    send_timeout_s: float = 30.0
    max_header_bytes: int = 16 * 1024
    small_object_bytes: int = 64 * 1024
    small_cache_bytes: int = 64 << 20
    token_cache_s: float = 5.0
    refresh_interval_s: float = 2.0
    shutdown_grace_s: float = 5.0
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    metrics_dir: Path | None = None  # None: nothing published, /metrics shows this worker only
    traffic_dir: Path | None = None  # per client network counts for the reporter (<run>/traffic)
    contact_file: Path | None = None  # the reporter's last contact mark (<run>/control-contact)
    control_lost_after_s: float = 300.0  # no contact for longer: no new sessions (0: never)
    session_ttl_s: float = 6 * 3600.0  # the control plane's [control] session_ttl_s

    @property
    def metrics_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.metrics_allow)

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

    def with_overrides(self, **overrides: Any) -> ApplianceSettings:
        """Copy with every non-None override applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_TYPES: dict[str, type | tuple[type, ...]] = {
    "listen": str,
    "port": int,
    "workers": int,
    "cors_origins": list,
    "access_log": str,
    "access_log_sample": int,
    "header_timeout_s": (int, float),
    "idle_timeout_s": (int, float),
    "send_timeout_s": (int, float),
    "max_header_bytes": int,
    "small_object_bytes": int,
    "small_cache_bytes": int,
    "token_cache_s": (int, float),
    "refresh_interval_s": (int, float),
    "shutdown_grace_s": (int, float),
    "metrics_allow": list,
    "metrics_dir": str,
    "control_lost_after_s": (int, float),
    "session_ttl_s": (int, float),
}

#: The reporter's mark of its last successful heartbeat, under the node's run directory.
CONTACT_FILE = "control-contact"


# Tables inside [appliance] that belong to other parts of the node.
_SUBSECTIONS = {"bgp"}  # [appliance.bgp]: localcast.bgp.config


def settings_from_config(config: Config, log_json: bool = False) -> ApplianceSettings:
    """Defaults overlaid with the ``[appliance]`` section; the default access log is under logs."""
    section = config.section("appliance")
    known = {f.name for f in fields(ApplianceSettings)}
    values: dict[str, Any] = {}
    for key, value in section.items():
        if key in _SUBSECTIONS:
            continue
        if key not in _TYPES or key not in known:
            raise ConfigError(f"{CONFIG_NAME}: unknown key appliance.{key}")
        kind = _TYPES[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(f"{CONFIG_NAME}: appliance.{key} has the wrong type")
        values[key] = value
    if "cors_origins" in values:
        origins = values["cors_origins"]
        if not all(isinstance(o, str) for o in origins):
            raise ConfigError(f"{CONFIG_NAME}: appliance.cors_origins must be strings")
        values["cors_origins"] = tuple(origins)
    if "metrics_allow" in values:
        nets = values["metrics_allow"]
        try:
            if not all(isinstance(n, str) for n in nets):
                raise ValueError("not a string")
            for n in nets:
                ipaddress.ip_network(n, strict=False)
        except ValueError as exc:
            raise ConfigError(
                f"{CONFIG_NAME}: appliance.metrics_allow must be networks (CIDR): {exc}"
            ) from exc
        values["metrics_allow"] = tuple(nets)
    values["metrics_dir"] = metrics_dir(config)
    values["traffic_dir"] = config.paths.run / "traffic"
    values["contact_file"] = config.paths.run / CONTACT_FILE
    access_log = values.get("access_log", str(config.paths.logs / "appliance-access.log"))
    if access_log not in (ACCESS_LOG_OFF, ACCESS_LOG_STDERR):
        p = Path(access_log).expanduser()
        access_log = str(p if p.is_absolute() else config.paths.home / p)
    values["access_log"] = access_log
    return ApplianceSettings(
        store=config.paths.store, keys=config.paths.keys, log_json=log_json, **values
    )
