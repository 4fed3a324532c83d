"""Drain / disable / enable: durations, expiry, and the steering state; pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcast.core.fleet import Health
from localcast.core.maintenance import (
    MAX_DURATION_S,
    MIN_DURATION_S,
    DurationError,
    Maintenance,
    MaintenanceMode,
    SteeringState,
    begin,
    check_duration,
    effective,
    ended,
    format_duration,
    parse_duration,
    steering_state,
)
from localcast.core.status import (
    DiskUsage,
    ServingWindow,
    StatusInputs,
    StatusState,
    evaluate,
    next_status,
)

NOW = 1_800_000_000.0
H = 3600.0
D = 86400.0

# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3h", 3 * H),
        ("90m", 90 * 60.0),
        ("2d", 2 * D),
        ("1d12h", 1.5 * D),
        ("1.5h", 1.5 * H),
        ("2w", 14 * D),
        (" 1d 6h 30m ", D + 6.5 * H),
        ("45s", 45.0),
        ("3H", 3 * H),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "3", "h", "3x", "3h foo", "-3h", "3 hours", "1d-2h"])
def test_parse_duration_refuses_with_examples(text: str) -> None:
    with pytest.raises(DurationError, match=r"invalid duration .*e\.g\. 3h, 90m, 2d"):
        parse_duration(text)


def test_bounds_are_3_hours_to_30_days_inclusive() -> None:
    assert check_duration(MIN_DURATION_S) == 3 * H
    assert check_duration(MAX_DURATION_S) == 30 * D
    with pytest.raises(DurationError, match=r"^duration 2h59m is too short: .* from 3h to 30d$"):
        check_duration(parse_duration("179m"))
    with pytest.raises(DurationError, match=r"^duration 30d1s is too long: .* from 3h to 30d$"):
        check_duration(30 * D + 1)
    with pytest.raises(DurationError, match="too short"):
        check_duration(-5.0)
    with pytest.raises(DurationError, match="too long"):
        check_duration(float("inf"))
    with pytest.raises(DurationError):
        check_duration(float("nan"))


@given(st.floats(0, 60 * D, allow_nan=False))
def test_check_duration_accepts_exactly_the_range(seconds: float) -> None:
    if MIN_DURATION_S <= seconds <= MAX_DURATION_S:
        assert check_duration(seconds) == seconds
    else:
        with pytest.raises(DurationError):
            check_duration(seconds)


@given(st.integers(0, 60 * 86400))
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# --- maintenance records -----------------------------------------------------------------------


def test_begin_parses_and_checks() -> None:
    m = begin("drain", "2d", NOW, "swap disk 3")
    assert m == Maintenance(MaintenanceMode.DRAIN, NOW, NOW + 2 * D, "swap disk 3")
    assert begin(MaintenanceMode.DISABLE, 4 * H, NOW).until == NOW + 4 * H
    with pytest.raises(DurationError, match="too short"):
        begin("drain", "90m", NOW)
    with pytest.raises(DurationError, match="too long"):
        begin("disable", "31d", NOW)
    with pytest.raises(ValueError):
        begin("reboot", "3h", NOW)


def test_effective_until_expiry_then_none() -> None:
    m = begin("drain", "3h", NOW)
    assert effective(m, NOW) is m
    assert effective(m, NOW + 3 * H - 0.001) is m
    assert effective(m, NOW + 3 * H) is None  # until is excluded
    assert effective(m, NOW - 1) is None  # not started
    assert effective(None, NOW) is None


def test_enable_ends_it_now() -> None:
    m = begin("disable", "3d", NOW)
    done = ended(m, NOW + H)
    assert done.until == NOW + H and effective(done, NOW + H) is None
    assert ended(done, NOW + 2 * H) == done  # already over: unchanged
    assert ended(m, NOW - 5).until == NOW  # never before it began


def test_describe() -> None:
    m = begin("drain", "1d", NOW, "fibre work")
    assert m.describe(NOW + 6 * H) == "drained, 18h left: fibre work"
    assert begin("disable", "3h", NOW).describe(NOW) == "disabled, 3h left"
    assert m.describe(NOW + D) == "drain ended: fibre work"


def test_until_before_since_is_refused() -> None:
    with pytest.raises(ValueError):
        Maintenance(MaintenanceMode.DRAIN, NOW, NOW - 1)


# --- steering state ----------------------------------------------------------------------------


def healthy() -> Health:
    return Health(5.0, last_heartbeat_at=NOW, run_started_at=NOW - 100, beats_in_run=20)


def status_of(inputs: StatusInputs, now: float = NOW) -> StatusState:
    return next_status(None, evaluate(inputs, now), now)


OK_STATUS = status_of(StatusInputs(healthy(), egress_bps=1e9, capacity_gbps=10))


def test_healthy_turned_up_appliance_serves() -> None:
    s = steering_state(None, OK_STATUS, True, NOW)
    assert s == SteeringState(True, True, "serving: status ok")


def test_drained_takes_no_new_sessions_but_keeps_in_flight() -> None:
    s = steering_state(begin("drain", "3h", NOW), OK_STATUS, True, NOW + 1)
    assert not s.new_sessions and s.keep_in_flight
    assert s.reason.startswith("drained, 2h59m59s left")


def test_disabled_is_out_entirely() -> None:
    s = steering_state(begin("disable", "3h", NOW, "rma"), OK_STATUS, True, NOW + 1)
    assert not s.new_sessions and not s.keep_in_flight
    assert s.reason.startswith("disabled") and s.reason.endswith(": rma")


def test_expired_maintenance_serves_again() -> None:
    m = begin("disable", "3h", NOW)
    assert steering_state(m, OK_STATUS, True, NOW + 3 * H).new_sessions


def test_not_turned_up_or_unknown_is_out() -> None:
    s = steering_state(None, OK_STATUS, False, NOW)
    assert (s.new_sessions, s.keep_in_flight, s.reason) == (False, False, "not turned up")
    never = status_of(StatusInputs(Health(5.0)))
    for st_ in (None, never):
        s = steering_state(None, st_, True, NOW)
        assert (s.new_sessions, s.keep_in_flight) == (False, False)
        assert s.reason == "status unknown: never heard from"


def test_dead_or_failing_is_out() -> None:
    dead = status_of(StatusInputs(healthy()), NOW + 60)
    s = steering_state(None, dead, True, NOW + 60)
    assert (s.new_sessions, s.keep_in_flight) == (False, False)
    assert s.reason.startswith("heartbeat error: dead")
    failing = status_of(StatusInputs(healthy(), serving=ServingWindow(200, 20, 60)))
    s = steering_state(None, failing, True, NOW)
    assert (s.new_sessions, s.keep_in_flight) == (False, False)
    assert s.reason.startswith("serving error: 20 of 200 requests 5xx")


def test_over_capacity_takes_no_new_sessions_keeps_in_flight() -> None:
    hot = status_of(StatusInputs(healthy(), egress_bps=11e9, capacity_gbps=10))
    s = steering_state(None, hot, True, NOW)
    assert (s.new_sessions, s.keep_in_flight) == (False, True)
    assert s.reason.startswith("load error: over capacity")


def test_full_disk_and_warnings_still_serve() -> None:
    full = status_of(
        StatusInputs(healthy(), disk=DiskUsage(99, 1), egress_bps=9e9, capacity_gbps=10)
    )
    assert full.level == "error"
    s = steering_state(None, full, True, NOW)
    assert s.new_sessions and s.keep_in_flight and s.reason == "serving: status error"


def test_strongest_restriction_wins_and_every_reason_is_listed() -> None:
    hot = status_of(StatusInputs(healthy(), egress_bps=11e9, capacity_gbps=10))
    s = steering_state(begin("drain", "1d", NOW), hot, True, NOW)
    assert (s.new_sessions, s.keep_in_flight) == (False, True)
    assert s.reason.startswith("load error") and "; drained, 1d left" in s.reason
    s = steering_state(begin("drain", "1d", NOW), OK_STATUS, False, NOW)
    assert (s.new_sessions, s.keep_in_flight) == (False, False)
    assert s.reason == "not turned up; drained, 1d left"


def test_steering_follows_the_held_status_not_the_last_observation() -> None:
    dead = status_of(StatusInputs(healthy()), NOW + 60)
    back = Health(5.0, last_heartbeat_at=NOW + 61, run_started_at=NOW + 56, beats_in_run=2)
    state = next_status(dead, evaluate(StatusInputs(back), NOW + 61), NOW + 61)
    s = steering_state(None, state, True, NOW + 61)
    assert not s.new_sessions and not s.keep_in_flight
    assert "now ok" in s.reason and "better for 0.0 of 10 s" in s.reason
