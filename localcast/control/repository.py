"""Every SQL statement of the control plane, as small typed functions over a Session.

Callers own the transaction (``with sessions.begin():``). Functions here
translate between rows and the core's plain values; they make no decisions
(which write wins, who is alive, where to resume: all in ``localcast.core``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from localcast.control.models import (
    ApplianceRow,
    DemandDaily,
    FillManifestRow,
    FillStatusRow,
    FillTransfer,
    InventoryRow,
    MaintenanceRow,
    Meta,
    Partner,
    PartnerAsn,
    Profile,
    SitePrefix,
    SiteRow,
    TitleFile,
    TitleRelease,
    TitleRow,
    ViewRow,
    unix,
    utc,
)
from localcast.control.topology import (
    ApplianceConfig,
    FleetConfig,
    PartnerState,
    SiteState,
    TopologyPlan,
)
from localcast.core.fleet import ApplianceState, Health, Load
from localcast.core.forecast import DemandRecord, Release
from localcast.core.inventory import Inventory, freeze
from localcast.core.maintenance import Maintenance, MaintenanceMode
from localcast.core.placement import ApplianceManifest
from localcast.core.views import ViewRecord
from localcast.media.manifest import TitleManifest

GENERATION = "config_generation"
FILL_GENERATION = "fill_generation"  # bumped when stored fill manifests change


# --- the configuration generation ----------------------------------------------------------


def generation(s: Session, key: str = GENERATION) -> int:
    """Bumped by every topology apply and title import, by any process on this database."""
    row = s.get(Meta, key)
    return row.value if row else 0


def bump_generation(s: Session, key: str = GENERATION) -> int:
    row = s.get(Meta, key)
    if row is None:
        row = Meta(key=key, value=0)
        s.add(row)
    row.value += 1
    return row.value


# --- topology --------------------------------------------------------------------------------


def load_fleet_config(s: Session) -> FleetConfig:
    asns: dict[str, set[int]] = {}
    for pa in s.scalars(select(PartnerAsn)):
        asns.setdefault(pa.partner_id, set()).add(pa.asn)
    prefixes: dict[str, set[str]] = {}
    for sp in s.scalars(select(SitePrefix)):
        prefixes.setdefault(sp.site_id, set()).add(sp.prefix)
    return FleetConfig(
        partners={
            p.id: PartnerState(p.id, frozenset(asns.get(p.id, ())))
            for p in s.scalars(select(Partner))
        },
        sites={
            r.id: SiteState(
                r.id,
                r.kind,
                r.partner_id,
                r.lat,
                r.lon,
                r.tz,
                frozenset(prefixes.get(r.id, ())),
                r.region,
                r.fill_window,
            )
            for r in s.scalars(select(SiteRow))
        },
        appliances={
            a.id: ApplianceConfig(
                a.id,
                a.site_id,
                a.base_url,
                a.disk_bytes,
                a.gbps,
                a.drained,
                a.appliance_class,
                a.fill_bps,
            )
            for a in s.scalars(select(ApplianceRow))
        },
    )


def _put_partner(s: Session, p: PartnerState) -> None:
    if s.get(Partner, p.name) is None:
        s.add(Partner(id=p.name))
    s.execute(delete(PartnerAsn).where(PartnerAsn.partner_id == p.name))
    s.add_all(PartnerAsn(partner_id=p.name, asn=asn) for asn in sorted(p.asns))


def _put_site(s: Session, site: SiteState) -> None:
    row = s.get(SiteRow, site.id)
    if row is None:
        row = SiteRow(id=site.id)
        s.add(row)
    row.kind, row.partner_id, row.lat, row.lon, row.tz = (
        site.kind,
        site.partner,
        site.lat,
        site.lon,
        site.tz,
    )
    row.region, row.fill_window = site.region, site.fill_window
    s.execute(delete(SitePrefix).where(SitePrefix.site_id == site.id))
    s.add_all(SitePrefix(site_id=site.id, prefix=p) for p in sorted(site.prefixes))


def _put_appliance(
    s: Session, a: ApplianceConfig, credential_hash: str | None, interval_s: float
) -> None:
    row = s.get(ApplianceRow, a.id)
    if row is None:
        row = ApplianceRow(
            id=a.id,
            state=ApplianceState.PROVISIONED.value,
            heartbeat_interval_s=interval_s,
            beats_in_run=0,
            active_connections=0,
            egress_bps=0.0,
            disk_used_bytes=0,
            disk_free_bytes=0,
            inventory_seq=0,
        )
        s.add(row)
    row.site_id, row.base_url, row.disk_bytes, row.gbps, row.drained = (
        a.site,
        a.url,
        a.disk_bytes,
        a.gbps,
        a.drained,
    )
    row.appliance_class, row.fill_bps = a.appliance_class, a.fill_bps
    if credential_hash is not None:
        row.credential_hash = credential_hash


def apply_plan(
    s: Session, plan: TopologyPlan, credential_hashes: Mapping[str, str], interval_s: float
) -> None:
    """Execute ``plan`` in reference order: what points at a row goes before it does."""
    for aid in plan.appliances.remove:
        s.execute(delete(InventoryRow).where(InventoryRow.appliance_id == aid))
        s.execute(delete(FillManifestRow).where(FillManifestRow.appliance_id == aid))
        s.execute(delete(FillStatusRow).where(FillStatusRow.appliance_id == aid))
        s.execute(delete(MaintenanceRow).where(MaintenanceRow.appliance_id == aid))
        s.execute(delete(ApplianceRow).where(ApplianceRow.id == aid))
    s.flush()
    for p in (*plan.partners.create, *plan.partners.update):
        _put_partner(s, p)
    s.flush()
    for site in (*plan.sites.create, *plan.sites.update):
        _put_site(s, site)
    s.flush()
    for a in (*plan.appliances.create, *plan.appliances.update):
        _put_appliance(s, a, credential_hashes.get(a.id), interval_s)
    s.flush()
    for sid in plan.sites.remove:
        s.execute(delete(SitePrefix).where(SitePrefix.site_id == sid))
        s.execute(delete(SiteRow).where(SiteRow.id == sid))
    s.flush()
    for pid in plan.partners.remove:
        s.execute(delete(PartnerAsn).where(PartnerAsn.partner_id == pid))
        s.execute(delete(Partner).where(Partner.id == pid))
    s.flush()


def partner_exists(s: Session, partner_id: str) -> bool:
    return s.get(Partner, partner_id) is not None


def set_credential_hash(s: Session, appliance_id: str, credential_hash: str) -> bool:
    row = s.get(ApplianceRow, appliance_id)
    if row is None:
        return False
    row.credential_hash = credential_hash
    return True


# --- appliances ------------------------------------------------------------------------------


def get_appliance(s: Session, appliance_id: str) -> ApplianceRow | None:
    return s.get(ApplianceRow, appliance_id)


def all_appliances(s: Session) -> list[ApplianceRow]:
    return list(s.scalars(select(ApplianceRow).order_by(ApplianceRow.id)))


def row_health(row: ApplianceRow) -> Health:
    return Health(
        interval_s=row.heartbeat_interval_s,
        last_heartbeat_at=unix(row.last_heartbeat_at),
        run_started_at=unix(row.run_started_at),
        beats_in_run=row.beats_in_run,
    )


def row_load(row: ApplianceRow) -> Load:
    return Load(row.active_connections, row.egress_bps, row.disk_used_bytes, row.disk_free_bytes)


def save_health(row: ApplianceRow, health: Health) -> None:
    row.heartbeat_interval_s = health.interval_s
    row.last_heartbeat_at = (
        None if health.last_heartbeat_at is None else utc(health.last_heartbeat_at)
    )
    row.run_started_at = None if health.run_started_at is None else utc(health.run_started_at)
    row.beats_in_run = health.beats_in_run


def save_load(row: ApplianceRow, load: Load) -> None:
    row.active_connections = load.active_connections
    row.egress_bps = load.egress_bps
    row.disk_used_bytes = load.disk_used_bytes
    row.disk_free_bytes = load.disk_free_bytes


def turned_up(s: Session) -> dict[str, float]:
    """Appliance id -> when it passed its turn-up checks (only those that did)."""
    rows = s.execute(
        select(ApplianceRow.id, ApplianceRow.turned_up_at).where(
            ApplianceRow.turned_up_at.is_not(None)
        )
    )
    return {aid: at.timestamp() for aid, at in rows if at is not None}


def set_turned_up(s: Session, appliance_id: str, at: float) -> bool:
    """Record the first turn-up of ``appliance_id`` (False: unknown or turned up already)."""
    row = s.get(ApplianceRow, appliance_id)
    if row is None or row.turned_up_at is not None:
        return False
    row.turned_up_at = utc(at)
    return True


def all_maintenance(s: Session) -> dict[str, Maintenance]:
    return {
        r.appliance_id: Maintenance(
            MaintenanceMode(r.mode), r.since.timestamp(), r.until.timestamp(), r.reason
        )
        for r in s.scalars(select(MaintenanceRow))
    }


def put_maintenance(s: Session, appliance_id: str, m: Maintenance) -> None:
    row = s.get(MaintenanceRow, appliance_id)
    if row is None:
        row = MaintenanceRow(appliance_id=appliance_id)
        s.add(row)
    row.mode, row.since, row.until, row.reason = m.mode.value, utc(m.since), utc(m.until), m.reason


def load_inventory(s: Session, appliance_id: str) -> Inventory:
    rows = s.scalars(select(InventoryRow).where(InventoryRow.appliance_id == appliance_id))
    return freeze({r.title_id: r.files for r in rows})


def all_inventories(s: Session) -> dict[str, Inventory]:
    out: dict[str, dict[str, list[str]]] = {}
    for r in s.scalars(select(InventoryRow)):
        out.setdefault(r.appliance_id, {})[r.title_id] = r.files
    return {aid: freeze(inv) for aid, inv in out.items()}


def store_inventory(s: Session, appliance_id: str, inventory: Inventory, titles: set[str]) -> None:
    """Write ``inventory``'s entries for ``titles`` (all stored titles when empty set given)."""
    for title_id in titles:
        row = s.get(InventoryRow, (appliance_id, title_id))
        files = sorted(inventory.get(title_id, frozenset()))
        if not files:
            if row is not None:
                s.delete(row)
        elif row is None:
            s.add(InventoryRow(appliance_id=appliance_id, title_id=title_id, files=files))
        else:
            row.files = files


def replace_inventory(s: Session, appliance_id: str, inventory: Inventory) -> None:
    s.execute(delete(InventoryRow).where(InventoryRow.appliance_id == appliance_id))
    s.flush()
    s.add_all(
        InventoryRow(appliance_id=appliance_id, title_id=t, files=sorted(f))
        for t, f in inventory.items()
    )


# --- sites -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteRecord:
    row: SiteRow
    prefixes: tuple[str, ...]


def all_sites(s: Session) -> list[SiteRecord]:
    prefixes: dict[str, list[str]] = {}
    for sp in s.scalars(select(SitePrefix)):
        prefixes.setdefault(sp.site_id, []).append(sp.prefix)
    return [
        SiteRecord(row, tuple(sorted(prefixes.get(row.id, ()))))
        for row in s.scalars(select(SiteRow).order_by(SiteRow.id))
    ]


# --- titles ------------------------------------------------------------------------------------


def all_manifests(s: Session) -> list[TitleManifest]:
    return [TitleManifest.from_json(r.manifest) for r in s.scalars(select(TitleRow))]


def upsert_title(s: Session, manifest: TitleManifest, now: float) -> bool:
    """Store ``manifest`` and its file list; True when the title is new."""
    row = s.get(TitleRow, manifest.title_id)
    created = row is None
    if row is None:
        row = TitleRow(id=manifest.title_id, imported_at=utc(now))
        s.add(row)
    row.name = manifest.name
    row.duration_s = manifest.duration_s
    row.segment_duration_s = manifest.segment_duration_s
    row.total_bytes = manifest.total_bytes
    row.manifest = manifest.to_json()
    row.updated_at = utc(now)
    s.flush()
    s.execute(delete(TitleFile).where(TitleFile.title_id == manifest.title_id))
    s.add_all(
        TitleFile(title_id=manifest.title_id, file_id=f.file_id, ext=f.ext, size=f.size)
        for f in manifest.files()
    )
    return created


# --- profiles and views ------------------------------------------------------------------------


def ensure_profile(s: Session, profile_id: str, now: float, name: str | None = None) -> Profile:
    row = s.get(Profile, profile_id)
    if row is None:
        row = Profile(id=profile_id, name=name or profile_id, created_at=utc(now))
        s.add(row)
        s.flush()
    elif name is not None:
        row.name = name
    return row


def get_profile(s: Session, profile_id: str) -> Profile | None:
    return s.get(Profile, profile_id)


def _view_row(s: Session, profile_id: str, title_id: str) -> ViewRow | None:
    return s.scalars(
        select(ViewRow).where(ViewRow.profile_id == profile_id, ViewRow.title_id == title_id)
    ).one_or_none()


def get_view(s: Session, profile_id: str, title_id: str) -> ViewRecord | None:
    row = _view_row(s, profile_id, title_id)
    if row is None:
        return None
    return ViewRecord(
        profile_id=row.profile_id,
        title_id=row.title_id,
        offset_s=row.offset_s,
        platform=row.platform,
        client_time=row.client_time,
        updated_at=unix(row.updated_at) or 0.0,
    )


def view_created_at(s: Session, profile_id: str, title_id: str) -> float | None:
    row = _view_row(s, profile_id, title_id)
    return None if row is None else unix(row.created_at)


def save_view(s: Session, record: ViewRecord) -> None:
    row = _view_row(s, record.profile_id, record.title_id)
    if row is None:
        row = ViewRow(
            profile_id=record.profile_id,
            title_id=record.title_id,
            created_at=utc(record.updated_at),
        )
        s.add(row)
    row.offset_s = record.offset_s
    row.platform = record.platform
    row.client_time = record.client_time
    row.updated_at = utc(record.updated_at)


# --- proactive fill: releases, demand, manifests, agent reports ------------------------------


def all_releases(s: Session) -> dict[str, Release]:
    return {
        r.title_id: Release(
            title_id=r.title_id,
            release_at=unix(r.release_at) or 0.0,
            expected_sessions=r.expected_sessions,
            regions=None if r.regions is None else tuple(r.regions),
        )
        for r in s.scalars(select(TitleRelease))
    }


def put_release(s: Session, release: Release, now: float) -> None:
    row = s.get(TitleRelease, release.title_id)
    if row is None:
        row = TitleRelease(title_id=release.title_id)
        s.add(row)
    row.release_at = utc(release.release_at)
    row.expected_sessions = release.expected_sessions
    row.regions = None if release.regions is None else list(release.regions)
    row.updated_at = utc(now)


def delete_release(s: Session, title_id: str) -> bool:
    row = s.get(TitleRelease, title_id)
    if row is None:
        return False
    s.delete(row)
    return True


DemandKey = tuple[int, str, str]  # (day, region, title_id)


def add_demand(s: Session, sessions: Mapping[DemandKey, int]) -> None:
    """Add session counts to ``demand_daily`` (an upsert: several processes may add)."""
    if not sessions:
        return
    rows = [
        {"day": d, "region": r, "title_id": t, "sessions": n, "bytes": 0}
        for (d, r, t), n in sessions.items()
    ]
    dialect = s.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        ins = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(DemandDaily)
        stmt = ins.on_conflict_do_update(
            index_elements=["day", "region", "title_id"],
            set_={"sessions": DemandDaily.sessions + ins.excluded.sessions},
        )
        s.execute(stmt, rows)
        return
    for (d, r, t), n in sessions.items():  # portable fallback
        row = s.get(DemandDaily, (d, r, t))
        if row is None:
            s.add(DemandDaily(day=d, region=r, title_id=t, sessions=n, bytes=0))
        else:
            row.sessions += n


def demand_since(s: Session, first_day: int) -> list[DemandRecord]:
    return [
        DemandRecord(
            day=r.day,
            region=r.region,
            title_id=r.title_id,
            sessions=float(r.sessions),
            bytes=float(r.bytes),
        )
        for r in s.scalars(select(DemandDaily).where(DemandDaily.day >= first_day))
    ]


@dataclass(frozen=True)
class StoredManifest:
    manifest: ApplianceManifest
    generated_at: float


def all_fill_manifests(s: Session) -> dict[str, StoredManifest]:
    return {
        r.appliance_id: StoredManifest(
            ApplianceManifest(
                appliance_id=r.appliance_id,
                version=r.version,
                titles=frozenset(r.titles),
                day=r.day,
            ),
            unix(r.generated_at) or 0.0,
        )
        for r in s.scalars(select(FillManifestRow))
    }


def save_fill_manifests(
    s: Session, manifests: Mapping[str, StoredManifest], keep: frozenset[str]
) -> None:
    """Write ``manifests`` (new or changed ones) and delete stored ones not in ``keep``."""
    s.execute(delete(FillManifestRow).where(FillManifestRow.appliance_id.not_in(keep)))
    for aid, stored in manifests.items():
        m = stored.manifest
        row = s.get(FillManifestRow, aid)
        if row is None:
            row = FillManifestRow(appliance_id=aid)
            s.add(row)
        row.version = m.version
        row.titles = sorted(m.titles)
        row.day = m.day
        row.generated_at = utc(stored.generated_at)


@dataclass(frozen=True)
class FillStatus:
    state: str
    alarm: str | None
    reported_at: float


def save_fill_status(
    s: Session, appliance_id: str, state: str, alarm: str | None, now: float
) -> None:
    row = s.get(FillStatusRow, appliance_id)
    if row is None:
        row = FillStatusRow(appliance_id=appliance_id)
        s.add(row)
    row.state, row.alarm, row.reported_at = state, alarm, utc(now)


def all_fill_status(s: Session) -> dict[str, FillStatus]:
    return {
        r.appliance_id: FillStatus(r.state, r.alarm, unix(r.reported_at) or 0.0)
        for r in s.scalars(select(FillStatusRow))
    }


@dataclass(frozen=True)
class Transfer:
    """One fetched file, with both ends resolved to sites."""

    appliance_id: str
    site_id: str
    title_id: str
    name: str
    source_id: str
    source_site: str
    source_kind: str  # peer | tier | origin
    bytes: int
    completed_at: float


def add_transfers(s: Session, transfers: list[Transfer], now: float) -> int:
    """Store ``transfers``, skipping ones already stored (a retried report); how many new."""
    if not transfers:
        return 0
    seen: set[tuple[str, str, str, str, float]] = set()
    for appliance_id in {t.appliance_id for t in transfers}:
        times = [t.completed_at for t in transfers if t.appliance_id == appliance_id]
        q = select(
            FillTransfer.title_id,
            FillTransfer.name,
            FillTransfer.source_id,
            FillTransfer.completed_at,
        ).where(
            FillTransfer.appliance_id == appliance_id,
            FillTransfer.completed_at >= min(times),
            FillTransfer.completed_at <= max(times),
        )
        seen.update((appliance_id, t, n, src, at) for t, n, src, at in s.execute(q))
    stored = 0
    for t in transfers:
        key = (t.appliance_id, t.title_id, t.name, t.source_id, t.completed_at)
        if key in seen:
            continue
        seen.add(key)
        s.add(
            FillTransfer(
                appliance_id=t.appliance_id,
                site_id=t.site_id,
                title_id=t.title_id,
                name=t.name,
                source_id=t.source_id,
                source_site=t.source_site,
                source_kind=t.source_kind,
                bytes=t.bytes,
                completed_at=t.completed_at,
                reported_at=utc(now),
            )
        )
        stored += 1
    return stored


def fill_bytes_by_kind(s: Session) -> dict[str, dict[str, int]]:
    """Appliance id -> source kind -> bytes fetched."""
    out: dict[str, dict[str, int]] = {}
    q = select(
        FillTransfer.appliance_id, FillTransfer.source_kind, func.sum(FillTransfer.bytes)
    ).group_by(FillTransfer.appliance_id, FillTransfer.source_kind)
    for aid, kind, total in s.execute(q):
        out.setdefault(aid, {})[kind] = int(total or 0)
    return out


@dataclass(frozen=True)
class LinkCrossing:
    """How many times one file crossed one link (source site -> site), and its bytes."""

    source_site: str
    site_id: str
    source_kind: str
    title_id: str
    name: str
    count: int
    bytes: int


def link_crossings(s: Session) -> list[LinkCrossing]:
    q = (
        select(
            FillTransfer.source_site,
            FillTransfer.site_id,
            FillTransfer.source_kind,
            FillTransfer.title_id,
            FillTransfer.name,
            func.count(),
            func.sum(FillTransfer.bytes),
        )
        .group_by(
            FillTransfer.source_site,
            FillTransfer.site_id,
            FillTransfer.source_kind,
            FillTransfer.title_id,
            FillTransfer.name,
        )
        .order_by(FillTransfer.source_site, FillTransfer.site_id)
    )
    return [
        LinkCrossing(src, dst, kind, t, n, int(c), int(b or 0))
        for src, dst, kind, t, n, c, b in s.execute(q)
    ]
