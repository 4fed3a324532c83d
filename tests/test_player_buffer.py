"""Playback model (localcast.core.buffer): startup, stalls, resume, end, conservation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcast.core.buffer import Phase, Playback, advance, begin, buffered, media_time_until, stop


def _session(start: float = 0.0, end: float = 20.0) -> Playback:
    return begin(100.0, start, end, startup_buffer_s=2.0, resume_buffer_s=2.0)


def test_nothing_moves_before_startup() -> None:
    pb = advance(_session(), 150.0)
    assert pb.phase is Phase.STARTUP
    assert pb.position_s == 0.0
    assert pb.startup_time_s is None


def test_startup_when_first_segment_is_buffered() -> None:
    pb = buffered(_session(), 1.0, 100.4)
    assert pb.phase is Phase.STARTUP
    pb = buffered(pb, 2.0, 100.7)
    assert pb.phase is Phase.PLAYING
    assert pb.startup_time_s == pytest.approx(0.7)


def test_stall_is_timed_when_the_buffer_ran_dry() -> None:
    pb = buffered(_session(), 4.0, 101.0)  # playing from t=101 with 4 s buffered
    pb = advance(pb, 110.0)
    assert pb.phase is Phase.STALLED
    assert pb.position_s == 4.0
    assert pb.stall_count == 1
    assert pb.stall_began_s == pytest.approx(105.0)
    assert pb.rebuffer_time_s() == pytest.approx(5.0)


def test_resume_needs_the_resume_buffer() -> None:
    pb = advance(buffered(_session(), 4.0, 101.0), 106.0)
    pb = buffered(pb, 5.0, 107.0)  # 1 s ahead: not enough
    assert pb.phase is Phase.STALLED
    pb = buffered(pb, 6.0, 108.0)
    assert pb.phase is Phase.PLAYING
    assert pb.stall_time_s == pytest.approx(3.0)
    assert pb.stall_count == 1


def test_resume_threshold_capped_by_what_is_left() -> None:
    pb = begin(0.0, 0.0, 5.0, startup_buffer_s=2.0, resume_buffer_s=4.0)
    pb = advance(buffered(pb, 4.0, 1.0), 10.0)
    assert pb.phase is Phase.STALLED
    pb = buffered(pb, 5.0, 11.0)  # only 1 s left to play: enough to resume
    assert pb.phase is Phase.PLAYING


def test_ends_at_the_end_point() -> None:
    pb = buffered(_session(end=6.0), 6.0, 101.0)
    pb = advance(pb, 200.0)
    assert pb.phase is Phase.ENDED
    assert pb.position_s == 6.0
    assert pb.ended_at_s == pytest.approx(107.0)
    assert pb.stall_count == 0


def test_resume_from_an_offset() -> None:
    pb = begin(0.0, 9.0, 20.0, startup_buffer_s=1.0, resume_buffer_s=2.0)
    pb = buffered(pb, 10.0, 0.5)
    assert pb.phase is Phase.PLAYING
    assert pb.buffer_s == pytest.approx(1.0)


def test_stop_during_a_stall_counts_it() -> None:
    pb = advance(buffered(_session(), 4.0, 101.0), 107.0)
    pb = stop(pb, 109.0)
    assert pb.phase is Phase.ENDED
    assert pb.rebuffer_time_s() == pytest.approx(4.0)
    assert pb.position_s == 4.0


def test_empty_range_ends_at_once() -> None:
    pb = begin(0.0, 10.0, 10.0, 2.0, 2.0)
    assert pb.phase is Phase.ENDED


def test_media_time_until() -> None:
    pb = buffered(_session(), 8.0, 101.0)
    assert media_time_until(pb, 5.0) == pytest.approx(5.0)
    assert media_time_until(pb, 9.0) is None  # not buffered that far
    assert media_time_until(_session(), 1.0) is None  # not playing


def test_clock_never_runs_backwards() -> None:
    pb = buffered(_session(), 8.0, 101.0)
    assert advance(pb, 50.0) == pb


events = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.floats(0.0, 6.0)),
        st.tuples(st.just("seg"), st.floats(0.0, 3.0)),
    ),
    max_size=40,
)


@given(events, st.floats(0.0, 10.0))
def test_time_is_conserved(evs: list[tuple[str, float]], start: float) -> None:
    """requested->now = startup + played + rebuffering, whatever happens."""
    now = 0.0
    pb = begin(now, start, start + 30.0, startup_buffer_s=2.0, resume_buffer_s=2.0)
    next_seg = start
    for kind, x in evs:
        now += x
        if kind == "seg":
            next_seg += 2.0
            pb = buffered(pb, next_seg, now)
        else:
            pb = advance(pb, now)
        assert pb.position_s <= pb.buffered_until_s + 1e-9
        assert pb.position_s <= pb.end_s
        if pb.startup_time_s is not None:
            until = pb.ended_at_s if pb.ended_at_s is not None else now
            played = pb.position_s - start
            total = pb.startup_time_s + played + pb.rebuffer_time_s()
            assert total == pytest.approx(until - pb.requested_at_s, abs=1e-6)
