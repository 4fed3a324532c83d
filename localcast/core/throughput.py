"""Throughput estimation from segment downloads: a dual EWMA. Pure.

Each finished download is a sample ``(size_bytes, duration_s)``. As in dash.js,
two exponentially weighted moving averages with half-lives in *seconds of
download time* (fast 3 s, slow 8 s) are kept, each sample weighted by how
long it took, so a long download counts for more than a short one. Both start
at zero and are corrected for that start (like Adam's bias correction), so the
first sample is taken at face value. The estimate is the lower of the two:
quick to react when throughput falls, slow to believe it has risen.

No clock here: durations are measured by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

MIN_DURATION_S = 1e-6


class ThroughputError(ValueError):
    """A sample or half-life is not usable."""


@dataclass(frozen=True)
class ThroughputEstimator:
    fast_half_life_s: float = 3.0
    slow_half_life_s: float = 8.0
    fast_bps: float = 0.0
    slow_bps: float = 0.0
    weight_s: float = 0.0  # total download time seen
    samples: int = 0

    def __post_init__(self) -> None:
        if self.fast_half_life_s <= 0 or self.slow_half_life_s <= 0:
            raise ThroughputError("half-lives must be positive")


def _decay(elapsed_s: float, half_life_s: float) -> float:
    """The weight left to old samples after ``elapsed_s`` of download time."""
    return math.pow(0.5, elapsed_s / half_life_s)


def add_sample(est: ThroughputEstimator, size_bytes: int, duration_s: float) -> ThroughputEstimator:
    """Fold in one download of ``size_bytes`` that took ``duration_s``."""
    if size_bytes < 0:
        raise ThroughputError("size_bytes must not be negative")
    duration = max(duration_s, MIN_DURATION_S)
    rate = size_bytes * 8 / duration
    a_fast = _decay(duration, est.fast_half_life_s)
    a_slow = _decay(duration, est.slow_half_life_s)
    return replace(
        est,
        fast_bps=a_fast * est.fast_bps + (1 - a_fast) * rate,
        slow_bps=a_slow * est.slow_bps + (1 - a_slow) * rate,
        weight_s=est.weight_s + duration,
        samples=est.samples + 1,
    )


def estimate_bps(est: ThroughputEstimator) -> float | None:
    """The conservative estimate in bits/s, or ``None`` before the first sample."""
    if est.samples == 0:
        return None
    fast = est.fast_bps / (1 - _decay(est.weight_s, est.fast_half_life_s))
    slow = est.slow_bps / (1 - _decay(est.weight_s, est.slow_half_life_s))
    return min(fast, slow)
