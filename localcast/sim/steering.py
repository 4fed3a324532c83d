"""Batched steering: one LPM call per batch of sessions, ``steer`` once per decision class.

Why this gives :func:`localcast.core.steering.steer`'s answer for every session
without calling it per session:

1. **Route class.** Every prefix of the snapshot's route table (configured and
   learned: the same prefixes) is in one :class:`~localcast.core.lpm.LpmIndex`.
   Every prefix covering an address is on the parent chain of its longest
   match, so two addresses with the same entry have the same covering routes,
   hence the same :func:`~localcast.core.steering.candidate_sites` (the client
   location falls back to the best route's site, and loads do not change
   during a run). Entries are looked up in one batched call
   (:meth:`LpmIndex.lookup_v4_batch` / :meth:`~LpmIndex.lookup_v6_batch`);
   ``candidate_sites`` runs once per new entry, and entries whose candidates
   (sites in order, with the appliances that heard the route) are equal share a
   *route class*.
2. **Availability class.** Within a route class, ``steer`` depends on the title
   only through the appliances that hold it (eligibility) and the rendezvous
   order inside each site. The order inside a site permutes appliances of that
   site only, and the selection (``per_site`` first, then in order, one slot
   kept for the origin) depends on the sites of the ranked entries, not on
   which appliance of a site is where. So the *sites* of the pathways, in
   order, are a function of (route class, number of eligible holders per
   candidate site). That count vector, packed in one integer, is the key.
3. ``steer`` runs once per new (route class, key) with a representative title
   and address; its pathways' sites are the answer for every session of the
   class. ``tests/test_sim_steering.py`` checks this against ``steer`` per
   session.

Appliance capacity is pooled per site by the simulator (players fail over to
the next pathway, which is often the site's second appliance), so sites are
what it needs. Misses: the *best site* of a client is its first non-origin
candidate; a decision whose first pathway is elsewhere carries why, from
``steer``'s exclusions at that site (content miss, health miss, other).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from localcast.core.fillplan import demand_region
from localcast.core.fleet import FleetSnapshot, SiteKind
from localcast.core.lpm import LpmIndex
from localcast.core.steering import (
    HEALTH_MISS,
    SteeringDecision,
    candidate_sites,
    ineligibility,
    steer,
)
from localcast.sim.model import SimModel

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Holds = npt.NDArray[np.bool_]

#: Why a client's first pathway is not at its best site.
MISS_NONE, MISS_CONTENT, MISS_HEALTH, MISS_OTHER = 0, 1, 2, 3
MISS_NAMES = ("none", "content", "health", "other")
_PROBE = "\x00sim-probe"  # a title id no catalog has: eligibility without the title


@dataclass(frozen=True)
class RouteClass:
    id: int
    rep_ip: str
    sites: tuple[int, ...]  # candidate sites in steering order
    allowed: tuple[tuple[int, ...], ...]  # per candidate: appliances eligible whatever the title
    best: int  # first non-origin candidate (-1: none)
    embedded: bool  # an embedded site is a candidate
    region: str  # the popularity region the control plane counts the client's demand in
    base: int  # radix of the availability key


@dataclass(frozen=True)
class ClassDecision:
    pathway_sites: tuple[int, ...]  # the site of each pathway, in order
    choices: tuple[int, ...]  # distinct sites, first occurrence order (the spill order)
    miss: int  # MISS_* at the best site
    rep_title: int


def v4_first(prefixes: Sequence[str]) -> list[str]:
    return [p for p in prefixes if ":" not in p] + [p for p in prefixes if ":" in p]


class BatchSteering:
    """Route classes, availability keys and decisions, cached for a run."""

    def __init__(self, model: SimModel, limit: int, per_site: int, now: float) -> None:
        self.model = model
        self.limit = limit
        self.per_site = per_site
        self.now = now
        self.lpm = LpmIndex.from_prefixes(v4_first(model.prefixes))
        self.entry_class = np.full(self.lpm.size + 1, -1, dtype=np.int32)
        self.classes: list[RouteClass] = []
        self._by_signature: dict[tuple[object, ...], int] = {}
        self.decisions: dict[tuple[int, int], ClassDecision] = {}
        self.lpm_calls = 0
        self.steer_calls = 0
        self._counts: dict[tuple[int, ...], I64] = {}
        self._keys: dict[int, I64] = {}
        self._holds_version = -1
        self._site_apps: list[list[int]] = [[] for _ in model.sites]
        for i, sid in enumerate(model.app_site.tolist()):
            self._site_apps[sid].append(i)

    # --- route classes --------------------------------------------------------------------

    def lookup(self, hi: U64, lo: U64, v6: npt.NDArray[np.bool_]) -> I32:
        """LPM entries of addresses: one batched call per address family present."""
        out = np.zeros(len(lo), dtype=np.int32)
        if len(lo) == 0:
            return out
        six = np.flatnonzero(v6)
        if len(six) == 0:
            out[:] = self.lpm.lookup_v4_batch(lo.astype(np.uint32))
        else:
            four = np.flatnonzero(~v6)
            if len(four):
                out[four] = self.lpm.lookup_v4_batch(lo[four].astype(np.uint32))
            out[six] = self.lpm.lookup_v6_batch(hi[six], lo[six])
        self.lpm_calls += 1
        return out

    def classify(self, snapshot: FleetSnapshot, hi: U64, lo: U64, v6: npt.NDArray[np.bool_]) -> I32:
        """The route class of each address."""
        entries = self.lookup(hi, lo, v6)
        cls = self.entry_class[entries]
        new = np.flatnonzero(cls < 0)
        if len(new):
            uniq, first = np.unique(entries[new], return_index=True)
            for entry, at in zip(uniq.tolist(), new[first].tolist(), strict=True):
                ip = _address(int(hi[at]), int(lo[at]), bool(v6[at]))
                self.entry_class[entry] = self._route_class(snapshot, ip)
            cls = self.entry_class[entries]
        return cls

    def class_of_ip(self, snapshot: FleetSnapshot, ip: str) -> int:
        hi, lo, six = _split(ip)
        return int(
            self.classify(
                snapshot,
                np.array([hi], dtype=np.uint64),
                np.array([lo], dtype=np.uint64),
                np.array([six]),
            )[0]
        )

    def _route_class(self, snapshot: FleetSnapshot, ip: str) -> int:
        cands = candidate_sites(snapshot, ip)
        signature = tuple((c.site.id, c.routed) for c in cands)
        known = self._by_signature.get(signature)
        if known is not None:
            return known
        m = self.model
        sites = tuple(m.site_index[c.site.id] for c in cands)
        allowed: list[tuple[int, ...]] = []
        for c, s in zip(cands, sites, strict=True):
            ok = []
            for a in self._site_apps[s]:
                app = snapshot.appliances[m.appliances[a].id]
                if c.routed is not None and app.id not in c.routed:
                    continue
                probe = replace(app, titles=frozenset({_PROBE}))
                if ineligibility(probe, _PROBE, self.now) is None:
                    ok.append(a)
            allowed.append(tuple(ok))
        best = next(
            (s for c, s in zip(cands, sites, strict=True) if c.site.kind is not SiteKind.ORIGIN), -1
        )
        # the region the control plane counts this client's sessions in, from a real decision
        region = demand_region(self.steer_one(snapshot, ip, m.catalog.ids[0]), snapshot.sites)
        rc = RouteClass(
            id=len(self.classes),
            rep_ip=ip,
            sites=sites,
            allowed=tuple(allowed),
            best=best,
            embedded=any(c.site.kind is SiteKind.EMBEDDED for c in cands),
            region=region,
            base=max((len(a) for a in allowed), default=0) + 1,
        )
        self.classes.append(rc)
        self._by_signature[signature] = rc.id
        return rc.id

    # --- availability keys ----------------------------------------------------------------

    def _class_keys(self, c: RouteClass, holds: Holds, version: int) -> I64:
        if version != self._holds_version:
            self._counts.clear()
            self._keys.clear()
            self._holds_version = version
        keys = self._keys.get(c.id)
        if keys is not None:
            return keys
        n_titles = holds.shape[1]
        if c.base ** len(c.sites) >= 2**62:
            raise ValueError(
                f"route class of {c.rep_ip}: {len(c.sites)} candidate sites of up to "
                f"{c.base - 1} appliances do not fit an availability key"
            )
        keys = np.zeros(n_titles, dtype=np.int64)
        radix = 1
        for allowed in c.allowed:
            counts = self._counts.get(allowed)
            if counts is None:
                counts = (
                    holds[list(allowed)].sum(axis=0, dtype=np.int64)
                    if allowed
                    else np.zeros(n_titles, dtype=np.int64)
                )
                self._counts[allowed] = counts
            keys += counts * radix
            radix *= c.base
        self._keys[c.id] = keys
        return keys

    # --- decisions ------------------------------------------------------------------------

    def decide(
        self,
        snapshot: FleetSnapshot,
        classes: I32,
        titles: npt.NDArray[np.int32],
        holds: Holds,
        holds_version: int,
    ) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int8]]:
        """Per item: its spill order of sites (``(n, limit)``, -1 padded) and its miss."""
        n = len(classes)
        choices = np.full((n, self.limit), -1, dtype=np.int16)
        miss = np.zeros(n, dtype=np.int8)
        if n == 0:
            return choices, miss
        order = np.argsort(classes, kind="stable")
        bounds = np.flatnonzero(np.diff(classes[order])) + 1
        for group in np.split(order, bounds):
            c = self.classes[int(classes[group[0]])]
            keys = self._class_keys(c, holds, holds_version)[titles[group]]
            uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
            rows = np.full((len(uniq), self.limit), -1, dtype=np.int16)
            misses = np.zeros(len(uniq), dtype=np.int8)
            for u, (k, at) in enumerate(zip(uniq.tolist(), first.tolist(), strict=True)):
                dec = self.decisions.get((c.id, k))
                if dec is None:
                    dec = self._decide(snapshot, c, int(titles[group[at]]))
                    self.decisions[(c.id, k)] = dec
                rows[u, : len(dec.choices)] = dec.choices
                misses[u] = dec.miss
            choices[group] = rows[inv.reshape(-1)]
            miss[group] = misses[inv.reshape(-1)]
        return choices, miss

    def steer_one(self, snapshot: FleetSnapshot, ip: str, title: str) -> SteeringDecision:
        return steer(snapshot, ip, title, self.now, self.limit, self.per_site)

    def _decide(self, snapshot: FleetSnapshot, c: RouteClass, title: int) -> ClassDecision:
        self.steer_calls += 1
        tid = self.model.catalog.ids[title]
        d = self.steer_one(snapshot, c.rep_ip, tid)
        idx = self.model.site_index
        sites = tuple(idx[p.site_id] for p in d.pathways)
        choices = tuple(dict.fromkeys(sites))
        miss = MISS_NONE
        if c.best >= 0 and (not sites or sites[0] != c.best):
            best_id = self.model.sites[c.best].id
            why = [x.reason for x in d.excluded if x.site_id == best_id]
            if any(r.startswith("content miss") for r in why):
                miss = MISS_CONTENT
            elif any(r.startswith(HEALTH_MISS) for r in why):
                miss = MISS_HEALTH
            else:
                miss = MISS_OTHER
        return ClassDecision(sites, choices, miss, title)

    def pathway_sites(
        self, snapshot: FleetSnapshot, ip: str, title: str, holds: Holds, holds_version: int
    ) -> tuple[int, ...]:
        """The sites of the pathways the batched path gives one (address, title)."""
        c = self.classes[self.class_of_ip(snapshot, ip)]
        t = self.model.catalog.index[title]
        key = int(self._class_keys(c, holds, holds_version)[t])
        dec = self.decisions.get((c.id, key))
        if dec is None:
            dec = self._decide(snapshot, c, t)
            self.decisions[(c.id, key)] = dec
        return dec.pathway_sites


def _split(ip: str) -> tuple[int, int, bool]:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    v = int(addr)
    return v >> 64, v & (2**64 - 1), addr.version == 6


def _address(hi: int, lo: int, v6: bool) -> str:
    if v6:
        return str(ipaddress.IPv6Address((hi << 64) | lo))
    return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
