"""Shared fixtures: a node home per test, tool discovery."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from media_fixtures import ingest_once

from localcast.config import Config, load_config
from localcast.media.manifest import TitleManifest

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


@pytest.fixture(scope="session")
def ingested_title(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, TitleManifest]:
    """A real title, ingested once per session: 20 s 1280x720 testsrc2 + sine, 4 rungs
    (240p-720p), 4 s segments. Returns (config of its node home, manifest); the title
    is at ``config.paths.origin / manifest.title_id``. Read-only: do not modify it."""
    require_tool("ffmpeg")
    require_tool("ffprobe")
    return ingest_once(tmp_path_factory.mktemp("ingested"))
