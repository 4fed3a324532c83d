"""The quality-of-experience report of one playback session, and the sums behind it.

Times are on the player's clock (seconds a viewer at ``--speed 1`` would
have experienced); bitrates in bits/s; bytes are every body byte received
from appliances (playlists, init and media segments, failed attempts
included), so ``sum(bytes_by_host) == bytes_total`` by construction.

Pure: the player fills in :class:`SegmentRecord` s and counters, and
:func:`average_bitrate_bps` / :func:`quality_switches` summarise them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SegmentRecord:
    """One video segment as fetched (with its audio alongside)."""

    index: int
    start_s: float
    duration_s: float
    rung: int
    bitrate_bps: int
    label: str
    pathway: str
    host: str
    size_bytes: int  # video + audio (+ init) bytes of the successful attempts
    attempts: int  # 1 = first try; more = retried after failures
    buffer_s: float  # buffer when the decision was made
    throughput_bps: float | None  # estimate when the decision was made
    reason: str


@dataclass(frozen=True)
class QoeReport:
    title_id: str
    profile_id: str
    session_id: str
    completed: bool  # played to the end of the title, or to --stop-at
    error: str | None
    start_offset_s: float
    end_position_s: float
    startup_time_s: float | None
    rebuffer_count: int
    rebuffer_time_s: float
    avg_bitrate_bps: float
    quality_switches: int
    failovers: int  # pathway changes forced by errors
    request_errors: int  # failed requests (each one retried)
    steering_switches: int  # pathway changes asked for by the steering server
    bytes_total: int
    bytes_by_host: dict[str, int]
    views_reported: tuple[float, ...]
    speed: float
    segments: tuple[SegmentRecord, ...] = field(default=())

    @property
    def played_s(self) -> float:
        return max(0.0, self.end_position_s - self.start_offset_s)

    def to_dict(self, with_segments: bool = True) -> dict[str, Any]:
        out = asdict(self)
        out["played_s"] = self.played_s
        out["views_reported"] = list(self.views_reported)
        if with_segments:
            out["segments"] = [asdict(s) for s in self.segments]
        else:
            del out["segments"]
        return out


def average_bitrate_bps(segments: Sequence[SegmentRecord]) -> float:
    """Media-time-weighted average of the chosen renditions' nominal bitrates."""
    total = sum(s.duration_s for s in segments)
    if total <= 0:
        return 0.0
    return sum(s.bitrate_bps * s.duration_s for s in segments) / total


def quality_switches(segments: Sequence[SegmentRecord]) -> int:
    """How many times consecutive segments changed rendition."""
    return sum(1 for a, b in itertools.pairwise(segments) if a.rung != b.rung)
