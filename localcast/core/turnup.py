"""Turn-up: the checks that gate a new appliance from serving clients until they pass.

Theory of operation: the control plane probes a newly registered appliance
and watches its BGP sessions and fill; :func:`turnup_checks` turns those
plain inputs (:class:`TurnupInputs`) into one :class:`CheckResult` per check,
and :func:`next_turnup` folds them into the appliance's :class:`Turnup`.

Rules of this module:

- **reachable**: the control plane's last reachability probe of the
  appliance (e.g. a request to its base URL) succeeded. No probe yet ->
  pending; a failed probe -> fail, with the probe's detail.
- **content**: the last probe that fetched a file it holds through a valid
  signed token got the right bytes. Same outcomes as *reachable*; when the
  control plane has nothing to fetch yet (``content_waiting``, e.g. the
  appliance holds no title complete) the check is pending with that reason.
- **bgp**: when the appliance's site speaks BGP (``bgp_required``), at least
  one of its configured sessions is established. No session configured ->
  fail; none established and one down for longer than ``bgp_grace_s`` ->
  fail; none established yet, all within the grace -> pending. When the site
  does not speak BGP the check passes ("not required").
- **fill**: the appliance holds at least ``fill_share`` (default all) of
  its fill manifest's titles, rounded up. No manifest yet -> pending; a
  manifest with no titles -> pass; a fill alarm (e.g. "disk full: ...") ->
  fail with its text; otherwise pending while it fills. An appliance that
  is not filled (``fill_required`` False: an origin holds the whole
  catalog) passes.
- ``serving_allowed`` once every check passes. Turn-up is **sticky**: the
  first time all pass, ``turned_up_at`` is recorded and serving stays
  allowed whatever the checks say later (a later fault is a health matter,
  :mod:`localcast.core.status`, not turn-up). The checks are still
  recomputed, for people. Only a fresh start (``previous=None``, e.g. a
  re-provisioned appliance) gates again.

Pure: no I/O and no clock reads (``now`` is a parameter); all data frozen.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

from localcast.core.status import BgpSession

__all__ = [
    "DEFAULT_POLICY",
    "Check",
    "CheckResult",
    "Outcome",
    "Probe",
    "Turnup",
    "TurnupInputs",
    "TurnupPolicy",
    "next_turnup",
    "turnup_checks",
]


class Check(enum.StrEnum):
    REACHABLE = "reachable"
    CONTENT = "content"
    BGP = "bgp"
    FILL = "fill"


class Outcome(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"


@dataclass(frozen=True)
class Probe:
    """The result of one probe the control plane made at ``at``."""

    ok: bool
    at: float
    detail: str = ""


@dataclass(frozen=True)
class TurnupPolicy:
    fill_share: float = 1.0  # share of the manifest's titles to hold, (0, 1]
    bgp_grace_s: float = 120.0  # a session not established for longer counts as down

    def __post_init__(self) -> None:
        if not 0 < self.fill_share <= 1:
            raise ValueError(f"fill_share must be in (0, 1], got {self.fill_share:g}")
        if self.bgp_grace_s < 0:
            raise ValueError("bgp_grace_s must not be negative")


DEFAULT_POLICY: Final = TurnupPolicy()


@dataclass(frozen=True)
class TurnupInputs:
    """What the control plane knows about a new appliance; defaults: nothing yet."""

    reachability: Probe | None = None
    content: Probe | None = None
    bgp_required: bool = False  # the appliance's site speaks BGP
    bgp: tuple[BgpSession, ...] = ()
    titles_wanted: int | None = None  # None: no fill manifest yet
    titles_held: int = 0
    fill_alarm: str | None = None
    content_waiting: str | None = None  # why no content probe was made yet, if known
    fill_required: bool = True  # False: the appliance is not filled (origin)


@dataclass(frozen=True)
class CheckResult:
    check: Check
    outcome: Outcome
    reason: str


@dataclass(frozen=True)
class Turnup:
    checks: tuple[CheckResult, ...]
    serving_allowed: bool
    turned_up_at: float | None  # first time every check passed; None: not yet

    @property
    def reason(self) -> str:
        if self.turned_up_at is not None:
            return f"turned up at {self.turned_up_at:.0f}"
        waiting = [f"{c.check} {c.outcome}: {c.reason}" for c in self.checks if c.outcome != "pass"]
        return "not turned up: " + "; ".join(waiting)


def _probe(check: Check, probe: Probe | None, what: str, waiting: str | None = None) -> CheckResult:
    if probe is None:
        return CheckResult(check, Outcome.PENDING, waiting or "not probed yet")
    detail = f": {probe.detail}" if probe.detail else ""
    if probe.ok:
        return CheckResult(check, Outcome.PASS, f"{what} at {probe.at:.0f}{detail}")
    return CheckResult(check, Outcome.FAIL, f"probe failed at {probe.at:.0f}{detail}")


def _bgp(inputs: TurnupInputs, now: float, policy: TurnupPolicy) -> CheckResult:
    if not inputs.bgp_required:
        return CheckResult(Check.BGP, Outcome.PASS, "not required: the site does not speak BGP")
    sessions = inputs.bgp
    if not sessions:
        return CheckResult(
            Check.BGP, Outcome.FAIL, "the site speaks BGP but no session is configured"
        )
    up = [s.peer for s in sessions if s.established]
    if up:
        return CheckResult(
            Check.BGP,
            Outcome.PASS,
            f"{len(up)} of {len(sessions)} session(s) established ({', '.join(up)})",
        )
    down = [s for s in sessions if now - s.since > policy.bgp_grace_s]
    if down:
        peers = ", ".join(f"{s.peer} for {now - s.since:.0f} s" for s in down)
        return CheckResult(Check.BGP, Outcome.FAIL, f"no session established; down: {peers}")
    return CheckResult(
        Check.BGP, Outcome.PENDING, f"establishing {len(sessions)} session(s), none up yet"
    )


def _fill(inputs: TurnupInputs, policy: TurnupPolicy) -> CheckResult:
    if not inputs.fill_required:
        return CheckResult(Check.FILL, Outcome.PASS, "not required: the appliance is not filled")
    wanted = inputs.titles_wanted
    if wanted is None:
        return CheckResult(Check.FILL, Outcome.PENDING, "no fill manifest yet")
    if wanted == 0:
        return CheckResult(Check.FILL, Outcome.PASS, "the fill manifest lists no titles")
    need = math.ceil(policy.fill_share * wanted - 1e-9)
    held = f"holds {inputs.titles_held} of {wanted} title(s), needs {need}"
    if inputs.titles_held >= need:
        return CheckResult(Check.FILL, Outcome.PASS, held)
    if inputs.fill_alarm:
        return CheckResult(Check.FILL, Outcome.FAIL, f"fill alarm: {inputs.fill_alarm} ({held})")
    return CheckResult(Check.FILL, Outcome.PENDING, f"filling: {held}")


def turnup_checks(
    inputs: TurnupInputs, now: float, policy: TurnupPolicy = DEFAULT_POLICY
) -> tuple[CheckResult, ...]:
    """Every turn-up check, in a fixed order (reachable, content, bgp, fill)."""
    return (
        _probe(Check.REACHABLE, inputs.reachability, "reachable"),
        _probe(
            Check.CONTENT,
            inputs.content,
            "served a file with a valid token",
            inputs.content_waiting,
        ),
        _bgp(inputs, now, policy),
        _fill(inputs, policy),
    )


def next_turnup(
    previous: Turnup | None,
    inputs: TurnupInputs,
    now: float,
    policy: TurnupPolicy = DEFAULT_POLICY,
) -> Turnup:
    """The appliance's turn-up after this look: allowed once all pass, and from then on."""
    checks = turnup_checks(inputs, now, policy)
    if previous is not None and previous.turned_up_at is not None:
        return Turnup(checks, True, previous.turned_up_at)
    if all(c.outcome is Outcome.PASS for c in checks):
        return Turnup(checks, True, now)
    return Turnup(checks, False, None)
