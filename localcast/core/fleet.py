"""The steering snapshot: an immutable, versioned picture of fleet, catalog and routes.

Everything the steering decision reads lives in one :class:`FleetSnapshot`:
sites, appliances (with their health and the titles they hold complete), the
catalog of title manifests and the client-route table (configured prefixes
and every appliance's BGP-learned routes with their index, see
:mod:`localcast.core.routes`). The control plane
builds one from its database, then derives the next one from the previous
one on every change (topology apply, title import, register, heartbeat) and
swaps the reference atomically; a playback request reads whichever snapshot
is current, never the database.

Rules of this module: frozen data and pure transitions only. No clock (times
are passed in), no I/O, no knowledge of HTTP or SQL. Mappings held by a
snapshot are read-only views (``MappingProxyType``); a transition builds new
ones and shares everything it did not change.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import TypeVar

from localcast.core.rib import RouteDelta
from localcast.core.routeindex import RouteIndex, with_delta
from localcast.core.routes import RouteTable, bgp_sites
from localcast.media.manifest import TitleManifest

K = TypeVar("K")
V = TypeVar("V")


class SiteKind(enum.StrEnum):
    """How a site connects to the client's network (the steering preference order)."""

    EMBEDDED = "embedded"  # inside the ISP's network
    PNI = "pni"  # private network interconnect with the ISP
    IX = "ix"  # public peering at an internet exchange
    ORIGIN = "origin"  # the origin store, reached over transit


#: Lower is preferred: embedded > pni > ix > origin.
KIND_PREFERENCE: Mapping[SiteKind, int] = MappingProxyType(
    {SiteKind.EMBEDDED: 0, SiteKind.PNI: 1, SiteKind.IX: 2, SiteKind.ORIGIN: 3}
)


class ApplianceState(enum.StrEnum):
    """Registration state; liveness is separate and computed from heartbeats."""

    PROVISIONED = "provisioned"  # declared in the topology, never registered
    REGISTERED = "registered"  # has registered with its credential


@dataclass(frozen=True)
class Site:
    id: str
    kind: SiteKind
    partner: str | None
    lat: float
    lon: float
    tz: str
    prefixes: tuple[str, ...] = ()
    region: str | None = None  # popularity feed shared with other sites; None: the site's own
    fill_window: str = "02:00-14:00"  # site-local off-peak hours when its appliances fill

    @property
    def region_id(self) -> str:
        """The site's popularity region: ``region`` when set, else the site id."""
        return self.region or self.id


@dataclass(frozen=True)
class Load:
    """What an appliance last reported about its work and its disk."""

    active_connections: int = 0
    egress_bps: float = 0.0
    disk_used_bytes: int = 0
    disk_free_bytes: int = 0


@dataclass(frozen=True)
class Health:
    """Heartbeat bookkeeping; :mod:`localcast.core.health` turns it into liveness.

    A *run* is an unbroken sequence of heartbeats (no gap longer than the
    liveness window); ``beats_in_run`` counts them, for hysteresis.
    """

    interval_s: float
    last_heartbeat_at: float | None = None
    run_started_at: float | None = None
    beats_in_run: int = 0


@dataclass(frozen=True)
class SteeringState:
    """How steering treats one appliance now (:func:`localcast.core.maintenance.steering_state`).

    ``new_sessions``: playback requests may be steered to it.
    ``keep_in_flight``: sessions already on it keep its pathway in their
    steering manifest (ranked last when ``new_sessions`` is False); when
    False the pathway leaves their manifests and players move.
    ``health``: every restriction comes from the appliance's held status
    (dead, failing, no BGP session up, over capacity), none from an operator
    or turn-up: steering counts passing it over as a health miss.
    """

    new_sessions: bool
    keep_in_flight: bool
    reason: str
    health: bool = False


#: What an appliance's entry holds until the control plane computes its steering state.
SERVING = SteeringState(True, True, "serving")


@dataclass(frozen=True)
class Appliance:
    id: str
    site_id: str
    base_url: str
    disk_bytes: int
    gbps: float
    state: ApplianceState
    health: Health
    drained: bool = False  # maintenance, set in the topology: steer nobody to it
    titles: frozenset[str] = frozenset()  # titles held complete
    file_count: int = 0
    load: Load = field(default_factory=Load)
    appliance_class: str = "storage"  # hardware class: sets the default fill rate cap
    fill_bps: float | None = None  # fill rate cap override, bits/s
    titles_partial: frozenset[str] = frozenset()  # titles with some, not all, files held
    # maintenance + held status + turn-up, computed by the control plane (never per request)
    steering: SteeringState = SERVING


@dataclass(frozen=True)
class CatalogTitle:
    """A title the control plane can steer to, with the files an appliance must hold."""

    manifest: TitleManifest
    required_files: frozenset[str]

    @property
    def title_id(self) -> str:
        return self.manifest.title_id


@dataclass(frozen=True)
class FleetSnapshot:
    version: int
    sites: Mapping[str, Site]
    appliances: Mapping[str, Appliance]
    catalog: Mapping[str, CatalogTitle]
    routes: RouteTable

    def site_of(self, appliance: Appliance) -> Site:
        return self.sites[appliance.site_id]

    @cached_property
    def _by_site(self) -> Mapping[str, tuple[Appliance, ...]]:
        """Appliances per site, indexed once per snapshot on first use."""
        index: dict[str, list[Appliance]] = {}
        for a in self.appliances.values():
            index.setdefault(a.site_id, []).append(a)
        return MappingProxyType({sid: tuple(apps) for sid, apps in index.items()})

    def appliances_at(self, site_id: str) -> tuple[Appliance, ...]:
        return self._by_site.get(site_id, ())

    @cached_property
    def site_utilisation(self) -> Mapping[str, float]:
        """Per site: egress over capacity of its registered, undrained appliances (0: none)."""
        egress: dict[str, float] = {}
        capacity: dict[str, float] = {}
        for a in self.appliances.values():
            if a.state is ApplianceState.REGISTERED and not a.drained:
                egress[a.site_id] = egress.get(a.site_id, 0.0) + a.load.egress_bps
                capacity[a.site_id] = capacity.get(a.site_id, 0.0) + a.gbps * 1e9
        return MappingProxyType({s: egress[s] / c if c > 0 else 0.0 for s, c in capacity.items()})

    @cached_property
    def appliance_sites(self) -> Mapping[str, str]:
        """Appliance id -> site id, indexed once per snapshot on first use."""
        return MappingProxyType({a.id: a.site_id for a in self.appliances.values()})

    @cached_property
    def speaking_sites(self) -> frozenset[str]:
        """Sites with a BGP-speaking appliance: only learned routes count for them."""
        return bgp_sites(self.routes, self.appliance_sites)


def frozen_map(items: Iterable[tuple[K, V]] | Mapping[K, V]) -> Mapping[K, V]:
    """A read-only copy of ``items``."""
    return MappingProxyType(dict(items))


def empty_snapshot() -> FleetSnapshot:
    return FleetSnapshot(
        version=0,
        sites=frozen_map({}),
        appliances=frozen_map({}),
        catalog=frozen_map({}),
        routes=RouteTable.build(()),
    )


def with_appliance(snapshot: FleetSnapshot, appliance: Appliance) -> FleetSnapshot:
    """The next snapshot, with one appliance replaced (everything else shared)."""
    appliances = dict(snapshot.appliances)
    appliances[appliance.id] = appliance
    return replace(snapshot, version=snapshot.version + 1, appliances=frozen_map(appliances))


def with_learned_routes(snapshot: FleetSnapshot, learned: RouteIndex) -> FleetSnapshot:
    """The next snapshot, with new learned routes (after a background index rebuild)."""
    return replace(
        snapshot, version=snapshot.version + 1, routes=snapshot.routes.with_learned(learned)
    )


def with_route_delta(
    snapshot: FleetSnapshot, appliance_id: str, delta: RouteDelta
) -> FleetSnapshot:
    """The next snapshot, with ``delta`` applied to ``appliance_id``'s Adj-RIB-In.

    Cheap (the index is not rebuilt; see :mod:`localcast.core.routeindex`):
    call it for every delta the BGP layer relays, and rebuild the index off
    the lock when ``snapshot.routes.learned.needs_rebuild``.
    """
    learned = with_delta(snapshot.routes.learned, appliance_id, delta)
    return with_learned_routes(snapshot, learned)
