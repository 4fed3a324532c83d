"""ABR core (localcast.core.abr): throughput rule, BOLA, the DYNAMIC hand-over, stability."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcast.core.abr import (
    AbrConfig,
    AbrError,
    AbrState,
    Ladder,
    Mode,
    bola_index,
    bola_params,
    choose,
    max_buffer_for,
    min_buffer_for,
    throughput_index,
)
from localcast.core.buffer import Phase, advance, begin, buffered
from localcast.core.throughput import ThroughputEstimator, add_sample, estimate_bps

CFG = AbrConfig()
LADDER = Ladder.of([400_000, 1_000_000, 2_500_000, 5_000_000])

ladders = st.lists(
    st.integers(min_value=50_000, max_value=50_000_000), min_size=1, max_size=8, unique=True
).map(lambda rates: Ladder.of(sorted(rates)))
rates = st.floats(min_value=10_000, max_value=1e9, allow_nan=False)
low_buffers = st.floats(min_value=0, max_value=CFG.switch_on_s - 0.01)


def test_ladder_must_be_strictly_ascending() -> None:
    with pytest.raises(AbrError):
        Ladder.of([1_000_000, 500_000])
    with pytest.raises(AbrError):
        Ladder.of([])


def test_starts_at_lowest_without_estimate() -> None:
    d = choose(LADDER, AbrState(), 0.0, None)
    assert d.index == 0
    assert d.state.mode is Mode.THROUGHPUT
    assert "no estimate" in d.reason


@given(ladders, rates, low_buffers)
def test_never_above_throughput_at_low_buffer(ladder: Ladder, tput: float, buf: float) -> None:
    d = choose(ladder, AbrState(), buf, tput)
    assert d.index == 0 or ladder.bitrates_bps[d.index] <= tput * CFG.safety_factor
    assert d.delay_s == 0


def test_estimate_hovering_at_a_budget_does_not_flip_the_rung() -> None:
    ladder = Ladder.of([50_000, 89_999])
    at_rung_1 = AbrState(last_index=1)
    just_under = 89_999 / CFG.safety_factor * 0.999  # budget 0.1% short of rung 1
    assert choose(ladder, at_rung_1, 5.0, just_under).index == 1
    clearly_under = 89_999 / CFG.safety_factor * 0.9  # a 10% fall is real
    assert choose(ladder, at_rung_1, 5.0, clearly_under).index == 0


@given(ladders, rates, rates)
def test_throughput_rule_is_monotone(ladder: Ladder, a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert choose(ladder, AbrState(), 0, lo).index <= choose(ladder, AbrState(), 0, hi).index


@given(ladders, rates)
def test_throughput_rule_picks_the_highest_rung_that_fits(ladder: Ladder, tput: float) -> None:
    i = throughput_index(ladder, tput, 0.9)
    if i + 1 < len(ladder):
        assert ladder.bitrates_bps[i + 1] > tput * 0.9


@given(ladders, st.floats(0, 120), st.floats(0, 120))
def test_bola_is_monotone_in_buffer(ladder: Ladder, a: float, b: float) -> None:
    params = bola_params(ladder, CFG.stable_buffer_s)
    if params is None:
        return
    lo, hi = sorted((a, b))
    assert bola_index(ladder, params, lo) <= bola_index(ladder, params, hi)


@given(ladders)
def test_bola_spans_the_ladder(ladder: Ladder) -> None:
    params = bola_params(ladder, CFG.stable_buffer_s)
    if params is None:
        assert len(ladder) == 1
        return
    top = len(ladder) - 1
    assert bola_index(ladder, params, 0.0) == 0
    assert bola_index(ladder, params, max_buffer_for(params, top)) == top
    for i in range(1, len(ladder)):
        assert bola_index(ladder, params, min_buffer_for(ladder, params, i) + 1e-6) >= i


def test_switches_up_as_buffer_grows() -> None:
    state = AbrState(last_index=1, mode=Mode.BOLA)
    chosen = []
    for buf in [7, 10, 13, 16, 19, 22, 25]:
        d = choose(LADDER, state, buf, 50e6)
        state = d.state
        chosen.append(d.index)
    assert chosen == sorted(chosen)
    assert chosen[-1] == len(LADDER) - 1


def test_switches_down_as_buffer_and_throughput_fall() -> None:
    state = AbrState(last_index=3, mode=Mode.BOLA)
    chosen = []
    for buf, tput in [(25, 50e6), (18, 50e6), (14, 3e6), (11, 2e6), (8, 1e6), (5, 0.6e6)]:
        d = choose(LADDER, state, buf, tput)
        state = d.state
        chosen.append(d.index)
    assert chosen == sorted(chosen, reverse=True)
    assert chosen[0] == 3 and chosen[-1] == 0
    assert state.mode is Mode.THROUGHPUT  # handed back below switch_off


def test_hysteresis_between_the_rules() -> None:
    mid = (CFG.switch_off_s + CFG.switch_on_s) / 2
    assert choose(LADDER, AbrState(last_index=1), mid, 2e6).state.mode is Mode.THROUGHPUT
    bola = AbrState(last_index=1, mode=Mode.BOLA)
    assert choose(LADDER, bola, mid, 2e6).state.mode is Mode.BOLA
    assert choose(LADDER, bola, CFG.switch_off_s - 0.1, 2e6).state.mode is Mode.THROUGHPUT


@given(ladders, rates)
def test_bola_takes_over_where_throughput_left_off(ladder: Ladder, tput: float) -> None:
    start = choose(ladder, AbrState(), 0, tput)
    handed = choose(ladder, start.state, CFG.switch_on_s, tput)
    assert handed.index == start.index


def test_bola_o_holds_rather_than_climb_past_throughput() -> None:
    state = AbrState(last_index=1, mode=Mode.BOLA)
    d = choose(LADDER, state, 25.0, 1.2e6)  # buffer says top rung, link says rung 1
    assert d.index == 1
    assert "held" in d.reason


def test_bola_pauses_when_buffer_is_beyond_need() -> None:
    params = bola_params(LADDER, CFG.stable_buffer_s)
    assert params is not None
    top = len(LADDER) - 1
    d = choose(
        LADDER, AbrState(last_index=top, mode=Mode.BOLA), max_buffer_for(params, top) + 5, 1e9
    )
    assert d.index == top
    assert d.delay_s == pytest.approx(5.0)


def test_single_rung_ladder_always_zero() -> None:
    one = Ladder.of([800_000])
    for buf in (0, 8, 15, 40):
        assert choose(one, AbrState(last_index=0, mode=Mode.BOLA), buf, 1e9).index == 0


# --- closed-loop simulation: the ABR over the buffer model on a constant link ---------


def _simulate(
    ladder: Ladder, link_bps: list[float], segment_s: float = 4.0, max_buffer_s: float = 30.0
) -> tuple[list[int], int]:
    """Play len(link_bps) segments; the link runs at link_bps[k] for segment k."""
    n = len(link_bps)
    now = 0.0
    pb = begin(now, 0.0, n * segment_s, segment_s, segment_s)
    est = ThroughputEstimator()
    state = AbrState()
    chosen = []
    for k in range(n):
        while True:
            pb = advance(pb, now)
            room = pb.buffer_s + segment_s - max_buffer_s
            if pb.phase is Phase.PLAYING and room > 0:
                now += room + 1e-6
                continue
            d = choose(ladder, state, pb.buffer_s, estimate_bps(est))
            state = d.state
            if d.delay_s > 0 and pb.phase is Phase.PLAYING:
                now += d.delay_s
                continue
            break
        size = ladder.bitrates_bps[d.index] * segment_s / 8
        took = size * 8 / link_bps[k]
        now += took
        est = add_sample(est, int(size), took)
        pb = buffered(pb, (k + 1) * segment_s, now)
        chosen.append(d.index)
    return chosen, pb.stall_count


@settings(max_examples=200, deadline=None)
@given(ladders, st.floats(min_value=100_000, max_value=100e6))
def test_stable_on_constant_throughput(ladder: Ladder, link: float) -> None:
    chosen, stalls = _simulate(ladder, [link] * 60)
    downs = sum(1 for a, b in itertools.pairwise(chosen) if b < a)
    ups = sum(1 for a, b in itertools.pairwise(chosen) if b > a)
    assert downs == 0, chosen
    assert ups <= 1, chosen  # one step from the startup rung to the sustainable one
    assert ladder.bitrates_bps[chosen[-1]] <= link or chosen[-1] == 0
    if ladder.bitrates_bps[0] <= CFG.safety_factor * link:
        assert stalls == 0


def test_follows_throughput_down_and_back_up() -> None:
    link = [8e6] * 20 + [1.2e6] * 25 + [8e6] * 25
    chosen, _ = _simulate(LADDER, link)
    assert chosen[19] == 3
    assert max(chosen[40:45]) <= 1  # adapted down to what 1.2 Mb/s sustains
    assert chosen[-1] == 3
