"""The one-pass ffmpeg command: source -> ABR ladder as CMAF fragments (pure).

One decode, a ``split`` into one ``scale`` per rung, libx264 per rung with
closed GOPs whose keyframes fall exactly on segment boundaries in every
rendition (``-g``/``-keyint_min`` = frames per segment, ``-sc_threshold 0``
and ``-force_key_frames`` at every multiple of the segment duration), AAC
audio, muxed by ffmpeg's HLS muxer (``-hls_segment_type fmp4``) into
per-stream CMAF init and media segments. ffmpeg's playlists are only read
back as a cross-check: packaging renames the segments to their sha256 and
renders our own playlists and MPD from the title manifest.

Measured on the 2-core box (20 s 720p source, 4 rungs, veryfast): the HLS
muxer and the DASH muxer (``-f dash``) both take ~8.5 s; the HLS muxer was
chosen because it cuts the audio on its own clock (deterministic segments)
while the DASH muxer cuts the audio wherever the video's cut lands in the
interleave (a first audio segment of 3.947 s, depending on encoder delay).

A source without audio gets a generated silent stereo AAC track (``anullsrc``
for the source's duration) so every title has the same shape: one audio
rendition, one audio group, every variant with ``mp4a``.

Output stream ``i < len(rungs)`` is video rung ``i``; stream ``len(rungs)``
is the audio. Files: ``init-<i>.mp4``, ``seg-<i>-<n>.m4s`` (n from 0) and
``media-<i>.m3u8``; all streams are cut to the source's video duration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from localcast.media.ladder import (
    AUDIO_CHANNELS,
    AUDIO_KBPS,
    AUDIO_SAMPLE_RATE,
    VideoRung,
    output_frame_rate,
)
from localcast.media.probe import SourceInfo

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
# ffmpeg's names ("%v" = output stream index, "%05d" = segment number from 0).
INIT_NAME = "init-%v.mp4"
SEGMENT_NAME = "seg-%v-%05d.m4s"
PLAYLIST_NAME = "media-%v.m3u8"


@dataclass(frozen=True)
class TranscodeJob:
    """Everything that determines one transcode (the parameters of the command)."""

    source: Path
    info: SourceInfo
    rungs: tuple[VideoRung, ...]
    segment_duration_s: float
    preset: str
    out_dir: Path


def segment_frames(segment_duration_s: float, frame_rate: Fraction) -> int:
    """GOP length in frames: one closed GOP per segment (at least 1)."""
    return max(1, round(segment_duration_s * frame_rate))


def _filter_graph(rungs: Sequence[VideoRung], frame_rate: Fraction) -> str:
    outs = "".join(f"[s{i}]" for i in range(len(rungs)))
    parts = [f"[0:v:0]fps={frame_rate},format=yuv420p,split={len(rungs)}{outs}"]
    for i, r in enumerate(rungs):
        parts.append(f"[s{i}]scale={r.width}:{r.height}:flags=bicubic,setsar=1[v{i}]")
    return ";".join(parts)


def var_stream_map(video_streams: int) -> str:
    """One ffmpeg variant per output stream (video rungs, then the audio).

    Audio is its own variant so the HLS muxer cuts it on its own clock: at the
    first AAC frame at or after each segment boundary.
    """
    return " ".join([*(f"v:{i}" for i in range(video_streams)), "a:0"])


def transcode_command(job: TranscodeJob, ffmpeg: str = "ffmpeg") -> list[str]:
    """The full ffmpeg argv (progress on stdout as ``key=value`` lines)."""
    if job.preset not in X264_PRESETS:
        raise ValueError(f"unknown x264 preset {job.preset!r}")
    if not job.rungs:
        raise ValueError("no rungs to encode")
    rate = output_frame_rate(job.info)
    gop = segment_frames(job.segment_duration_s, rate)
    seg = f"{job.segment_duration_s:g}"
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats", "-y"]
    cmd += ["-progress", "pipe:1", "-i", str(job.source)]
    if not job.info.has_audio:
        silence = f"anullsrc=channel_layout=stereo:sample_rate={AUDIO_SAMPLE_RATE}"
        cmd += ["-f", "lavfi", "-t", f"{job.info.duration_s:.6f}", "-i", silence]
    cmd += ["-filter_complex", _filter_graph(job.rungs, rate)]
    for i in range(len(job.rungs)):
        cmd += ["-map", f"[v{i}]"]
    cmd += ["-map", "0:a:0" if job.info.has_audio else "1:a:0"]
    cmd += ["-map_metadata", "-1", "-map_chapters", "-1"]
    cmd += ["-c:v", "libx264", "-preset", job.preset, "-profile:v", "high"]
    cmd += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-flags", "+cgop"]
    cmd += ["-force_key_frames", f"expr:gte(t,n_forced*{seg})"]
    for i, r in enumerate(job.rungs):
        cmd += [
            f"-b:v:{i}",
            f"{r.video_kbps}k",
            f"-maxrate:v:{i}",
            f"{r.maxrate_kbps}k",
            f"-bufsize:v:{i}",
            f"{r.bufsize_kbps}k",
        ]
    cmd += ["-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k"]
    cmd += ["-ac", str(AUDIO_CHANNELS), "-ar", str(AUDIO_SAMPLE_RATE)]
    cmd += ["-t", f"{job.info.duration_s:.6f}"]
    cmd += ["-f", "hls", "-hls_time", seg, "-hls_playlist_type", "vod"]
    cmd += ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", INIT_NAME]
    cmd += ["-hls_segment_filename", str(job.out_dir / SEGMENT_NAME)]
    cmd += ["-var_stream_map", var_stream_map(len(job.rungs))]
    cmd.append(str(job.out_dir / PLAYLIST_NAME))
    return cmd
