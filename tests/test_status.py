"""Appliance status: components and their thresholds, worst wins, Unknown, hysteresis; pure."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcast.core.fleet import Appliance, ApplianceState, Health, Load
from localcast.core.status import (
    MIB,
    BgpSession,
    Component,
    ComponentName,
    DiskUsage,
    Evaluation,
    FillProgress,
    ServingWindow,
    StatusInputs,
    StatusLevel,
    StatusState,
    StatusThresholds,
    SteeringEffect,
    bgp_component,
    disk_component,
    evaluate,
    fill_component,
    heartbeat_component,
    inputs_from_appliance,
    load_component,
    next_status,
    serving_component,
    severity,
)

NOW = 1_800_000_000.0
OK, WARNING, ERROR, UNKNOWN = (
    StatusLevel.OK,
    StatusLevel.WARNING,
    StatusLevel.ERROR,
    StatusLevel.UNKNOWN,
)
GIB = 1 << 30
H = 3600.0


def alive(at: float = NOW, interval_s: float = 5.0) -> Health:
    """Heartbeats every ``interval_s``, the last one at ``at``."""
    return Health(interval_s, last_heartbeat_at=at, run_started_at=at - 100, beats_in_run=20)


# --- heartbeat ---------------------------------------------------------------------------------


def test_heartbeat_unknown_before_the_first_one() -> None:
    c = heartbeat_component(Health(5.0), NOW)
    assert c.level is UNKNOWN and c.reason == "never heard from"


def test_heartbeat_fresh_late_dead() -> None:
    h = alive()
    assert heartbeat_component(h, NOW + 10.0).level is OK  # 2 intervals: not late yet
    late = heartbeat_component(h, NOW + 10.5)
    assert late.level is WARNING and late.reason.startswith("late: last heartbeat 10.5 s ago")
    assert heartbeat_component(h, NOW + 15.0).level is WARNING  # window is 3 intervals
    dead = heartbeat_component(h, NOW + 15.5)
    assert dead.level is ERROR and dead.reason.startswith("dead: no heartbeat for 15.5 s")


def test_heartbeat_recovering_run_is_a_warning() -> None:
    h = Health(5.0, last_heartbeat_at=NOW, run_started_at=NOW, beats_in_run=1)
    c = heartbeat_component(h, NOW + 1)
    assert c.level is WARNING and c.reason.startswith("recovering: 1 of 2")


def test_heartbeat_late_threshold_is_configurable() -> None:
    t = StatusThresholds(heartbeat_late_intervals=1.0)
    assert heartbeat_component(alive(), NOW + 5.5, t).level is WARNING


# --- disk --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used_pct", "level"),
    [(50, OK), (90, OK), (91, WARNING), (97, WARNING), (98, ERROR), (99, ERROR)],
)
def test_disk_share_thresholds(used_pct: int, level: StatusLevel) -> None:
    total = 1000 * GIB
    used = total * used_pct // 100
    assert disk_component(DiskUsage(used, total - used)).level is level


def test_disk_free_floor_is_an_error_whatever_the_share() -> None:
    c = disk_component(DiskUsage(used_bytes=1 * MIB, free_bytes=255 * MIB))
    assert c.level is ERROR and "below the 0.25 GiB floor" in c.reason
    assert disk_component(DiskUsage(1 * MIB, 256 * MIB)).level is OK


def test_disk_reason_says_share_and_free() -> None:
    c = disk_component(DiskUsage(95 * GIB, 5 * GIB))
    assert c.reason == "95.0 % used, 5.00 GiB free: above 90.0 %"


# --- fill --------------------------------------------------------------------------------------


def test_fill_complete_and_filling_are_ok() -> None:
    assert fill_component(FillProgress(10, 10), NOW).reason == "complete: holds 10 of 10 title(s)"
    assert fill_component(FillProgress(10, 4), NOW).level is OK
    assert fill_component(FillProgress(10, 4, behind_since=NOW - 23 * H), NOW).level is OK


def test_fill_behind_for_longer_than_a_day_is_a_warning() -> None:
    c = fill_component(FillProgress(10, 4, behind_since=NOW - 25 * H), NOW)
    assert c.level is WARNING
    assert c.reason == "behind: holds 4 of 10 title(s) for 25.0 h (more than 24 h)"


def test_fill_alarm_is_a_warning_with_the_agents_text() -> None:
    alarm = "disk full: t1 needs 100 bytes, the filesystem has 10 free"
    c = fill_component(FillProgress(10, 4, alarm=alarm), NOW)
    assert c.level is WARNING and alarm in c.reason


@given(
    wanted=st.integers(0, 1000),
    held=st.integers(0, 1000),
    behind=st.floats(0, 1e8),
    alarm=st.none() | st.text(min_size=1, max_size=20),
)
def test_fill_never_raises_error(wanted: int, held: int, behind: float, alarm: str | None) -> None:
    c = fill_component(FillProgress(wanted, held, NOW - behind, alarm), NOW)
    assert c.level in (OK, WARNING)


# --- bgp ---------------------------------------------------------------------------------------


def test_bgp_all_established_is_ok() -> None:
    s = (BgpSession("r1", True, NOW - 900), BgpSession("r2", True, NOW - 900))
    c = bgp_component(s, NOW)
    assert c.level is OK and c.reason == "2 of 2 session(s) established"


def test_bgp_down_within_grace_counts_for_nothing() -> None:
    s = (BgpSession("r1", True, NOW - 900), BgpSession("r2", False, NOW - 120))
    c = bgp_component(s, NOW)
    assert c.level is OK and "1 establishing (r2)" in c.reason
    # even all sessions down, while inside the grace
    assert bgp_component((BgpSession("r1", False, NOW - 60),), NOW).level is OK


def test_bgp_one_of_two_down_past_grace_is_a_warning() -> None:
    s = (BgpSession("r1", True, NOW - 900), BgpSession("r2", False, NOW - 121))
    c = bgp_component(s, NOW)
    assert c.level is WARNING and "down: r2 for 121 s" in c.reason


def test_bgp_all_down_is_an_error() -> None:
    s = (BgpSession("r1", False, NOW - 300), BgpSession("r2", False, NOW - 200))
    c = bgp_component(s, NOW)
    assert c.level is ERROR and c.reason == "all sessions down: r1 for 300 s, r2 for 200 s"
    # one of them still inside the grace: not all counted down yet
    s2 = (BgpSession("r1", False, NOW - 300), BgpSession("r2", False, NOW - 10))
    assert bgp_component(s2, NOW).level is WARNING


# --- serving -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "level"), [(0, OK), (9, OK), (10, WARNING), (49, WARNING), (50, ERROR)]
)
def test_serving_5xx_share_thresholds(errors: int, level: StatusLevel) -> None:
    assert serving_component(ServingWindow(1000, errors, 60)).level is level


def test_serving_too_few_requests_to_judge() -> None:
    c = serving_component(ServingWindow(49, 49, 60))
    assert c.level is OK and c.reason == "49 request(s) in the last 60 s: too few to judge"
    assert serving_component(ServingWindow(50, 50, 60)).level is ERROR


# --- load --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gbit", "level"), [(0.0, OK), (8.5, OK), (8.51, WARNING), (10.0, WARNING), (10.01, ERROR)]
)
def test_load_against_capacity(gbit: float, level: StatusLevel) -> None:
    assert load_component(gbit * 1e9, 10.0).level is level


def test_load_over_capacity_says_so() -> None:
    assert load_component(12e9, 10.0).reason == "over capacity: 12.00 of 10 Gbit/s (120.0 %)"


# --- evaluate: worst wins ----------------------------------------------------------------------


def test_unknown_before_the_first_heartbeat_whatever_else_is_known() -> None:
    ev = evaluate(
        StatusInputs(Health(5.0), disk=DiskUsage(99, 1), egress_bps=20e9, capacity_gbps=10), NOW
    )
    assert ev.level is UNKNOWN
    assert [c.name for c in ev.components] == [ComponentName.HEARTBEAT]


def test_ok_when_every_component_is_ok() -> None:
    ev = evaluate(
        StatusInputs(
            alive(),
            disk=DiskUsage(10 * GIB, 90 * GIB),
            fill=FillProgress(3, 3),
            bgp=(BgpSession("r1", True, NOW - 900),),
            serving=ServingWindow(1000, 0, 60),
            egress_bps=1e9,
            capacity_gbps=10,
        ),
        NOW + 1,
    )
    assert ev.level is OK and ev.reasons == ()
    assert [c.name for c in ev.components] == list(ComponentName)


def test_worst_component_wins_and_every_non_ok_reason_is_carried() -> None:
    ev = evaluate(
        StatusInputs(
            alive(),
            disk=DiskUsage(95 * GIB, 5 * GIB),  # warning
            serving=ServingWindow(100, 10, 60),  # error
            egress_bps=9e9,  # warning
            capacity_gbps=10,
        ),
        NOW + 1,
    )
    assert ev.level is ERROR
    assert [r.split(":")[0] for r in ev.reasons] == [
        "disk warning",
        "serving error",
        "load warning",
    ]
    assert "10 of 100 requests 5xx (10.0 %)" in ev.reasons[1]


def test_only_applicable_components_are_evaluated() -> None:
    ev = evaluate(StatusInputs(alive(), disk=DiskUsage(0, 0)), NOW)
    assert [c.name for c in ev.components] == [ComponentName.HEARTBEAT]
    assert ev.recover_after_s == 10.0  # 2 intervals of 5 s


def test_dead_appliance_is_error_even_with_good_stale_data() -> None:
    ev = evaluate(StatusInputs(alive(), disk=DiskUsage(1 * GIB, 99 * GIB)), NOW + 60)
    assert ev.level is ERROR and ev.reasons[0].startswith("heartbeat error: dead")


def test_inputs_from_appliance_reads_the_snapshot_entry() -> None:
    a = Appliance(
        id="a1",
        site_id="s1",
        base_url="http://a1",
        disk_bytes=10**12,
        gbps=10.0,
        state=ApplianceState.REGISTERED,
        health=alive(),
        load=Load(egress_bps=9.9e9, disk_used_bytes=5, disk_free_bytes=10 * GIB),
    )
    inputs = inputs_from_appliance(a)
    assert inputs.disk == DiskUsage(5, 10 * GIB) and inputs.capacity_gbps == 10.0
    assert evaluate(inputs, NOW).level is WARNING  # 99 % load
    bare = inputs_from_appliance(Appliance("a", "s", "u", 1, 1.0, a.state, alive()))
    assert bare.disk is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"disk_warning_used": 0.99, "disk_error_used": 0.98},
        {"load_warning": 1.2, "load_error": 1.0},
        {"serving_error_share": 1.5},
        {"bgp_grace_s": -1.0},
        {"serving_min_requests": 0},
    ],
)
def test_thresholds_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        StatusThresholds(**kwargs)  # type: ignore[arg-type]


# --- hysteresis --------------------------------------------------------------------------------

R = 10.0  # recover_after_s in these tests


def obs(*levels: tuple[ComponentName, StatusLevel]) -> Evaluation:
    comps = tuple(Component(n, lvl, f"{n} is {lvl}") for n, lvl in levels)
    hb = (
        ()
        if any(n is ComponentName.HEARTBEAT for n, _ in levels)
        else (Component(ComponentName.HEARTBEAT, OK, "alive"),)
    )
    comps = hb + comps
    level = max((c.level for c in comps), key=severity)
    return Evaluation(level, comps, R)


def disk(level: StatusLevel) -> Evaluation:
    return obs((ComponentName.DISK, level))


def run(seq: list[tuple[float, Evaluation]]) -> list[StatusState]:
    state: StatusState | None = None
    out = []
    for t, ev in seq:
        state = next_status(state, ev, t)
        out.append(state)
    return out


def test_first_observation_is_taken_as_is() -> None:
    s = next_status(None, disk(WARNING), NOW)
    assert s.level is WARNING and s.since == NOW
    assert s.reason == "disk warning: disk is warning"


def test_worsening_is_immediate() -> None:
    states = run([(NOW, disk(OK)), (NOW + 5, disk(WARNING)), (NOW + 6, disk(ERROR))])
    assert [s.level for s in states] == [OK, WARNING, ERROR]
    assert [s.since for s in states] == [NOW, NOW + 5, NOW + 6]


def test_recovery_needs_better_observations_for_recover_after_s() -> None:
    states = run(
        [
            (NOW, disk(ERROR)),
            (NOW + 5, disk(OK)),  # better from here
            (NOW + 10, disk(OK)),
            (NOW + 14.9, disk(OK)),
            (NOW + 15, disk(OK)),  # 10 s of better observations
        ]
    )
    assert [s.level for s in states] == [ERROR, ERROR, ERROR, ERROR, OK]
    assert states[-1].since == NOW + 15
    held = states[2]
    assert held.since == NOW  # held, not re-entered
    comp = held.component(ComponentName.DISK)
    assert comp is not None and comp.since == NOW and comp.level is ERROR
    recovered = states[-1].component(ComponentName.DISK)
    assert recovered is not None and recovered.since == NOW + 15
    assert held.reason == ("disk error: disk is error (now ok: disk is ok; better for 5.0 of 10 s)")


def test_flapping_stays_at_its_worst_until_stable() -> None:
    seq = [(NOW + 2.0 * i, disk(ERROR if i % 3 == 0 else OK)) for i in range(30)]
    seq += [(NOW + 60 + 2.0 * i, disk(OK)) for i in range(8)]
    states = run(seq)
    assert all(s.level is ERROR for s in states[:33])
    assert states[0].since == NOW and states[32].since == NOW  # never bounced
    # the last error was observed at NOW + 54; OK from NOW + 56; recovered at NOW + 66
    first_ok = next(i for i, s in enumerate(states) if s.level is OK)
    assert seq[first_ok][0] == NOW + 66


def test_error_to_warning_to_ok_each_needs_its_own_run() -> None:
    states = run(
        [
            (NOW, disk(ERROR)),
            (NOW + 5, disk(WARNING)),  # error clears from here
            (NOW + 10, disk(OK)),  # warning clears from here
            (NOW + 15, disk(OK)),  # error gone (10 s), warning held (5 s)
            (NOW + 20, disk(OK)),  # warning gone
        ]
    )
    assert [s.level for s in states] == [ERROR, ERROR, ERROR, WARNING, OK]
    assert states[3].reason.startswith("disk warning: disk is warning (now ok")


def test_straight_to_ok_lets_go_of_both_levels_together() -> None:
    states = run([(NOW, disk(ERROR)), (NOW + 5, disk(OK)), (NOW + 15, disk(OK))])
    assert [s.level for s in states] == [ERROR, ERROR, OK]


def test_two_components_flapping_in_turn_do_not_bounce() -> None:
    a = obs((ComponentName.DISK, ERROR), (ComponentName.LOAD, OK))
    b = obs((ComponentName.DISK, OK), (ComponentName.LOAD, ERROR))
    states = run([(NOW + 3.0 * i, a if i % 2 else b) for i in range(10)])
    assert all(s.level is ERROR for s in states)
    last = states[-1]
    # both held, so steering sees the load error even on a disk-error observation
    assert {c.name for c in last.components if c.level is ERROR} == {
        ComponentName.DISK,
        ComponentName.LOAD,
    }
    assert last.effect is SteeringEffect.NO_NEW


def test_missing_component_counts_as_ok_and_is_dropped_once_clear() -> None:
    states = run(
        [
            (NOW, obs((ComponentName.SERVING, ERROR))),
            (NOW + 5, obs()),  # serving not reported
            (NOW + 15, obs()),
        ]
    )
    assert states[1].level is ERROR
    assert "now ok: not reported" in states[1].reason
    assert states[2].level is OK
    assert [c.name for c in states[2].components] == [ComponentName.HEARTBEAT]


def test_unknown_is_entered_and_left_at_once() -> None:
    unknown = Evaluation(UNKNOWN, (Component(ComponentName.HEARTBEAT, UNKNOWN, "never"),), R)
    states = run(
        [
            (NOW, unknown),
            (NOW + 1, unknown),
            (NOW + 2, disk(OK)),
            (NOW + 3, disk(ERROR)),
            (NOW + 4, unknown),
            (NOW + 5, disk(OK)),  # leaving Unknown forgets the held error
        ]
    )
    assert [s.level for s in states] == [UNKNOWN, UNKNOWN, OK, ERROR, UNKNOWN, OK]
    assert states[1].since == NOW
    assert states[0].effect is SteeringEffect.OUT


def test_real_appliance_coming_back_from_the_dead() -> None:
    """Evaluate -> next_status over heartbeats: dead at once, back only after 2 intervals."""
    t = StatusThresholds()
    h = alive(NOW)
    state = next_status(None, evaluate(StatusInputs(h), NOW, t), NOW)
    assert state.level is OK
    state = next_status(state, evaluate(StatusInputs(h), NOW + 16, t), NOW + 16)
    assert state.level is ERROR and state.effect is SteeringEffect.OUT
    back = NOW + 60
    levels = []
    for i in range(5):
        at = back + 5.0 * i
        beats = Health(5.0, last_heartbeat_at=at, run_started_at=back, beats_in_run=i + 1)
        state = next_status(state, evaluate(StatusInputs(beats), at, t), at)
        levels.append(state.level)
    # beat 1 recovering (warning observed), beat 2 alive; error clears 10 s after beat 1,
    # warning 10 s after beat 2
    assert levels == [ERROR, ERROR, WARNING, OK, OK]


# --- properties --------------------------------------------------------------------------------

LEVELS = st.sampled_from([OK, WARNING, ERROR])
NAMES = st.sampled_from([ComponentName.DISK, ComponentName.BGP, ComponentName.LOAD])
OBSERVATION = st.lists(st.tuples(NAMES, LEVELS), max_size=3, unique_by=lambda x: x[0])
STEPS = st.lists(st.tuples(st.floats(0, 12, allow_nan=False), OBSERVATION), min_size=1, max_size=40)


def _timeline(
    steps: list[tuple[float, list[tuple[ComponentName, StatusLevel]]]],
) -> list[tuple[float, Evaluation]]:
    t = NOW
    out = []
    for dt, comps in steps:
        t += dt
        out.append((t, obs(*comps)))
    return out


@settings(max_examples=300)
@given(STEPS)
def test_never_better_than_any_observation_in_the_last_recover_after_s(
    steps: list[tuple[float, list[tuple[ComponentName, StatusLevel]]]],
) -> None:
    seq = _timeline(steps)
    states = run(seq)
    for i, (t_i, _) in enumerate(seq):
        for t_j, ev_j in seq[: i + 1]:
            if t_i - t_j < R:
                assert severity(states[i].level) >= severity(ev_j.level)
                for c in ev_j.components:
                    if c.level is OK:
                        continue  # an OK component no longer reported may be dropped
                    held = states[i].component(c.name)
                    assert held is not None and severity(held.level) >= severity(c.level)


@settings(max_examples=300)
@given(STEPS, LEVELS, st.floats(0.5, 6))
def test_a_level_observed_for_recover_after_s_is_the_status(
    steps: list[tuple[float, list[tuple[ComponentName, StatusLevel]]]],
    level: StatusLevel,
    every: float,
) -> None:
    seq = _timeline(steps)
    t0 = seq[-1][0] + 1
    n = int(R // every) + 1
    seq += [(t0 + every * k, disk(level)) for k in range(n + 1)]
    states = run(seq)
    assert states[-1].level is level
    # and worsening is immediate at every step
    for (_, ev), s in zip(seq, states, strict=True):
        assert severity(s.level) >= severity(ev.level)


@given(STEPS)
def test_since_moves_exactly_when_the_level_changes(
    steps: list[tuple[float, list[tuple[ComponentName, StatusLevel]]]],
) -> None:
    seq = _timeline(steps)
    states = run(seq)
    for (t, _), prev, cur in zip(seq[1:], states[:-1], states[1:], strict=True):
        if cur.level is prev.level:
            assert cur.since == prev.since
        else:
            assert cur.since == t
