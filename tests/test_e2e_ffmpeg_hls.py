"""An independent client (ffmpeg) reads an ingested title end to end from a real appliance.

The title goes origin -> appliance store (a plain copy), the appliance runs as
its real subprocess, and ffmpeg follows the multivariant playlist, the media
playlists and every segment over HTTP under one signed title token.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import m3u8
from conftest import require_tool

from localcast.appliance.launch import start_appliance
from localcast.config import Config
from localcast.core.tokens import signed_path
from localcast.keyfile import create_keyring
from localcast.media.manifest import TitleManifest


def _place(title_dir: Path, store: Path) -> None:
    shutil.copytree(title_dir, store / title_dir.name)


def test_ffmpeg_reads_every_rendition_over_signed_urls(
    ingested_title: tuple[Config, TitleManifest], tmp_path: Path
) -> None:
    ffmpeg = require_tool("ffmpeg")
    ffprobe = require_tool("ffprobe")
    config, manifest = ingested_title
    store = tmp_path / "store"
    store.mkdir()
    _place(config.paths.origin / manifest.title_id, store)
    keys = tmp_path / "keys.json"
    ring = create_keyring(keys)

    with start_appliance(tmp_path / "home", store=store, keys=keys, workers=1) as appliance:
        title_url = appliance.url + signed_path(
            ring, f"/{manifest.title_id}", int(time.time()) + 600
        )
        master_url = f"{title_url}/{manifest.multivariant.name}"

        # The multivariant playlist and every media playlist parse with an independent parser,
        # and their relative URIs resolve under the token.
        master = m3u8.loads(httpx.get(master_url).text, uri=master_url)
        assert len(master.playlists) == len(manifest.video)
        for variant in master.playlists:
            media = m3u8.loads(httpx.get(variant.absolute_uri).text, uri=variant.absolute_uri)
            assert media.is_endlist and media.segments

        # ffprobe sees every rendition through the appliance.
        probe = subprocess.run(
            [ffprobe, "-v", "error", "-show_streams", "-of", "json", master_url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        streams = json.loads(probe.stdout)["streams"]
        heights = {s["height"] for s in streams if s["codec_type"] == "video"}
        assert heights == {r.height for r in manifest.video}
        assert any(s["codec_type"] == "audio" for s in streams)

        # ffmpeg reads the top rendition to the end (every segment) and decodes it.
        top = max(range(len(manifest.video)), key=lambda i: manifest.video[i].height)
        result = subprocess.run(
            [
                ffmpeg,
                "-v",
                "error",
                "-i",
                master_url,
                "-map",
                f"0:v:{top}",
                "-map",
                "0:a:0",
                "-f",
                "null",
                "-",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == ""

        # Without the token, the same files are refused.
        bare = f"{appliance.url}/{manifest.title_id}/{manifest.multivariant.name}"
        assert httpx.get(bare).status_code in (403, 404)
        forged = master_url.replace(manifest.title_id, manifest.title_id + "x", 1)
        assert httpx.get(forged).status_code == 403
