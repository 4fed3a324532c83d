"""Helpers for media tests: synthetic manifests (no ffmpeg) and the shared ingest.

``ingest_once`` backs the session fixture ``ingested_title`` in conftest.py:
a 20 s 1280x720 testsrc2 source ingested once per test session, to be
treated as read-only by every test that uses it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from localcast.config import Config, load_config
from localcast.media.ingest import IngestParams, ingest
from localcast.media.manifest import FileRef, Rendition, Segment, TitleManifest
from localcast.media.origin import DirectoryOriginStore
from localcast.media.testsource import make_test_source

INGESTED_TITLE_ID = "test-title"
INGESTED_NAME = "Test title"
INGESTED_PARAMS = IngestParams(max_height=720)
INGESTED_SOURCE = "source.mp4"  # beside the home directory
SOURCE_SECONDS = 20.0
SOURCE_SIZE = (1280, 720)


def ingest_once(root: Path) -> tuple[Config, TitleManifest]:
    cfg = load_config(root / "home")
    cfg.paths.ensure()
    source = make_test_source(root / INGESTED_SOURCE, SOURCE_SECONDS, *SOURCE_SIZE)
    store = DirectoryOriginStore(cfg.paths.origin)
    result = ingest(source, INGESTED_TITLE_ID, INGESTED_NAME, store, INGESTED_PARAMS)
    return cfg, result.manifest


def fake_ref(label: str, ext: str, size: int = 1000) -> FileRef:
    return FileRef(hashlib.sha256(label.encode()).hexdigest(), ext, size)


def fake_rendition(
    rid: str,
    kind: str = "video",
    height: int = 720,
    codec: str | None = None,
    durations: tuple[float, ...] = (4.0, 4.0, 2.0),
    bandwidth: int = 3_000_000,
) -> Rendition:
    segments = []
    start = 0.0
    for i, d in enumerate(durations):
        segments.append(Segment(i, start, d, fake_ref(f"{rid}-{i}", "m4s", int(bandwidth * d / 8))))
        start += d
    video = kind == "video"
    return Rendition(
        id=rid,
        kind=kind,
        codec=codec or ("avc1.64001f" if video else "mp4a.40.2"),
        bandwidth=bandwidth,
        average_bandwidth=bandwidth * 9 // 10,
        init=fake_ref(f"{rid}-init", "mp4"),
        playlist=fake_ref(f"{rid}-pl", "m3u8"),
        segments=tuple(segments),
        width=height * 16 // 9 if video else 0,
        height=height if video else 0,
        frame_rate=25.0 if video else 0.0,
        channels=0 if video else 2,
        sample_rate=0 if video else 48000,
    )


def fake_manifest(heights: tuple[int, ...] = (240, 480, 720), audio: bool = True) -> TitleManifest:
    renditions = [fake_rendition(f"video-{h}p", height=h, bandwidth=h * 4000) for h in heights]
    if audio:
        renditions.append(
            fake_rendition(
                "audio-aac", kind="audio", durations=(4.010667, 3.989333, 2.0), bandwidth=130_000
            )
        )
    return TitleManifest(
        title_id="fake",
        name="Fake & <title>",
        duration_s=10.0,
        segment_duration_s=4.0,
        source_sha256="0" * 64,
        renditions=tuple(renditions),
        multivariant=fake_ref("mv", "m3u8"),
        mpd=fake_ref("mpd", "mpd"),
    )
