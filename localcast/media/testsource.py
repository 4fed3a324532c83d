"""Synthetic sources for tests, the demo and benchmarks: lavfi testsrc2 + sine.

:func:`testsrc_command` is the pure ffmpeg command; :func:`make_test_source`
runs it. The picture is ffmpeg's moving ``testsrc2`` pattern (a timecode and
colour bars that change every frame, so the encoder has real work), the sound
a 440 Hz ``sine``. Keep them short: a 20 s 720p source takes a few seconds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def testsrc_command(
    path: Path,
    duration_s: float = 20.0,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    audio: bool = True,
    video: bool = True,
    ffmpeg: str = "ffmpeg",
) -> list[str]:
    """The ffmpeg command that writes a synthetic H.264/AAC MP4 to ``path``."""
    if not (audio or video):
        raise ValueError("a test source needs video, audio or both")
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    if video:
        cmd += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    cmd += ["-t", f"{duration_s:g}"]
    if video:
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "96k"]
    return [*cmd, str(path)]


def make_test_source(
    path: Path,
    duration_s: float = 20.0,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    audio: bool = True,
    video: bool = True,
    ffmpeg: str = "ffmpeg",
) -> Path:
    """Write a synthetic source (MP4) to ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = testsrc_command(path, duration_s, width, height, fps, audio, video, ffmpeg)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make a test source: {proc.stderr.strip()[-500:]}")
    return path
