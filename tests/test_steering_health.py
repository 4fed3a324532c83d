"""Liveness from heartbeats, with hysteresis, as a pure function of ``now``."""

from __future__ import annotations

from control_fixtures import NOW, appliance

from localcast.core.fleet import ApplianceState, Health, Load
from localcast.core.health import (
    StatusLevel,
    liveness,
    record_heartbeat,
    record_register,
    status,
)


def registered(interval_s: float = 5.0) -> Health:
    return record_register(Health(interval_s), NOW, interval_s)


def test_never_heard_from_is_not_alive() -> None:
    assert not liveness(Health(5.0), NOW).alive
    assert liveness(Health(5.0), NOW).reason == "never heard from"


def test_registration_plus_one_heartbeat_is_alive() -> None:
    h = registered()
    assert not liveness(h, NOW).alive  # registered, no heartbeat yet
    h = record_heartbeat(h, NOW + 1)
    assert liveness(h, NOW + 1).alive


def test_alive_until_three_intervals_without_heartbeat() -> None:
    h = record_heartbeat(registered(), NOW + 1)
    assert liveness(h, NOW + 1 + 15.0).alive
    verdict = liveness(h, NOW + 1 + 15.5)
    assert not verdict.alive
    assert verdict.reason == "dead: no heartbeat for 15.5 s (window 3 x 5 s)"


def test_after_a_lapse_two_heartbeats_are_needed_to_recover() -> None:
    h = record_heartbeat(registered(), NOW + 1)
    back = record_heartbeat(h, NOW + 60)  # first beat after a lapse: a new run
    assert back.run_started_at == NOW + 60 and back.beats_in_run == 1
    verdict = liveness(back, NOW + 60)
    assert not verdict.alive and verdict.reason.startswith("recovering: 1 of 2")
    assert liveness(record_heartbeat(back, NOW + 65), NOW + 65).alive


def test_heartbeat_can_change_the_interval() -> None:
    h = record_heartbeat(registered(5.0), NOW + 1, interval_s=0.5)
    assert h.interval_s == 0.5
    assert not liveness(h, NOW + 1 + 1.6).alive


def test_status_worst_condition_wins_and_says_why() -> None:
    fresh = record_heartbeat(registered(), NOW + 1)
    never = appliance("x", "s", state=ApplianceState.PROVISIONED, health=Health(5.0))
    assert status(never, NOW).level is StatusLevel.UNKNOWN
    ok = appliance("x", "s", health=fresh)
    assert status(ok, NOW + 2).level is StatusLevel.OK
    assert "holds 1 title" in status(ok, NOW + 2).reason
    assert status(ok, NOW + 100).level is StatusLevel.ERROR
    drained = appliance("x", "s", health=fresh, drained=True)
    assert status(drained, NOW + 2).reason.startswith("drained")
    hot = appliance("x", "s", health=fresh, load=Load(egress_bps=9.9e9))
    assert status(hot, NOW + 2).reason.startswith("saturated: 9.90 of 10 Gbit/s")
