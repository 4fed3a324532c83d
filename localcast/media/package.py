"""Packaging: ffmpeg's CMAF output -> content-addressed files + measured tracks (shell).

For every output stream of the transcode (see :mod:`localcast.media.ffmpeg_cmd`
for the names) this reads the init segment (codec string, geometry,
timescale) and each media segment (exact start and duration from its
fragments, in timescale ticks), cross-checks the segment list and durations
against ffmpeg's own media playlist (parsed with ``m3u8``), merges a last
segment shorter than :data:`MIN_TAIL_FRACTION` of the segment duration into
the one before it (the AAC tail sliver left by encoder priming), and moves
every file into the title directory under its sha256 name. The result feeds
:func:`localcast.media.assemble.assemble_title`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import m3u8

from localcast.media.assemble import MeasuredSegment, MeasuredTrack, content_ref
from localcast.media.codecs import stream_info
from localcast.media.ladder import VideoRung
from localcast.media.mp4 import (
    FragmentTiming,
    Mp4Error,
    merge_segments,
    read_fragment_timing,
    read_init,
)

AUDIO_RENDITION_ID = "audio-aac"
MIN_TAIL_FRACTION = 0.25
_SEGMENT_RE = re.compile(r"^seg-(\d+)-(\d+)\.m4s$")
_DURATION_TOLERANCE_S = 1e-3  # ffmpeg prints EXTINF with 6 decimals
_LAST_SEGMENT_TOLERANCE_S = 0.1


class PackagingError(RuntimeError):
    """ffmpeg's output is not what packaging expects; the message says what."""


def _segment_paths(work_dir: Path, stream: int) -> list[Path]:
    numbered = []
    for path in work_dir.iterdir():
        m = _SEGMENT_RE.match(path.name)
        if m and int(m.group(1)) == stream:
            numbered.append((int(m.group(2)), path))
    return [p for _, p in sorted(numbered)]


def _cross_check(work_dir: Path, stream: int, names: list[str], durations: list[float]) -> None:
    """ffmpeg's own playlist must list the same segments with the same durations."""
    path = work_dir / f"media-{stream}.m3u8"
    if not path.exists():
        raise PackagingError(f"ffmpeg wrote no playlist for stream {stream}")
    playlist = m3u8.loads(path.read_text())
    theirs = [(Path(s.uri).name, float(s.duration)) for s in playlist.segments]
    if [n for n, _ in theirs] != names:
        raise PackagingError(f"stream {stream}: segment files differ from ffmpeg's playlist")
    last = len(durations) - 1
    for i, ((name, expected), measured) in enumerate(zip(theirs, durations, strict=True)):
        # ffmpeg's last EXTINF counts the whole final frame even where -t trimmed it.
        tolerance = _LAST_SEGMENT_TOLERANCE_S if i == last else _DURATION_TOLERANCE_S
        if abs(expected - measured) > tolerance:
            raise PackagingError(
                f"stream {stream}: {name} lasts {measured:.6f} s, ffmpeg says {expected:.6f} s"
            )


def package_stream(
    work_dir: Path,
    title_dir: Path,
    stream: int,
    segment_duration_s: float,
    rendition_id: str,
    kind: str,
    frame_rate: float = 0.0,
) -> MeasuredTrack:
    """Measure output stream ``stream`` of ``work_dir`` and move its files into ``title_dir``."""
    init_path = work_dir / f"init-{stream}.mp4"
    if not init_path.exists():
        raise PackagingError(f"ffmpeg wrote no init segment for stream {stream}")
    init_bytes = init_path.read_bytes()
    try:
        init = read_init(init_bytes)
        info = stream_info(init_bytes)
    except Mp4Error as exc:
        raise PackagingError(f"{init_path.name}: {exc}") from exc
    paths = _segment_paths(work_dir, stream)
    if not paths:
        raise PackagingError(f"ffmpeg wrote no media segments for stream {stream}")
    timings: list[FragmentTiming] = []
    for path in paths:
        try:
            timings.append(read_fragment_timing(path.read_bytes(), init))
        except Mp4Error as exc:
            raise PackagingError(f"{path.name}: {exc}") from exc
    _cross_check(
        work_dir,
        stream,
        [p.name for p in paths],
        [t.duration / init.timescale for t in timings],
    )
    groups: list[list[int]] = [[i] for i in range(len(paths))]
    tail_min = MIN_TAIL_FRACTION * segment_duration_s * init.timescale
    if len(groups) > 1 and timings[-1].duration < tail_min:
        groups[-2:] = [[len(paths) - 2, len(paths) - 1]]
    first_start = timings[0].start
    segments = []
    for group in groups:
        chunks = [paths[i].read_bytes() for i in group]
        try:
            data = chunks[0] if len(chunks) == 1 else merge_segments(chunks[0], chunks[1])
        except Mp4Error as exc:
            raise PackagingError(f"{paths[group[0]].name}: {exc}") from exc
        ref = content_ref(data, "m4s")
        _move_in(data, ref.name, title_dir, [paths[i] for i in group])
        start = timings[group[0]].start - first_start
        duration = sum(timings[i].duration for i in group)
        segments.append(
            MeasuredSegment(
                file=ref,
                start_s=start / init.timescale,
                duration_s=duration / init.timescale,
            )
        )
    init_ref = content_ref(init_bytes, "mp4")
    _move_in(init_bytes, init_ref.name, title_dir, [init_path])
    return MeasuredTrack(
        rendition_id=rendition_id,
        kind=kind,
        codec=info.codec,
        init=init_ref,
        segments=tuple(segments),
        width=info.width,
        height=info.height,
        frame_rate=frame_rate,
        channels=info.channels,
        sample_rate=info.sample_rate,
    )


def _move_in(data: bytes, name: str, title_dir: Path, sources: Sequence[Path]) -> None:
    """Put ``data`` at ``title_dir/name``: rename the one source file, else write it."""
    target = title_dir / name
    if len(sources) == 1:
        os.replace(sources[0], target)
        return
    target.write_bytes(data)
    for src in sources:
        src.unlink()


def package_outputs(
    work_dir: Path,
    title_dir: Path,
    rungs: Sequence[VideoRung],
    frame_rate: float,
    segment_duration_s: float,
) -> list[MeasuredTrack]:
    """Every output stream of the transcode, measured and moved into ``title_dir``."""
    title_dir.mkdir(parents=True, exist_ok=True)
    tracks = []
    for stream, rung in enumerate(rungs):
        track = package_stream(
            work_dir, title_dir, stream, segment_duration_s, rung.id, "video", frame_rate
        )
        if not track.codec.startswith(("avc1", "avc3")):
            raise PackagingError(f"stream {stream}: expected H.264, got {track.codec}")
        if (track.width, track.height) != (rung.width, rung.height):
            raise PackagingError(
                f"stream {stream}: {track.width}x{track.height}, planned {rung.width}x{rung.height}"
            )
        tracks.append(track)
    audio = package_stream(
        work_dir, title_dir, len(rungs), segment_duration_s, AUDIO_RENDITION_ID, "audio"
    )
    if not audio.codec.startswith("mp4a"):
        raise PackagingError(f"audio stream: expected AAC, got {audio.codec}")
    tracks.append(audio)
    return tracks
