"""Throughput estimator (localcast.core.throughput): a bias-corrected dual EWMA."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcast.core.throughput import (
    ThroughputError,
    ThroughputEstimator,
    add_sample,
    estimate_bps,
)

samples = st.lists(
    st.tuples(st.integers(1_000, 20_000_000), st.floats(0.01, 20.0)), min_size=1, max_size=30
)


def _feed(pairs: list[tuple[int, float]]) -> ThroughputEstimator:
    est = ThroughputEstimator()
    for size, duration in pairs:
        est = add_sample(est, size, duration)
    return est


def test_no_estimate_before_first_sample() -> None:
    assert estimate_bps(ThroughputEstimator()) is None


def test_first_sample_taken_at_face_value() -> None:
    assert estimate_bps(_feed([(250_000, 1.0)])) == pytest.approx(2_000_000)


@given(st.integers(1_000, 10_000_000), st.lists(st.floats(0.01, 10.0), min_size=1, max_size=20))
def test_constant_rate_gives_that_rate(rate_bytes_s: int, durations: list[float]) -> None:
    est = _feed([(int(rate_bytes_s * d), d) for d in durations])
    rates = [int(rate_bytes_s * d) * 8 / d for d in durations]
    assert min(rates) * 0.999 <= (estimate_bps(est) or 0) <= max(rates) * 1.001


@given(samples)
def test_estimate_lies_within_the_samples(pairs: list[tuple[int, float]]) -> None:
    rates = [size * 8 / d for size, d in pairs]
    value = estimate_bps(_feed(pairs))
    assert value is not None
    assert min(rates) * (1 - 1e-9) <= value <= max(rates) * (1 + 1e-9)


@given(samples, st.integers(1_000, 20_000_000), st.floats(0.01, 20.0))
def test_moves_toward_a_new_sample(pairs: list[tuple[int, float]], size: int, d: float) -> None:
    before = estimate_bps(_feed(pairs))
    after = estimate_bps(_feed([*pairs, (size, d)]))
    assert before is not None and after is not None
    rate = size * 8 / d
    if rate <= before:
        assert after <= before * (1 + 1e-9)
    else:
        assert after >= before * (1 - 1e-9)


def test_reacts_fast_to_a_drop_and_slowly_to_a_rise() -> None:
    high, low = (1_000_000, 1.0), (100_000, 1.0)  # 8 Mb/s, 0.8 Mb/s
    dropped = estimate_bps(_feed([high] * 10 + [low] * 2))
    risen = estimate_bps(_feed([low] * 10 + [high] * 2))
    assert dropped is not None and risen is not None
    # after two samples the drop is mostly believed, the rise much less so
    assert (8e6 - dropped) / 7.2e6 > (risen - 0.8e6) / 7.2e6


def test_rejects_bad_input() -> None:
    with pytest.raises(ThroughputError):
        add_sample(ThroughputEstimator(), -1, 1.0)
    with pytest.raises(ThroughputError):
        ThroughputEstimator(fast_half_life_s=0)
