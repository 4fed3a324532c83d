"""Drain, disable and enable; and how steering treats an appliance, all things considered.

Theory of operation: an operator takes an appliance out of service for a
while (``localcast appliance drain|disable <id> --for 2d``) and back
(``enable``). The control plane keeps the :class:`Maintenance` record
(built by :func:`begin`, which parses and checks the duration) and, for
every steering decision, calls :func:`steering_state` with it, the held
status (:mod:`localcast.core.status`) and whether the appliance is turned
up (:mod:`localcast.core.turnup`).

Rules of this module:

- **Durations** (:func:`parse_duration`): one or more ``<number><unit>``
  parts, units ``s``, ``m``, ``h``, ``d``, ``w`` (``"3h"``, ``"90m"``,
  ``"2d"``, ``"1d12h"``, ``"1.5h"``); a bare number is refused (say the
  unit). A maintenance lasts from :data:`MIN_DURATION_S` (3 hours) to
  :data:`MAX_DURATION_S` (30 days), both included; anything else is refused
  with the range in the message (:class:`DurationError`, a ``ValueError``).
- **Modes**: *drain* = no new sessions, in-flight ones finish (their
  steering manifests keep the appliance's pathway, ranked last);
  *disable* = out of steering entirely (in-flight players move now).
- A maintenance is **active** from ``since`` (included) to ``until``
  (excluded); :func:`effective` returns it while active and None once
  expired, so an appliance comes back by itself. *enable* ends it early:
  :func:`ended` sets ``until`` to now (the record stays, for history).
- **Steering** (:func:`steering_state`): every restriction below applies
  and the strongest wins (new sessions only if none forbids them; in-flight
  sessions kept only if none drops them); the reason lists each:
  disabled -> out; not turned up -> out; status Unknown or none -> out;
  the held status's components (:data:`localcast.core.status.STEERING_EFFECTS`:
  dead or failing -> out; no BGP session up or over capacity -> no new
  sessions); drained -> no new sessions. Otherwise new sessions go to it.
  The state (:class:`localcast.core.fleet.SteeringState`, carried by the
  snapshot's appliance entry) says ``health`` when only the held status
  restricts it, so steering counts passing it over as a health miss.

Pure: no I/O and no clock reads (``now`` is a parameter); all data frozen.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, replace
from typing import Final

from localcast.core.fleet import SteeringState
from localcast.core.status import StatusLevel, StatusState, SteeringEffect

__all__ = [
    "MAX_DURATION_S",
    "MIN_DURATION_S",
    "DurationError",
    "Maintenance",
    "MaintenanceMode",
    "SteeringState",
    "begin",
    "check_duration",
    "effective",
    "ended",
    "format_duration",
    "parse_duration",
    "steering_state",
]

MIN_DURATION_S: Final = 3 * 3600.0
MAX_DURATION_S: Final = 30 * 86400.0

_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+$", re.IGNORECASE)
_EXAMPLES: Final = "e.g. 3h, 90m, 2d, 1d12h (units s, m, h, d, w)"


class DurationError(ValueError):
    """A duration that does not parse or lies outside 3 hours .. 30 days."""


class MaintenanceMode(enum.StrEnum):
    DRAIN = "drain"  # no new sessions; in-flight ones finish
    DISABLE = "disable"  # out of steering entirely


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``"3h"``, ``"90m"``, ``"2d"``, ``"1d12h"``); DurationError if not."""
    if not _WHOLE.match(text):
        raise DurationError(f"invalid duration {text!r}: write a number and a unit, {_EXAMPLES}")
    return sum(float(n) * _UNITS[u.lower()] for n, u in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """Compact ``1d12h``-style text for ``seconds`` (whole seconds, largest units first)."""
    left = max(round(seconds), 0)
    if left == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, left = divmod(left, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def check_duration(seconds: float) -> float:
    """``seconds`` if it lies from 3 hours to 30 days (included); DurationError if not."""
    if not math.isfinite(seconds) or not MIN_DURATION_S <= seconds <= MAX_DURATION_S:
        whole = math.isfinite(seconds) and seconds >= 0 and seconds == round(seconds)
        shown = format_duration(seconds) if whole else f"{seconds:g} s"
        side = "short" if seconds < MIN_DURATION_S else "long"
        raise DurationError(
            f"duration {shown} is too {side}: drain and disable last from "
            f"{format_duration(MIN_DURATION_S)} to {format_duration(MAX_DURATION_S)}"
        )
    return seconds


@dataclass(frozen=True)
class Maintenance:
    """An operator's drain or disable of one appliance, from ``since`` until ``until``."""

    mode: MaintenanceMode
    since: float
    until: float
    reason: str = ""

    def __post_init__(self) -> None:
        if self.until < self.since:
            raise ValueError("maintenance ends before it starts")

    def describe(self, now: float) -> str:
        why = f": {self.reason}" if self.reason else ""
        if now >= self.until:
            return f"{self.mode} ended{why}"
        verb = "drained" if self.mode is MaintenanceMode.DRAIN else "disabled"
        return f"{verb}, {format_duration(self.until - now)} left{why}"


def begin(
    mode: MaintenanceMode | str, duration: str | float, now: float, reason: str = ""
) -> Maintenance:
    """A maintenance starting at ``now`` for ``duration`` ("2d" or seconds), checked."""
    seconds = parse_duration(duration) if isinstance(duration, str) else float(duration)
    check_duration(seconds)
    return Maintenance(MaintenanceMode(mode), now, now + seconds, reason)


def effective(maintenance: Maintenance | None, now: float) -> Maintenance | None:
    """The maintenance if it is active at ``now``; None when there is none or it expired."""
    if maintenance is None or not maintenance.since <= now < maintenance.until:
        return None
    return maintenance


def ended(maintenance: Maintenance, now: float) -> Maintenance:
    """``enable``: the maintenance ended at ``now`` (unchanged if it already had)."""
    return replace(maintenance, until=max(min(maintenance.until, now), maintenance.since))


def steering_state(
    maintenance: Maintenance | None,
    status: StatusState | None,
    turned_up: bool,
    now: float,
) -> SteeringState:
    """Combine maintenance, held status and turn-up: the strongest restriction wins.

    The state's ``health`` is True when every restriction comes from the held
    status's components (none from maintenance, turn-up or an unknown status).
    """
    limits: list[tuple[SteeringEffect, str]] = []
    active = effective(maintenance, now)
    if active is not None and active.mode is MaintenanceMode.DISABLE:
        limits.append((SteeringEffect.OUT, active.describe(now)))
    if not turned_up:
        limits.append((SteeringEffect.OUT, "not turned up"))
    if status is None or status.level is StatusLevel.UNKNOWN:
        limits.append((SteeringEffect.OUT, "status unknown: never heard from"))
    other = len(limits)
    if status is not None and status.level is not StatusLevel.UNKNOWN:
        for comp in status.components:
            if comp.effect is not SteeringEffect.SERVE:
                why = comp.reason(status.observed.recover_after_s, status.at)
                limits.append((comp.effect, f"{comp.name} {comp.level}: {why}"))
    if active is not None and active.mode is MaintenanceMode.DRAIN:
        limits.append((SteeringEffect.NO_NEW, active.describe(now)))
        other += 1
    if not limits:
        level = status.level if status is not None else StatusLevel.UNKNOWN
        return SteeringState(True, True, f"serving: status {level}")
    strongest = max(effect for effect, _ in limits)
    return SteeringState(
        new_sessions=False,
        keep_in_flight=strongest < SteeringEffect.OUT,
        reason="; ".join(why for _, why in limits),
        health=other == 0,
    )
