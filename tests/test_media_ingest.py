"""End-to-end ingest with real ffmpeg: ladder, segments, keyframes, playlists, store hygiene.

The 20 s 720p title is ingested once per session (``ingested_title`` in
conftest.py); the other tests use tiny sources to stay fast on two cores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import m3u8
import pytest
from media_fixtures import (
    INGESTED_NAME,
    INGESTED_PARAMS,
    INGESTED_SOURCE,
    SOURCE_SECONDS,
    SOURCE_SIZE,
)
from typer.testing import CliRunner

from localcast.cli import app
from localcast.config import Config
from localcast.media import ingest as ingest_module
from localcast.media.ingest import IngestError, IngestParams, ingest
from localcast.media.manifest import Rendition, TitleManifest
from localcast.media.origin import MANIFEST_NAME, DirectoryOriginStore
from localcast.media.package import PackagingError
from localcast.media.testsource import make_test_source

pytestmark = pytest.mark.slow

Title = tuple[Config, TitleManifest]
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
H264_PROFILE_IDC = {"High": 0x64, "Main": 0x4D, "Constrained Baseline": 0x42, "Baseline": 0x42}


def title_dir(title: Title) -> Path:
    cfg, manifest = title
    return cfg.paths.origin / manifest.title_id


def ffprobe_json(path: Path, *args: str) -> dict[str, object]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def joined(directory: Path, rendition: Rendition, segment_index: int, out: Path) -> Path:
    """init + one media segment as a standalone fMP4 file ffprobe can read."""
    seg = rendition.segments[segment_index].file
    out.write_bytes(
        (directory / rendition.init.name).read_bytes() + (directory / seg.name).read_bytes()
    )
    return out


# --- the session title ----------------------------------------------------------------


def test_ladder_has_every_rung_up_to_the_source_and_none_above(ingested_title: Title) -> None:
    _, m = ingested_title
    assert [(r.width, r.height) for r in m.video] == [
        (426, 240),
        (640, 360),
        (854, 480),
        SOURCE_SIZE,
    ]
    assert [r.id for r in m.video] == ["video-240p", "video-360p", "video-480p", "video-720p"]
    assert len(m.audio) == 1 and m.audio[0].codec == "mp4a.40.2"
    assert m.audio[0].channels == 2 and m.audio[0].sample_rate == 48000
    bandwidths = [r.bandwidth for r in m.video]
    assert bandwidths == sorted(bandwidths)
    assert all(r.bandwidth >= r.average_bandwidth > 0 for r in m.renditions)


def test_segments_last_4s_and_line_up_across_renditions(ingested_title: Title) -> None:
    _, m = ingested_title
    assert m.duration_s == SOURCE_SECONDS and m.segment_duration_s == 4.0
    timings = {tuple((s.start_s, s.duration_s) for s in r.segments) for r in m.video}
    assert len(timings) == 1  # identical in every video rendition
    (timing,) = timings
    assert [d for _, d in timing[:-1]] == [4.0] * (len(timing) - 1)
    assert 0 < timing[-1][1] <= 4.0
    for r in m.renditions:
        assert [s.index for s in r.segments] == list(range(len(timing)))
        for a, b in zip(r.segments, r.segments[1:], strict=False):
            assert b.start_s == pytest.approx(a.start_s + a.duration_s, abs=1e-9)
    audio = m.audio[0]
    assert len(audio.segments) == len(timing)
    assert sum(s.duration_s for s in audio.segments) == pytest.approx(SOURCE_SECONDS, abs=0.05)
    for seg, (start, _) in zip(audio.segments, timing, strict=True):
        assert seg.start_s == pytest.approx(start, abs=0.03)  # within ~one AAC frame


def test_every_video_segment_is_one_closed_gop_starting_with_a_keyframe(
    ingested_title: Title, tmp_path: Path
) -> None:
    directory = title_dir(ingested_title)
    for r in ingested_title[1].video:
        for i in range(len(r.segments)):
            probe = ffprobe_json(
                joined(directory, r, i, tmp_path / "seg.mp4"),
                "-select_streams",
                "v:0",
                "-show_entries",
                "packet=flags",
            )
            flags = [p["flags"] for p in probe["packets"]]
            assert flags[0].startswith("K"), (r.id, i)
            assert sum(f.startswith("K") for f in flags) == 1, (r.id, i)
            assert len(flags) == round(r.segments[i].duration_s * r.frame_rate)


def test_codec_strings_are_those_of_the_encoded_streams(
    ingested_title: Title, tmp_path: Path
) -> None:
    directory = title_dir(ingested_title)
    for r in ingested_title[1].renditions:
        probe = ffprobe_json(joined(directory, r, 0, tmp_path / "s.mp4"), "-show_streams")
        (stream,) = probe["streams"]
        if r.kind == "video":
            profile = H264_PROFILE_IDC[stream["profile"]]
            assert r.codec == f"avc1.{profile:02x}{r.codec[7:9]}{stream['level']:02x}"
            assert (stream["width"], stream["height"]) == (r.width, r.height)
        else:
            assert stream["codec_name"] == "aac" and stream["profile"] == "LC"
            assert r.codec == "mp4a.40.2"


def test_manifest_on_disk_validates_and_round_trips(ingested_title: Title) -> None:
    cfg, m = ingested_title
    data = json.loads((title_dir(ingested_title) / MANIFEST_NAME).read_text())
    assert TitleManifest.from_json(data) == m
    assert TitleManifest.from_json(json.loads(json.dumps(m.to_json()))) == m
    assert m.name == INGESTED_NAME
    assert (
        m.source_sha256
        == hashlib.sha256((cfg.paths.home.parent / INGESTED_SOURCE).read_bytes()).hexdigest()
    )
    assert m.extra["params"] == INGESTED_PARAMS.fingerprint()
    assert DirectoryOriginStore(cfg.paths.origin).titles() == [m.title_id]


def test_every_file_is_named_by_its_sha256_and_listed(ingested_title: Title) -> None:
    directory = title_dir(ingested_title)
    listed = {f.name: f for f in ingested_title[1].files()}
    on_disk = {p.name for p in directory.iterdir()} - {MANIFEST_NAME}
    assert on_disk == set(listed)
    for name, ref in listed.items():
        data = (directory / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == ref.file_id and len(data) == ref.size


def test_m3u8_reads_every_playlist(ingested_title: Title) -> None:
    directory = title_dir(ingested_title)
    m = ingested_title[1]
    master = m3u8.load(str(directory / m.multivariant.name))
    assert master.is_variant
    assert [p.uri for p in master.playlists] == [r.playlist.name for r in m.video]
    assert [x.uri for x in master.media] == [r.playlist.name for r in m.audio]
    for p, r in zip(master.playlists, m.video, strict=True):
        assert p.stream_info.codecs == f"{r.codec},mp4a.40.2"
        assert p.stream_info.resolution == (r.width, r.height)
    for r in m.renditions:
        pl = m3u8.load(str(directory / r.playlist.name))
        assert pl.is_endlist and pl.playlist_type == "vod" and pl.version == 7
        assert pl.segment_map[0].uri == r.init.name
        assert [s.uri for s in pl.segments] == [s.file.name for s in r.segments]
        for seg, ours in zip(pl.segments, r.segments, strict=True):
            assert seg.duration == pytest.approx(ours.duration_s, abs=1e-6)
        assert pl.target_duration >= max(round(s.duration_s) for s in r.segments)


def test_ffprobe_reads_every_rendition_through_its_playlist(ingested_title: Title) -> None:
    directory = title_dir(ingested_title)
    for r in ingested_title[1].renditions:
        probe = ffprobe_json(
            directory / r.playlist.name, "-count_packets", "-show_streams", "-show_format"
        )
        (stream,) = probe["streams"]
        assert float(probe["format"]["duration"]) == pytest.approx(SOURCE_SECONDS, abs=0.1)
        if r.kind == "video":
            assert stream["codec_name"] == "h264" and int(stream["nb_read_packets"]) == 500
        else:
            assert stream["codec_name"] == "aac" and stream["channels"] == 2


def test_mpd_parses_and_lists_every_segment(ingested_title: Title) -> None:
    directory = title_dir(ingested_title)
    m = ingested_title[1]
    root = ET.fromstring((directory / m.mpd.name).read_bytes())
    reps = {rep.get("id"): rep for rep in root.iter(f"{{{NS['d']}}}Representation")}
    assert set(reps) == {r.id for r in m.renditions}
    for r in m.renditions:
        seg_list = reps[r.id].find("d:SegmentList", NS)
        assert seg_list is not None
        init = seg_list.find("d:Initialization", NS)
        assert init is not None and init.get("sourceURL") == r.init.name
        urls = [u.get("media") for u in seg_list.findall("d:SegmentURL", NS)]
        assert urls == [s.file.name for s in r.segments]
        assert all((directory / str(u)).is_file() for u in urls)


def test_reingest_of_the_same_source_is_a_no_op(
    ingested_title: Title, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, m = ingested_title
    manifest_path = title_dir(ingested_title) / MANIFEST_NAME
    before = (manifest_path.read_bytes(), manifest_path.stat().st_mtime_ns)

    def no_transcode(*args: object, **kwargs: object) -> None:
        raise AssertionError("ffmpeg must not run on a re-ingest")

    monkeypatch.setattr(ingest_module, "run_ffmpeg", no_transcode)
    monkeypatch.setattr(ingest_module, "probe", no_transcode)
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(cfg.paths.home),
            "ingest",
            str(cfg.paths.home.parent / INGESTED_SOURCE),
            "--title-id",
            m.title_id,
            "--name",
            INGESTED_NAME,
            "--max-height",
            str(INGESTED_PARAMS.max_height),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "already ingested" in result.stdout
    assert (manifest_path.read_bytes(), manifest_path.stat().st_mtime_ns) == before


# --- other sources and failures ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    srcs = {
        "silent": make_test_source(root / "silent.mp4", 6, 320, 180, audio=False),
        "small": make_test_source(root / "small.mp4", 6, 320, 180),
        "audio-only": make_test_source(root / "audio.m4a", 2, video=False),
        "slow": make_test_source(root / "slow.mp4", 12, 640, 360),
    }
    (root / "text.mp4").write_text("this is not a video\n")
    srcs["text"] = root / "text.mp4"
    data = srcs["small"].read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])  # moov at the end: lost
    srcs["truncated"] = root / "truncated.mp4"
    fast = root / "fast.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(srcs["small"]),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            str(fast),
        ],
        check=True,
    )
    data = fast.read_bytes()
    (root / "truncated-faststart.mp4").write_bytes(data[: len(data) // 2])  # moov kept, data cut
    srcs["truncated-faststart"] = root / "truncated-faststart.mp4"
    srcs["missing"] = root / "does-not-exist.mp4"
    return srcs


def test_source_without_audio_gets_a_silent_track(
    tiny_sources: dict[str, Path], tmp_path: Path
) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    seen: list[tuple[float, float]] = []
    result = ingest(
        tiny_sources["silent"],
        "silent",
        "Silent",
        store,
        progress=lambda done, total: seen.append((done, total)),
    )
    m = result.manifest
    assert result.transcoded
    assert [(r.width, r.height) for r in m.video] == [(320, 180)]  # below 240p: one rung
    assert len(m.audio) == 1 and m.audio[0].codec == "mp4a.40.2"
    assert m.extra["audio"] == "generated-silence"
    assert len(m.audio[0].segments) == len(m.video[0].segments) == 2
    assert seen and seen[-1] == (6.0, 6.0)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_failure_while_packaging_leaves_the_old_title_and_no_staging(
    tiny_sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    old = ingest(tiny_sources["small"], "t", "T", store).manifest

    def broken(*args: object, **kwargs: object) -> None:
        raise PackagingError("injected failure")

    monkeypatch.setattr(ingest_module, "package_outputs", broken)
    with pytest.raises(IngestError, match="injected failure"):
        ingest(tiny_sources["small"], "t", "T", store, IngestParams(segment_duration_s=2.0))
    with pytest.raises(IngestError, match="injected failure"):
        ingest(tiny_sources["small"], "new", "New", store)
    assert store.titles() == ["t"]
    assert store.manifest("t") == old
    assert not store.staging_root.exists()


def test_killed_ingest_leaves_nothing_visible_and_is_cleaned_next_time(
    tiny_sources: dict[str, Path], tmp_path: Path
) -> None:
    origin = tmp_path / "origin"
    cmd = [
        sys.executable,
        "-m",
        "localcast",
        "--home",
        str(tmp_path / "home"),
        "ingest",
        str(tiny_sources["slow"]),
        "--title-id",
        "killed",
        "--name",
        "K",
        "--origin",
        str(origin),
        "--preset",
        "medium",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not list(origin.glob(".staging/*/work/seg-*.m4s")):
            assert proc.poll() is None, "ingest finished before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its ffmpeg
        proc.wait()
    store = DirectoryOriginStore(origin)
    assert store.titles() == [] and store.manifest("killed") is None
    assert len(list(store.staging_root.iterdir())) == 1  # left behind by the dead process
    ingest(tiny_sources["small"], "next", "Next", store)
    assert store.titles() == ["next"]
    assert not store.staging_root.exists()


@pytest.mark.parametrize(
    "kind", ["missing", "text", "audio-only", "truncated", "truncated-faststart"]
)
def test_bad_source_fails_with_one_error_line_and_writes_nothing(
    kind: str, tiny_sources: dict[str, Path], tmp_path: Path
) -> None:
    origin = tmp_path / "origin"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "localcast",
            "--home",
            str(tmp_path / "home"),
            "--log-level",
            "warning",
            "ingest",
            str(tiny_sources[kind]),
            "--title-id",
            "bad",
            "--name",
            "Bad",
            "--origin",
            str(origin),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert proc.stdout == ""
    assert not origin.exists() or not [p for p in origin.rglob("*") if p.is_file()]
    assert DirectoryOriginStore(origin).titles() == []


def test_invalid_title_id_is_refused_before_any_work(
    tiny_sources: dict[str, Path], tmp_path: Path
) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    with pytest.raises(IngestError, match="title id"):
        ingest(tiny_sources["small"], "../escape", "X", store)
    with pytest.raises(IngestError, match="segment duration"):
        ingest(tiny_sources["small"], "ok", "X", store, IngestParams(segment_duration_s=0.1))
    assert not (tmp_path / "origin").exists()


def test_same_source_new_name_only_rewrites_the_manifest(
    tiny_sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    first = ingest(tiny_sources["small"], "t", "Old name", store).manifest
    monkeypatch.setattr(ingest_module, "run_ffmpeg", None)  # would fail if called
    again = ingest(tiny_sources["small"], "t", "New name", store)
    assert not again.transcoded
    assert again.manifest == dataclasses.replace(first, name="New name") == store.manifest("t")


def test_unreadable_existing_title_is_replaced(
    tiny_sources: dict[str, Path], tmp_path: Path
) -> None:
    store = DirectoryOriginStore(tmp_path / "origin")
    (tmp_path / "origin" / "t").mkdir(parents=True)
    (tmp_path / "origin" / "t" / MANIFEST_NAME).write_text("{broken")
    result = ingest(tiny_sources["small"], "t", "T", store)
    assert result.transcoded and store.manifest("t") == result.manifest
