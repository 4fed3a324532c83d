"""Reactive baselines on the same demand: pull-through LRU and LFU caches, and the optimum.

Each site with appliances (origin excepted) gets a pull-through cache on the
same appliances as the proactive fleet, serving the clients whose best site
it is (their first non-origin candidate: what DNS or anycast would pick), at
most the site's serving capacity per slot (the same ``SATURATION_RATIO`` of its
appliances' Gbit/s, and its link's capacity for an embedded or PNI site). It
is held to what those appliances can do, as the proactive fleet is:

* **Room**: it holds at most ``fill_ratio`` of its disks (times ``scale``),
  the room placement plans in; the rest is where titles in transfer land, for
  both.
* **Fill rate**: it fetches at most its appliances' fill rate caps
  (:func:`localcast.core.fillwindow.rate_cap`, the proactive agents' cap) summed
  over the site, at any hour: a reactive cache has no window, but it has no
  faster disks or uplinks either. Unbounded, the LRU caches of
  ``examples/sim.toml`` fetched 620 TB in two days for 157 TB demanded (a-mrs,
  one ``storage`` appliance capped at 1 Gbit/s, 338 TB: 15.6 Gbit/s on average).

The unit is a title (as for placement), the clock the simulator's slot: a
cache serves a slot's demand for a title when it holds the title at the start
of the slot. A miss queues the title for fetching (each title once; the
misses of one slot most bytes first, then in the order they came); the site
fetches the queue at its fill rate, and a title is served from the slot after
its last byte arrives (as a proactive fill is). Its viewers until then are
served from upstream.

* **LRU** evicts the titles least recently requested (an arrival counts as a
  use); **LFU** those with the fewest bytes requested so far (perfect LFU:
  counts survive eviction; ties: the least recent).
* **Belady** (the offline optimum, an upper bound): in each slot the content
  that would serve the most of that slot's demand, knowing it: titles by bytes
  requested per byte stored, the last one counted fractionally (the
  fractional knapsack, which bounds the best whole-title choice from above),
  from the *whole* disks with no fill limit. Any policy holds some content of
  at most that size at the start of a slot and serves at most that content's
  demand (capped by the same capacity), so no policy, proactive or reactive,
  serves more from that storage: Belady is never below any of them.

With ``warm_start`` the caches start with what the site's appliances held.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from localcast.core.fillwindow import rate_cap
from localcast.core.fleet import SiteKind
from localcast.sim.run import SimResult

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
POLICIES = ("lru", "lfu", "belady")


@dataclass(frozen=True)
class CacheResult:
    policy: str
    scale: float
    hit_bytes: F64  # (slots, sites)
    fill_bytes: F64  # (slots, sites) fetched during each slot
    storage_bytes: F64  # (sites,) the disks (times scale)
    room_bytes: F64  # (sites,) what the cache may hold: fill_ratio of storage (Belady: all)
    # (slots, sites) bytes of the sessions starting in the slot when it held their title (their
    # whole bytes: a session is counted where it started; not capped; Belady: zeros)
    start_hit_bytes: F64


def cache_sites(result: SimResult) -> list[int]:
    m = result.model
    return [
        i
        for i, s in enumerate(m.sites)
        if s.kind is not SiteKind.ORIGIN and np.any(m.app_site == i)
    ]


def storage_of(result: SimResult, site: int, scale: float = 1.0) -> float:
    m = result.model
    disk = sum(
        a.disk_bytes for a, s in zip(m.appliances, m.app_site.tolist(), strict=True) if s == site
    )
    return float(disk) * scale


def room_of(result: SimResult, site: int, scale: float = 1.0) -> float:
    """Bytes a reactive cache at ``site`` may hold: ``fill_ratio`` of its disks, as placed."""
    return storage_of(result, site, scale) * result.spec.fill.fill_ratio


def fill_cap(result: SimResult, site: int) -> float:
    """Bytes ``site``'s appliances may fetch in one slot: their fill rate caps, summed."""
    m = result.model
    bps = sum(
        rate_cap(a.appliance_class, a.fill_bps)
        for a, s in zip(m.appliances, m.app_site.tolist(), strict=True)
        if s == site
    )
    return bps / 8.0 * result.slot_s


def serve_cap(result: SimResult, site: int) -> float:
    """Bytes a site can serve its clients in one slot."""
    m = result.model
    cap = float(m.site_capacity_bps[site])
    if m.sites[site].kind in (SiteKind.EMBEDDED, SiteKind.PNI):
        cap = min(cap, float(m.links.capacity_bps[m.links.of[site, 0]]))
    return cap / 8.0 * result.slot_s


def _per_site(
    per_slot: list[tuple[I64, I64, F64]],
) -> dict[int, list[tuple[int, I64, F64]]]:
    """Site -> [(slot, titles, bytes)] from the run's per-slot (site, title, bytes) rows."""
    out: dict[int, list[tuple[int, I64, F64]]] = {}
    for k, (sites, titles, nb) in enumerate(per_slot):
        if len(sites) == 0:
            continue
        order = np.argsort(sites, kind="stable")
        sites, titles, nb = sites[order], titles[order], nb[order]
        cuts = np.flatnonzero(np.diff(sites)) + 1
        for seg in np.split(np.arange(len(sites)), cuts):
            out.setdefault(int(sites[seg[0]]), []).append((k, titles[seg], nb[seg]))
    return out


def fractional_knapsack(sizes: F64, values: F64, room: float) -> float:
    """The most value ``room`` bytes can hold, items divisible (an upper bound)."""
    if len(sizes) == 0 or room <= 0:
        return 0.0
    order = np.argsort(-(values / np.maximum(sizes, 1.0)), kind="stable")
    s, v = sizes[order], values[order]
    cs = np.cumsum(s)
    whole = int(np.searchsorted(cs, room, side="right"))
    total = float(v[:whole].sum())
    if whole < len(s):
        left = room - (float(cs[whole - 1]) if whole else 0.0)
        total += float(v[whole]) * left / max(float(s[whole]), 1.0)
    return total


def _evict(keys: F64, cached: I64, sizes: F64, need: float) -> I64:
    """The cached titles with the lowest keys whose sizes reach ``need``."""
    n = len(cached)
    k = min(n, 8)
    while True:
        if k >= n:
            part = np.argsort(keys, kind="stable")
        else:
            part = np.argpartition(keys, k)[:k]
            part = part[np.argsort(keys[part], kind="stable")]
        cs = np.cumsum(sizes[cached[part]])
        if cs[-1] >= need or k >= n:
            cut = int(np.searchsorted(cs, need)) + 1
            return cached[part[:cut]]
        k *= 4


def simulate_cache(
    result: SimResult, policy: str, scale: float = 1.0, sites: list[int] | None = None
) -> CacheResult:
    """One policy at every cache site (see the module text)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}: one of {', '.join(POLICIES)}")
    m = result.model
    sizes = m.catalog.sizes.astype(np.float64)
    hit = np.zeros((result.n_slots, len(m.sites)))
    fill = np.zeros((result.n_slots, len(m.sites)))
    storage = np.zeros(len(m.sites))
    rooms = np.zeros(len(m.sites))
    start_hit = np.zeros((result.n_slots, len(m.sites)))
    demand = _per_site(result.cache_demand)
    starts = _per_site(result.cache_starts)
    warm_by_site: dict[int, set[int]] = {}
    for aid, held in result.warm.items():
        s = int(m.app_site[m.app_index[aid]])
        warm_by_site.setdefault(s, set()).update(m.catalog.index[t] for t in held)
    for site in sites if sites is not None else cache_sites(result):
        storage[site] = storage_of(result, site, scale)
        cap = serve_cap(result, site)
        slots = demand.get(site, [])
        if policy == "belady":
            rooms[site] = storage[site]
            for k, titles, nb in slots:
                hit[k, site] = min(fractional_knapsack(sizes[titles], nb, storage[site]), cap)
            continue
        rooms[site] = room_of(result, site, scale)
        _reactive(
            policy,
            slots,
            sizes,
            rooms[site],
            fill_cap(result, site),
            cap,
            warm_by_site.get(site, set()),
            hit[:, site],
            fill[:, site],
            starts.get(site, []),
            start_hit[:, site],
        )
    return CacheResult(policy, scale, hit, fill, storage, rooms, start_hit)


def _reactive(
    policy: str,
    slots: list[tuple[int, I64, F64]],
    sizes: F64,
    room: float,
    budget: float,
    cap: float,
    warm: set[int],
    hit: F64,
    fill: F64,
    starts: list[tuple[int, I64, F64]],
    start_hit: F64,
) -> None:
    """One pull-through cache over the run: ``hit``, ``fill`` and ``start_hit`` (per slot)
    written in place."""
    n_titles = len(sizes)
    n_slots = len(hit)
    cached = np.zeros(n_titles, dtype=bool)
    queued = np.zeros(n_titles, dtype=bool)
    last = np.full(n_titles, -1.0)
    freq = np.zeros(n_titles)
    used = 0.0
    for t in sorted(warm):
        if used + sizes[t] <= room:
            cached[t] = True
            used += sizes[t]
    queue: deque[int] = deque()
    got = 0.0  # bytes of the queue's head fetched so far
    by_slot = {k: (titles, nb) for k, titles, nb in slots}
    started = {k: (titles, nb) for k, titles, nb in starts}
    for k in range(n_slots):
        begun = started.get(k)
        if begun is not None:
            start_hit[k] = float(begun[1][cached[begun[0]]].sum())
        demanded = by_slot.get(k)
        if demanded is not None:
            titles, nb = demanded
            was = cached[titles]
            hit[k] = min(float(nb[was].sum()), cap)
            last[titles] = k
            freq[titles] += nb
            miss = ~was & ~queued[titles] & (sizes[titles] <= room)
            new = titles[miss][np.lexsort((titles[miss], -nb[miss]))]  # most bytes first
            queued[new] = True
            queue.extend(new.tolist())
        left = budget
        arrived: list[int] = []
        while queue and left > 0:
            t = queue[0]
            take = min(left, float(sizes[t]) - got)
            left -= take
            got += take
            if got >= sizes[t]:
                queue.popleft()
                got = 0.0
                queued[t] = False
                arrived.append(t)
        fill[k] = budget - left
        if not arrived:
            continue
        new_arr = np.array(arrived, dtype=np.int64)
        cached[new_arr] = True
        last[new_arr] = k  # an arrival counts as a use
        used += float(sizes[new_arr].sum())
        if used > room:
            inside = np.flatnonzero(cached)
            if policy == "lru":
                gone = _evict(last[inside] * n_titles + inside, inside, sizes, used - room)
            else:  # fewest bytes requested; ties: least recent, then lower title
                order = inside[np.lexsort((inside, last[inside], freq[inside]))]
                cut = int(np.searchsorted(np.cumsum(sizes[order]), used - room)) + 1
                gone = order[:cut]
            cached[gone] = False
            used -= float(sizes[gone].sum())


def all_caches(result: SimResult, scale: float = 1.0) -> dict[str, CacheResult]:
    return {p: simulate_cache(result, p, scale) for p in POLICIES}
