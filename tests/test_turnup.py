"""Turn-up checks gate serving until they all pass, then stay out of the way; pure."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcast.core.status import BgpSession
from localcast.core.turnup import (
    DEFAULT_POLICY,
    Check,
    CheckResult,
    Outcome,
    Probe,
    Turnup,
    TurnupInputs,
    TurnupPolicy,
    next_turnup,
    turnup_checks,
)

NOW = 1_800_000_000.0
PASS, FAIL, PENDING = Outcome.PASS, Outcome.FAIL, Outcome.PENDING

READY = TurnupInputs(
    reachability=Probe(True, NOW - 5),
    content=Probe(True, NOW - 5, "200, 1234 bytes, sha256 matches"),
    bgp_required=True,
    bgp=(BgpSession("r1", True, NOW - 60), BgpSession("r2", False, NOW - 600)),
    titles_wanted=10,
    titles_held=10,
)


def outcome(inputs: TurnupInputs, check: Check, policy: TurnupPolicy = DEFAULT_POLICY) -> Outcome:
    by = {c.check: c for c in turnup_checks(inputs, NOW, policy)}
    return by[check].outcome


def result(inputs: TurnupInputs, check: Check) -> CheckResult:
    return next(c for c in turnup_checks(inputs, NOW) if c.check is check)


def test_nothing_known_yet_is_all_pending_except_bgp_not_required() -> None:
    checks = turnup_checks(TurnupInputs(), NOW)
    assert [(c.check, c.outcome) for c in checks] == [
        (Check.REACHABLE, PENDING),
        (Check.CONTENT, PENDING),
        (Check.BGP, PASS),
        (Check.FILL, PENDING),
    ]
    assert checks[2].reason == "not required: the site does not speak BGP"
    assert checks[3].reason == "no fill manifest yet"


def test_every_check_passing_allows_serving() -> None:
    t = next_turnup(None, READY, NOW)
    assert all(c.outcome is PASS for c in t.checks)
    assert t.serving_allowed and t.turned_up_at == NOW
    assert t.reason == f"turned up at {NOW:.0f}"
    assert result(READY, Check.BGP).reason == "1 of 2 session(s) established (r1)"


@pytest.mark.parametrize("probe", ["reachability", "content"])
def test_a_failed_probe_fails_its_check_with_the_detail(probe: str) -> None:
    failed = Probe(False, NOW - 1, "connection refused")
    if probe == "reachability":
        bad, check = replace(READY, reachability=failed), Check.REACHABLE
    else:
        bad, check = replace(READY, content=failed), Check.CONTENT
    r = result(bad, check)
    assert r.outcome is FAIL and r.reason.endswith(": connection refused")
    t = next_turnup(None, bad, NOW)
    assert not t.serving_allowed and t.turned_up_at is None
    assert t.reason == f"not turned up: {check} fail: {r.reason}"


def test_bgp_required_outcomes() -> None:
    none = replace(READY, bgp=())
    assert outcome(none, Check.BGP) is FAIL
    young = replace(READY, bgp=(BgpSession("r1", False, NOW - 30),))
    assert outcome(young, Check.BGP) is PENDING
    old = replace(READY, bgp=(BgpSession("r1", False, NOW - 121),))
    r = result(old, Check.BGP)
    assert r.outcome is FAIL and r.reason == "no session established; down: r1 for 121 s"
    assert outcome(old, Check.BGP, TurnupPolicy(bgp_grace_s=600)) is PENDING
    assert outcome(replace(old, bgp_required=False), Check.BGP) is PASS


def test_fill_share() -> None:
    part = replace(READY, titles_held=7)
    assert outcome(part, Check.FILL) is PENDING
    assert result(part, Check.FILL).reason == "filling: holds 7 of 10 title(s), needs 10"
    assert outcome(part, Check.FILL, TurnupPolicy(fill_share=0.7)) is PASS
    assert outcome(part, Check.FILL, TurnupPolicy(fill_share=0.71)) is PENDING  # needs 8
    assert outcome(replace(READY, titles_wanted=0, titles_held=0), Check.FILL) is PASS


def test_fill_alarm_fails_the_fill_check() -> None:
    full = replace(READY, titles_held=3, fill_alarm="disk full: t9 needs 5 GB")
    r = result(full, Check.FILL)
    assert r.outcome is FAIL and r.reason.startswith("fill alarm: disk full: t9")
    # an alarm once the share is held does not undo the fill
    assert outcome(replace(full, titles_held=10), Check.FILL) is PASS


def test_policy_is_checked() -> None:
    for share in (0.0, 1.1):
        with pytest.raises(ValueError):
            TurnupPolicy(fill_share=share)


def test_turn_up_is_gated_then_sticky() -> None:
    filling = replace(READY, titles_held=2)
    t = next_turnup(None, filling, NOW)
    assert not t.serving_allowed
    t = next_turnup(t, filling, NOW + 60)
    assert not t.serving_allowed and t.turned_up_at is None
    t = next_turnup(t, READY, NOW + 120)
    assert t.serving_allowed and t.turned_up_at == NOW + 120
    # a later fault is a health matter: serving stays allowed, the checks still show it
    broken = replace(READY, reachability=Probe(False, NOW + 200, "timeout"), bgp=())
    t = next_turnup(t, broken, NOW + 200)
    assert t.serving_allowed and t.turned_up_at == NOW + 120
    assert [c.outcome for c in t.checks] == [FAIL, PASS, FAIL, PASS]
    # a fresh start (re-provisioned) gates again
    assert not next_turnup(None, broken, NOW + 300).serving_allowed


PROBES = st.none() | st.builds(Probe, st.booleans(), st.just(NOW))
INPUTS = st.builds(
    TurnupInputs,
    reachability=PROBES,
    content=PROBES,
    bgp_required=st.booleans(),
    bgp=st.lists(
        st.builds(BgpSession, st.sampled_from(["r1", "r2"]), st.booleans(), st.just(NOW - 500)),
        max_size=2,
    ).map(tuple),
    titles_wanted=st.none() | st.integers(0, 20),
    titles_held=st.integers(0, 20),
    fill_alarm=st.none() | st.just("disk full"),
)


@given(st.lists(INPUTS, min_size=1, max_size=10))
def test_serving_allowed_iff_all_passed_once(seq: list[TurnupInputs]) -> None:
    t: Turnup | None = None
    ever = False
    for i, inputs in enumerate(seq):
        t = next_turnup(t, inputs, NOW + i)
        now_all = all(c.outcome is PASS for c in t.checks)
        first = not ever and now_all
        ever = ever or now_all
        assert t.serving_allowed is ever
        if first:
            assert t.turned_up_at == NOW + i
