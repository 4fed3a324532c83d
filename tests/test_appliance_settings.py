"""`[appliance]` in config.toml -> ApplianceSettings."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcast.appliance.settings import settings_from_config
from localcast.config import Config, ConfigError, load_config


def _config(tmp_path: Path, text: str) -> Config:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(text)
    return load_config(home)


def test_defaults_come_from_paths(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "")
    s = settings_from_config(cfg)
    assert (s.listen, s.port, s.cors_origins) == ("127.0.0.1", 8080, ())
    assert s.store == cfg.paths.store and s.keys == cfg.paths.keys
    assert s.access_log == str(cfg.paths.logs / "appliance-access.log")
    assert s.worker_count >= 1


def test_section_values_and_overrides(tmp_path: Path) -> None:
    cfg = _config(
        tmp_path,
        '[appliance]\nlisten = "::1"\nport = 9000\nworkers = 3\n'
        'cors_origins = ["https://a.example/", "*"]\naccess_log = "logs/x.log"\n'
        "idle_timeout_s = 5\n",
    )
    s = settings_from_config(cfg, log_json=True)
    assert (s.listen, s.port, s.workers, s.idle_timeout_s) == ("::1", 9000, 3, 5)
    assert s.cors_origins == ("https://a.example/", "*")
    assert s.access_log == str(cfg.paths.home / "logs" / "x.log")
    assert s.log_json
    assert s.with_overrides(port=1, listen=None).port == 1
    assert s.with_overrides(port=1, listen=None).listen == "::1"


@pytest.mark.parametrize(
    "text",
    ['[appliance]\nport = "80"\n', "[appliance]\nbogus = 1\n", "[appliance]\nworkers = true\n"],
)
def test_bad_section_is_a_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        settings_from_config(_config(tmp_path, text))


def test_bgp_table_belongs_to_the_speaker_not_the_data_plane(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "[appliance]\nport = 9001\n[appliance.bgp]\nlocal_as = 65010\n")
    assert settings_from_config(cfg).port == 9001
