"""Learned routes in the control plane: apply what the appliances' BGP relays report.

What lives here: the shell between ``POST /v1/appliances/{id}/routes`` and
the core's route index. :class:`RouteFeed` converts a validated
:class:`~localcast.control.route_schemas.RoutesReport` (one BGP session of
one appliance, routes grouped by attribute set) into core values
(:class:`~localcast.core.rib.RouteDelta`, :class:`~localcast.core.rib.AdjRibIn`),
applies it with a snapshot swap, keeps each session's report sequence and
state, and rebuilds the index in a background thread when its overlay has
grown. Which site wins for a client is not decided here
(:mod:`localcast.core.decision`).

Theory of operation:

* **In memory only.** Learned routes are not stored in the database (a full
  table is 900k routes per appliance, and the appliance has them anyway).
  After a control plane restart nothing is known: the first delta of each
  session is answered ``resync: true`` (no base), and the relay sends a full
  report. A topology reload keeps the learned routes (see
  :func:`localcast.control.snapshot.build_snapshot`).
* **Sequencing per session**, keyed on (appliance, neighbor): a full report
  sets the session's sequence; a delta applies only when its ``base_seq`` is
  the session's last sequence applied, else nothing changes and the answer
  is ``resync``.
* **One route per prefix per appliance** (the core's Adj-RIB-In). With one
  session, that session's route: a withdrawal, a full report or the session
  going down removes the prefix. With several sessions (an ISP peering the
  appliance with two routers, the usual redundant set-up), the feed keeps
  each session's own table for that appliance (from the moment its second
  session reports) and the appliance holds, per prefix, the best of its
  sessions' routes by the decision process
  (:func:`localcast.core.decision.best_path`): one router going away moves
  the prefix to the other router's route, it does not withdraw it.
* **Deltas** go through :func:`localcast.core.fleet.with_route_delta` (the
  core's overlay, no rebuild).
* **A full report** replaces that session's routes: what the session held
  and no longer announces is withdrawn, the rest announced. **A session not
  established** (the relay's report of a session that went down) withdraws
  every route of that session, whatever the report lists.
* Replacements touching fewer than :data:`FULL_BUILD_AT` routes (new plus
  old) go through the delta path. Bigger ones build the appliance's
  Adj-RIB-In directly and a fresh index over every appliance
  (:meth:`RouteIndex.build`, seconds at a full table), outside the snapshot
  lock, so playback and heartbeats are not held up.
* ``received_at`` of a route (the decision process's "oldest route") is the
  report's ``sent_at`` (appliance clock), else the control plane's clock.
* **Each session's own routes** are readable: :meth:`RouteFeed.session_prefixes`
  gives, per session of an appliance, the prefixes it announces now (with its
  path), read-only. The per-session tables are copied on write (a delta copies
  the session's table, as the core copies the appliance's), so a reader holds
  a consistent table while reports keep coming.
* **Versions**: :attr:`RouteFeed.generation` counts the reports applied (it
  moves after the new snapshot is published). Only the feed changes learned
  routes, so a result computed from the route tables alone stays valid while
  the generation is the same. Finer: every table (an :class:`AdjRibIn`, the
  snapshot's or a session's) is replaced, never changed, so its identity is
  its version (the portal keeps what it derives per table, weakly).
* **Filtered prefixes**: a session's report may list, per filter reason, the
  prefixes its import policy refuses (a bounded sample); kept with the session's
  state. A report without the list keeps the previous one while the counts per
  reason are unchanged (a relay sends it when it changes), and drops it otherwise.
* **Writers of learned routes** (reports, the rebuild's publish) serialise
  on :attr:`RouteFeed.lock`; the snapshot's own lock is only taken for the
  swap. A background rebuild builds without any lock and publishes
  ``rebased(current, fresh)`` unless a full build replaced the base
  meanwhile (then its work is dropped: the index is fresh already).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from localcast.control.route_schemas import AnnounceGroup, BgpSession, RoutesReport
from localcast.control.snapshot import SnapshotHolder
from localcast.core.decision import best_path
from localcast.core.fleet import FleetSnapshot, with_learned_routes, with_route_delta
from localcast.core.rib import (
    AdjRibIn,
    Attributes,
    Origin,
    Path,
    Peer,
    RouteDelta,
    router_id,
)
from localcast.core.routeindex import RouteIndex, rebased, rebuilt

log = logging.getLogger(__name__)

#: A replacement at least this big (new + old routes of the appliance) rebuilds the index.
FULL_BUILD_AT = 20_000

_ORIGINS = {"igp": Origin.IGP, "egp": Origin.EGP, "incomplete": Origin.INCOMPLETE}

SessionKey = tuple[str, str]  # (appliance id, neighbor address)
Tables = dict[int, dict[int, Path]]  # IP version -> packed prefix -> path


@dataclass(frozen=True)
class FeedState:
    """What the control plane knows of one BGP session of one appliance."""

    seq: int
    reported_at: float  # control plane clock
    sent_at: float | None  # appliance clock
    session: BgpSession


@dataclass
class _Staged:
    """The parts of a full report received so far (mutable: private to the feed)."""

    seq: int
    tables: Tables
    parts: int = 0


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


def peer_of(session: BgpSession) -> Peer:
    """The core's :class:`Peer` of a session (router id 0.0.0.0 before its OPEN)."""
    rid = router_id(session.peer_router_id) if session.peer_router_id else 0
    return Peer(rid, session.neighbor, session.remote_as, session.ebgp)


def path_of(group: AnnounceGroup, peer: Peer, received_at: float) -> Path:
    """The core's :class:`Path` shared by every prefix of an announce group.

    A missing ORIGIN counts as INCOMPLETE (the least preferred), MED as 0 and
    LOCAL_PREF as 100 (the core's conventions).
    """
    attributes = Attributes(
        as_path=tuple(group.as_path),
        origin=_ORIGINS[group.origin] if group.origin is not None else Origin.INCOMPLETE,
        med=group.med if group.med is not None else 0,
        local_pref=group.local_pref if group.local_pref is not None else 100,
        communities=tuple(_community(c) for c in group.communities),
        large_communities=tuple(_large(c) for c in group.large_communities),
    )
    return Path(attributes, peer, group.next_hop, received_at)


def announced(report: RoutesReport, received_at: float) -> Tables:
    """Every announced prefix -> its path (a prefix listed twice: the last one)."""
    peer = peer_of(report.session)
    tables: Tables = {4: {}, 6: {}}
    for group in report.announce:
        path = path_of(group, peer, received_at)
        v4, v6 = tables[4], tables[6]
        for version, key in group.keys:
            (v4 if version == 4 else v6)[key] = path
    return tables


def held_by(rib: AdjRibIn, neighbor: str) -> Tables:
    """The routes of ``rib`` that came from the session with ``neighbor``."""
    return {
        v: {k: p for k, p in rib.table(v).items() if p.peer.address == neighbor} for v in (4, 6)
    }


def delta_of(rib: AdjRibIn, report: RoutesReport, received_at: float) -> RouteDelta:
    """The core delta of a delta report, against ``rib`` (the appliance's routes now).

    A withdrawal counts only when ``rib`` holds the prefix from the reporting session.
    """
    neighbor = report.session.neighbor
    withdrawn: dict[int, set[int]] = {4: set(), 6: set()}
    for version, key in report.withdraw_keys:
        held = rib.table(version).get(key)
        if held is not None and held.peer.address == neighbor:
            withdrawn[version].add(key)
    new = announced(report, received_at)
    return RouteDelta(
        MappingProxyType(new[4]),
        MappingProxyType(new[6]),
        frozenset(withdrawn[4]),
        frozenset(withdrawn[6]),
    )


def replacement_of(rib: AdjRibIn, neighbor: str, new: Tables) -> RouteDelta:
    """The core delta replacing the session's routes in ``rib`` with ``new``."""
    old = held_by(rib, neighbor)
    return RouteDelta(
        MappingProxyType(new[4]),
        MappingProxyType(new[6]),
        frozenset(old[4].keys() - new[4].keys()),
        frozenset(old[6].keys() - new[6].keys()),
    )


def replaced_rib(rib: AdjRibIn, neighbor: str, new: Tables) -> AdjRibIn:
    """``rib`` with the session's routes replaced by ``new`` (built, not a delta)."""
    tables: Tables = {}
    for v in (4, 6):
        table = {k: p for k, p in rib.table(v).items() if p.peer.address != neighbor}
        table.update(new[v])
        tables[v] = table
    return AdjRibIn(rib.appliance_id, MappingProxyType(tables[4]), MappingProxyType(tables[6]))


def _best_of(
    tables: Mapping[str, Tables], touched: Mapping[int, set[int]]
) -> dict[int, dict[int, Path | None]]:
    """Per touched prefix, the best route over the sessions' tables (None: no session has it).

    Paths are shared by every prefix of an announce group, so the comparison is
    memoised per combination of paths: a full table costs a dict probe per prefix.
    """
    memo: dict[tuple[int, ...], Path] = {}
    keep: list[tuple[Path, ...]] = []  # the memo's paths stay alive, so their ids stay unique
    out: dict[int, dict[int, Path | None]] = {4: {}, 6: {}}
    session_tables = list(tables.values())
    for v in (4, 6):
        mine = [t[v] for t in session_tables if t[v]]
        for key in touched[v]:
            paths = tuple(p for p in (t.get(key) for t in mine) if p is not None)
            if not paths:
                out[v][key] = None
            elif len(paths) == 1:
                out[v][key] = paths[0]
            else:
                ids = tuple(id(p) for p in paths)
                best = memo.get(ids)
                if best is None:
                    best = memo[ids] = best_path(paths)
                    keep.append(paths)
                out[v][key] = best
    return out


def _rib_of(appliance_id: str, tables: Tables | None) -> AdjRibIn:
    """One session's tables as a read-only :class:`AdjRibIn` (no copy)."""
    if tables is None:
        return AdjRibIn(appliance_id)
    return AdjRibIn(appliance_id, MappingProxyType(tables[4]), MappingProxyType(tables[6]))


def _with_filtered_kept(session: BgpSession, prev: FeedState | None) -> BgpSession:
    """``session`` with the previous report's filtered prefixes when it lists none and its
    counts per reason are the previous ones (a relay sends the list when it changes)."""
    if session.filtered_prefixes is not None or prev is None:
        return session
    kept = prev.session.filtered_prefixes
    if kept is None or session.filtered != prev.session.filtered:
        return session
    return session.model_copy(update={"filtered_prefixes": kept})


# --- the feed ----------------------------------------------------------------------------------


class RouteFeed:
    """Applies route reports to the snapshot; keeps sequences and session states in memory."""

    def __init__(self, holder: SnapshotHolder) -> None:
        self._holder = holder
        self.lock = threading.Lock()  # writers of learned routes
        self._states: dict[SessionKey, FeedState] = {}
        self._rebuild_guard = threading.Lock()
        self._rebuilder: threading.Thread | None = None
        # appliance -> neighbor -> that session's routes; only for appliances whose second
        # session has reported (with one session the appliance's RIB is that session's table)
        self._per_session: dict[str, dict[str, Tables]] = {}
        # the same tables as handed out by session_prefixes (read-only, replaced on change)
        self._published: dict[SessionKey, tuple[Tables, AdjRibIn]] = {}
        self._staging: dict[SessionKey, _Staged] = {}  # fulls arriving in parts
        self.generation = 0  # reports applied; moves after their snapshot is published
        self._neighbors: dict[str, frozenset[str]] = {}  # appliance -> sessions with a state

    def state(self, appliance_id: str, neighbor: str) -> FeedState | None:
        return self._states.get((appliance_id, neighbor))

    def sessions(self, appliance_id: str) -> list[FeedState]:
        """The sessions of ``appliance_id`` as last reported, by neighbor."""
        neighbors = sorted(self._neighbors.get(appliance_id, ()))  # not a scan of every session
        found = (self._states.get((appliance_id, n)) for n in neighbors)
        return [s for s in found if s is not None]

    def states(self) -> Mapping[SessionKey, FeedState]:
        return MappingProxyType(dict(self._states))

    def session_prefixes(self, appliance_id: str) -> Mapping[str, AdjRibIn]:
        """Per BGP session (neighbor address) of ``appliance_id`` that reported: the prefixes
        it announces now, each with that session's path, as a read-only :class:`AdjRibIn`
        (``table(version)``: packed prefix -> path). A session down announces nothing.

        Cheap (no copy of a table): with one session, the appliance's Adj-RIB-In is that
        session's; with several, the feed's own tables, which are replaced, never changed,
        once published. Read under no lock: a report applied meanwhile shows in the next call.
        """
        neighbors = sorted(self._neighbors.get(appliance_id, ()))
        if appliance_id in self._per_session:
            published = dict(self._published)  # one C-level copy: writers may add meanwhile
            mine = {nb: rib for (aid, nb), (_, rib) in published.items() if aid == appliance_id}
            empty = AdjRibIn(appliance_id)
            return MappingProxyType({nb: mine.get(nb, empty) for nb in sorted({*neighbors, *mine})})
        rib = self._holder.current.routes.learned.ribs.get(appliance_id, AdjRibIn(appliance_id))
        if len(neighbors) == 1:  # the appliance's routes are its only session's
            return MappingProxyType({neighbors[0]: rib})
        if not neighbors and len(rib):  # routes with no session known: by the path's peer
            neighbors = sorted({p.peer.address for v in (4, 6) for p in rib.table(v).values()})
        return MappingProxyType({nb: _rib_of(appliance_id, held_by(rib, nb)) for nb in neighbors})

    def _publish(self, appliance_id: str, neighbor: str, tables: Tables) -> None:
        """Hand ``tables`` out as the session's (a family unchanged keeps its read-only view)."""
        key = (appliance_id, neighbor)
        old = self._published.get(key)
        views = [
            old[1].table(v) if old is not None and old[0][v] is tables[v] else None for v in (4, 6)
        ]
        self._published[key] = (
            tables,
            AdjRibIn(
                appliance_id,
                views[0] if views[0] is not None else MappingProxyType(tables[4]),
                views[1] if views[1] is not None else MappingProxyType(tables[6]),
            ),
        )

    def ingest(self, appliance_id: str, report: RoutesReport, now: float) -> IngestOutcome:
        """Apply ``report`` from ``appliance_id`` (already authenticated)."""
        session = report.session
        key = (appliance_id, session.neighbor)
        received_at = report.sent_at if report.sent_at is not None else now
        with self.lock:
            prev = self._states.get(key)
            if report.kind == "delta" and (prev is None or prev.seq != report.base_seq):
                have = "none" if prev is None else str(prev.seq)
                snap = self._holder.current
                held = snap.routes.learned.ribs.get(appliance_id)
                return IngestOutcome(
                    prev.seq if prev else 0,
                    True,
                    f"session {session.neighbor}: delta from base {report.base_seq}, "
                    f"last applied {have}: send a full report",
                    len(held) if held is not None else 0,
                    snap.version,
                )
            full: Tables | None = None
            if report.kind == "full" and session.established:
                staged = self._stage(key, report, received_at)
                if isinstance(staged, str):  # a part kept for later, or out of sequence
                    snap = self._holder.current
                    held = snap.routes.learned.ribs.get(appliance_id)
                    resync = key not in self._staging
                    applied = prev.seq if prev is not None else 0
                    return IngestOutcome(
                        applied if resync else report.seq,
                        resync,
                        staged,
                        len(held) if held is not None else 0,
                        snap.version,
                    )
                full = staged
            else:
                self._staging.pop(key, None)
            session = _with_filtered_kept(session, prev)
            if self._several_sessions(appliance_id, session.neighbor):
                snap, reason = self._ingest_merged(appliance_id, report, full, received_at)
            elif not session.established:
                snap = self._replace(appliance_id, session.neighbor, {4: {}, 6: {}})
                reason = f"session {session.neighbor} is {session.state}: its routes withdrawn"
            elif full is None:
                snap = self._apply_delta(appliance_id, report, received_at)
                reason = (
                    f"session {session.neighbor}: delta {report.seq} applied, "
                    f"{report.route_count} announced, {len(report.withdraw)} withdrawn"
                )
            else:
                snap = self._replace(appliance_id, session.neighbor, full)
                reason = (
                    f"session {session.neighbor}: full table {report.seq} applied, "
                    f"{len(full[4]) + len(full[6])} routes"
                )
            self._states[key] = FeedState(report.seq, now, report.sent_at, session)
            self._neighbors[appliance_id] = self._neighbors.get(appliance_id, frozenset()) | {
                session.neighbor
            }
            self.generation += 1
        if snap.routes.learned.needs_rebuild:
            self.start_rebuild()
        return IngestOutcome(
            report.seq, False, reason, len(snap.routes.learned.ribs[appliance_id]), snap.version
        )

    def _stage(self, key: SessionKey, report: RoutesReport, received_at: float) -> Tables | str:
        """The whole table of a full report, or why there is none yet.

        A one-post full is its own table. The parts of a full in parts are
        gathered here; the table is returned at the last part. A part that
        does not follow the staged one drops the staging (the answer is
        then a resync, see :meth:`ingest`).
        """
        if not report.more and report.base_seq is None:
            self._staging.pop(key, None)
            return announced(report, received_at)
        staged = self._staging.get(key)
        if report.base_seq is None:
            staged = self._staging[key] = _Staged(0, {4: {}, 6: {}})
        elif staged is None or staged.seq != report.base_seq:
            self._staging.pop(key, None)
            have = "none" if staged is None else str(staged.seq)
            return (
                f"session {key[1]}: full part from base {report.base_seq}, staged part {have}: "
                "send the full report again"
            )
        part = announced(report, received_at)
        for v in (4, 6):
            staged.tables[v].update(part[v])
        staged.seq = report.seq
        staged.parts += 1
        if report.more:
            count = len(staged.tables[4]) + len(staged.tables[6])
            return f"session {key[1]}: full part {staged.parts} staged ({count} routes so far)"
        del self._staging[key]
        return staged.tables

    # --- appliances with several sessions --------------------------------------------------------

    def _several_sessions(self, appliance_id: str, neighbor: str) -> bool:
        """True once a second session of ``appliance_id`` reports (then for good)."""
        if appliance_id in self._per_session:
            return True
        others = [k[1] for k in self._states if k[0] == appliance_id and k[1] != neighbor]
        if not others:
            return False
        rib = self._holder.current.routes.learned.ribs.get(appliance_id, AdjRibIn(appliance_id))
        tables = {nb: held_by(rib, nb) for nb in others}
        for nb, table in tables.items():  # published first: readers look at _per_session
            self._publish(appliance_id, nb, table)
        self._per_session[appliance_id] = tables
        return True

    def _ingest_merged(
        self, appliance_id: str, report: RoutesReport, full: Tables | None, received_at: float
    ) -> tuple[FleetSnapshot, str]:
        """Update the session's own table, then hold the best route of every touched prefix."""
        session = report.session
        tables = self._per_session[appliance_id]
        mine = tables.setdefault(session.neighbor, {4: {}, 6: {}})
        touched: dict[int, set[int]] = {4: set(), 6: set()}
        if not session.established or full is not None:
            new = full if full is not None else {4: {}, 6: {}}
            for v in (4, 6):
                touched[v] = mine[v].keys() | new[v].keys()
            tables[session.neighbor] = mine = new
            if session.established:
                reason = (
                    f"session {session.neighbor}: full table {report.seq} applied, "
                    f"{len(new[4]) + len(new[6])} routes"
                )
            else:
                reason = f"session {session.neighbor} is {session.state}: its routes withdrawn"
        else:
            new = announced(report, received_at)
            withdrawn: dict[int, list[int]] = {4: [], 6: []}
            for version, key in report.withdraw_keys:
                withdrawn[version].append(key)
            written: Tables = {}
            for v in (4, 6):  # copy on write: readers of session_prefixes keep the old table
                if not new[v] and not withdrawn[v]:
                    written[v] = mine[v]
                    continue
                table = dict(mine[v])
                table.update(new[v])
                touched[v].update(new[v])
                for key in withdrawn[v]:
                    if table.pop(key, None) is not None:
                        touched[v].add(key)
                written[v] = table
            tables[session.neighbor] = mine = written
            reason = (
                f"session {session.neighbor}: delta {report.seq} applied, "
                f"{report.route_count} announced, {len(report.withdraw)} withdrawn"
            )
        self._publish(appliance_id, session.neighbor, mine)
        rib = self._holder.current.routes.learned.ribs.get(appliance_id, AdjRibIn(appliance_id))
        best = _best_of(tables, touched)
        announce: Tables = {4: {}, 6: {}}
        withdraw: dict[int, set[int]] = {4: set(), 6: set()}
        for v in (4, 6):
            held = rib.table(v)
            for key, path in best[v].items():
                if path is None:
                    if key in held:
                        withdraw[v].add(key)
                elif held.get(key) is not path:
                    announce[v][key] = path
        changed = sum(len(announce[v]) + len(withdraw[v]) for v in (4, 6))
        if changed < FULL_BUILD_AT:
            delta = RouteDelta(
                MappingProxyType(announce[4]),
                MappingProxyType(announce[6]),
                frozenset(withdraw[4]),
                frozenset(withdraw[6]),
            )
            return self._holder.swap(lambda cur: with_route_delta(cur, appliance_id, delta)), reason
        merged: Tables = {}
        for v in (4, 6):
            table = dict(rib.table(v))
            for key in withdraw[v]:
                del table[key]
            table.update(announce[v])
            merged[v] = table
        ribs = dict(self._holder.current.routes.learned.ribs)
        ribs[appliance_id] = AdjRibIn(
            appliance_id, MappingProxyType(merged[4]), MappingProxyType(merged[6])
        )
        fresh = RouteIndex.build(ribs)
        return self._holder.swap(lambda cur: with_learned_routes(cur, fresh)), reason

    def _apply_delta(
        self, appliance_id: str, report: RoutesReport, received_at: float
    ) -> FleetSnapshot:
        rib = self._holder.current.routes.learned.ribs.get(appliance_id, AdjRibIn(appliance_id))
        delta = delta_of(rib, report, received_at)
        return self._holder.swap(lambda cur: with_route_delta(cur, appliance_id, delta))

    def _replace(self, appliance_id: str, neighbor: str, new: Tables) -> FleetSnapshot:
        """Replace the session's routes with ``new``: a delta, or a build when big."""
        learned = self._holder.current.routes.learned
        rib = learned.ribs.get(appliance_id, AdjRibIn(appliance_id))
        if len(new[4]) + len(new[6]) + len(rib) < FULL_BUILD_AT:
            delta = replacement_of(rib, neighbor, new)
            return self._holder.swap(lambda cur: with_route_delta(cur, appliance_id, delta))
        ribs = dict(learned.ribs)
        ribs[appliance_id] = replaced_rib(rib, neighbor, new)
        fresh = RouteIndex.build(ribs)  # seconds at a full table; the snapshot stays readable
        log.info(
            "routes of %s: session %s replaced, %d route(s), index rebuilt",
            appliance_id,
            neighbor,
            len(ribs[appliance_id]),
        )
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
