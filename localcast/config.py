"""Where a node keeps its state, and how that is configured.

Everything a Localcast node writes (origin store, appliance content store,
database, keys, logs) lives under one home directory: ``$LOCALCAST_HOME``,
default ``~/.localcast``. Each path can be overridden in ``config.toml`` in
that home, and every command takes ``--home`` to point elsewhere.

This module only resolves paths and reads the file; it starts nothing.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

HOME_ENV = "LOCALCAST_HOME"
CONFIG_NAME = "config.toml"


class ConfigError(ValueError):
    """The configuration file is unreadable or holds a value of the wrong kind."""


@dataclass(frozen=True)
class Paths:
    """The on-disk layout of one node. Relative entries are relative to ``home``."""

    home: Path
    origin: Path
    store: Path
    database: Path
    keys: Path
    logs: Path
    run: Path

    def ensure(self) -> None:
        for p in (self.home, self.origin, self.store, self.logs, self.run):
            p.mkdir(parents=True, exist_ok=True)
        self.database.parent.mkdir(parents=True, exist_ok=True)
        self.keys.parent.mkdir(parents=True, exist_ok=True)


_DEFAULT_LAYOUT = {
    "origin": "origin",
    "store": "store",
    "database": "control.db",
    "keys": "keys.json",
    "logs": "logs",
    "run": "run",
}


@dataclass(frozen=True)
class Config:
    """A node's configuration: its paths plus the raw sections of config.toml."""

    paths: Paths
    sections: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        value = self.sections.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{CONFIG_NAME}: [{name}] must be a table")
        return value


def default_home() -> Path:
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".localcast"


def load_config(home: Path | None = None, **overrides: Path | None) -> Config:
    """Read ``config.toml`` under ``home`` (if present) and resolve every path.

    ``overrides`` (``origin=...``, ``store=...``) win over the file, which wins
    over the default layout.
    """
    home = (home or default_home()).expanduser().resolve()
    sections: dict[str, Any] = {}
    cfg_file = home / CONFIG_NAME
    if cfg_file.exists():
        try:
            sections = tomllib.loads(cfg_file.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg_file}: {exc}") from exc
    path_section = sections.get("paths", {})
    if not isinstance(path_section, dict):
        raise ConfigError(f"{cfg_file}: [paths] must be a table")
    unknown = set(path_section) - set(_DEFAULT_LAYOUT)
    if unknown:
        raise ConfigError(f"{cfg_file}: unknown key(s) in [paths]: {', '.join(sorted(unknown))}")
    resolved: dict[str, Path] = {}
    for f in fields(Paths):
        if f.name == "home":
            continue
        chosen = overrides.get(f.name) or path_section.get(f.name) or _DEFAULT_LAYOUT[f.name]
        if not isinstance(chosen, str | Path):
            raise ConfigError(f"{cfg_file}: paths.{f.name} must be a string")
        p = Path(chosen).expanduser()
        resolved[f.name] = p if p.is_absolute() else home / p
    return Config(paths=Paths(home=home, **resolved), sections=sections)
