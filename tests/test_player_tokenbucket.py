"""Emulated link (localcast.core.tokenbucket): rate parsing and the token bucket's bound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcast.core.tokenbucket import RateError, new_bucket, parse_rate, take


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("3M", 3_000_000),
        ("800k", 800_000),
        ("1.5Mbps", 1_500_000),
        ("250000", 250_000),
        ("2 mbit", 2_000_000),
        ("1G", 1_000_000_000),
        ("64kb/s", 64_000),
    ],
)
def test_parse_rate(text: str, bps: int) -> None:
    assert parse_rate(text) == bps


@pytest.mark.parametrize("text", ["", "fast", "3X", "-1M", "0", "1..5M"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(RateError):
        parse_rate(text)


def test_burst_is_free_then_the_rate_applies() -> None:
    bucket = new_bucket(8_000, 0.0, burst_bytes=1_000)  # 1000 bytes/s
    bucket, wait = take(bucket, 1_000, 0.0)
    assert wait == 0
    bucket, wait = take(bucket, 500, 0.0)
    assert wait == pytest.approx(0.5)
    bucket, wait = take(bucket, 500, 0.0)  # queued behind the first overdraft
    assert wait == pytest.approx(1.0)
    _, wait = take(bucket, 100, 2.0)  # debt paid off by then
    assert wait == 0


@given(
    st.floats(10_000, 100e6),
    st.integers(0, 64 * 1024),
    st.lists(st.tuples(st.integers(1, 200_000), st.floats(0.0, 0.5)), min_size=1, max_size=60),
)
def test_never_exceeds_rate_plus_burst(
    rate_bps: float, burst: int, takes: list[tuple[int, float]]
) -> None:
    """Bytes released by any time T never exceed burst + rate x T."""
    now = 0.0
    bucket = new_bucket(rate_bps, now, burst_bytes=burst)
    released: list[tuple[float, int]] = []
    for nbytes, gap in takes:
        now += gap
        bucket, wait = take(bucket, nbytes, now)
        released.append((now + wait, nbytes))
    released.sort()
    total = 0
    for at, nbytes in released:
        total += nbytes
        assert total <= burst + rate_bps / 8 * at + 1e-6 * total + 1


@given(st.floats(10_000, 100e6), st.integers(1_000, 10_000_000))
def test_greedy_reader_gets_the_rate(rate_bps: float, nbytes: int) -> None:
    bucket = new_bucket(rate_bps, 0.0, burst_bytes=16 * 1024)
    now, left = 0.0, nbytes
    while left:
        chunk = min(left, 16 * 1024)
        bucket, wait = take(bucket, chunk, now)
        now += wait
        left -= chunk
    expected = max(0.0, (nbytes - 16 * 1024) * 8 / rate_bps)
    assert now == pytest.approx(expected, rel=1e-6, abs=1e-9)
