"""Appliance status (Unknown / OK / Warning / Error) from its components, with hysteresis.

Theory of operation: the control plane gathers plain inputs about one
appliance (:class:`StatusInputs`: its heartbeat bookkeeping, disk, fill
progress, BGP sessions, serving errors and egress against capacity) and
:func:`evaluate` turns them into an :class:`Evaluation`: one
:class:`Component` per input, each with a level and its reason.
:func:`next_status` then folds that observation into the held
:class:`StatusState`, so a flapping appliance does not bounce.

Rules of this module (thresholds are the :class:`StatusThresholds` fields,
defaults in brackets):

- **heartbeat** (always present; :func:`localcast.core.health.liveness`):
  never heard from -> Unknown; dead (no heartbeat for ``LIVENESS_INTERVALS``
  intervals) -> Error; recovering (fewer than ``BEATS_TO_RECOVER`` beats
  since a lapse or the registration) -> Warning; last heartbeat older than
  ``heartbeat_late_intervals`` [2] intervals -> Warning (late); else OK.
- **disk** (when reported: used + free > 0): the store's share of its
  space, ``used / (used + free)``, at or above ``disk_error_used`` [98 %] or
  free bytes below ``disk_min_free_bytes`` [256 MiB, the fill agent's
  reserve] -> Error; above ``disk_warning_used`` [90 %] -> Warning.
- **fill** (when the appliance has a fill manifest): a fill alarm from the
  agent (e.g. ``"disk full: ..."``) -> Warning with the alarm's text; short
  of its manifest's titles for longer than ``fill_behind_warning_s`` [one
  day: a fill window a day is expected to catch up] -> Warning. Fill never
  raises Error: an appliance that lacks titles still serves those it holds
  (steering asks per title).
- **bgp** (when sessions are configured): a session not established for
  longer than ``bgp_grace_s`` [120 s] counts as down (inside the grace it is
  "establishing" and counts for nothing); every session down -> Error; some
  -> Warning.
- **serving** (when a window of requests is reported): the 5xx share of the
  window's requests; fewer than ``serving_min_requests`` [50] requests ->
  OK (too few to judge); at or above ``serving_error_share`` [5 %] -> Error;
  at or above ``serving_warning_share`` [1 %] -> Warning.
- **load** (when a capacity is configured): egress bits/s over
  ``gbps * 1e9``; above ``load_error`` [100 %] -> Error; above
  ``load_warning`` [85 %] -> Warning.

The **worst component wins** (Error > Warning > OK). Before the first
heartbeat the evaluation is Unknown and holds only the heartbeat
component (the other inputs mean nothing yet). A non-OK status carries
every non-OK component's reason (:attr:`StatusState.reason`); every
component keeps its own reason, OK ones included.

**Hysteresis** (:func:`next_status`), per component, so it cannot be gamed
by two components flapping in turn: getting worse is immediate; a held
level ``L`` (Warning or Error) is let go only once every observation for at
least ``recover_after_s`` has been better than ``L``, counted from the first
such observation (any observation at ``L`` or worse restarts the count).
Each held level counts on its own: after Error, Warning observations let
Error go after ``recover_after_s`` but hold Warning until OK observations
have lasted ``recover_after_s`` too; OK observations straight after Error
let both go together. ``recover_after_s`` is
``recover_after_intervals`` [2] heartbeat intervals and travels in the
evaluation. A component missing from an observation counts as observed OK
("not reported") and is dropped once it holds OK. The state's ``since`` is
the time its overall level last changed. Unknown is entered and left
immediately (leaving it starts with no held history).

Each component's held level also says how **steering** should treat the
appliance (:data:`STEERING_EFFECTS`, read by
:func:`localcast.core.maintenance.steering_state`): dead (heartbeat Error)
or failing (serving Error) -> out of steering; no routes (bgp Error) or
over capacity (load Error) -> no new sessions, in-flight ones finish;
everything else -> serve. A full disk or a fill alarm is for people, not
for clients: the appliance still serves what it holds.

Pure: no I/O and no clock reads (``now`` is a parameter); all data frozen.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from localcast.core.fleet import Appliance, Health
from localcast.core.health import StatusLevel, liveness

__all__ = [
    "DEFAULT_THRESHOLDS",
    "STEERING_EFFECTS",
    "BgpSession",
    "Component",
    "ComponentName",
    "ComponentState",
    "DiskUsage",
    "Evaluation",
    "FillProgress",
    "Hold",
    "ServingWindow",
    "StatusInputs",
    "StatusLevel",
    "StatusState",
    "StatusThresholds",
    "SteeringEffect",
    "bgp_component",
    "disk_component",
    "evaluate",
    "fill_component",
    "heartbeat_component",
    "inputs_from_appliance",
    "load_component",
    "next_status",
    "serving_component",
    "severity",
    "worst",
]


class ComponentName(enum.StrEnum):
    """The parts of an appliance's status, in the order they are listed."""

    HEARTBEAT = "heartbeat"
    DISK = "disk"
    FILL = "fill"
    BGP = "bgp"
    SERVING = "serving"
    LOAD = "load"


_ORDER: Final = {name: i for i, name in enumerate(ComponentName)}

#: Worst-wins order; Unknown is handled apart (it only comes from the heartbeat).
_SEVERITY: Final = MappingProxyType(
    {StatusLevel.OK: 0, StatusLevel.UNKNOWN: 1, StatusLevel.WARNING: 2, StatusLevel.ERROR: 3}
)


def severity(level: StatusLevel) -> int:
    """Rank for worst-wins: OK < Unknown < Warning < Error."""
    return _SEVERITY[level]


def worst(levels: tuple[StatusLevel, ...] | list[StatusLevel]) -> StatusLevel:
    """The worst of ``levels`` (OK for none)."""
    return max(levels, key=severity, default=StatusLevel.OK)


class SteeringEffect(enum.IntEnum):
    """What a held component level asks of steering; higher is stronger."""

    SERVE = 0  # no restriction
    NO_NEW = 1  # no new sessions; in-flight ones keep the pathway, ranked last
    OUT = 2  # out of steering entirely: in-flight players move now


#: (component, held level) -> steering effect; anything not listed serves.
STEERING_EFFECTS: Final[Mapping[tuple[ComponentName, StatusLevel], SteeringEffect]] = (
    MappingProxyType(
        {
            (ComponentName.HEARTBEAT, StatusLevel.UNKNOWN): SteeringEffect.OUT,
            (ComponentName.HEARTBEAT, StatusLevel.ERROR): SteeringEffect.OUT,
            (ComponentName.SERVING, StatusLevel.ERROR): SteeringEffect.OUT,
            (ComponentName.BGP, StatusLevel.ERROR): SteeringEffect.NO_NEW,
            (ComponentName.LOAD, StatusLevel.ERROR): SteeringEffect.NO_NEW,
        }
    )
)

GIB: Final = 1 << 30
MIB: Final = 1 << 20


@dataclass(frozen=True)
class StatusThresholds:
    """Every threshold of the status rules (see the module docstring)."""

    heartbeat_late_intervals: float = 2.0
    recover_after_intervals: float = 2.0
    disk_warning_used: float = 0.90
    disk_error_used: float = 0.98
    disk_min_free_bytes: int = 256 * MIB
    fill_behind_warning_s: float = 86400.0
    bgp_grace_s: float = 120.0
    serving_min_requests: int = 50
    serving_warning_share: float = 0.01
    serving_error_share: float = 0.05
    load_warning: float = 0.85
    load_error: float = 1.00

    def __post_init__(self) -> None:
        pairs = (
            ("disk", self.disk_warning_used, self.disk_error_used),
            ("serving", self.serving_warning_share, self.serving_error_share),
            ("load", self.load_warning, self.load_error),
        )
        for what, warn, err in pairs:
            if not 0 <= warn < err:
                raise ValueError(
                    f"{what} thresholds: need 0 <= warning < error, got {warn:g} and {err:g}"
                )
        if self.disk_error_used > 1 or self.serving_error_share > 1:
            raise ValueError("disk and serving error thresholds are shares: at most 1")
        for name in (
            "heartbeat_late_intervals",
            "recover_after_intervals",
            "fill_behind_warning_s",
            "bgp_grace_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.disk_min_free_bytes < 0 or self.serving_min_requests < 1:
            raise ValueError("disk_min_free_bytes >= 0 and serving_min_requests >= 1")


DEFAULT_THRESHOLDS: Final = StatusThresholds()


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskUsage:
    """The store's bytes and the filesystem's free bytes, as the appliance reported them."""

    used_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class FillProgress:
    """How the appliance stands against its fill manifest.

    ``behind_since``: since when it has been short of its manifest's titles
    continuously (None when it holds them all); the control plane keeps it.
    ``alarm``: the fill agent's last alarm text, if any.
    """

    titles_wanted: int
    titles_held: int
    behind_since: float | None = None
    alarm: str | None = None


@dataclass(frozen=True)
class BgpSession:
    """One configured BGP session; ``since``: when it entered its current state."""

    peer: str
    established: bool
    since: float


@dataclass(frozen=True)
class ServingWindow:
    """Requests answered over the last ``window_s`` seconds and how many were 5xx."""

    requests: int
    errors_5xx: int
    window_s: float


@dataclass(frozen=True)
class StatusInputs:
    """Everything :func:`evaluate` reads about one appliance; None / () / 0: not applicable."""

    health: Health
    disk: DiskUsage | None = None
    fill: FillProgress | None = None
    bgp: tuple[BgpSession, ...] = ()
    serving: ServingWindow | None = None
    egress_bps: float = 0.0
    capacity_gbps: float = 0.0


def inputs_from_appliance(
    appliance: Appliance,
    *,
    fill: FillProgress | None = None,
    bgp: tuple[BgpSession, ...] = (),
    serving: ServingWindow | None = None,
) -> StatusInputs:
    """The inputs a snapshot entry already holds (heartbeat, disk, egress, capacity), plus
    what the control plane keeps beside it."""
    load = appliance.load
    disk = None
    if load.disk_used_bytes + load.disk_free_bytes > 0:
        disk = DiskUsage(load.disk_used_bytes, load.disk_free_bytes)
    return StatusInputs(
        health=appliance.health,
        disk=disk,
        fill=fill,
        bgp=bgp,
        serving=serving,
        egress_bps=load.egress_bps,
        capacity_gbps=appliance.gbps,
    )


# --- evaluation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """One part of an observation: its level and why."""

    name: ComponentName
    level: StatusLevel
    reason: str

    @property
    def effect(self) -> SteeringEffect:
        return STEERING_EFFECTS.get((self.name, self.level), SteeringEffect.SERVE)


@dataclass(frozen=True)
class Evaluation:
    """One observation of an appliance: the worst component's level and every component."""

    level: StatusLevel
    components: tuple[Component, ...]
    recover_after_s: float

    def component(self, name: ComponentName) -> Component | None:
        return next((c for c in self.components if c.name is name), None)

    @property
    def reasons(self) -> tuple[str, ...]:
        """``"<component> <level>: <reason>"`` for each non-OK component."""
        return tuple(
            f"{c.name} {c.level}: {c.reason}"
            for c in self.components
            if c.level is not StatusLevel.OK
        )


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def heartbeat_component(
    health: Health, now: float, thresholds: StatusThresholds = DEFAULT_THRESHOLDS
) -> Component:
    name = ComponentName.HEARTBEAT
    live = liveness(health, now)
    last = health.last_heartbeat_at
    if last is None:
        return Component(name, StatusLevel.UNKNOWN, live.reason)
    if not live.alive:
        if live.reason.startswith("recovering"):
            return Component(name, StatusLevel.WARNING, live.reason)
        return Component(name, StatusLevel.ERROR, live.reason)
    age = max(now - last, 0.0)
    late_after = thresholds.heartbeat_late_intervals * health.interval_s
    if age > late_after:
        return Component(
            name,
            StatusLevel.WARNING,
            f"late: last heartbeat {age:.1f} s ago (expected every {health.interval_s:g} s)",
        )
    return Component(name, StatusLevel.OK, live.reason)


def disk_component(disk: DiskUsage, thresholds: StatusThresholds = DEFAULT_THRESHOLDS) -> Component:
    name = ComponentName.DISK
    total = disk.used_bytes + disk.free_bytes
    used = disk.used_bytes / total if total > 0 else 0.0
    what = f"{_pct(used)} used, {_gib(disk.free_bytes)} free"
    if disk.free_bytes < thresholds.disk_min_free_bytes:
        return Component(
            name,
            StatusLevel.ERROR,
            f"{what}: below the {_gib(thresholds.disk_min_free_bytes)} floor",
        )
    if used >= thresholds.disk_error_used:
        return Component(
            name, StatusLevel.ERROR, f"{what}: at or above {_pct(thresholds.disk_error_used)}"
        )
    if used > thresholds.disk_warning_used:
        return Component(
            name, StatusLevel.WARNING, f"{what}: above {_pct(thresholds.disk_warning_used)}"
        )
    return Component(name, StatusLevel.OK, what)


def fill_component(
    fill: FillProgress, now: float, thresholds: StatusThresholds = DEFAULT_THRESHOLDS
) -> Component:
    name = ComponentName.FILL
    held = f"holds {fill.titles_held} of {fill.titles_wanted} title(s)"
    if fill.alarm:
        return Component(name, StatusLevel.WARNING, f"fill alarm: {fill.alarm} ({held})")
    if fill.titles_held >= fill.titles_wanted:
        return Component(name, StatusLevel.OK, f"complete: {held}")
    if fill.behind_since is None:
        return Component(name, StatusLevel.OK, f"filling: {held}")
    behind = max(now - fill.behind_since, 0.0)
    if behind > thresholds.fill_behind_warning_s:
        return Component(
            name,
            StatusLevel.WARNING,
            f"behind: {held} for {behind / 3600:.1f} h "
            f"(more than {thresholds.fill_behind_warning_s / 3600:g} h)",
        )
    return Component(name, StatusLevel.OK, f"filling: {held} for {behind / 3600:.1f} h")


def bgp_component(
    sessions: tuple[BgpSession, ...], now: float, thresholds: StatusThresholds = DEFAULT_THRESHOLDS
) -> Component:
    name = ComponentName.BGP
    grace = thresholds.bgp_grace_s
    down = [s for s in sessions if not s.established and now - s.since > grace]
    establishing = [s for s in sessions if not s.established and now - s.since <= grace]
    up = len(sessions) - len(down) - len(establishing)
    summary = f"{up} of {len(sessions)} session(s) established"
    if establishing:
        summary += f", {len(establishing)} establishing ({', '.join(s.peer for s in establishing)})"
    if not down:
        return Component(name, StatusLevel.OK, summary)
    downs = ", ".join(f"{s.peer} for {now - s.since:.0f} s" for s in down)
    if len(down) == len(sessions):
        return Component(name, StatusLevel.ERROR, f"all sessions down: {downs}")
    return Component(name, StatusLevel.WARNING, f"{summary}; down: {downs}")


def serving_component(
    window: ServingWindow, thresholds: StatusThresholds = DEFAULT_THRESHOLDS
) -> Component:
    name = ComponentName.SERVING
    span = f"in the last {window.window_s:g} s"
    if window.requests < thresholds.serving_min_requests:
        return Component(
            name, StatusLevel.OK, f"{window.requests} request(s) {span}: too few to judge"
        )
    share = window.errors_5xx / window.requests
    what = f"{window.errors_5xx} of {window.requests} requests 5xx ({_pct(share)}) {span}"
    if share >= thresholds.serving_error_share:
        return Component(name, StatusLevel.ERROR, what)
    if share >= thresholds.serving_warning_share:
        return Component(name, StatusLevel.WARNING, what)
    return Component(name, StatusLevel.OK, what)


def load_component(
    egress_bps: float, capacity_gbps: float, thresholds: StatusThresholds = DEFAULT_THRESHOLDS
) -> Component:
    name = ComponentName.LOAD
    ratio = egress_bps / (capacity_gbps * 1e9)
    what = f"{egress_bps / 1e9:.2f} of {capacity_gbps:g} Gbit/s ({_pct(ratio)})"
    if ratio > thresholds.load_error:
        return Component(name, StatusLevel.ERROR, f"over capacity: {what}")
    if ratio > thresholds.load_warning:
        return Component(
            name, StatusLevel.WARNING, f"{what}: above {_pct(thresholds.load_warning)}"
        )
    return Component(name, StatusLevel.OK, what)


def evaluate(
    inputs: StatusInputs, now: float, thresholds: StatusThresholds = DEFAULT_THRESHOLDS
) -> Evaluation:
    """One observation: each applicable component, worst wins; Unknown before any heartbeat."""
    recover = thresholds.recover_after_intervals * inputs.health.interval_s
    beat = heartbeat_component(inputs.health, now, thresholds)
    if beat.level is StatusLevel.UNKNOWN:
        return Evaluation(StatusLevel.UNKNOWN, (beat,), recover)
    parts = [beat]
    if inputs.disk is not None and inputs.disk.used_bytes + inputs.disk.free_bytes > 0:
        parts.append(disk_component(inputs.disk, thresholds))
    if inputs.fill is not None:
        parts.append(fill_component(inputs.fill, now, thresholds))
    if inputs.bgp:
        parts.append(bgp_component(inputs.bgp, now, thresholds))
    if inputs.serving is not None:
        parts.append(serving_component(inputs.serving, thresholds))
    if inputs.capacity_gbps > 0:
        parts.append(load_component(inputs.egress_bps, inputs.capacity_gbps, thresholds))
    return Evaluation(worst([c.level for c in parts]), tuple(parts), recover)


# --- hysteresis --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    """A level a component holds: the latest reason seen at it (or worse), and since when
    every observation has been better (None: the latest one was not)."""

    reason: str
    clear_since: float | None = None


@dataclass(frozen=True)
class ComponentState:
    """One component's held level (``error`` implies ``warning``) and latest observation."""

    observed: Component
    since: float  # when the held level was entered
    warning: Hold | None = None
    error: Hold | None = None

    @property
    def name(self) -> ComponentName:
        return self.observed.name

    @property
    def level(self) -> StatusLevel:
        if self.observed.level is StatusLevel.UNKNOWN:
            return StatusLevel.UNKNOWN
        if self.error is not None:
            return StatusLevel.ERROR
        if self.warning is not None:
            return StatusLevel.WARNING
        return StatusLevel.OK

    @property
    def held(self) -> Hold | None:
        return self.error if self.error is not None else self.warning

    @property
    def effect(self) -> SteeringEffect:
        return STEERING_EFFECTS.get((self.name, self.level), SteeringEffect.SERVE)

    def reason(self, recover_after_s: float, now: float) -> str:
        hold = self.held
        if hold is None or hold.clear_since is None:
            return self.observed.reason
        return (
            f"{hold.reason} (now {self.observed.level}: {self.observed.reason}; "
            f"better for {max(now - hold.clear_since, 0.0):.1f} of {recover_after_s:g} s)"
        )


@dataclass(frozen=True)
class StatusState:
    """The held status of one appliance: level, when it last changed, and its components."""

    level: StatusLevel
    since: float
    at: float  # time of the observation folded in last
    observed: Evaluation
    components: tuple[ComponentState, ...] = field(default=())

    def component(self, name: ComponentName) -> ComponentState | None:
        return next((c for c in self.components if c.name is name), None)

    @property
    def reasons(self) -> tuple[str, ...]:
        """``"<component> <level>: <reason>"`` for each component not held OK."""
        return tuple(
            f"{c.name} {c.level}: {c.reason(self.observed.recover_after_s, self.at)}"
            for c in self.components
            if c.level is not StatusLevel.OK
        )

    @property
    def reason(self) -> str:
        if self.level is StatusLevel.OK:
            return "; ".join(f"{c.name}: {c.observed.reason}" for c in self.components)
        return "; ".join(self.reasons)

    @property
    def effect(self) -> SteeringEffect:
        """The strongest steering effect of the held components."""
        return max((c.effect for c in self.components), default=SteeringEffect.SERVE)


def _hold(
    prev: Hold | None, level: StatusLevel, observed: Component, now: float, recover: float
) -> Hold | None:
    if severity(observed.level) >= severity(level):
        return Hold(observed.reason)
    if prev is None:
        return None
    clear_since = prev.clear_since if prev.clear_since is not None else now
    if now - clear_since >= recover:
        return None
    return Hold(prev.reason, clear_since)


def _next_component(
    prev: ComponentState | None, observed: Component, now: float, recover: float
) -> ComponentState:
    warning = _hold(prev.warning if prev else None, StatusLevel.WARNING, observed, now, recover)
    error = _hold(prev.error if prev else None, StatusLevel.ERROR, observed, now, recover)
    state = ComponentState(observed, now, warning, error)
    if prev is not None and prev.level is state.level:
        state = ComponentState(observed, prev.since, warning, error)
    return state


def next_status(previous: StatusState | None, observed: Evaluation, now: float) -> StatusState:
    """Fold one observation into the held status: worse at once, better after
    ``observed.recover_after_s`` of better observations (per component)."""
    if observed.level is StatusLevel.UNKNOWN:
        since = previous.since if previous and previous.level is StatusLevel.UNKNOWN else now
        comps = tuple(ComponentState(c, now) for c in observed.components)
        return StatusState(StatusLevel.UNKNOWN, since, now, observed, comps)
    if previous is not None and previous.level is StatusLevel.UNKNOWN:
        previous = None
    recover = observed.recover_after_s
    held = {c.name: c for c in previous.components} if previous else {}
    seen = {c.name: c for c in observed.components}
    out: list[ComponentState] = []
    for name in sorted(held.keys() | seen.keys(), key=_ORDER.__getitem__):
        obs = seen.get(name) or Component(name, StatusLevel.OK, "not reported")
        state = _next_component(held.get(name), obs, now, recover)
        if name not in seen and state.level is StatusLevel.OK:
            continue
        out.append(state)
    level = worst([c.level for c in out])
    since = previous.since if previous is not None and previous.level is level else now
    return StatusState(level, since, now, observed, tuple(out))
