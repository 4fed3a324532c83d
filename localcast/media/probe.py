"""Source inspection: ffprobe JSON -> :class:`SourceInfo`.

:func:`parse_probe` is pure (ffprobe's JSON in, a validated description or a
:class:`ProbeError` out); :func:`probe` is the thin shell that runs ffprobe.
A source is ingestible when it has a decodable video stream (cover art does
not count) and a positive duration; anything else is rejected here, before
any transcoding or any write to the origin store.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any


class ProbeError(ValueError):
    """The source is missing, unreadable, or not a video; the message says which."""


@dataclass(frozen=True)
class SourceInfo:
    """What the pipeline needs to know about a source (display geometry, timing, audio)."""

    duration_s: float  # of the video stream (else of the container)
    width: int  # display width (sample aspect ratio and rotation applied)
    height: int  # display height
    frame_rate: Fraction
    video_codec: str
    has_audio: bool
    audio_channels: int = 0
    audio_sample_rate: int = 0
    format_name: str = ""


def _ratio(text: Any) -> Fraction | None:
    """'30000/1001', '16:11' or '25' -> Fraction; None for 0/0, N/A or garbage."""
    if not isinstance(text, str):
        return None
    num, _, den = text.replace(":", "/").partition("/")
    try:
        value = Fraction(int(num), int(den or "1"))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out > 0 else None


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []) or []:
        if isinstance(side, dict) and "rotation" in side:
            try:
                return int(side["rotation"]) % 360
            except (TypeError, ValueError):
                return 0
    try:
        return int(stream.get("tags", {}).get("rotate", 0)) % 360
    except (TypeError, ValueError):
        return 0


def parse_probe(data: Any) -> SourceInfo:
    """Validate ffprobe ``-show_format -show_streams`` JSON into a :class:`SourceInfo`."""
    if not isinstance(data, dict):
        raise ProbeError("ffprobe returned no description")
    streams = [s for s in data.get("streams", []) if isinstance(s, dict)]
    fmt = data.get("format", {}) if isinstance(data.get("format"), dict) else {}
    video = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    if not video:
        raise ProbeError("no video stream")
    v = video[0]
    width, height = int(v.get("width") or 0), int(v.get("height") or 0)
    if width <= 0 or height <= 0:
        raise ProbeError("video stream has no frame size")
    sar = _ratio(v.get("sample_aspect_ratio")) or Fraction(1)
    width = max(2, round(width * sar))
    if _rotation(v) in (90, 270):
        width, height = height, width
    rate = _ratio(v.get("avg_frame_rate")) or _ratio(v.get("r_frame_rate"))
    if rate is None or rate > 1000:
        raise ProbeError("video stream has no usable frame rate")
    duration = _float(v.get("duration")) or _float(fmt.get("duration"))
    if duration is None:
        raise ProbeError("cannot determine the duration (not a video file?)")
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    a = audio[0] if audio else {}
    return SourceInfo(
        duration_s=duration,
        width=width,
        height=height,
        frame_rate=rate.limit_denominator(1001),
        video_codec=str(v.get("codec_name", "")),
        has_audio=bool(audio),
        audio_channels=int(a.get("channels") or 0),
        audio_sample_rate=int(a.get("sample_rate") or 0),
        format_name=str(fmt.get("format_name", "")),
    )


def probe(path: Path, ffprobe: str = "ffprobe") -> SourceInfo:
    """Run ffprobe on ``path``; raise :class:`ProbeError` with a one-line reason."""
    if not path.exists():
        raise ProbeError(f"{path}: no such file")
    if not path.is_file():
        raise ProbeError(f"{path}: not a regular file")
    cmd = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
    try:
        proc = subprocess.run(
            [*cmd, str(path)], capture_output=True, text=True, check=False, timeout=120
        )
    except FileNotFoundError as exc:
        raise ProbeError(f"{ffprobe} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"{path}: ffprobe timed out") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"ffprobe exited with {proc.returncode}"
        reason = reason.removeprefix(f"{path}: ")
        raise ProbeError(f"{path}: unreadable source ({reason})")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ProbeError(f"{path}: ffprobe printed invalid JSON") from exc
    try:
        return parse_probe(data)
    except ProbeError as exc:
        raise ProbeError(f"{path}: {exc}") from exc
