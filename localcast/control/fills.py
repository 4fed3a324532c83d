"""The fill shell of the control plane: demand in, manifests out, agent reports in.

:class:`FillService` belongs to a :class:`~localcast.control.service.ControlPlane`
(``plane.fills``) and does the I/O around the pure planning
(:mod:`localcast.core.fillplan`), the agent manifest
(:mod:`localcast.control.fill_manifest`) and the views
(:mod:`localcast.control.fill_progress`):

* **demand**: playback decisions are counted in memory
  (:class:`~localcast.control.demand.DemandCounter`) and flushed to
  ``demand_daily`` by :meth:`tick` and before every plan;
* **planning** (:meth:`plan`): history + releases from the database and the
  current snapshot -> manifests, stored when they changed (and the fill
  generation bumped, so other processes reload them). It runs when asked
  (``POST /v1/fill/plan``, ``localcast control fill plan``), and from
  :meth:`tick` (the refresh loop) when marked dirty — every snapshot reload,
  i.e. topology apply, title import, release change — or when the UTC day
  changed since the last plan;
* **agent reports** (:meth:`report`): state, alarm and transfers, each
  transfer resolved to its source site and kind (peer / tier / origin).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from localcast.control import repository as repo
from localcast.control.demand import DemandCounter, utc_day
from localcast.control.errors import Conflict, Invalid, NotFound, Unavailable
from localcast.control.fill_manifest import agent_manifest
from localcast.control.fill_progress import links, live_regions, progress
from localcast.control.fill_schemas import FillReport
from localcast.control.fill_state import FillView
from localcast.control.settings import ControlSettings
from localcast.control.snapshot import SnapshotHolder
from localcast.control.steering_stats import SteeringStats
from localcast.core.fillplan import PlanParams, placed_sites, plan_fill
from localcast.core.fillsources import EscalationPolicy
from localcast.core.fleet import FleetSnapshot, SiteKind
from localcast.core.forecast import ForecastParams, Release
from localcast.core.placement import PlacementParams
from localcast.core.steering import SteeringDecision
from localcast.core.tokens import Keyring, fill_keyring

log = logging.getLogger(__name__)
Clock = Callable[[], float]


@dataclass(frozen=True)
class FillPlanOutcome:
    day: int
    generated_at: float
    appliances: int  # manifests now stored
    changed: tuple[str, ...]  # appliances whose manifest is new or has a new version
    churn: int  # title copies added
    left_out: dict[str, tuple[str, ...]]  # site -> titles with demand that did not fit
    seconds: float


class FillService:
    def __init__(
        self,
        settings: ControlSettings,
        sessions: sessionmaker[Session],
        holder: SnapshotHolder,
        keyring: Keyring,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.holder = holder
        self.fill_keys = fill_keyring(keyring)
        self.clock = clock
        self.demand = DemandCounter()
        self.stats = SteeringStats(clock())
        self.view = FillView()
        self.alarms: dict[str, str | None] = {}  # appliance -> the agent's last alarm
        self.policy = EscalationPolicy(settings.fill_wait_s, settings.fill_max_tier_sites)
        self.params = PlanParams(
            forecast=ForecastParams(),
            placement=PlacementParams(
                fill_ratio=settings.fill_ratio, replica_share=settings.fill_replica_share
            ),
            floor_sessions=settings.fill_floor_sessions,
        )
        self._dirty = True
        self._plan_lock = threading.Lock()
        self._fill_generation_seen = -1
        self._live: tuple[int, dict[str, tuple[str, ...]]] = (-1, {})

    # --- loading -------------------------------------------------------------------------------

    def load(self, s: Session) -> None:
        """Releases and stored manifests from the database (at every snapshot reload)."""
        self._fill_generation_seen = repo.generation(s, repo.FILL_GENERATION)
        self.alarms = {aid: st.alarm for aid, st in repo.all_fill_status(s).items()}
        self.view = replace(
            self.view,
            releases=MappingProxyType(repo.all_releases(s)),
            manifests=MappingProxyType(repo.all_fill_manifests(s)),
        )
        self._dirty = True

    def _reload_manifests(self) -> None:
        """Pick up manifests another process planned."""
        with self.sessions() as s:
            gen = repo.generation(s, repo.FILL_GENERATION)
            if gen == self._fill_generation_seen:
                return
            manifests = repo.all_fill_manifests(s)
        self._fill_generation_seen = gen
        self.view = replace(self.view, manifests=MappingProxyType(manifests))

    def mark_dirty(self) -> None:
        self._dirty = True

    # --- demand and steering outcomes (the playback hot path) ----------------------------------

    def count(self, decision: SteeringDecision, snapshot: FleetSnapshot, now: float) -> None:
        """One successful playback: demand and outcome counters, in memory only."""
        self.demand.count(decision, snapshot.sites, now)
        self.stats.count(decision)

    def flush_demand(self) -> int:
        """Write the counted sessions to ``demand_daily``; how many sessions were written."""
        counts = self.demand.drain()
        if not counts:
            return 0
        try:
            with self.sessions.begin() as s:
                repo.add_demand(s, counts)
        except Exception:
            self.demand.restore(counts)
            raise
        return sum(counts.values())

    # --- planning ------------------------------------------------------------------------------

    def tick(self) -> FillPlanOutcome | None:
        """The refresh loop's work: reload, flush demand, plan when dirty or on a new day."""
        self._reload_manifests()
        self.flush_demand()
        now = self.clock()
        if self._dirty or self.view.day != utc_day(now):
            return self.plan(now)
        return None

    def plan(self, now: float) -> FillPlanOutcome:
        started = time.perf_counter()
        with self._plan_lock:
            self._dirty = False
            self.flush_demand()
            snap = self.holder.current
            first_day = utc_day(now) - self.params.forecast.lookback_days
            with self.sessions() as s:
                history = repo.demand_since(s, first_day)
                releases = repo.all_releases(s)
                stored = repo.all_fill_manifests(s)
            previous = {aid: st.manifest for aid, st in stored.items()}
            result = plan_fill(snap, history, releases.values(), previous, now, self.params)
            keep = {
                aid: stored[aid]
                if aid in stored and stored[aid].manifest == m
                else repo.StoredManifest(m, now)
                for aid, m in result.manifests.items()
            }
            write = {aid: st for aid, st in keep.items() if aid in result.changed}
            gone = set(stored) - set(keep)
            if write or gone:
                with self.sessions.begin() as s:
                    repo.save_fill_manifests(s, write, frozenset(keep))
                    self._fill_generation_seen = repo.bump_generation(s, repo.FILL_GENERATION)
            self.view = FillView(
                releases=MappingProxyType(releases),
                manifests=MappingProxyType(keep),
                forecast=result.forecast,
                day=result.day,
                planned_at=now,
            )
        seconds = time.perf_counter() - started
        left_out = {p.site_id: tuple(p.left_out) for p in result.placements if p.left_out}
        log.info(
            "fill plan day %d: %d manifest(s), %d changed, churn %d title copies, %.3f s",
            result.day,
            len(keep),
            len(result.changed),
            result.churn,
            seconds,
        )
        return FillPlanOutcome(
            result.day, now, len(keep), result.changed, result.churn, left_out, seconds
        )

    # --- releases ------------------------------------------------------------------------------

    def put_release(self, s: Session, release: Release, now: float) -> None:
        snap = self.holder.current
        if release.title_id not in snap.catalog:
            raise NotFound(f"unknown title {release.title_id!r}")
        known = {site.region_id for site in placed_sites(snap)}
        for i, region in enumerate(release.regions or ()):
            if region not in known:
                listed = ", ".join(sorted(known)) or "none"
                raise Invalid(
                    f"regions[{i}]: unknown region {region!r} (regions: {listed})",
                    field=f"regions[{i}]",
                )
        repo.put_release(s, release, now)

    def delete_release(self, s: Session, title_id: str) -> None:
        if not repo.delete_release(s, title_id):
            raise NotFound(f"title {title_id!r} has no scheduled release")

    def release(self, title_id: str) -> Release | None:
        return self.view.releases.get(title_id)

    # --- the agent -----------------------------------------------------------------------------

    def manifest(self, appliance_id: str, now: float) -> dict[str, Any]:
        """The agent's manifest (authenticate first)."""
        snap = self.holder.current
        a = snap.appliances.get(appliance_id)
        if a is None:
            raise NotFound(f"unknown appliance {appliance_id!r}")
        site = snap.sites[a.site_id]
        if site.kind is SiteKind.ORIGIN:
            raise Conflict(
                f"appliance {appliance_id!r} is at origin site {site.id!r}: the origin holds "
                "the whole catalog and is not filled"
            )
        view = self.view
        if appliance_id not in view.manifests:
            raise Unavailable(
                f"no fill manifest for {appliance_id!r} yet: the plan runs within "
                f"{self.settings.refresh_interval_s:g} s (or POST /v1/fill/plan)"
            )
        return agent_manifest(
            snap,
            view,
            appliance_id,
            now,
            self.fill_keys,
            self.settings.fill_token_ttl_s,
            self.policy,
        )

    def report(self, appliance_id: str, report: FillReport, now: float) -> tuple[int, int]:
        """Store an agent report (authenticate first): (transfers stored, duplicates)."""
        snap = self.holder.current
        me = snap.appliances.get(appliance_id)
        if me is None:
            raise NotFound(f"unknown appliance {appliance_id!r}")
        transfers = []
        for i, t in enumerate(report.transfers):
            src = snap.appliances.get(t.source_id)
            if src is None or src.id == appliance_id:
                why = "is the reporting appliance" if src else "is not an appliance of the fleet"
                raise Invalid(
                    f"transfers[{i}].source_id: {t.source_id!r} {why}",
                    field=f"transfers[{i}].source_id",
                )
            src_site = snap.sites.get(src.site_id)
            if src.site_id == me.site_id:
                kind = "peer"
            elif src_site is not None and src_site.kind is SiteKind.ORIGIN:
                kind = "origin"
            else:
                kind = "tier"
            transfers.append(
                repo.Transfer(
                    appliance_id,
                    me.site_id,
                    t.title_id,
                    t.name,
                    src.id,
                    src.site_id,
                    kind,
                    t.bytes,
                    t.completed_at,
                )
            )
        with self.sessions.begin() as s:
            repo.save_fill_status(s, appliance_id, report.state, report.alarm, now)
            stored = repo.add_transfers(s, transfers, now)
        self.alarms[appliance_id] = report.alarm
        if report.alarm:
            log.warning("appliance %s fill alarm: %s", appliance_id, report.alarm)
        return stored, len(transfers) - stored

    # --- views ---------------------------------------------------------------------------------

    def progress(self, now: float) -> dict[str, Any]:
        with self.sessions() as s:
            inventories = repo.all_inventories(s)
            status = repo.all_fill_status(s)
            fetched = repo.fill_bytes_by_kind(s)
        return progress(self.holder.current, self.view, inventories, status, fetched, now)

    def links(self, detail: bool = True) -> list[dict[str, Any]]:
        with self.sessions() as s:
            crossings = repo.link_crossings(s)
        return links(crossings, detail)

    def live_regions(self) -> dict[str, tuple[str, ...]]:
        """Title -> regions where it is live, computed once per snapshot version."""
        snap = self.holder.current
        version, cached = self._live
        if version != snap.version:
            cached = live_regions(snap, self.settings.live_min_sites, self.settings.live_min_copies)
            self._live = (snap.version, cached)
        return cached
