"""Shared fixtures: a node home per test, tool discovery."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from localcast.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path: Path) -> Config:
    cfg = load_config(tmp_path / "home")
    cfg.paths.ensure()
    return cfg


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make deps`")
    return path
