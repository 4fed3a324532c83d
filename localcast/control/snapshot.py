"""Building the steering snapshot from the database, and holding the current one.

:func:`build_snapshot` reads every table steering needs once and converts
rows into the core's frozen values (ORM objects stop here). It runs at
start, after a topology apply or a title import (here or by another process:
see ``ControlPlane.refresh``). Heartbeats do not rebuild: they derive the
next snapshot from the current one with
:func:`localcast.core.fleet.with_appliance`. BGP-learned routes are not in
the database: a rebuild carries them over from the previous snapshot
(``learned``), and route deltas derive the next snapshot with
:func:`localcast.core.fleet.with_route_delta`.

:class:`SnapshotHolder` publishes the current snapshot. Readers take
``holder.current`` (one attribute read: atomic, never a torn snapshot) and
use that object for the whole request. Writers serialise on ``holder.lock``
so that two changes never derive from the same predecessor and lose one.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Mapping

from sqlalchemy.orm import Session

from localcast.control import repository as repo
from localcast.control.models import ApplianceRow
from localcast.core.fleet import (
    Appliance,
    ApplianceState,
    CatalogTitle,
    FleetSnapshot,
    Site,
    SiteKind,
    frozen_map,
)
from localcast.core.inventory import Inventory, complete_titles, required_files
from localcast.core.routeindex import RouteIndex
from localcast.core.routes import Route, RouteTable
from localcast.media.manifest import TitleManifest


def catalog_entry(manifest: TitleManifest) -> CatalogTitle:
    return CatalogTitle(manifest=manifest, required_files=required_files(manifest))


def appliance_from_row(
    row: ApplianceRow, inventory: Inventory, catalog: Mapping[str, CatalogTitle]
) -> Appliance:
    required = {t: c.required_files for t, c in catalog.items()}
    complete = complete_titles(inventory, required)
    return Appliance(
        id=row.id,
        site_id=row.site_id,
        base_url=row.base_url,
        disk_bytes=row.disk_bytes,
        gbps=row.gbps,
        state=ApplianceState(row.state),
        drained=row.drained,
        health=repo.row_health(row),
        titles=complete,
        file_count=sum(len(f) for f in inventory.values()),
        load=repo.row_load(row),
        appliance_class=row.appliance_class,
        fill_bps=row.fill_bps,
        titles_partial=frozenset(t for t in inventory if t in required and t not in complete),
    )


def build_snapshot(s: Session, version: int, learned: RouteIndex | None = None) -> FleetSnapshot:
    """The whole snapshot, read from the database in one transaction, with ``learned`` routes."""
    catalog = {m.title_id: catalog_entry(m) for m in repo.all_manifests(s)}
    sites: dict[str, Site] = {}
    routes: list[Route] = []
    for rec in repo.all_sites(s):
        r = rec.row
        sites[r.id] = Site(
            r.id,
            SiteKind(r.kind),
            r.partner_id,
            r.lat,
            r.lon,
            r.tz,
            rec.prefixes,
            region=r.region,
            fill_window=r.fill_window,
        )
        routes += [Route(ipaddress.ip_network(p), r.id) for p in rec.prefixes]
    inventories = repo.all_inventories(s)
    appliances = {
        row.id: appliance_from_row(row, inventories.get(row.id, {}), catalog)
        for row in repo.all_appliances(s)
    }
    return FleetSnapshot(
        version=version,
        sites=frozen_map(sites),
        appliances=frozen_map(appliances),
        catalog=frozen_map(catalog),
        routes=RouteTable.build(routes, learned),
    )


class SnapshotHolder:
    """The current snapshot, swapped atomically."""

    def __init__(self, initial: FleetSnapshot) -> None:
        self._current = initial
        self.lock = threading.RLock()

    @property
    def current(self) -> FleetSnapshot:
        return self._current

    def swap(self, change: Callable[[FleetSnapshot], FleetSnapshot]) -> FleetSnapshot:
        """Publish ``change(current)``; writers are serialised."""
        with self.lock:
            nxt = change(self._current)
            if nxt.version <= self._current.version:
                raise ValueError("a new snapshot must have a higher version")
            self._current = nxt
            return nxt
