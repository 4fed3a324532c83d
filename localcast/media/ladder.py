"""The ABR ladder: the one bitrate table, and the pure choice of rungs for a source.

:data:`LADDER` is the only place video bitrates are written down; the audio
settings sit next to it. :func:`choose_ladder` picks the rungs for a source
from its display geometry alone: every rung whose frame fits inside the
source (never upscale) and under ``max_height``; if none fits (a source
smaller than the lowest rung), one rung at the source's own size with a
bitrate scaled down from the lowest rung by pixel count. A rung's nominal
size is its short side ("720p" is 1280x720 landscape, 720x1280 portrait).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from fractions import Fraction

from localcast.media.probe import SourceInfo


@dataclass(frozen=True)
class Rung:
    """One row of the ladder table: nominal short side and target video bitrate."""

    short_side: int
    video_kbps: int


# H.264 High profile, libx264 veryfast, up to 30 fps. Peak is capped at
# MAXRATE_FACTOR x target with a BUFSIZE_FACTOR x target VBV buffer.
LADDER: tuple[Rung, ...] = (
    Rung(240, 400),
    Rung(360, 800),
    Rung(480, 1400),
    Rung(720, 2800),
    Rung(1080, 5000),
)
MAXRATE_FACTOR = 1.5
BUFSIZE_FACTOR = 2.0
HIGH_FRAME_RATE_FACTOR = 1.5  # above 30 fps
MAX_FRAME_RATE = Fraction(60)
AUDIO_KBPS = 128
AUDIO_SAMPLE_RATE = 48_000
AUDIO_CHANNELS = 2
MIN_VIDEO_KBPS = 100


@dataclass(frozen=True)
class VideoRung:
    """A rung chosen for one source: output frame size and rate control (kbit/s)."""

    id: str
    width: int
    height: int
    video_kbps: int
    maxrate_kbps: int
    bufsize_kbps: int


def ladder_fingerprint() -> str:
    """A short digest of the table and audio settings (changes force re-ingest)."""
    table = {
        "ladder": [asdict(r) for r in LADDER],
        "factors": [MAXRATE_FACTOR, BUFSIZE_FACTOR, HIGH_FRAME_RATE_FACTOR, str(MAX_FRAME_RATE)],
        "audio": [AUDIO_KBPS, AUDIO_SAMPLE_RATE, AUDIO_CHANNELS],
    }
    return hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()[:16]


def output_frame_rate(source: SourceInfo) -> Fraction:
    """The constant output frame rate: the source's, halved until at most 60 fps."""
    rate = source.frame_rate
    while rate > MAX_FRAME_RATE:
        rate /= 2
    return rate


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _even_down(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _frame(short_side: int, source: SourceInfo) -> tuple[int, int]:
    """(width, height) with the given short side and the source's display aspect."""
    if source.width >= source.height:
        return _even(short_side * source.width / source.height), _even(short_side)
    return _even(short_side), _even(short_side * source.height / source.width)


def _rung(width: int, height: int, kbps: int, fps_factor: float) -> VideoRung:
    target = max(MIN_VIDEO_KBPS, round(kbps * fps_factor))
    return VideoRung(
        id=f"video-{min(width, height)}p",
        width=width,
        height=height,
        video_kbps=target,
        maxrate_kbps=round(target * MAXRATE_FACTOR),
        bufsize_kbps=round(target * BUFSIZE_FACTOR),
    )


def choose_ladder(source: SourceInfo, max_height: int | None = None) -> tuple[VideoRung, ...]:
    """The video rungs for ``source``, lowest first; never empty, never upscaled."""
    if max_height is not None and max_height < 2:
        raise ValueError("max_height must be at least 2")
    fps_factor = HIGH_FRAME_RATE_FACTOR if output_frame_rate(source) > 30 else 1.0
    cap_h = min(source.height, max_height) if max_height is not None else source.height
    rungs = []
    for row in LADDER:
        w, h = _frame(row.short_side, source)
        if w <= source.width and h <= cap_h:
            rungs.append(_rung(w, h, row.video_kbps, fps_factor))
    if rungs:
        return tuple(rungs)
    # Smaller than the lowest rung (or capped below it): one rung, source aspect.
    scale = min(1.0, cap_h / source.height)
    w = min(_even(source.width * scale), _even_down(source.width))
    h = _even_down(cap_h)
    low = LADDER[0]
    low_w, low_h = _frame(low.short_side, source)
    kbps = low.video_kbps * (w * h) / (low_w * low_h)
    return (_rung(w, h, round(kbps), fps_factor),)
