"""Appliance liveness and status, computed from heartbeat bookkeeping and ``now``.

Theory of operation: an appliance heartbeats every ``interval_s`` seconds. It
is *alive* while its last heartbeat is fresh (no older than
``LIVENESS_INTERVALS`` intervals). Hysteresis against flapping: a heartbeat
that arrives after the window has lapsed starts a new *run*, and the
appliance only counts as alive again once the run holds
``BEATS_TO_RECOVER`` heartbeats. Registering starts a run too, so a freshly
registered appliance is alive from its first heartbeat (which also carries
its full inventory).

No timer declares anything dead: liveness is a pure function of the
:class:`~localcast.core.fleet.Health` record and the ``now`` passed in.
Every verdict carries its reason.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from localcast.core.fleet import Appliance, ApplianceState, Health

LIVENESS_INTERVALS = 3
BEATS_TO_RECOVER = 2
SATURATION_RATIO = 0.95


class StatusLevel(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Liveness:
    alive: bool
    reason: str


@dataclass(frozen=True)
class Status:
    level: StatusLevel
    reason: str


def window_s(health: Health) -> float:
    return LIVENESS_INTERVALS * health.interval_s


def _fresh(health: Health, now: float) -> bool:
    last = health.last_heartbeat_at
    return last is not None and now - last <= window_s(health)


def record_register(health: Health, now: float, interval_s: float) -> Health:
    """Registering starts a new run (it counts as the run's first beat)."""
    return Health(interval_s=interval_s, last_heartbeat_at=now, run_started_at=now, beats_in_run=1)


def record_heartbeat(health: Health, now: float, interval_s: float | None = None) -> Health:
    """Count one heartbeat received at ``now``; a lapse starts a new run."""
    interval = interval_s if interval_s is not None else health.interval_s
    if _fresh(health, now):
        return replace(
            health, interval_s=interval, last_heartbeat_at=now, beats_in_run=health.beats_in_run + 1
        )
    return Health(interval_s=interval, last_heartbeat_at=now, run_started_at=now, beats_in_run=1)


def liveness(health: Health, now: float) -> Liveness:
    last = health.last_heartbeat_at
    if last is None:
        return Liveness(False, "never heard from")
    age = now - last
    if age > window_s(health):
        return Liveness(
            False,
            f"dead: no heartbeat for {age:.1f} s (window {LIVENESS_INTERVALS} x "
            f"{health.interval_s:g} s)",
        )
    if health.beats_in_run < BEATS_TO_RECOVER:
        return Liveness(
            False,
            f"recovering: {health.beats_in_run} of {BEATS_TO_RECOVER} heartbeats since a lapse",
        )
    return Liveness(True, f"alive: last heartbeat {max(age, 0.0):.1f} s ago")


def saturated(appliance: Appliance) -> bool:
    capacity_bps = appliance.gbps * 1e9
    return capacity_bps > 0 and appliance.load.egress_bps >= SATURATION_RATIO * capacity_bps


def status(appliance: Appliance, now: float) -> Status:
    """The appliance's status for people (worst condition wins), with its reason."""
    if appliance.state is ApplianceState.PROVISIONED:
        return Status(StatusLevel.UNKNOWN, "provisioned: never registered")
    live = liveness(appliance.health, now)
    if not live.alive:
        level = StatusLevel.WARNING if live.reason.startswith("recovering") else StatusLevel.ERROR
        return Status(level, live.reason)
    if appliance.drained:
        return Status(StatusLevel.WARNING, "drained: steering sends no clients")
    if saturated(appliance):
        gbit = appliance.load.egress_bps / 1e9
        return Status(
            StatusLevel.WARNING, f"saturated: {gbit:.2f} of {appliance.gbps:g} Gbit/s in use"
        )
    return Status(StatusLevel.OK, f"{live.reason}; holds {len(appliance.titles)} title(s)")
