"""The fill agents of every appliance, advanced slot by slot with the core's decisions.

What each simulated agent does per slot, as ``localcast.appliance.fill.agent``
does with a real manifest (see there and ``control.fill_manifest``):

* its titles in fetch order: urgent first (:func:`localcast.core.fillwindow.is_urgent`,
  a release due before the site's next window), then by the forecast demand
  in its site's region, then by id; only urgent ones while the window is shut;
* at :func:`localcast.core.fillwindow.fill_rate` for its class cap or override
  (:func:`~localcast.core.fillwindow.rate_cap`) over the slot;
* per title, sources from :func:`localcast.core.fillsources.fill_sources`
  (peer > tier > origin, site leaders among the appliances planning it) and the
  step from :func:`localcast.core.fillqueue.next_step` (fetch now, or wait for
  a planned nearer copy up to the escalation policy); no source ever fails;
* a title starts when it fits: titles the manifest no longer lists are
  evicted first, coldest first (:func:`localcast.appliance.fill.plan.eviction_order`,
  :func:`~localcast.appliance.fill.plan.to_evict`); once every listed title is
  held, the unlisted ones are deleted;
* a title counts as held (steerable) when its last byte arrives; the files of
  a title travel together, so each crossing of a link counts once per file.

The nodes given to ``fill_sources`` are the target's site, every PNI, IX and
origin appliance: other embedded sites are never sources (its rule), so the
answer is the same as with every appliance, for less work.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from localcast.appliance.fill.plan import eviction_order, to_evict
from localcast.core.fillqueue import Wait, next_step
from localcast.core.fillsources import EscalationPolicy, FillNode, Holding, fill_sources
from localcast.core.fillwindow import (
    FillWindow,
    fill_rate,
    is_open,
    is_urgent,
    parse_window,
    rate_cap,
)
from localcast.core.fleet import SiteKind
from localcast.core.placement import ApplianceManifest
from localcast.sim.model import SimModel

Holds = npt.NDArray[np.bool_]
_TIER_FIRST = {SiteKind.ORIGIN: 0, SiteKind.IX: 1, SiteKind.PNI: 2, SiteKind.EMBEDDED: 3}


@dataclass
class FillStats:
    link_bytes: dict[tuple[int, int], float] = field(default_factory=lambda: defaultdict(float))
    # (source site, target site) -> title index -> times its files crossed that link
    crossings: dict[tuple[int, int], dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    titles_filled: int = 0
    titles_evicted: int = 0
    bytes_evicted: int = 0
    no_room: int = 0
    fill_sources_calls: int = 0


class FillAgents:
    """Every placed appliance's agent; ``holds`` (appliances x titles) is updated in place."""

    def __init__(
        self,
        model: SimModel,
        holds: Holds,
        policy: EscalationPolicy,
        n_slots: int,
    ) -> None:
        self.model = model
        self.holds = holds
        self.policy = policy
        cat = model.catalog
        self.sizes = cat.sizes
        self.ids = cat.ids
        n_apps = len(model.appliances)
        self.site_of = model.app_site
        self.placed = [
            i
            for i, a in enumerate(model.appliances)
            if model.sites[self.site_of[i]].kind is not SiteKind.ORIGIN
        ]
        self.placed.sort(
            key=lambda i: (_TIER_FIRST[model.sites[self.site_of[i]].kind], model.appliances[i].id)
        )
        self.nodes = [
            FillNode(a.id, a.site_id, model.sites[self.site_of[i]].kind,
                     model.sites[self.site_of[i]].lat, model.sites[self.site_of[i]].lon)
            for i, a in enumerate(model.appliances)
        ]  # fmt: skip
        wide = [
            n for i, n in enumerate(self.nodes)
            if model.sites[self.site_of[i]].kind is not SiteKind.EMBEDDED
        ]  # fmt: skip
        self.site_nodes: list[list[FillNode]] = []
        for si, s in enumerate(model.sites):
            own = [n for i, n in enumerate(self.nodes) if self.site_of[i] == si]
            self.site_nodes.append(own + [n for n in wide if n.site_id != s.id])
        self.windows: list[FillWindow] = [parse_window(s.fill_window, s.tz) for s in model.sites]
        self.caps = [rate_cap(a.appliance_class, a.fill_bps) for a in model.appliances]
        self.disk = [a.disk_bytes for a in model.appliances]
        self.used = [0] * n_apps
        self.held: list[set[int]] = [set() for _ in range(n_apps)]
        self.holders: list[set[int]] = [set() for _ in range(len(cat))]
        self.wanted: list[list[int]] = [[] for _ in range(n_apps)]
        self.wanted_set: list[set[int]] = [set() for _ in range(n_apps)]
        self.pending: list[list[int]] = [[] for _ in range(n_apps)]
        # title id -> its place in the last manifest that listed it (the agent's eviction order)
        self.last_rank: list[dict[str, int]] = [{} for _ in range(n_apps)]
        self.evict_queue: list[list[str] | None] = [None] * n_apps  # per plan, coldest first
        self.title_bytes = _Sizes(cat.index, cat.sizes)
        self.progress: dict[tuple[int, int], float] = {}
        self.first_wanted: dict[tuple[int, int], float] = {}
        self.waits: dict[tuple[int, int], tuple[int, float]] = {}
        self.version = np.zeros(len(cat), dtype=np.int64)
        self.planned_ids: dict[int, frozenset[str]] = {}
        self.manifests: Mapping[str, ApplianceManifest] = {}
        self.release_at: dict[int, float] = {}
        self.stats = FillStats()
        self.slot_bytes = np.zeros((n_slots, len(model.sites)))  # fill bytes into each site
        self.changed: set[int] = set()  # appliances whose held set changed since last asked

    # --- holdings ---------------------------------------------------------------------------

    def _add(self, a: int, t: int) -> None:
        self.held[a].add(t)
        self.holders[t].add(a)
        self.holds[a, t] = True
        self.version[t] += 1
        self.changed.add(a)

    def _remove(self, a: int, t: int) -> None:
        self.held[a].discard(t)
        self.holders[t].discard(a)
        self.holds[a, t] = False
        self.used[a] -= int(self.sizes[t])
        self.version[t] += 1
        self.changed.add(a)

    def warm(self, manifests: Mapping[str, ApplianceManifest]) -> None:
        """Start with every appliance holding its manifest (a fleet that had filled)."""
        idx = self.model.catalog.index
        for aid, m in manifests.items():
            a = self.model.app_index[aid]
            for tid in m.titles:
                t = idx[tid]
                if t not in self.held[a]:
                    self._add(a, t)
                    self.used[a] += int(self.sizes[t])

    def holdings(self) -> dict[str, frozenset[str]]:
        ids = self.ids
        return {
            self.model.appliances[a].id: frozenset(ids[t] for t in self.held[a])
            for a in self.placed
        }

    # --- a new plan ---------------------------------------------------------------------------

    def apply_plan(
        self,
        manifests: Mapping[str, ApplianceManifest],
        demand: Mapping[str, Mapping[str, float]],
        release_at: Mapping[int, float],
        now: float,
    ) -> None:
        """New manifests (``plan_fill``'s) with the forecast they came from."""
        idx = self.model.catalog.index
        self.manifests = manifests
        self.release_at = dict(release_at)
        self.planned_ids = {}
        for a in self.placed:
            app = self.model.appliances[a]
            m = manifests.get(app.id)
            region = self.model.sites[self.site_of[a]].region_id
            d = demand.get(region, {})
            titles = sorted(m.titles if m else (), key=lambda t: (-d.get(t, 0.0), t))
            old = self.wanted_set[a]
            self.wanted[a] = [idx[t] for t in titles]
            self.wanted_set[a] = set(self.wanted[a])
            self.last_rank[a].update({t: r for r, t in enumerate(titles)})
            self.evict_queue[a] = None
            self.pending[a] = [t for t in self.wanted[a] if t not in self.held[a]]
            for t in self.wanted_set[a] - old:
                self.first_wanted[(a, t)] = now
            for t in old - self.wanted_set[a]:
                self.first_wanted.pop((a, t), None)
                if self.progress.pop((a, t), None) is not None:
                    self.used[a] -= int(self.sizes[t])  # a part of a title no longer wanted

    def _planned(self, t: int) -> frozenset[str]:
        got = self.planned_ids.get(t)
        if got is None:
            tid = self.ids[t]
            got = frozenset(aid for aid, m in self.manifests.items() if tid in m.titles)
            self.planned_ids[t] = got
        return got

    # --- a slot -------------------------------------------------------------------------------

    def step(self, now: float, slot_s: float, slot: int) -> None:
        """Every agent's work during ``[now, now + slot_s)``; titles complete count from then."""
        for a in self.placed:
            if self.pending[a]:
                self._agent(a, now, slot_s, slot)
            elif len(self.held[a]) > len(self.wanted_set[a]) and self.manifests:
                for t in [t for t in self.held[a] if t not in self.wanted_set[a]]:
                    self._remove(a, t)  # the manifest is complete: unlisted titles go

    def _agent(self, a: int, now: float, slot_s: float, slot: int) -> None:
        si = int(self.site_of[a])
        window = self.windows[si]
        pending = self.pending[a]
        urgent = [
            t
            for t in pending
            if t in self.release_at and is_urgent(self.release_at[t], window, now)
        ]
        rate = fill_rate(window, self.caps[a], now, bool(urgent))
        if rate <= 0:
            return
        budget = rate / 8.0 * slot_s
        order = urgent + (
            [t for t in pending if t not in set(urgent)] if is_open(window, now) else []
        )
        me = self.nodes[a]
        nodes = self.site_nodes[si]
        done: list[int] = []
        for t in order:
            if budget <= 0:
                break
            wait = self.waits.get((a, t))
            if wait is not None and wait[0] == self.version[t] and now < wait[1]:
                continue
            holding = {self.nodes[h].appliance_id: Holding.COMPLETE for h in self.holders[t]}
            sources = fill_sources(me, self.ids[t], nodes, holding, self._planned(t), self.policy)
            self.stats.fill_sources_calls += 1
            step = next_step(sources, {}, self.first_wanted.get((a, t), now), now, self.policy)
            if isinstance(step, Wait):
                self.waits[(a, t)] = (int(self.version[t]), step.until)
                continue
            size = int(self.sizes[t])
            got = self.progress.get((a, t))
            if got is None:
                if not self._room(a, size):
                    self.stats.no_room += 1
                    continue
                self.used[a] += size
                got = 0.0
            take = min(budget, size - got)
            budget -= take
            got += take
            src = self.model.site_index[step.source.site_id]
            self.stats.link_bytes[(src, si)] += take
            self.slot_bytes[slot, si] += take
            if got >= size:
                self.progress.pop((a, t), None)
                self._add(a, t)
                self.stats.titles_filled += 1
                self.stats.crossings[(src, si)][t] += 1
                done.append(t)
            else:
                self.progress[(a, t)] = got
        if done:
            gone = set(done)
            self.pending[a] = [t for t in pending if t not in gone]

    def _room(self, a: int, size: int) -> bool:
        need = self.used[a] + size - self.disk[a]
        if need <= 0:
            return True
        queue = self.evict_queue[a]
        if queue is None:  # the unlisted titles only leave until the next plan: order once
            unlisted = [self.ids[t] for t in self.held[a] if t not in self.wanted_set[a]]
            queue = self.evict_queue[a] = eviction_order(unlisted, self.last_rank[a])
        idx = self.model.catalog.index
        held = self.held[a]
        victims = to_evict((tid for tid in queue if idx[tid] in held), self.title_bytes, need)
        for tid in victims:
            t = idx[tid]
            self._remove(a, t)
            self.stats.titles_evicted += 1
            self.stats.bytes_evicted += int(self.sizes[t])
        if victims:  # they were the first ones still held: drop what is behind them
            self.evict_queue[a] = queue[queue.index(victims[-1]) + 1 :]
        return self.used[a] + size <= self.disk[a]

    def take_changed(self) -> set[int]:
        out, self.changed = self.changed, set()
        return out


class _Sizes(Mapping[str, int]):
    """Title id -> bytes, read from the catalog's arrays (what ``to_evict`` weighs)."""

    def __init__(self, index: Mapping[str, int], sizes: npt.NDArray[np.int64]) -> None:
        self._index = index
        self._sizes = sizes

    def __getitem__(self, key: str) -> int:
        return int(self._sizes[self._index[key]])

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def crossings_summary(crossings: Mapping[int, int], files_per_title: list[int]) -> dict[str, int]:
    """Files and transfers of one link, and how many files crossed it n times (n -> files)."""
    hist: dict[str, int] = defaultdict(int)
    files = transfers = worst = 0
    for t, n in crossings.items():
        k = files_per_title[t]
        files += k
        transfers += n * k
        worst = max(worst, n)
        hist[str(n)] += k
    return {
        "files": files,
        "transfers": transfers,
        "max_crossings": worst,
        **{"x" + n: v for n, v in sorted(hist.items(), key=lambda kv: int(kv[0]))},
    }
