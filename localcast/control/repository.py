"""Every SQL statement of the control plane, as small typed functions over a Session.

Callers own the transaction (``with sessions.begin():``). Functions here
translate between rows and the core's plain values; they make no decisions
(which write wins, who is alive, where to resume: all in ``localcast.core``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from localcast.control.models import (
    ApplianceRow,
    InventoryRow,
    Meta,
    Partner,
    PartnerAsn,
    Profile,
    SitePrefix,
    SiteRow,
    TitleFile,
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
from localcast.core.inventory import Inventory, freeze
from localcast.core.views import ViewRecord
from localcast.media.manifest import TitleManifest

GENERATION = "config_generation"


# --- the configuration generation ----------------------------------------------------------


def generation(s: Session) -> int:
    """Bumped by every topology apply and title import, by any process on this database."""
    row = s.get(Meta, GENERATION)
    return row.value if row else 0


def bump_generation(s: Session) -> int:
    row = s.get(Meta, GENERATION)
    if row is None:
        row = Meta(key=GENERATION, value=0)
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
                r.id, r.kind, r.partner_id, r.lat, r.lon, r.tz, frozenset(prefixes.get(r.id, ()))
            )
            for r in s.scalars(select(SiteRow))
        },
        appliances={
            a.id: ApplianceConfig(a.id, a.site_id, a.base_url, a.disk_bytes, a.gbps, a.drained)
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
    if credential_hash is not None:
        row.credential_hash = credential_hash


def apply_plan(
    s: Session, plan: TopologyPlan, credential_hashes: Mapping[str, str], interval_s: float
) -> None:
    """Execute ``plan`` in reference order: what points at a row goes before it does."""
    for aid in plan.appliances.remove:
        s.execute(delete(InventoryRow).where(InventoryRow.appliance_id == aid))
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
