"""The fill agent's next step for a missing file: attempt, wait for a nearer copy, back off."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcast.core.fillqueue import (
    Attempt,
    SourceFailures,
    Wait,
    backoff_end,
    next_step,
    order_files,
    record_failure,
)
from localcast.core.fillsources import EscalationPolicy, FillSource, Holding, SourceKind

C, PA, PL = Holding.COMPLETE, Holding.PARTIAL, Holding.PLANNED
POLICY = EscalationPolicy(wait_s=100.0)
T0 = 1_700_000_000.0


def src(appliance_id: str, holding: Holding, hop: int) -> FillSource:
    kind = SourceKind.PEER if hop == 0 else SourceKind.TIER
    if appliance_id.startswith("o"):
        kind = SourceKind.ORIGIN
    return FillSource(appliance_id, f"site-{appliance_id}", kind, holding, hop)


# leader a1 planned at hop 0, IX leader x1 planned at hop 1, origin at hop 2
NON_LEADER = (src("a1", PL, 0), src("x1", PL, 1), src("o1", C, 2))


def fail(count: int, at: float) -> SourceFailures:
    return SourceFailures(count=count, last_at=at)


def test_first_holder_is_attempted_complete_before_partial_in_list_order() -> None:
    sources = (src("a2", C, 0), src("a3", PA, 0), src("a1", PL, 0), src("o1", C, 1))
    assert next_step(sources, {}, T0, T0, POLICY) == Attempt(sources[0])
    partial_first = (src("a3", PA, 0), src("a1", PL, 0), src("o1", C, 1))
    assert next_step(partial_first, {}, T0, T0, POLICY) == Attempt(partial_first[0])


def test_waits_for_its_leader_then_the_ix_leader_then_goes_to_origin() -> None:
    step = next_step(NON_LEADER, {}, T0, T0 + 1, POLICY)
    assert step == Wait(until=T0 + 100, reason="waiting for a1 (hop 0) until 1700000100")
    step = next_step(NON_LEADER, {}, T0, T0 + 100, POLICY)  # hop 0's wait is over
    assert isinstance(step, Wait) and step.until == T0 + 200 and "x1 (hop 1)" in step.reason
    assert next_step(NON_LEADER, {}, T0, T0 + 199.9, POLICY) == Wait(
        until=T0 + 200, reason="waiting for x1 (hop 1) until 1700000200"
    )
    assert next_step(NON_LEADER, {}, T0, T0 + 200, POLICY) == Attempt(NON_LEADER[2])


def test_a_holder_at_a_later_hop_does_not_beat_waiting_for_a_nearer_planned_copy() -> None:
    sources = (src("a1", PL, 0), src("x2", C, 1), src("o1", C, 2))
    assert isinstance(next_step(sources, {}, T0, T0 + 50, POLICY), Wait)
    assert next_step(sources, {}, T0, T0 + 150, POLICY) == Attempt(sources[1])


def test_a_holder_in_backoff_is_skipped_for_the_next_one() -> None:
    sources = (src("a2", C, 0), src("a3", C, 0), src("o1", C, 1))
    failures = {"a2": fail(1, T0)}
    assert next_step(sources, failures, T0, T0 + 0.5, POLICY) == Attempt(sources[1])
    assert next_step(sources, failures, T0, T0 + 1.0, POLICY) == Attempt(sources[0])  # rested


def test_wait_ends_early_when_a_nearer_holder_leaves_backoff() -> None:
    sources = (src("a1", C, 0), src("a1", PL, 0), src("o1", C, 1))
    failures = {"a1": fail(3, T0 + 10)}  # rests 4 s
    assert next_step(sources, failures, T0, T0 + 11, POLICY) == Wait(
        until=T0 + 14, reason="waiting for a1 (hop 0) until 1700000100"
    )
    assert next_step(sources, failures, T0, T0 + 14, POLICY) == Attempt(sources[0])


def test_everyone_in_backoff_waits_for_the_first_to_rest() -> None:
    sources = (src("a2", C, 0), src("o1", C, 1))
    failures = {"a2": fail(4, T0), "o1": fail(2, T0 + 1)}  # rest until T0+8 and T0+3
    assert next_step(sources, failures, T0, T0 + 2, POLICY) == Wait(
        until=T0 + 3, reason="every source holding it is in backoff"
    )


def test_never_gives_up_without_any_source() -> None:
    assert next_step((), {}, T0, T0 + 5, POLICY) == Wait(
        until=T0 + 65, reason="no source holds it yet"
    )
    only_planned = (src("a1", PL, 0),)
    late = next_step(only_planned, {}, T0, T0 + 10_000, POLICY, backoff_max_s=30)
    assert late == Wait(until=T0 + 10_030, reason="no source holds it yet")


def test_failures_of_other_sources_do_not_matter() -> None:
    sources = (src("a2", C, 0),)
    assert next_step(sources, {"zz": fail(9, T0)}, T0, T0, POLICY) == Attempt(sources[0])


def test_backoff_doubles_up_to_the_cap() -> None:
    assert backoff_end(None) == float("-inf")
    assert backoff_end(fail(0, T0)) == float("-inf")
    ends = [backoff_end(fail(n, 0.0), 1.0, 60.0) for n in range(1, 10)]
    assert ends == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff_end(fail(10_000, 0.0), 0.5, 30.0) == 30.0  # no overflow
    f = record_failure(None, T0)
    assert f == SourceFailures(1, T0)
    assert record_failure(f, T0 + 3) == SourceFailures(2, T0 + 3)


def test_order_files_urgent_first_then_manifest_order() -> None:
    files = [("t1", "f1"), ("t1", "f2"), ("t2", "g1"), ("t3", "h1"), ("t2", "g2")]
    assert order_files(files, {"t2"}) == (
        ("t2", "g1"),
        ("t2", "g2"),
        ("t1", "f1"),
        ("t1", "f2"),
        ("t3", "h1"),
    )
    assert order_files(files, set()) == tuple(files)


@pytest.mark.parametrize("wait_s", [0.0, 30.0, 600.0])
def test_zero_wait_goes_wide_at_once(wait_s: float) -> None:
    step = next_step(NON_LEADER, {}, T0, T0, EscalationPolicy(wait_s=wait_s))
    if wait_s == 0:
        assert step == Attempt(NON_LEADER[2])
    else:
        assert isinstance(step, Wait) and step.until == T0 + wait_s


@settings(max_examples=300, deadline=None)
@given(
    layout=st.lists(
        st.tuples(st.sampled_from([C, PA, PL]), st.integers(0, 3), st.integers(0, 5)),
        max_size=8,
    ),
    elapsed=st.floats(0, 2000),
)
def test_next_step_properties(layout: list[tuple[Holding, int, int]], elapsed: float) -> None:
    """An attempt is never a planned source nor one in backoff; a wait is always in the future."""
    layout = sorted(layout, key=lambda x: x[1])
    sources = tuple(src(f"n{i}", h, hop) for i, (h, hop, _) in enumerate(layout))
    now = T0 + elapsed
    failures = {f"n{i}": fail(n, now - 1.5) for i, (_, _, n) in enumerate(layout) if n > 0}
    step = next_step(sources, failures, T0, now, POLICY)
    if isinstance(step, Attempt):
        assert step.source.holding is not PL
        assert backoff_end(failures.get(step.source.appliance_id)) <= now
        earlier_usable = [
            s
            for s in sources
            if s.hop < step.source.hop
            and s.holding is not PL
            and backoff_end(failures.get(s.appliance_id)) <= now
        ]
        assert not earlier_usable
    else:
        assert step.until > now
