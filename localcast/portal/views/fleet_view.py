"""What the portal shows of sites and appliances: plane data turned into rows for pages.

The partner's home page, the appliance page and the operator's fleet page
all show the same things (status and why, utilisation against capacity,
actionable items, BGP sessions, fill, served traffic); this module words them
once. Every function takes plain data (the snapshot, held statuses, alerts,
route feed states, a fill progress row, traffic figures) and returns frozen
rows whose numbers are already put in words for people, so templates only
lay them out.

Rules of the wording:

- **Status** is the held status of :mod:`localcast.core.status` (Unknown /
  OK / Warning / Error) with its reason (:func:`localcast.control.health.status_reason`);
  an appliance with no held status is Unknown ("provisioned: never registered",
  "registered: its first heartbeat is due").
- A **site**'s status is the worst of its appliances' (OK < Unknown <
  Warning < Error) and of the alerts about the site itself (a route
  inconsistency); a site without appliances is Unknown.
- **Utilisation**: egress bits/s against ``gbps`` capacity; disk: the store's
  used bytes against its filesystem (used + free, as the status's disk
  component counts it; "not reported" before the appliance reports it, and
  then in no site total). Decimal units (GB, Gbit/s), as the topology file
  counts them.
- Times are UTC; ages are "2 h 5 min" style.

Pure: no I/O and no clock reads (``now`` is a parameter).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from localcast.control.fill_manifest import required_sizes
from localcast.control.fill_progress import SOURCE_KINDS
from localcast.control.health import Alert, describe_steering, status_reason
from localcast.control.repository import FillStatus
from localcast.control.route_feed import FeedState
from localcast.core.fleet import Appliance, ApplianceState, FleetSnapshot, Site, SteeringState
from localcast.core.inventory import Inventory
from localcast.core.maintenance import Maintenance, MaintenanceMode, effective, format_duration
from localcast.core.placement import ApplianceManifest
from localcast.core.status import StatusLevel, StatusState, worst
from localcast.core.traffic import PartnerTraffic, caching_efficiency, day_date
from localcast.core.turnup import Turnup

__all__ = [
    "ALERT_LABELS",
    "FILTER_REASONS",
    "LEVEL_LABELS",
    "AlertRow",
    "ApplianceRow",
    "BgpRow",
    "CheckRow",
    "ComponentRow",
    "FillSummary",
    "FilteredCount",
    "SiteRow",
    "SteeringView",
    "TrafficDay",
    "TurnupView",
    "Usage",
    "alert_rows",
    "appliance_row",
    "appliance_rows",
    "bgp_rows",
    "component_rows",
    "disk_usage",
    "egress_usage",
    "fill_row",
    "fill_summary",
    "format_age",
    "format_bits",
    "format_bytes",
    "format_time",
    "level_counts",
    "site_rows",
    "site_traffic",
    "steering_view",
    "total_usage",
    "turnup_view",
]

LEVEL_LABELS: Final = {
    StatusLevel.OK: "OK",
    StatusLevel.WARNING: "Warning",
    StatusLevel.ERROR: "Error",
    StatusLevel.UNKNOWN: "Unknown",
}

#: Alert kinds (:data:`localcast.control.health.ALERT_KINDS`) as people say them.
ALERT_LABELS: Final = {
    "appliance-down": "Appliance down",
    "bgp-down": "BGP session down",
    "route-inconsistency": "Routes differ across the site",
    "fill-behind": "Fill behind",
    "disk-near-full": "Disk near full",
}

#: The BGP import policy's filter reasons (:class:`localcast.bgp.policy.Reason`), in words.
FILTER_REASONS: Final = {
    "default_route": "default route (0.0.0.0/0 or ::/0)",
    "bogon": "bogon: private, reserved or documentation space",
    "too_specific": "more specific than the family allows (IPv4 /24, IPv6 /48 by default)",
    "as_path_loop": "our own AS in the AS path",
    "origin_not_allowed": "origin AS not registered to the partner",
    "rpki_invalid": "RPKI invalid",
    "max_prefixes": "over the session's max-prefix limit",
}

_OUTCOME_LEVELS: Final = {"pass": StatusLevel.OK, "fail": StatusLevel.ERROR}


# --- wording of numbers and times -------------------------------------------------------------


def format_bytes(n: float) -> str:
    """``n`` bytes in decimal units: ``"512 B"``, ``"1.5 kB"``, ``"9.9 GB"``, ``"512 GB"``."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        n /= 1000
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}" if n < 100 else f"{n:.0f} {unit}"
    raise AssertionError("unreachable")


def format_bits(bps: float) -> str:
    """A rate in bits/s: ``"0 bit/s"``, ``"850 Mbit/s"``, ``"1.20 Gbit/s"``."""
    if bps < 1000:
        return f"{bps:.0f} bit/s"
    for unit in ("kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"):
        bps /= 1000
        if bps < 1000 or unit == "Tbit/s":
            return f"{bps:.3g} {unit}" if bps < 100 else f"{bps:.0f} {unit}"
    raise AssertionError("unreachable")


def format_age(seconds: float) -> str:
    """A span in two units at most: ``"45 s"``, ``"5 min"``, ``"2 h 5 min"``, ``"3 d 4 h"``."""
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s} s"
    parts: list[tuple[int, str]] = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        n, s = divmod(s, size)
        if n or parts:
            parts.append((n, unit))
    shown = [(n, u) for n, u in parts[:2] if n]
    return " ".join(f"{n} {u}" for n, u in shown)


def format_time(ts: float | None) -> str:
    """``ts`` (unix seconds) as ``"2027-01-15 08:00 UTC"``; ``""`` for None."""
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pct(share: float | None) -> str:
    if share is None:
        return "n/a"
    return f"{share * 100:.0f} %" if share >= 0.1 else f"{share * 100:.1f} %"


# --- utilisation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Something used against what there is (bytes, or bits/s), worded."""

    used: float
    total: float
    text: str  # "1.20 Gbit/s of 10 Gbit/s (12 %)"; "not reported" when total is 0

    @property
    def share(self) -> float | None:
        return self.used / self.total if self.total > 0 else None

    @property
    def percent(self) -> int:
        """0..100 for a meter (0 when unknown)."""
        share = self.share
        return 0 if share is None else max(0, min(100, round(share * 100)))

    @property
    def known(self) -> bool:
        return self.total > 0


def _usage(
    used: float, total: float, fmt: Callable[[float], str], none: str = "not reported"
) -> Usage:
    if total <= 0:
        return Usage(used, total, none)
    return Usage(used, total, f"{fmt(used)} of {fmt(total)} ({_pct(used / total)})")


def egress_usage(a: Appliance) -> Usage:
    return _usage(a.load.egress_bps, a.gbps * 1e9, format_bits, "no capacity configured")


def disk_usage(a: Appliance) -> Usage:
    load = a.load
    reported = load.disk_used_bytes + load.disk_free_bytes
    if reported <= 0:  # counts in no total: its size is not known, only configured
        configured = f" ({format_bytes(a.disk_bytes)} configured)" if a.disk_bytes else ""
        return Usage(0, 0, f"not reported{configured}")
    return _usage(load.disk_used_bytes, reported, format_bytes)


# --- appliances ------------------------------------------------------------------------------


def _css(level: StatusLevel) -> str:
    return f"status-{level.value}"


class Leveled:
    """A row with a status ``level``: its badge's text, class and the level's name."""

    level: StatusLevel

    @property
    def label(self) -> str:
        return LEVEL_LABELS[self.level]

    @property
    def css(self) -> str:
        """The badge class: ``status-ok``, ``-warning``, ``-error`` or ``-unknown``."""
        return _css(self.level)

    @property
    def status(self) -> str:
        return self.level.value


@dataclass(frozen=True)
class ApplianceRow(Leveled):
    """One appliance as the lists show it."""

    id: str
    site_id: str
    site_kind: str  # embedded | pni | ix | origin ("" when its site is unknown)
    partner: str | None
    state: str  # provisioned | registered
    level: StatusLevel
    reason: str
    since: float | None  # when the status took its level
    steering: str  # "serving" | "no new sessions, in-flight kept" | "out, in-flight moved"
    steering_reason: str
    new_sessions: bool
    egress: Usage
    disk: Usage
    titles: int  # titles held complete
    heartbeat: str  # "12 s ago" | "never"


def _no_status_reason(a: Appliance) -> str:
    if a.state is ApplianceState.PROVISIONED:
        return "provisioned: never registered"
    return "registered: its first heartbeat is due"


def appliance_row(
    snapshot: FleetSnapshot,
    appliance: Appliance,
    status: StatusState | None,
    now: float,
    steering: SteeringState | None = None,
) -> ApplianceRow:
    """``appliance`` with its held ``status`` (None: not observed) at ``now``.

    ``steering``: its steering state worded now (``plane.health.steering(id, now)``);
    None: the snapshot entry's (its reason worded when it last changed).
    """
    a = appliance
    site = snapshot.sites.get(a.site_id)
    st = steering if steering is not None else a.steering
    last = a.health.last_heartbeat_at
    return ApplianceRow(
        id=a.id,
        site_id=a.site_id,
        site_kind=site.kind.value if site is not None else "",
        partner=site.partner if site is not None else None,
        state=a.state.value,
        level=status.level if status is not None else StatusLevel.UNKNOWN,
        reason=status_reason(a, status) if status is not None else _no_status_reason(a),
        since=status.since if status is not None else None,
        steering=describe_steering(st),
        steering_reason=st.reason,
        new_sessions=st.new_sessions,
        egress=egress_usage(a),
        disk=disk_usage(a),
        titles=len(a.titles),
        heartbeat="never" if last is None else f"{format_age(now - last)} ago",
    )


def appliance_rows(
    snapshot: FleetSnapshot,
    appliances: Iterable[Appliance],
    statuses: Mapping[str, StatusState],
    now: float,
    steering: Mapping[str, SteeringState] | None = None,
) -> list[ApplianceRow]:
    """A row per appliance, by site then id. ``statuses``: ``plane.health.statuses``;
    ``steering``: per appliance id, its state worded now (missing: the snapshot's)."""
    steer = steering or {}
    rows = [
        appliance_row(snapshot, a, statuses.get(a.id), now, steer.get(a.id)) for a in appliances
    ]
    return sorted(rows, key=lambda r: (r.site_id, r.id))


def total_usage(rows: Iterable[ApplianceRow]) -> tuple[Usage, Usage]:
    """(egress against capacity, disk used against size) summed over ``rows``."""
    items = list(rows)
    egress = [r.egress for r in items]
    disk = [r.disk for r in items if r.disk.known]
    return (
        _usage(
            sum(u.used for u in egress),
            sum(u.total for u in egress),
            format_bits,
            "no capacity configured",
        ),
        _usage(sum(u.used for u in disk), sum(u.total for u in disk), format_bytes),
    )


def level_counts(rows: Iterable[ApplianceRow]) -> dict[str, int]:
    """Appliances per status label, worst first (every label present)."""
    counts = dict.fromkeys(
        (StatusLevel.ERROR, StatusLevel.WARNING, StatusLevel.UNKNOWN, StatusLevel.OK), 0
    )
    for r in rows:
        counts[r.level] += 1
    return {LEVEL_LABELS[level]: n for level, n in counts.items()}


# --- sites -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteRow(Leveled):
    """One site with its appliances, its status (worst wins) and its utilisation."""

    id: str
    kind: str
    partner: str | None
    level: StatusLevel
    reason: str
    egress: Usage
    disk: Usage
    appliances: tuple[ApplianceRow, ...]
    alerts: int  # actionable items about the site or its appliances


def _site_level(
    rows: Sequence[ApplianceRow], site_alerts: Sequence[Alert]
) -> tuple[StatusLevel, str]:
    if not rows:
        return StatusLevel.UNKNOWN, "no appliances"
    alert_levels = [
        StatusLevel(a.severity) for a in site_alerts if a.severity in ("error", "warning")
    ]
    level = worst([r.level for r in rows] + alert_levels)
    if level is StatusLevel.OK:
        return level, f"all {len(rows)} appliance(s) OK"
    why = [f"{r.id}: {r.reason}" for r in rows if r.level is level]
    why += [a.message for a in site_alerts if a.severity == level.value]
    return level, "; ".join(why)


def site_rows(
    sites: Iterable[Site], rows: Iterable[ApplianceRow], alerts: Iterable[Alert] = ()
) -> list[SiteRow]:
    """A row per site of ``sites`` (by id), with its appliances of ``rows`` and ``alerts``
    (``plane.alerts(partner)``: those about the site itself count in its status)."""
    by_site: dict[str, list[ApplianceRow]] = {}
    for r in rows:
        by_site.setdefault(r.site_id, []).append(r)
    alerts_at: dict[str, list[Alert]] = {}
    for a in alerts:
        alerts_at.setdefault(a.site_id, []).append(a)
    out = []
    for site in sorted(sites, key=lambda s: s.id):
        mine = sorted(by_site.get(site.id, []), key=lambda r: r.id)
        about = alerts_at.get(site.id, [])
        own = [a for a in about if a.appliance_id is None]
        level, reason = _site_level(mine, own)
        egress, disk = total_usage(mine)
        out.append(
            SiteRow(
                id=site.id,
                kind=site.kind.value,
                partner=site.partner,
                level=level,
                reason=reason,
                egress=egress,
                disk=disk,
                appliances=tuple(mine),
                alerts=len(about),
            )
        )
    return out


# --- actionable items ------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRow:
    severity: StatusLevel  # error | warning
    kind: str
    what: str  # the kind in words
    site_id: str
    appliance_id: str | None
    message: str
    since: str  # "for 2 h 5 min" | ""

    @property
    def label(self) -> str:
        return LEVEL_LABELS[self.severity]

    @property
    def css(self) -> str:
        return _css(self.severity)


def alert_rows(alerts: Iterable[Alert], now: float) -> list[AlertRow]:
    """``plane.alerts(partner)`` for people (its order kept: errors first)."""
    out = []
    for a in alerts:
        try:
            level = StatusLevel(a.severity)
        except ValueError:
            level = StatusLevel.WARNING
        out.append(
            AlertRow(
                severity=level,
                kind=a.kind,
                what=ALERT_LABELS.get(a.kind, a.kind.replace("-", " ").capitalize()),
                site_id=a.site_id,
                appliance_id=a.appliance_id,
                message=a.message,
                since=f"for {format_age(now - a.since)}" if a.since is not None else "",
            )
        )
    return out


# --- one appliance: components, turn-up, steering ------------------------------------------------


@dataclass(frozen=True)
class ComponentRow:
    name: str
    level: StatusLevel
    observed: StatusLevel  # the latest observation (the held level may lag it: hysteresis)
    reason: str
    since: str  # "2027-01-15 08:00 UTC (2 h ago)"

    @property
    def label(self) -> str:
        return LEVEL_LABELS[self.level]

    @property
    def observed_label(self) -> str:
        return LEVEL_LABELS[self.observed]

    @property
    def css(self) -> str:
        return _css(self.level)


def _when(ts: float, now: float) -> str:
    return f"{format_time(ts)} ({format_age(now - ts)} ago)"


def component_rows(status: StatusState | None, now: float) -> list[ComponentRow]:
    """The held status's components, in the status's order (none before an observation)."""
    if status is None:
        return []
    recover = status.observed.recover_after_s
    return [
        ComponentRow(
            name=c.name.value,
            level=c.level,
            observed=c.observed.level,
            reason=c.reason(recover, status.at),
            since=_when(c.since, now),
        )
        for c in status.components
    ]


@dataclass(frozen=True)
class CheckRow:
    check: str
    outcome: str  # pass | fail | pending
    reason: str

    @property
    def css(self) -> str:
        return _css(_OUTCOME_LEVELS.get(self.outcome, StatusLevel.UNKNOWN))

    @property
    def label(self) -> str:
        return self.outcome.capitalize()


@dataclass(frozen=True)
class TurnupView:
    required: bool
    turned_up: bool
    turned_up_at: str  # "" when not turned up
    reason: str
    checks: tuple[CheckRow, ...]


def turnup_view(
    turnup: Turnup | None, turned_up_at: float | None, required: bool, now: float
) -> TurnupView:
    """``plane.health.turnups.get(id)``, ``plane.health.turned_up_at.get(id)`` and
    ``plane.settings.turnup_required`` for people."""
    if turned_up_at is not None:
        reason = f"turned up {_when(turned_up_at, now)}"
    elif turnup is not None:
        reason = turnup.reason
    else:
        reason = "not registered yet: its checks start at registration"
    if not required:
        reason += " (this control plane does not require turn-up to serve)"
    return TurnupView(
        required=required,
        turned_up=turned_up_at is not None,
        turned_up_at=format_time(turned_up_at) if turned_up_at is not None else "",
        reason=reason,
        checks=tuple(
            CheckRow(c.check.value, c.outcome.value, c.reason)
            for c in (turnup.checks if turnup is not None else ())
        ),
    )


@dataclass(frozen=True)
class SteeringView:
    """How steering treats the appliance, and the drain / disable behind it."""

    summary: str  # describe_steering
    reason: str
    new_sessions: bool
    keep_in_flight: bool
    maintenance: str  # "drained, 1d23h left: reason" | "" when none is active
    mode: str  # drain | disable | "" (none active)
    until: str  # "2027-01-15 08:00 UTC" | ""
    last: str  # the last maintenance, ended ("" when none or still active)

    @property
    def css(self) -> str:
        if self.new_sessions:
            return _css(StatusLevel.OK)
        return _css(StatusLevel.WARNING if self.keep_in_flight else StatusLevel.ERROR)


def steering_view(
    state: SteeringState, maintenance: Maintenance | None, now: float
) -> SteeringView:
    """``plane.health.steering(id, now)`` and ``plane.health.maintenance.get(id)``, worded."""
    active = effective(maintenance, now)
    last = ""
    if maintenance is not None and active is None and maintenance.until <= now:
        verb = "drain" if maintenance.mode is MaintenanceMode.DRAIN else "disable"
        why = f" ({maintenance.reason})" if maintenance.reason else ""
        last = (
            f"last {verb}: {format_time(maintenance.since)} to {format_time(maintenance.until)}"
            f", {format_duration(maintenance.until - maintenance.since)}{why}"
        )
    return SteeringView(
        summary=describe_steering(state),
        reason=state.reason,
        new_sessions=state.new_sessions,
        keep_in_flight=state.keep_in_flight,
        maintenance=active.describe(now) if active is not None else "",
        mode=active.mode.value if active is not None else "",
        until=format_time(active.until) if active is not None else "",
        last=last,
    )


# --- BGP sessions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FilteredCount:
    reason: str  # the policy's code, e.g. "bogon"
    text: str  # in words
    count: int


@dataclass(frozen=True)
class BgpRow:
    neighbor: str
    remote_as: int
    description: str
    state: str
    established: bool
    uptime: str  # "3 h 2 min" | "" when not established
    received: int
    accepted: int
    filtered: tuple[FilteredCount, ...]  # by count, largest first
    last_error: str
    reported: str  # "12 s ago"

    @property
    def filtered_total(self) -> int:
        return sum(f.count for f in self.filtered)

    @property
    def css(self) -> str:
        return _css(StatusLevel.OK if self.established else StatusLevel.ERROR)


def session_uptime(state: FeedState, now: float) -> str:
    """How long a BGP session has been up at ``now``: its uptime as reported plus the time
    since the report ("" when it is not established or reported no uptime)."""
    s = state.session
    if not s.established or s.uptime_s is None:
        return ""
    return format_age(s.uptime_s + max(now - state.reported_at, 0.0))


def bgp_rows(sessions: Iterable[FeedState], now: float) -> list[BgpRow]:
    """``plane.routes.sessions(id)``: each session as its speaker last reported it; uptime
    counted on to ``now`` while established."""
    out = []
    for fs in sessions:
        s = fs.session
        uptime = session_uptime(fs, now)
        filtered = sorted(
            (
                FilteredCount(code, FILTER_REASONS.get(code, code.replace("_", " ")), n)
                for code, n in s.filtered.items()
                if n > 0
            ),
            key=lambda f: (-f.count, f.reason),
        )
        out.append(
            BgpRow(
                neighbor=s.neighbor,
                remote_as=s.remote_as,
                description=s.description,
                state=s.state,
                established=s.established,
                uptime=uptime,
                received=s.received,
                accepted=s.accepted,
                filtered=tuple(filtered),
                last_error=s.last_error or "",
                reported=f"{format_age(now - fs.reported_at)} ago",
            )
        )
    return out


# --- fill -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FillSummary:
    planned: bool  # the appliance has a fill manifest
    version: int
    titles_wanted: int
    titles_held: int
    titles: Usage  # titles held of wanted
    bytes: Usage  # bytes held of wanted
    complete: bool
    state: str  # the agent's last state ("" none reported)
    alarm: str
    reported: str  # "" | "12 s ago"
    missing: tuple[str, ...]  # up to ``MISSING_SHOWN`` titles
    missing_more: int  # how many more are missing
    fetched: tuple[tuple[str, str], ...]  # (source kind, bytes in words)


MISSING_SHOWN: Final = 20


def fill_row(
    snapshot: FleetSnapshot,
    appliance: Appliance,
    manifest: ApplianceManifest | None,
    inventory: Inventory,
    status: FillStatus | None,
    fetched: Mapping[str, int],
) -> dict[str, Any]:
    """One appliance's row in the shape of :func:`localcast.control.fill_progress.progress`'s
    (the fields :func:`fill_summary` reads), computed over its own manifest's titles only.

    ``manifest``: ``plane.fills.view.manifests[id].manifest``; ``inventory``: its files per
    title; ``status``: the agent's last report; ``fetched``: bytes fetched per source kind.
    """
    wanted = sorted(t for t in (manifest.titles if manifest else ()) if t in snapshot.catalog)
    sizes = {t: required_sizes(snapshot.catalog[t]) for t in wanted}
    held = [t for t in wanted if t in appliance.titles]
    return {
        "appliance_id": appliance.id,
        "version": manifest.version if manifest else 0,
        "titles_wanted": len(wanted),
        "titles_held": len(held),
        "titles_missing": [t for t in wanted if t not in appliance.titles],
        "bytes_wanted": sum(sum(sz.values()) for sz in sizes.values()),
        "bytes_held": sum(
            size
            for t, sz in sizes.items()
            for name, size in sz.items()
            if name in inventory.get(t, ())
        ),
        "complete": len(held) == len(wanted),
        "state": status.state if status else None,
        "alarm": status.alarm if status else None,
        "reported_at": status.reported_at if status else None,
        "fill_bytes": {k: fetched.get(k, 0) for k in SOURCE_KINDS},
    }


def fill_summary(row: Mapping[str, Any] | None, now: float) -> FillSummary:
    """One appliance's row of :func:`localcast.control.fill_progress.progress` (None: the
    appliance is in no placed site, e.g. an origin)."""
    if row is None:
        none = Usage(0, 0, "no fill plan")
        return FillSummary(
            planned=False,
            version=0,
            titles_wanted=0,
            titles_held=0,
            titles=none,
            bytes=none,
            complete=True,
            state="",
            alarm="",
            reported="",
            missing=(),
            missing_more=0,
            fetched=(),
        )
    wanted, held = int(row["titles_wanted"]), int(row["titles_held"])
    missing = list(row.get("titles_missing") or ())
    reported_at = row.get("reported_at")
    return FillSummary(
        planned=int(row.get("version") or 0) > 0,
        version=int(row.get("version") or 0),
        titles_wanted=wanted,
        titles_held=held,
        titles=_usage(held, wanted, lambda n: f"{n:.0f}", "no titles planned"),
        bytes=_usage(
            float(row["bytes_held"]), float(row["bytes_wanted"]), format_bytes, "nothing planned"
        ),
        complete=bool(row.get("complete")),
        state=str(row.get("state") or ""),
        alarm=str(row.get("alarm") or ""),
        reported=f"{format_age(now - float(reported_at))} ago" if reported_at else "",
        missing=tuple(missing[:MISSING_SHOWN]),
        missing_more=max(len(missing) - MISSING_SHOWN, 0),
        fetched=tuple((k, format_bytes(v)) for k, v in dict(row.get("fill_bytes") or {}).items()),
    )


# --- served traffic --------------------------------------------------------------------------


@dataclass(frozen=True)
class TrafficDay:
    day: str  # "2027-01-15" | "total"
    bytes: int
    bytes_text: str
    requests: int
    errors_5xx: int
    served: int  # playback sessions whose first pathway was the site
    content_misses: int
    efficiency: str  # caching efficiency in words ("n/a" when in line for none)


def site_traffic(traffics: Iterable[PartnerTraffic], site_id: str) -> list[TrafficDay]:
    """Per UTC day (oldest first) then a ``total`` row: what ``site_id`` served to the clients
    of the partners in ``traffics`` (``plane.traffic.partner_traffic(...)`` of each); no rows
    when it served nothing and was passed over for nothing."""
    per_day: dict[str, list[int]] = {}
    total = [0, 0, 0, 0, 0]
    for pt in traffics:
        for fig in pt.days:
            if fig.day is None:
                continue
            acc = per_day.setdefault(day_date(fig.day), [0, 0, 0, 0, 0])
            s = fig.sites.get(site_id)
            if s is None:
                continue
            for i, v in enumerate((s.bytes, s.requests, s.errors_5xx, s.served, s.content_misses)):
                acc[i] += v
                total[i] += v

    def row(day: str, v: list[int]) -> TrafficDay:
        return TrafficDay(
            day,
            v[0],
            format_bytes(v[0]),
            v[1],
            v[2],
            v[3],
            v[4],
            _pct(caching_efficiency(v[3], v[4])),
        )

    if not any(total):
        return []
    return [*(row(d, v) for d, v in sorted(per_day.items())), row("total", total)]
