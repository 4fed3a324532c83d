"""Where the front-end libraries installed from npm (by `make deps`) are found.

They are not vendored into git: ``npm ci`` puts them under ``node_modules/``
at the repository root. ``LOCALCAST_NODE_MODULES`` points elsewhere (a
packaged install).
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"


def node_modules() -> Path:
    env = os.environ.get("LOCALCAST_NODE_MODULES")
    return Path(env) if env else _REPO_NODE_MODULES


def hlsjs_path() -> Path | None:
    """hls.js's minified build, or None when `make deps` has not installed it."""
    path = node_modules() / "hls.js" / "dist" / "hls.min.js"
    return path if path.is_file() else None
