"""Learned routes in the control plane: apply what the appliances' BGP relays report.

What lives here: the shell between ``POST /v1/appliances/{id}/routes`` and
the core's route index. :class:`RouteFeed` converts a validated
:class:`~localcast.control.route_schemas.RoutesReport` into core values
(:class:`~localcast.core.rib.RouteDelta`, :class:`~localcast.core.rib.AdjRibIn`),
applies it with a snapshot swap, keeps each appliance's report sequence and
BGP session states, and rebuilds the index in a background thread when its
overlay has grown. Which site wins for a client is not decided here
(:mod:`localcast.core.decision`).

Theory of operation:

* **In memory only.** Learned routes are not stored in the database (a full
  table is 900k routes per appliance, and the appliance has them anyway).
  After a control plane restart nothing is known: the first delta from each
  appliance is answered ``resync: true`` (no base), and its relay sends a
  full report. A topology reload keeps the learned routes (see
  :func:`localcast.control.snapshot.build_snapshot`).
* **Sequencing**, like inventory deltas in heartbeats: a full report sets the
  appliance's sequence; a delta applies only when its ``base_seq`` is the
  last sequence applied, else nothing changes and the answer is ``resync``.
* **Deltas** go through :func:`localcast.core.fleet.with_route_delta` (the
  core's overlay, no rebuild). A withdrawal names its peer: it removes the
  prefix only when the route held for it came from that peer (the control
  plane keeps one route per prefix per appliance, the last one announced; a
  withdrawal from another session of the same appliance leaves it).
* **Full reports** with fewer than :data:`FULL_BUILD_AT` routes (new plus
  old) go through the same delta path. Bigger ones build the appliance's
  Adj-RIB-In directly and a fresh index over every appliance
  (:meth:`RouteIndex.build`, seconds at a full table), outside the snapshot
  lock, so playback and heartbeats are not held up.
* **Writers of learned routes** (reports, the rebuild's publish) serialise
  on :attr:`RouteFeed.lock`; the snapshot's own lock is only taken for the
  swap. A background rebuild builds without any lock and publishes
  ``rebased(current, fresh)`` unless a full build replaced the base
  meanwhile (then its work is dropped: the index is fresh already).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from localcast.control.route_schemas import Announce, BgpSession, RoutesReport
from localcast.control.snapshot import SnapshotHolder
from localcast.core.fleet import FleetSnapshot, with_learned_routes, with_route_delta
from localcast.core.rib import (
    AdjRibIn,
    Attributes,
    Origin,
    Path,
    Peer,
    RouteDelta,
    parse_prefix,
    router_id,
)
from localcast.core.routeindex import RouteIndex, rebased, rebuilt

log = logging.getLogger(__name__)

#: A full report at least this big (new + old routes of the appliance) rebuilds the index.
FULL_BUILD_AT = 20_000

_ORIGINS = {"igp": Origin.IGP, "egp": Origin.EGP, "incomplete": Origin.INCOMPLETE}


@dataclass(frozen=True)
class FeedState:
    """What the control plane knows of one appliance's relay."""

    seq: int
    reported_at: float
    sessions: tuple[BgpSession, ...]


@dataclass(frozen=True)
class IngestOutcome:
    seq: int
    resync: bool
    reason: str
    routes: int
    snapshot_version: int


# --- conversion to the core's values ------------------------------------------------------------


def _community(text: str) -> int:
    high, _, low = text.partition(":")
    return (int(high) << 16) | int(low)


def _large(text: str) -> tuple[int, int, int]:
    a, b, c = (int(x) for x in text.split(":"))
    return a, b, c


def path_of(route: Announce, cache: dict[tuple[object, ...], Path] | None = None) -> Path:
    """The core's :class:`Path` of a reported route; equal ones shared through ``cache``."""
    key = (
        tuple(route.as_path),
        route.origin,
        route.med,
        route.local_pref,
        tuple(route.communities),
        tuple(route.large_communities),
        route.next_hop,
        route.peer,
        route.peer_as,
        route.peer_router_id,
        route.ebgp,
        route.received_at,
    )
    if cache is not None:
        found = cache.get(key)
        if found is not None:
            return found
    attributes = Attributes(
        as_path=tuple(route.as_path),
        origin=_ORIGINS[route.origin],
        med=route.med if route.med is not None else 0,
        local_pref=route.local_pref if route.local_pref is not None else 100,
        communities=tuple(_community(c) for c in route.communities),
        large_communities=tuple(_large(c) for c in route.large_communities),
    )
    peer = Peer(router_id(route.peer_router_id), route.peer, route.peer_as, route.ebgp)
    path = Path(attributes, peer, route.next_hop, route.received_at)
    if cache is not None:
        cache[key] = path
    return path


def _tables(announce: Iterable[Announce]) -> tuple[dict[int, Path], dict[int, Path]]:
    cache: dict[tuple[object, ...], Path] = {}
    tables: dict[int, dict[int, Path]] = {4: {}, 6: {}}
    for route in announce:
        version, key = route.key
        tables[version][key] = path_of(route, cache)
    return tables[4], tables[6]


def rib_of(appliance_id: str, announce: Iterable[Announce]) -> AdjRibIn:
    """A whole Adj-RIB-In from a full report (a prefix listed twice: the last one)."""
    v4, v6 = _tables(announce)
    return AdjRibIn(appliance_id, MappingProxyType(v4), MappingProxyType(v6))


def delta_of(rib: AdjRibIn, report: RoutesReport) -> RouteDelta:
    """The core delta of a delta report, against ``rib`` (the appliance's routes now).

    A withdrawal counts only when ``rib`` holds the prefix from the withdrawing peer.
    """
    withdrawn: dict[int, set[int]] = {4: set(), 6: set()}
    for w in report.withdraw:
        version, key = parse_prefix(w.prefix)
        held = rib.table(version).get(key)
        if held is not None and held.peer.address == w.peer:
            withdrawn[version].add(key)
    v4, v6 = _tables(report.announce)
    return RouteDelta(
        MappingProxyType(v4),
        MappingProxyType(v6),
        frozenset(withdrawn[4]),
        frozenset(withdrawn[6]),
    )


def merged_sessions(before: tuple[BgpSession, ...], report: RoutesReport) -> tuple[BgpSession, ...]:
    """Sessions after ``report``: a full one lists them all; a delta replaces those it names."""
    if report.kind == "full":
        return tuple(report.sessions)
    by_peer = {s.peer: s for s in before}
    by_peer.update({s.peer: s for s in report.sessions})
    return tuple(by_peer[p] for p in sorted(by_peer))


# --- the feed ----------------------------------------------------------------------------------


class RouteFeed:
    """Applies route reports to the snapshot; keeps sequences and session states in memory."""

    def __init__(self, holder: SnapshotHolder) -> None:
        self._holder = holder
        self.lock = threading.Lock()  # writers of learned routes
        self._states: dict[str, FeedState] = {}
        self._rebuild_guard = threading.Lock()
        self._rebuilder: threading.Thread | None = None

    def state(self, appliance_id: str) -> FeedState | None:
        return self._states.get(appliance_id)

    def states(self) -> Mapping[str, FeedState]:
        return MappingProxyType(dict(self._states))

    def ingest(self, appliance_id: str, report: RoutesReport, now: float) -> IngestOutcome:
        """Apply ``report`` from ``appliance_id`` (already authenticated)."""
        with self.lock:
            prev = self._states.get(appliance_id)
            if report.kind == "delta":
                if prev is None or prev.seq != report.base_seq:
                    have = "none" if prev is None else str(prev.seq)
                    snap = self._holder.current
                    held = snap.routes.learned.ribs.get(appliance_id)
                    return IngestOutcome(
                        prev.seq if prev else 0,
                        True,
                        f"delta from base {report.base_seq}, last applied {have}: "
                        "send a full report",
                        len(held) if held is not None else 0,
                        snap.version,
                    )
                snap = self._apply_delta(appliance_id, report)
                reason = (
                    f"delta {report.seq} applied: {len(report.announce)} announced, "
                    f"{len(report.withdraw)} withdrawn"
                )
            else:
                snap = self._apply_full(appliance_id, report)
                reason = f"full table {report.seq} applied: {len(report.announce)} routes"
            before = prev.sessions if prev else ()
            self._states[appliance_id] = FeedState(report.seq, now, merged_sessions(before, report))
        if snap.routes.learned.needs_rebuild:
            self.start_rebuild()
        return IngestOutcome(
            report.seq, False, reason, len(snap.routes.learned.ribs[appliance_id]), snap.version
        )

    def _apply_delta(self, appliance_id: str, report: RoutesReport) -> FleetSnapshot:
        rib = self._holder.current.routes.learned.ribs.get(appliance_id, AdjRibIn(appliance_id))
        delta = delta_of(rib, report)
        return self._holder.swap(lambda cur: with_route_delta(cur, appliance_id, delta))

    def _apply_full(self, appliance_id: str, report: RoutesReport) -> FleetSnapshot:
        rib = rib_of(appliance_id, report.announce)
        learned = self._holder.current.routes.learned
        old = learned.ribs.get(appliance_id)
        if len(rib) + (len(old) if old is not None else 0) < FULL_BUILD_AT:
            delta = RouteDelta(rib.v4, rib.v6, full=True)
            return self._holder.swap(lambda cur: with_route_delta(cur, appliance_id, delta))
        ribs = dict(learned.ribs)
        ribs[appliance_id] = rib
        fresh = RouteIndex.build(ribs)  # seconds at a full table; the snapshot stays readable
        log.info("routes of %s: full table of %d, index rebuilt", appliance_id, len(rib))
        # only writers holding self.lock change learned routes: ``learned`` is still current
        return self._holder.swap(lambda cur: with_learned_routes(cur, fresh))

    # --- the background rebuild ----------------------------------------------------------------

    def start_rebuild(self) -> bool:
        """Rebuild the index in a background thread, unless one is running."""
        with self._rebuild_guard:
            if self._rebuilder is not None and self._rebuilder.is_alive():
                return False
            self._rebuilder = threading.Thread(
                target=self._rebuild_logged, name="route-index-rebuild", daemon=True
            )
            self._rebuilder.start()
            return True

    def wait_rebuild(self, timeout: float | None = None) -> None:
        """Wait for a running background rebuild (tests, shutdown)."""
        t = self._rebuilder
        if t is not None:
            t.join(timeout)

    def _rebuild_logged(self) -> None:
        try:
            self.rebuild()
        except Exception:  # the overlay keeps working; the next report retries
            log.exception("route index rebuild failed")

    def rebuild(self) -> bool:
        """Build a fresh base for the current routes and publish it (False: superseded)."""
        start = self._holder.current.routes.learned
        fresh = rebuilt(start)  # no lock: deltas keep flowing into the overlay
        with self.lock:
            if self._holder.current.routes.learned.base is not start.base:
                return False  # a full build replaced the base meanwhile
            self._holder.swap(
                lambda cur: with_learned_routes(cur, rebased(cur.routes.learned, fresh))
            )
        log.info("route index rebuilt: %d route(s)", fresh.route_count)
        return True
