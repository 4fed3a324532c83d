"""The health shell of the control plane: status, turn-up, maintenance, steering state, alerts.

:class:`HealthService` belongs to a :class:`~localcast.control.service.ControlPlane`
(``plane.health``). It gathers the plain inputs the pure core wants and keeps
what the core returns:

* **status** (:mod:`localcast.core.status`): on every heartbeat (that
  appliance) and every refresh tick (every appliance: a dead one turns Error
  with no event), inputs from the snapshot entry (heartbeat bookkeeping,
  disk, egress against capacity), the fill service (manifest titles wanted
  and held, the agent's last alarm; ``behind_since`` kept here), the route
  feed (each reported BGP session; when it entered its state is kept here)
  and the heartbeat's optional serving window. The held
  :class:`~localcast.core.status.StatusState` is kept in memory only (it is
  derived; a restarted plane starts again from the stored heartbeat
  bookkeeping). Every change of level is logged with its reason.
* **turn-up** (:mod:`localcast.core.turnup`): the prober
  (:mod:`localcast.control.prober`) records reachability and content
  probes here; BGP (when the site speaks BGP: an appliance of the site
  reported a session or learned routes) and fill come from the same inputs
  as the status. The first time every check passes, ``turned_up_at`` is
  written to ``appliances.turned_up_at``: sticky across restarts.
  An appliance holding no title complete has nothing to fetch: its content
  check stays pending ("holds no title complete yet") and it turns up once
  it holds one; until then steering would not pick it anyway (content miss).
* **maintenance** (:mod:`localcast.core.maintenance`): drain / disable
  windows, stored in ``appliance_maintenance``, read at every reload and
  written through by :meth:`set_maintenance` / :meth:`end_maintenance`.
* **steering state**: :func:`localcast.core.maintenance.steering_state`
  of the three, put on the snapshot's appliance entry
  (:attr:`localcast.core.fleet.Appliance.steering`), so a playback decision
  reads it and computes nothing. The entry is replaced (a snapshot swap)
  only when what restricts the appliance changes (maintenance mode, turn-up,
  the restricting components and their levels), not when only the wording
  of its reason would (ages, time left): the snapshot version does not
  churn every tick. With ``[control] turnup_required = false`` an appliance
  counts as turned up for steering whatever its checks say.
* **alerts** (:meth:`alerts`): per partner, from the held statuses and
  :func:`localcast.core.route_reports.site_consistency`.

State is guarded by the snapshot holder's lock (every writer of the
snapshot holds it already).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session, sessionmaker

from localcast.control import repository as repo
from localcast.control.fills import FillService
from localcast.control.route_feed import RouteFeed
from localcast.control.settings import ControlSettings
from localcast.control.snapshot import SnapshotHolder
from localcast.core.fleet import (
    Appliance,
    ApplianceState,
    FleetSnapshot,
    SiteKind,
    SteeringState,
    frozen_map,
)
from localcast.core.health import window_s
from localcast.core.maintenance import (
    Maintenance,
    MaintenanceMode,
    begin,
    effective,
    ended,
    steering_state,
)
from localcast.core.route_reports import site_consistency
from localcast.core.status import (
    BgpSession,
    ComponentName,
    ComponentState,
    FillProgress,
    ServingWindow,
    StatusLevel,
    StatusState,
    StatusThresholds,
    SteeringEffect,
    evaluate,
    inputs_from_appliance,
    next_status,
)
from localcast.core.turnup import Probe, Turnup, TurnupInputs, TurnupPolicy, next_turnup

log = logging.getLogger(__name__)
Clock = Callable[[], float]

NO_TITLE_YET = "holds no title complete yet: passes once it holds one"

# What decides an appliance's steering state (see the module text); the reason is not in it.
_SteerKey = tuple[object, ...]


@dataclass(frozen=True)
class Probes:
    """The prober's last look at one appliance."""

    reachability: Probe | None = None
    content: Probe | None = None
    content_waiting: str | None = None


@dataclass(frozen=True)
class Alert:
    severity: str  # error | warning
    kind: str  # appliance-down | bgp-down | route-inconsistency | fill-behind | disk-near-full
    site_id: str
    appliance_id: str | None
    message: str
    since: float | None


ALERT_KINDS = ("appliance-down", "bgp-down", "route-inconsistency", "fill-behind", "disk-near-full")


class HealthService:
    def __init__(
        self,
        settings: ControlSettings,
        sessions: sessionmaker[Session],
        holder: SnapshotHolder,
        routes: RouteFeed,
        fills: FillService,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.holder = holder
        self.routes = routes
        self.fills = fills
        self.clock = clock
        self.thresholds = StatusThresholds()
        self.policy = TurnupPolicy(
            fill_share=settings.turnup_fill_share, bgp_grace_s=self.thresholds.bgp_grace_s
        )
        self.statuses: dict[str, StatusState] = {}
        self.turnups: dict[str, Turnup] = {}
        self.turned_up_at: dict[str, float] = {}
        self.maintenance: dict[str, Maintenance] = {}
        self.probes: dict[str, Probes] = {}
        self._serving: dict[str, ServingWindow] = {}
        self._behind_since: dict[str, float] = {}
        self._bgp_seen: dict[tuple[str, str], tuple[bool, float]] = {}
        self._steer: dict[str, tuple[_SteerKey, SteeringState]] = {}
        self._inconsistent_since: dict[str, float] = {}
        self._unstored: dict[str, float] = {}  # turn-ups not written to the database yet
        self._first_beat: set[str] = set()  # registered, first heartbeat not seen yet

    # --- loading ---------------------------------------------------------------------------

    def load(self, s: Session) -> None:
        """Turn-up times and maintenance windows from the database (at every reload)."""
        turned = repo.turned_up(s)
        maintenance = repo.all_maintenance(s)
        with self.holder.lock:
            self.turned_up_at = turned
            self.maintenance = maintenance

    # --- inputs ----------------------------------------------------------------------------

    def _fill(
        self, snap: FleetSnapshot, a: Appliance, origin: bool, now: float
    ) -> FillProgress | None:
        if origin:
            return None
        stored = self.fills.view.manifests.get(a.id)
        if stored is None:
            self._behind_since.pop(a.id, None)
            return None
        wanted = [t for t in stored.manifest.titles if t in snap.catalog]
        held = sum(1 for t in wanted if t in a.titles)
        if held >= len(wanted):
            self._behind_since.pop(a.id, None)
            behind = None
        else:
            behind = self._behind_since.setdefault(a.id, now)
        return FillProgress(len(wanted), held, behind, self.fills.alarms.get(a.id))

    def _bgp(self, appliance_id: str) -> tuple[BgpSession, ...]:
        out = []
        for fs in self.routes.sessions(appliance_id):
            session = fs.session
            key = (appliance_id, session.neighbor)
            seen = self._bgp_seen.get(key)
            if seen is None or seen[0] != session.established:
                seen = self._bgp_seen[key] = (session.established, fs.reported_at)
            out.append(BgpSession(session.neighbor, session.established, seen[1]))
        return tuple(out)

    def _speaks_bgp(self, snap: FleetSnapshot, site_id: str) -> bool:
        if site_id in snap.speaking_sites:
            return True
        return any(self.routes.sessions(a.id) for a in snap.appliances_at(site_id))

    # --- observing -------------------------------------------------------------------------

    def _observe(self, snap: FleetSnapshot, a: Appliance, now: float) -> Appliance:
        """Fold one observation of ``a`` into its status and turn-up; ``a`` with its steering."""
        site = snap.sites.get(a.site_id)
        origin = site is not None and site.kind is SiteKind.ORIGIN
        fill = self._fill(snap, a, origin, now)
        bgp = self._bgp(a.id)
        inputs = inputs_from_appliance(a, fill=fill, bgp=bgp, serving=self._serving.get(a.id))
        prev = self.statuses.get(a.id)
        status = next_status(prev, evaluate(inputs, now, self.thresholds), now)
        self.statuses[a.id] = status
        bad = status.level in (StatusLevel.WARNING, StatusLevel.ERROR)
        if (prev is None and bad) or (prev is not None and prev.level is not status.level):
            was = prev.level if prev is not None else "none"
            log.log(
                logging.WARNING if bad else logging.INFO,
                "appliance %s status %s -> %s: %s",
                a.id,
                was,
                status.level,
                status_reason(a, status),
            )
        if a.state is ApplianceState.REGISTERED:
            self._turnup(snap, a, origin, fill, bgp, now)
        return self._steered(a, status, now)

    def _turnup(
        self,
        snap: FleetSnapshot,
        a: Appliance,
        origin: bool,
        fill: FillProgress | None,
        bgp: tuple[BgpSession, ...],
        now: float,
    ) -> None:
        probes = self.probes.get(a.id, Probes())
        inputs = TurnupInputs(
            reachability=probes.reachability,
            content=probes.content,
            content_waiting=probes.content_waiting,
            bgp_required=self._speaks_bgp(snap, a.site_id),
            bgp=bgp,
            titles_wanted=fill.titles_wanted if fill is not None else None,
            titles_held=fill.titles_held if fill is not None else 0,
            fill_alarm=fill.alarm if fill is not None else None,
            fill_required=not origin,
        )
        at = self.turned_up_at.get(a.id)
        previous = Turnup((), True, at) if at is not None else None
        turnup = next_turnup(previous, inputs, now, self.policy)
        self.turnups[a.id] = turnup
        if at is None and turnup.turned_up_at is not None:
            self.turned_up_at[a.id] = turnup.turned_up_at
            self._unstored[a.id] = turnup.turned_up_at  # written by store_turnups
            log.info(
                "appliance %s turned up: %s",
                a.id,
                "; ".join(f"{c.check} {c.reason}" for c in turnup.checks),
            )

    def store_turnups(self) -> None:
        """Write the turn-ups seen since the last call (outside any open transaction: an
        observation may run inside the heartbeat's, which holds SQLite's write lock)."""
        with self.holder.lock:
            pending, self._unstored = self._unstored, {}
            if not pending:
                return
            try:
                with self.sessions.begin() as s:
                    for aid, at in pending.items():
                        repo.set_turned_up(s, aid, at)
            except Exception:  # kept in memory; retried at the next call
                log.exception("could not store the turn-up of %s", ", ".join(sorted(pending)))
                self._unstored = {**pending, **self._unstored}

    def turned_up(self, appliance_id: str) -> bool:
        """Whether steering counts ``appliance_id`` as turned up."""
        return not self.settings.turnup_required or appliance_id in self.turned_up_at

    def _steered(self, a: Appliance, status: StatusState | None, now: float) -> Appliance:
        maintenance = self.maintenance.get(a.id)
        active = effective(maintenance, now)
        turned = self.turned_up(a.id)
        unknown = status is None or status.level is StatusLevel.UNKNOWN
        restricting = tuple(
            (c.name, c.level)
            for c in (status.components if status is not None and not unknown else ())
            if c.effect is not SteeringEffect.SERVE
        )
        key: _SteerKey = (
            (active.mode, active.until) if active is not None else None,
            turned,
            unknown,
            restricting,
        )
        held = self._steer.get(a.id)
        if held is None or held[0] != key:
            steering = steering_state(maintenance, status, turned, now)
            if held is not None:  # a change (the first state is shown by the API)
                log.info(
                    "appliance %s steering: %s (%s)",
                    a.id,
                    describe_steering(steering),
                    steering.reason,
                )
            held = self._steer[a.id] = (key, steering)
        steering = held[1]
        return a if a.steering == steering else replace(a, steering=steering)

    def steering(self, appliance_id: str, now: float) -> SteeringState:
        """The steering state with its reason worded now (for people; steering reads the
        snapshot's)."""
        return steering_state(
            self.maintenance.get(appliance_id),
            self.statuses.get(appliance_id),
            self.turned_up(appliance_id),
            now,
        )

    def observed(
        self,
        snap: FleetSnapshot,
        appliance: Appliance,
        now: float,
        serving: ServingWindow | None = None,
    ) -> Appliance:
        """A heartbeat's observation: ``appliance`` with its steering state. The serving
        window replaces the last one (None: not reported)."""
        with self.holder.lock:
            if serving is not None:
                self._serving[appliance.id] = serving
            else:
                self._serving.pop(appliance.id, None)
            self._first_beat.discard(appliance.id)
            return self._observe(snap, appliance, now)

    def _look(self, snap: FleetSnapshot, a: Appliance, now: float) -> Appliance:
        """A tick's look at ``a``: an observation, unless it registered and its first heartbeat
        is still due (then its steering state only)."""
        if a.id in self._first_beat:
            last = a.health.last_heartbeat_at
            if last is not None and now - last <= window_s(a.health):
                return self._steered(a, self.statuses.get(a.id), now)
            self._first_beat.discard(a.id)  # it never beat: observed (dead)
        return self._observe(snap, a, now)

    def registered(self, appliance: Appliance, now: float) -> Appliance:
        """A registration (the appliance's process started): its status starts afresh.

        The held levels of its previous run are dropped (a restarted appliance
        is judged on this run; liveness still wants two beats in a row, and an
        appliance that went silent and beats again without registering keeps
        its held Error for ``recover_after_s``). The registration is not an
        observation either: it counts as the first beat of the run, which the
        status would call "recovering"; the first heartbeat, right after it,
        observes. Until then its status is unknown: out of steering.
        """
        with self.holder.lock:
            self._serving.pop(appliance.id, None)
            self._first_beat.add(appliance.id)
            prev = self.statuses.pop(appliance.id, None)
            if prev is not None and prev.level is not StatusLevel.UNKNOWN:
                log.info("appliance %s registered: status %s dropped", appliance.id, prev.level)
            return self._steered(appliance, None, now)

    def applied(self, snap: FleetSnapshot, now: float) -> FleetSnapshot:
        """``snap`` with every appliance observed (same version): for a rebuilt snapshot."""
        with self.holder.lock:
            self._forget(snap.appliances)
            apps = {aid: self._look(snap, a, now) for aid, a in snap.appliances.items()}
        if all(apps[aid] is a for aid, a in snap.appliances.items()):
            return snap
        return replace(snap, appliances=frozen_map(apps))

    def refresh(self, now: float | None = None) -> FleetSnapshot:
        """The refresh tick: observe every appliance; swap in changed steering states."""
        now = self.clock() if now is None else now
        with self.holder.lock:
            snap = self.holder.current
            self._forget(snap.appliances)
            changed = {}
            for aid, a in snap.appliances.items():
                nxt = self._look(snap, a, now)
                if nxt is not a:
                    changed[aid] = nxt
            if changed:
                snap = self.holder.swap(lambda old: _with_appliances(old, changed))
            self.store_turnups()
            return snap

    def update(self, appliance_ids: Iterable[str], now: float | None = None) -> FleetSnapshot:
        """Observe ``appliance_ids`` now (after a probe or a maintenance change)."""
        now = self.clock() if now is None else now
        with self.holder.lock:
            snap = self.holder.current
            changed = {}
            for aid in appliance_ids:
                a = snap.appliances.get(aid)
                if a is None:
                    continue
                nxt = self._look(snap, a, now)
                if nxt is not a:
                    changed[aid] = nxt
            if changed:
                snap = self.holder.swap(lambda old: _with_appliances(old, changed))
            self.store_turnups()
            return snap

    def _forget(self, present: Mapping[str, Appliance]) -> None:
        """Drop what is kept about appliances no longer in the fleet."""
        for store in (self.statuses, self.turnups, self.probes, self._serving, self._steer):
            for aid in [k for k in store if k not in present]:
                del store[aid]
        for aid in [k for k in self._behind_since if k not in present]:
            del self._behind_since[aid]
        self._first_beat &= set(present)

    # --- turn-up probes --------------------------------------------------------------------

    def probe_targets(self, snap: FleetSnapshot) -> list[Appliance]:
        """Registered appliances not turned up yet, by id."""
        return [
            a
            for _, a in sorted(snap.appliances.items())
            if a.state is ApplianceState.REGISTERED and a.id not in self.turned_up_at
        ]

    def record_probes(self, results: Mapping[str, Probes], now: float | None = None) -> None:
        with self.holder.lock:
            self.probes.update(results)
        self.update(results, now)

    # --- maintenance -----------------------------------------------------------------------

    def set_maintenance(
        self, appliance_id: str, mode: MaintenanceMode | str, duration: str, reason: str, now: float
    ) -> Maintenance:
        """Drain or disable ``appliance_id`` for ``duration`` (DurationError when outside
        3 hours .. 30 days); stored, and the steering state follows at once."""
        m = begin(mode, duration, now, reason)
        with self.holder.lock:
            with self.sessions.begin() as s:
                repo.put_maintenance(s, appliance_id, m)
            self.maintenance[appliance_id] = m
            self.update([appliance_id], now)
        log.warning("appliance %s %s", appliance_id, m.describe(now))
        return m

    def end_maintenance(self, appliance_id: str, now: float) -> Maintenance | None:
        """Enable: end the active maintenance now (the record stays); None if there was none."""
        with self.holder.lock:
            m = effective(self.maintenance.get(appliance_id), now)
            if m is None:
                return None
            done = ended(m, now)
            with self.sessions.begin() as s:
                repo.put_maintenance(s, appliance_id, done)
            self.maintenance[appliance_id] = done
            self.update([appliance_id], now)
        log.warning("appliance %s enabled: %s ended early", appliance_id, m.mode)
        return done

    # --- alerts ----------------------------------------------------------------------------

    def alerts(self, partner_id: str, now: float) -> list[Alert]:
        """The partner's actionable items, errors first (refresh first for fresh statuses)."""
        snap = self.holder.current
        sites = {sid for sid, site in snap.sites.items() if site.partner == partner_id}
        out: list[Alert] = []
        with self.holder.lock:
            for a in sorted((a for sid in sites for a in snap.appliances_at(sid)), key=_id):
                if a.state is not ApplianceState.REGISTERED:
                    continue
                status = self.statuses.get(a.id)
                if status is not None:
                    out += _appliance_alerts(a, status)
            speaking = sites & snap.speaking_sites
            report = site_consistency(snap, limit=1, sites=speaking) if speaking else ()
            for rep in report:
                if rep.site_id not in sites:
                    continue
                if rep.consistent:
                    self._inconsistent_since.pop(rep.site_id, None)
                    continue
                since = self._inconsistent_since.setdefault(rep.site_id, now)
                example = f"; e.g. {rep.diffs[0].reason}" if rep.diffs else ""
                out.append(
                    Alert(
                        "warning",
                        "route-inconsistency",
                        rep.site_id,
                        None,
                        f"the appliances of {rep.site_id} hear different advertisements: "
                        f"{rep.missing_count} prefix(es) heard by some and not others, "
                        f"{rep.attribute_count} with different attributes{example}",
                        since,
                    )
                )
        order = {"error": 0, "warning": 1}
        out.sort(key=lambda x: (order.get(x.severity, 2), x.site_id, x.appliance_id or "", x.kind))
        return out


def _id(a: Appliance) -> str:
    return a.id


def _with_appliances(snap: FleetSnapshot, changed: Mapping[str, Appliance]) -> FleetSnapshot:
    apps = dict(snap.appliances)
    apps.update((aid, a) for aid, a in changed.items() if aid in apps)
    return replace(snap, version=snap.version + 1, appliances=frozen_map(apps))


def _appliance_alerts(a: Appliance, status: StatusState) -> list[Alert]:
    out = []
    recover = status.observed.recover_after_s

    def add(severity: str, kind: str, comp: ComponentState, what: str) -> None:
        why = comp.reason(recover, status.at)
        out.append(Alert(severity, kind, a.site_id, a.id, f"{a.id} {what}: {why}", comp.since))

    for comp in status.components:
        level = comp.level
        if level not in (StatusLevel.WARNING, StatusLevel.ERROR):
            continue
        severity = level.value
        if comp.name is ComponentName.HEARTBEAT and level is StatusLevel.ERROR:
            add("error", "appliance-down", comp, "is down")
        elif comp.name is ComponentName.SERVING and level is StatusLevel.ERROR:
            add("error", "appliance-down", comp, "is failing requests")
        elif comp.name is ComponentName.BGP:
            add(severity, "bgp-down", comp, "BGP session(s) down")
        elif comp.name is ComponentName.FILL:
            add(severity, "fill-behind", comp, "fill behind")
        elif comp.name is ComponentName.DISK:
            add(severity, "disk-near-full", comp, "disk near full")
    return out


def status_reason(a: Appliance, status: StatusState) -> str:
    """One line for people: what put the status at its level (the worst components' reasons)."""
    if a.state is ApplianceState.PROVISIONED:
        return "provisioned: never registered"
    if status.level is StatusLevel.OK or status.level is StatusLevel.UNKNOWN:
        return status.reason
    recover = status.observed.recover_after_s
    return "; ".join(
        c.reason(recover, status.at) for c in status.components if c.level is status.level
    )


def describe_steering(st: SteeringState) -> str:
    if st.new_sessions:
        return "serving"
    return "no new sessions, in-flight kept" if st.keep_in_flight else "out, in-flight moved"
