"""Reactive baselines on the same demand: pull-through LRU and LFU caches, and the optimum.

Each site with appliances (origin excepted) gets a pull-through cache of the
same disks as its appliances (times ``scale``; placement plans within
``fill_ratio`` of them but an agent's disk may briefly hold more while it
swaps titles), serving the clients whose best site it is (their
first non-origin candidate: what DNS or anycast would pick), at most the
site's serving capacity per slot (the same ``SATURATION_RATIO`` of its
appliances' Gbit/s, and its link's capacity for an embedded or PNI site).

The unit is a title (as for placement), the clock the simulator's slot: a
cache serves a slot's demand for a title when it holds the title at the start
of the slot; a miss fetches the whole title during that slot (fill bytes at
that moment, often the peak) and its viewers of that slot are served from
upstream.

* **LRU** evicts the titles least recently requested; **LFU** those with the
  fewest bytes requested so far (perfect LFU: counts survive eviction; ties:
  the least recent).
* **Belady** (the offline optimum, an upper bound): in each slot the content
  that would serve the most of that slot's demand, knowing it: titles by bytes
  requested per byte stored, the last one counted fractionally (the
  fractional knapsack, which bounds the best whole-title choice from above).
  Any policy holds some content of at most that size at the start of a slot
  and serves at most that content's demand (capped by the same capacity), so
  no policy, proactive or reactive, serves more from that storage:
  Belady is never below any of them.

With ``warm_start`` the caches start with what the site's appliances held.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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
    fill_bytes: F64  # (slots, sites)
    storage_bytes: F64  # (sites,)


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


def serve_cap(result: SimResult, site: int) -> float:
    """Bytes a site can serve its clients in one slot."""
    m = result.model
    cap = float(m.site_capacity_bps[site])
    if m.sites[site].kind in (SiteKind.EMBEDDED, SiteKind.PNI):
        cap = min(cap, float(m.links.capacity_bps[m.links.of[site, 0]]))
    return cap / 8.0 * result.slot_s


def _per_site(result: SimResult) -> dict[int, list[tuple[int, I64, F64]]]:
    """Site -> [(slot, titles, bytes)] from the run's per-slot cache demand."""
    out: dict[int, list[tuple[int, I64, F64]]] = {}
    for k, (sites, titles, nb) in enumerate(result.cache_demand):
        if len(sites) == 0:
            continue
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
    n_titles = len(m.catalog)
    sizes = m.catalog.sizes.astype(np.float64)
    hit = np.zeros((result.n_slots, len(m.sites)))
    fill = np.zeros((result.n_slots, len(m.sites)))
    storage = np.zeros(len(m.sites))
    demand = _per_site(result)
    warm_by_site: dict[int, set[int]] = {}
    for aid, held in result.warm.items():
        s = int(m.app_site[m.app_index[aid]])
        warm_by_site.setdefault(s, set()).update(m.catalog.index[t] for t in held)
    for site in sites if sites is not None else cache_sites(result):
        room = storage_of(result, site, scale)
        storage[site] = room
        cap = serve_cap(result, site)
        slots = demand.get(site, [])
        if policy == "belady":
            for k, titles, nb in slots:
                hit[k, site] = min(fractional_knapsack(sizes[titles], nb, room), cap)
            continue
        cached = np.zeros(n_titles, dtype=bool)
        last = np.full(n_titles, -1.0)
        freq = np.zeros(n_titles)
        used = 0.0
        for t in sorted(warm_by_site.get(site, ()), key=lambda t: -freq[t]):
            if used + sizes[t] <= room:
                cached[t] = True
                used += sizes[t]
        for k, titles, nb in slots:
            was = cached[titles]
            hit[k, site] = min(float(nb[was].sum()), cap)
            new = titles[~was & (sizes[titles] <= room)]
            fill[k, site] = float(sizes[new].sum())
            cached[new] = True
            used += float(sizes[new].sum())
            last[titles] = k
            freq[titles] += nb
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
    return CacheResult(policy, scale, hit, fill, storage)


def all_caches(result: SimResult, scale: float = 1.0) -> dict[str, CacheResult]:
    return {p: simulate_cache(result, p, scale) for p in POLICIES}
