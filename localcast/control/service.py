"""The control plane service: database, snapshot, keyring and clock, wired together.

:class:`ControlPlane` is the shell around the pure core. Each method does
I/O (a transaction, a snapshot swap), hands plain values to a core function
for the decision and records the result; HTTP routes and CLI commands only
translate to and from it. It is built once, from configuration, in
:meth:`ControlPlane.open` (nothing reaches for globals).

Writers of the snapshot (topology apply, title import, register, heartbeat,
refresh) hold ``holder.lock`` across their transaction and the swap, so the
snapshot always reflects committed state in commit order. Readers never
lock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from localcast.config import Config
from localcast.control import credentials as creds
from localcast.control import repository as repo
from localcast.control.db import make_engine, migrate, session_factory
from localcast.control.errors import Conflict, NotFound, Unauthorized
from localcast.control.fill_schemas import FillReport
from localcast.control.fills import FillPlanOutcome, FillService
from localcast.control.geoip import GeoIpLocator
from localcast.control.health import Alert, HealthService, status_reason
from localcast.control.models import ApplianceRow, Profile, utc
from localcast.control.route_feed import IngestOutcome, RouteFeed
from localcast.control.route_schemas import RoutesReport
from localcast.control.settings import ControlSettings, database_url
from localcast.control.snapshot import SnapshotHolder, appliance_from_row, build_snapshot
from localcast.control.topology import TopologyPlan, TopologySpec, desired_state, plan
from localcast.control.traffic import TrafficService
from localcast.core import health as core_health
from localcast.core.clientip import parse_trusted
from localcast.core.fleet import ApplianceState, FleetSnapshot, Load, empty_snapshot, with_appliance
from localcast.core.forecast import Release
from localcast.core.geo import Locate
from localcast.core.inventory import Delta, Inventory, apply_delta
from localcast.core.maintenance import Maintenance, MaintenanceMode
from localcast.core.routes import IPNetwork
from localcast.core.status import ServingWindow
from localcast.core.steering import SteeringDecision
from localcast.core.tokens import Keyring
from localcast.core.views import Resume, ViewRecord, ViewVerdict, ViewWrite, decide_view_write
from localcast.core.views import resume_point as core_resume_point
from localcast.keyfile import create_keyring
from localcast.media.manifest import TitleManifest

log = logging.getLogger(__name__)
Clock = Callable[[], float]
VIEW_CACHE_SIZE = 65_536  # (profile, title) pairs whose stored view is kept in memory


@dataclass(frozen=True)
class ApplyOutcome:
    plan: TopologyPlan
    credentials: dict[str, str]
    snapshot_version: int
    dry_run: bool


@dataclass(frozen=True)
class ImportReport:
    imported: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason


@dataclass(frozen=True)
class InventoryReport:
    """A full inventory (``base_seq`` None) or a delta from ``base_seq``."""

    seq: int
    full: Inventory | None = None
    delta: Delta | None = None
    base_seq: int | None = None


@dataclass(frozen=True)
class HeartbeatReport:
    interval_s: float | None
    load: Load
    inventory: InventoryReport | None
    serving: ServingWindow | None = None


@dataclass(frozen=True)
class HeartbeatOutcome:
    inventory_seq: int
    resync: bool
    alive: bool
    status: core_health.Status
    titles_complete: int
    snapshot_version: int


@dataclass(frozen=True)
class Registration:
    appliance_id: str
    site_id: str
    base_url: str
    heartbeat_interval_s: float
    inventory_seq: int
    reason: str


class ControlPlane:
    def __init__(
        self,
        settings: ControlSettings,
        engine: Engine,
        keyring: Keyring,
        credential_store: creds.CredentialStore,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)
        self.keyring = keyring
        self.credential_store = credential_store
        self.clock = clock
        self.trusted_proxies: tuple[IPNetwork, ...] = parse_trusted(settings.trusted_proxies)
        self.holder = SnapshotHolder(empty_snapshot())
        self.routes = RouteFeed(self.holder)
        self._geoip = GeoIpLocator(settings.geoip_database) if settings.geoip_database else None
        self.locate: Locate | None = self._geoip
        self._generation_seen = -1
        self._views_lock = threading.Lock()
        # The stored view per (profile, title) for resume points, written through by put_view
        # and otherwise trusted for refresh_interval_s (another instance or process sharing the
        # database may write views): playback starts never wait for the database on a hit.
        self._view_cache: OrderedDict[tuple[str, str], tuple[float, ViewRecord | None]] = (
            OrderedDict()
        )
        self._view_cache_lock = threading.Lock()
        self._view_writes = 0
        self.fills = FillService(settings, self.sessions, self.holder, keyring, clock)
        self.health = HealthService(
            settings, self.sessions, self.holder, self.routes, self.fills, clock
        )
        self.traffic = TrafficService(self.sessions, self.holder, clock)

    @classmethod
    def open(
        cls,
        config: Config,
        settings: ControlSettings,
        clock: Clock = time.time,
        run_migrations: bool = True,
    ) -> ControlPlane:
        """The control plane of the node at ``config`` (schema migrated, snapshot loaded)."""
        engine = make_engine(database_url(settings, config.paths.database))
        if run_migrations:
            migrate(engine)
        keyring = create_keyring(config.paths.keys)
        store = creds.CredentialStore(config.paths.home / "credentials")
        plane = cls(settings, engine, keyring, store, clock)
        plane.reload()
        return plane

    def close(self) -> None:
        try:
            self.fills.flush_demand()
        except Exception:  # the database may be gone; the counts are lost, not the shutdown
            log.exception("could not write the last demand counts")
        self.traffic.close()  # the last traffic and steering counts to the database
        self.routes.wait_rebuild()
        if self._geoip is not None:
            self._geoip.close()
        self.engine.dispose()

    @property
    def snapshot(self) -> FleetSnapshot:
        return self.holder.current

    # --- the snapshot ---------------------------------------------------------------------------

    def reload(self) -> FleetSnapshot:
        """Rebuild the whole snapshot from the database and publish it."""
        with self.holder.lock, self.sessions.begin() as s:
            gen = repo.generation(s)
            self.fills.load(s)
            self.health.load(s)
            now = self.clock()
            snap = self.holder.swap(
                lambda old: self.health.applied(
                    build_snapshot(s, old.version + 1, old.routes.learned), now
                )
            )
            self._generation_seen = gen
        self.health.store_turnups()
        log.info(
            "snapshot v%d: %d site(s), %d appliance(s), %d title(s), %d route(s)",
            snap.version,
            len(snap.sites),
            len(snap.appliances),
            len(snap.catalog),
            snap.routes.size,
        )
        return snap

    def refresh(self) -> bool:
        """Reload when another process (``localcast control apply``) changed the configuration."""
        with self.sessions() as s:
            gen = repo.generation(s)
        if gen == self._generation_seen:
            return False
        self.reload()
        return True

    # --- topology -------------------------------------------------------------------------------

    def apply_topology(self, spec: TopologySpec, dry_run: bool = False) -> ApplyOutcome:
        """Make the stored fleet match ``spec``; new appliances get a credential."""
        with self.holder.lock, self.sessions.begin() as s:
            the_plan = plan(repo.load_fleet_config(s), desired_state(spec))
            issued: dict[str, str] = {}
            if dry_run or the_plan.empty:
                return ApplyOutcome(the_plan, {}, self.snapshot.version, dry_run)
            for a in the_plan.appliances.create:
                issued[a.id] = creds.issue()
            for a in the_plan.appliances.update:
                row = repo.get_appliance(s, a.id)
                if row is not None and row.credential_hash is None:
                    issued[a.id] = creds.issue()
            hashes = {aid: creds.hash_secret(secret) for aid, secret in issued.items()}
            repo.apply_plan(s, the_plan, hashes, self.settings.heartbeat_interval_s)
            repo.bump_generation(s)
        for aid in the_plan.appliances.remove:
            self.credential_store.remove(aid)
        for aid, secret in issued.items():
            self.credential_store.write(aid, secret)
        snap = self.reload()
        log.info("topology applied: %s", json.dumps(the_plan.summary(), sort_keys=True))
        return ApplyOutcome(the_plan, issued, snap.version, dry_run)

    def rotate_credential(self, appliance_id: str) -> str:
        secret = creds.issue()
        with self.sessions.begin() as s:
            if not repo.set_credential_hash(s, appliance_id, creds.hash_secret(secret)):
                raise NotFound(f"unknown appliance {appliance_id!r}")
        self.credential_store.write(appliance_id, secret)
        log.info("credential of %s rotated", appliance_id)
        return secret

    # --- the catalog ----------------------------------------------------------------------------

    def import_manifests(self, manifests: list[TitleManifest]) -> dict[str, bool]:
        """Store titles (title id -> created?) and publish the new catalog."""
        now = self.clock()
        with self.holder.lock, self.sessions.begin() as s:
            created = {m.title_id: repo.upsert_title(s, m, now) for m in manifests}
            repo.bump_generation(s)
        self.reload()
        return created

    def import_origin(self, origin_dir: Path) -> ImportReport:
        """Import every ``<origin>/<title_id>/manifest.json`` whose files are all present."""
        report = ImportReport()
        good: list[TitleManifest] = []
        for path in sorted(origin_dir.glob("*/manifest.json")):
            try:
                manifest = TitleManifest.from_json(json.loads(path.read_text()))
            except (OSError, ValueError) as exc:  # ManifestError and JSONDecodeError included
                report.failed[str(path)] = str(exc)
                continue
            problem = _origin_problem(path.parent, manifest)
            if problem:
                report.failed[str(path)] = problem
                continue
            good.append(manifest)
            report.imported.append(manifest.title_id)
        if good:
            self.import_manifests(good)
        return report

    # --- proactive fill --------------------------------------------------------------------------

    def plan_fills(self, now: float | None = None) -> FillPlanOutcome:
        """Forecast, place and store the fill manifests now (see :mod:`localcast.control.fills`)."""
        return self.fills.plan(self.clock() if now is None else now)

    def count_playback(self, decision: SteeringDecision) -> None:
        """Count a successful playback decision (demand, steering outcome): memory only."""
        self.fills.count(decision, self.snapshot, self.clock())
        self.traffic.count(decision, self.snapshot, self.clock())  # per partner and day

    def set_release(self, release: Release) -> None:
        """Schedule (or replace) a title's release; the next plan places it ahead of time."""
        with self.holder.lock, self.sessions.begin() as s:
            self.fills.put_release(s, release, self.clock())
            repo.bump_generation(s)
        self.reload()

    def clear_release(self, title_id: str) -> None:
        with self.holder.lock, self.sessions.begin() as s:
            self.fills.delete_release(s, title_id)
            repo.bump_generation(s)
        self.reload()

    def fill_manifest(self, appliance_id: str, secret: str | None) -> dict[str, Any]:
        self.authenticate(appliance_id, secret)
        return self.fills.manifest(appliance_id, self.clock())

    def fill_report(
        self, appliance_id: str, secret: str | None, report: FillReport
    ) -> tuple[int, int]:
        self.authenticate(appliance_id, secret)
        return self.fills.report(appliance_id, report, self.clock())

    # --- appliances -----------------------------------------------------------------------------

    def _authenticated(self, s: Session, appliance_id: str, secret: str | None) -> ApplianceRow:
        if secret is None:
            raise Unauthorized("missing bearer credential")
        row = repo.get_appliance(s, appliance_id)
        if row is None:
            raise NotFound(f"unknown appliance {appliance_id!r}: not in the applied topology")
        if not creds.verify(secret, row.credential_hash):
            raise Unauthorized(f"bad credential for appliance {appliance_id!r}")
        return row

    def authenticate(self, appliance_id: str, secret: str | None) -> None:
        with self.sessions() as s:
            self._authenticated(s, appliance_id, secret)

    def register(
        self,
        appliance_id: str,
        secret: str | None,
        software: str | None = None,
        interval_s: float | None = None,
        advertised_url: str | None = None,
    ) -> Registration:
        now = self.clock()
        interval = interval_s or self.settings.heartbeat_interval_s
        with self.holder.lock:
            with self.sessions.begin() as s:
                row = self._authenticated(s, appliance_id, secret)
                h = core_health.record_register(repo.row_health(row), now, interval)
                repo.save_health(row, h)
                row.state = ApplianceState.REGISTERED.value
                row.registered_at = utc(now)
                row.software = software
                row.inventory_seq = 0
                inventory = repo.load_inventory(s, appliance_id)
                appliance = appliance_from_row(row, inventory, self.snapshot.catalog)
                appliance = self.health.registered(appliance, now)
                reg = Registration(
                    row.id,
                    row.site_id,
                    row.base_url,
                    interval,
                    0,
                    "registered; send a full inventory",
                )
            self.holder.swap(lambda snap: with_appliance(snap, appliance))
        if advertised_url and advertised_url.rstrip("/") != reg.base_url:
            log.warning(
                "appliance %s advertises %s but the topology says %s; steering uses the topology",
                appliance_id,
                advertised_url,
                reg.base_url,
            )
        log.info("appliance %s registered (site %s, %s)", appliance_id, reg.site_id, reg.base_url)
        return reg

    def heartbeat(
        self, appliance_id: str, secret: str | None, report: HeartbeatReport
    ) -> HeartbeatOutcome:
        now = self.clock()
        with self.holder.lock:
            with self.sessions.begin() as s:
                row = self._authenticated(s, appliance_id, secret)
                if row.state != ApplianceState.REGISTERED.value:
                    raise Conflict(f"appliance {appliance_id!r} must register before heartbeating")
                h = core_health.record_heartbeat(repo.row_health(row), now, report.interval_s)
                repo.save_health(row, h)
                repo.save_load(row, report.load)
                changed, resync = self._apply_inventory(s, row, report.inventory)
                prev = self.snapshot.appliances.get(appliance_id)
                if changed or prev is None:
                    inventory = repo.load_inventory(s, appliance_id)
                    appliance = appliance_from_row(row, inventory, self.snapshot.catalog)
                else:
                    appliance = replace(prev, health=h, load=report.load)
                appliance = self.health.observed(self.snapshot, appliance, now, report.serving)
                seq = row.inventory_seq
            snap = self.holder.swap(lambda old: with_appliance(old, appliance))
            self.health.store_turnups()
        if resync:
            log.info("appliance %s: inventory delta out of sequence, asked for a full one", row.id)
        held = self.health.statuses.get(appliance_id)
        return HeartbeatOutcome(
            inventory_seq=seq,
            resync=resync,
            alive=core_health.liveness(appliance.health, now).alive,
            status=(
                core_health.Status(held.level, status_reason(appliance, held))
                if held is not None
                else core_health.status(appliance, now)
            ),
            titles_complete=len(appliance.titles),
            snapshot_version=snap.version,
        )

    def _apply_inventory(
        self, s: Session, row: ApplianceRow, report: InventoryReport | None
    ) -> tuple[bool, bool]:
        """(inventory changed, resync needed)."""
        if report is None:
            return False, False
        if report.full is not None:
            repo.replace_inventory(s, row.id, report.full)
            row.inventory_seq = report.seq
            return True, False
        if report.delta is None or report.base_seq != row.inventory_seq:
            return False, True
        current = repo.load_inventory(s, row.id)
        repo.store_inventory(
            s, row.id, apply_delta(current, report.delta), set(report.delta.titles())
        )
        row.inventory_seq = report.seq
        return not report.delta.empty, False

    # --- health: maintenance and alerts ---------------------------------------------------------

    def set_maintenance(
        self, appliance_id: str, mode: MaintenanceMode | str, duration: str, reason: str = ""
    ) -> Maintenance:
        """Drain or disable an appliance for ``duration`` (DurationError outside 3h .. 30d)."""
        if appliance_id not in self.snapshot.appliances:
            raise NotFound(f"unknown appliance {appliance_id!r}")
        return self.health.set_maintenance(appliance_id, mode, duration, reason, self.clock())

    def end_maintenance(self, appliance_id: str) -> Maintenance | None:
        """Enable: end the appliance's drain or disable now (None: there was none)."""
        if appliance_id not in self.snapshot.appliances:
            raise NotFound(f"unknown appliance {appliance_id!r}")
        return self.health.end_maintenance(appliance_id, self.clock())

    def alerts(self, partner_id: str) -> list[Alert]:
        """The partner's actionable items (statuses observed now first)."""
        with self.sessions() as s:
            if not repo.partner_exists(s, partner_id):
                raise NotFound(f"unknown partner {partner_id!r}")
        now = self.clock()
        self.health.refresh(now)
        return self.health.alerts(partner_id, now)

    # --- learned routes (BGP) --------------------------------------------------------------------

    def ingest_routes(
        self, appliance_id: str, secret: str | None, report: RoutesReport
    ) -> IngestOutcome:
        """Apply a route report from an appliance's BGP relay (in memory: see ``route_feed``)."""
        self.authenticate(appliance_id, secret)
        out = self.routes.ingest(appliance_id, report, self.clock())
        if out.resync:
            log.info("appliance %s: %s", appliance_id, out.reason)
        return out

    # --- profiles, views and resume -------------------------------------------------------------

    def put_view(
        self,
        profile_id: str,
        title_id: str,
        offset_s: float,
        platform: str,
        client_time: float | None,
    ) -> ViewVerdict:
        entry = self.snapshot.catalog.get(title_id)
        if entry is None:
            raise NotFound(f"unknown title {title_id!r}")
        with self._views_lock:
            with self.sessions.begin() as s:
                now = self.clock()
                repo.ensure_profile(s, profile_id, now)
                existing = repo.get_view(s, profile_id, title_id)
                verdict = decide_view_write(
                    existing,
                    ViewWrite(offset_s, platform, client_time, now),
                    profile_id,
                    title_id,
                    entry.manifest.duration_s,
                )
                if verdict.applied:
                    repo.save_view(s, verdict.record)
            with self._view_cache_lock:  # committed, in commit order: the database's view
                self._view_writes += 1
                if verdict.applied:
                    self._cache_view((profile_id, title_id), verdict.record)
                else:
                    self._view_cache.pop((profile_id, title_id), None)
        return verdict

    def _cache_view(self, key: tuple[str, str], view: ViewRecord | None) -> None:
        cache = self._view_cache
        cache[key] = (time.monotonic() + self.settings.refresh_interval_s, view)
        cache.move_to_end(key)
        if len(cache) > VIEW_CACHE_SIZE:
            cache.popitem(last=False)

    def cached_view(self, profile_id: str, title_id: str) -> tuple[bool, ViewRecord | None]:
        """(known, view) from memory only: ``known`` False means ask :meth:`stored_view`."""
        hit = self._view_cache.get((profile_id, title_id))
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def stored_view(self, profile_id: str, title_id: str) -> ViewRecord | None:
        """The view for a resume point: from the cache, else the database (then cached)."""
        known, view = self.cached_view(profile_id, title_id)
        if known:
            return view
        writes = self._view_writes
        view = self.get_view(profile_id, title_id)
        with self._view_cache_lock:
            if writes == self._view_writes:  # no put_view raced the read: not stale
                self._cache_view((profile_id, title_id), view)
        return view

    def get_view(self, profile_id: str, title_id: str) -> ViewRecord | None:
        with self.sessions() as s:
            return repo.get_view(s, profile_id, title_id)

    def resume_point(self, profile_id: str, title_id: str) -> Resume:
        entry = self.snapshot.catalog.get(title_id)
        if entry is None:
            raise NotFound(f"unknown title {title_id!r}")
        view = self.stored_view(profile_id, title_id)
        return core_resume_point(view.offset_s if view else None, entry.manifest)

    def cached_resume_point(self, profile_id: str, title_id: str) -> Resume | None:
        """:meth:`resume_point` when it needs no database read, else None."""
        entry = self.snapshot.catalog.get(title_id)
        if entry is None:
            raise NotFound(f"unknown title {title_id!r}")
        known, view = self.cached_view(profile_id, title_id)
        if not known:
            return None
        return core_resume_point(view.offset_s if view else None, entry.manifest)

    def put_profile(self, profile_id: str, name: str) -> Profile:
        with self.sessions.begin() as s:
            return repo.ensure_profile(s, profile_id, self.clock(), name)

    def get_profile(self, profile_id: str) -> Profile | None:
        with self.sessions() as s:
            return repo.get_profile(s, profile_id)


def _origin_problem(title_dir: Path, manifest: TitleManifest) -> str | None:
    if title_dir.name != manifest.title_id:
        return f"directory {title_dir.name!r} holds title_id {manifest.title_id!r}"
    for f in manifest.files():
        try:
            size = (title_dir / f.name).stat().st_size
        except FileNotFoundError:
            return f"missing file {f.name}"
        if size != f.size:
            return f"{f.name}: {size} bytes on disk, manifest says {f.size}"
    return None
