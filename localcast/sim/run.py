"""The simulated days: plan, fill, steer, enforce capacity, count.

Per simulated UTC day, at 00:00 UTC, as the control plane does every new day:
:func:`localcast.core.fillplan.plan_fill` (forecast over the demand
counted so far, placement per site, versioned manifests). Then per slot
(``slot_minutes``):

1. **Steer** the slot's pieces of sessions (see :mod:`localcast.sim.steering`):
   one LPM call for the batch, ``steer`` once per new decision class, with the
   snapshot of what every appliance holds complete at the start of the slot.
2. **Capacity** (:func:`allocate`): each piece takes its pathways' sites in
   order. A site takes bytes up to ``SATURATION_RATIO`` (the core's saturation
   threshold) of its appliances' Gbit/s over the slot, a link up to its
   capacity; pieces are admitted in arrival order. A piece that does not fit
   spills to its next site: a *health miss* (its site was saturated) or a
   *link* miss (the link to it was full). The last pathway always takes it
   (transit over capacity is reported as such): every byte demanded is served.
3. **Fill** (:mod:`localcast.sim.fill`): every agent advances over the slot;
   what completes is steerable from the next slot.
4. **Count**: bytes by source (the kind of the serving site), per site, per
   link, per ISP; misses by class; the sessions started, per (day, region the
   control plane counts them in, title), which the next day's plan reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from localcast.core.fillplan import FillPlan, PlanParams, plan_fill
from localcast.core.fillsources import EscalationPolicy
from localcast.core.forecast import DemandRecord, ForecastParams, Release
from localcast.core.placement import ApplianceManifest, PlacementParams, churn_floor
from localcast.sim.config import SimSpec
from localcast.sim.demand import (
    DAY_S,
    Pieces,
    Popularity,
    Sessions,
    concat,
    explode,
    load_trace,
    model_day,
)
from localcast.sim.fill import FillAgents, FillStats
from localcast.sim.model import SimModel, build_model, population_entries
from localcast.sim.steering import MISS_CONTENT, MISS_HEALTH, MISS_NONE, MISS_OTHER, BatchSteering

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Miss classes counted per (day, ISP): where the bytes of a client went against its best site.
MISS_CLASSES = ("best_site", "content_miss", "health_miss", "link_full", "other", "no_site")
_C_BEST, _C_CONTENT, _C_HEALTH, _C_LINK, _C_OTHER, _C_NONE = range(6)
#: Why a piece left a choice: nothing, its site was saturated, the link to it was full.
SPILL_NONE, SPILL_SITE, SPILL_LINK = 0, 1, 2
_ROUNDS = 4  # admission passes per choice rank


# --- capacity -------------------------------------------------------------------------------


def _group_cumsum(values: F64, groups: I64) -> F64:
    """Running sum of ``values`` within each group, in the given (arrival) order."""
    order = np.argsort(groups, kind="stable")
    v = values[order]
    g = groups[order]
    cs = np.cumsum(v)
    starts = np.ones(len(g), dtype=bool)
    starts[1:] = g[1:] != g[:-1]
    base = (cs - v)[starts]
    out = np.empty_like(cs)
    out[order] = cs - base[np.cumsum(starts) - 1]
    return out


def allocate(
    choices: npt.NDArray[np.int16],
    nbytes: F64,
    links: npt.NDArray[np.int32],
    site_room: F64,
    link_room: F64,
) -> tuple[I64, I64, npt.NDArray[np.int8]]:
    """Serve each piece at the first of its choices with room, in arrival order.

    ``choices`` (pieces x k) are site indices, -1 padded; ``links`` the link each
    choice would use; ``site_room`` / ``link_room`` the bytes left (updated in
    place). Returns per piece: the site serving it, the choice rank used, and why
    it left its first choice (``SPILL_*``). The last choice of a piece always
    takes it.
    """
    n, k = choices.shape
    served = np.full(n, -1, dtype=np.int64)
    rank = np.zeros(n, dtype=np.int64)
    spill = np.zeros(n, dtype=np.int8)
    pending = np.arange(n)
    for r in range(k):
        if len(pending) == 0:
            break
        site = choices[pending, r].astype(np.int64)
        has = site >= 0
        pending = pending[has]
        site = site[has]
        link = links[pending, r].astype(np.int64)
        last = np.ones(len(pending), dtype=bool) if r == k - 1 else choices[pending, r + 1] < 0
        todo = np.arange(len(pending))
        refused = np.zeros(len(pending), dtype=np.int8)
        for _round in range(_ROUNDS):
            b = nbytes[pending[todo]]
            s, ln = site[todo], link[todo]
            site_ok = _group_cumsum(b, s) <= site_room[s]
            link_ok = _group_cumsum(b, ln) <= link_room[ln]
            ok = (site_ok & link_ok) | last[todo]
            if ok.any():
                admit = todo[ok]
                np.subtract.at(site_room, site[admit], nbytes[pending[admit]])
                np.subtract.at(link_room, link[admit], nbytes[pending[admit]])
                served[pending[admit]] = site[admit]
                rank[pending[admit]] = r
            refused[todo[~ok]] = np.where(site_ok[~ok], SPILL_LINK, SPILL_SITE)
            if ok.all() or not ok.any():
                break
            # those refused were counted ahead of later pieces on their other resource:
            # try them again against what is really left
            todo = todo[~ok]
        out = served[pending] < 0
        first = (spill[pending] == SPILL_NONE) & out
        spill[pending[first]] = refused[first]
        pending = pending[out]
    return served, rank, spill


# --- the run --------------------------------------------------------------------------------


@dataclass
class SimResult:
    spec: SimSpec
    model: SimModel
    t0: float
    slot_s: float
    n_slots: int
    src_bytes: F64  # (slots, isps + 1, 4) bytes by source kind per client ISP
    site_bytes: F64  # (slots, sites) served
    link_bytes: F64  # (slots, links) served
    own_demand: F64  # (slots, sites) bytes of clients whose best site it is
    own_served: F64  # (slots, sites) of those, served by it
    own_held: F64  # (slots, sites) of those, whose title it held (before capacity)
    miss_bytes: F64  # (days, isps + 1, MISS_CLASSES)
    miss_sessions: I64  # (days, isps + 1, MISS_CLASSES)
    reach_bytes: F64  # (days, isps + 1): bytes of clients with an embedded candidate site
    sessions: I64  # (days, isps + 1) started
    demanded_bytes: float
    fill: FillStats
    fill_slot_bytes: F64  # (slots, sites) fill bytes into each site
    churn: list[dict[str, Any]]
    cache_demand: list[tuple[I64, I64, F64]]  # per slot: (best site, title, bytes)
    # per slot, the sessions of the ISPs' clients starting in it (the first slot: those
    # playing then): (best site, title, the session's bytes in the run)
    cache_starts: list[tuple[I64, I64, F64]]
    start_offloaded: float  # bytes of those sessions whose first piece an embedded site served
    warm: Mapping[str, frozenset[str]]  # what each appliance held at the start
    counters: dict[str, float] = field(default_factory=dict)

    @property
    def slots_per_day(self) -> int:
        return round(DAY_S / self.slot_s)


def make_sessions(spec: SimSpec, model: SimModel, popularity: Popularity) -> Sessions:
    if spec.demand.trace is not None:
        return load_trace(spec.demand.trace, model.catalog, spec.demand.session_minutes * 60.0)
    days = range(-1, spec.sim.days)  # day -1: sessions still playing at the start
    return concat([model_day(spec, model.catalog, model.pops, popularity, d) for d in days])


def plan_params(spec: SimSpec) -> PlanParams:
    f = spec.fill
    return PlanParams(
        forecast=ForecastParams(
            half_life_days=f.half_life_days,
            lookback_days=f.lookback_days,
            release_lead_days=f.release_lead_days,
            release_boost_days=f.release_boost_days,
        ),
        placement=PlacementParams(fill_ratio=f.fill_ratio, replica_share=f.replica_share),
        floor_sessions=f.floor_sessions,
    )


class _Snapshots:
    """The steering snapshot of the current holdings, rebuilt for changed appliances only."""

    def __init__(self, model: SimModel, agents: FillAgents) -> None:
        self.model = model
        self.agents = agents
        self.version = 1
        self._current = model.snapshot(agents.holdings(), self.version)
        self._apps = dict(self._current.appliances)
        self._dirty: set[int] = set()
        agents.take_changed()

    def touch(self) -> bool:
        changed = self.agents.take_changed()
        if changed:
            self._dirty |= changed
            self.version += 1
        return bool(changed)

    @property
    def current(self) -> Any:
        if self._dirty:
            ids = self.model.catalog.ids
            for a in self._dirty:
                app = self.model.appliances[a]
                held = frozenset(ids[t] for t in self.agents.held[a])
                self._apps[app.id] = replace(app, titles=held)
            self._current = self.model.snapshot_of(self._apps, self.version)
            self._dirty = set()
        return self._current


def simulate(
    spec: SimSpec,
    model: SimModel | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimResult:
    """Run ``spec`` (see the module text)."""
    clock = time.perf_counter()
    say = progress or (lambda _msg: None)
    model = model if model is not None else build_model(spec)
    cat = model.catalog
    t0 = spec.sim.start_ts
    slot_s = spec.sim.slot_minutes * 60.0
    spd = int(DAY_S // slot_s)
    days = spec.sim.days
    n_slots = spd * days
    popularity = Popularity(spec, cat, model.pops)
    sessions = make_sessions(spec, model, popularity)
    pieces: Pieces = explode(sessions, t0, slot_s, n_slots)
    say(f"demand: {len(sessions):,} sessions, {len(pieces):,} pieces")
    counters: dict[str, float] = {"t_demand_s": time.perf_counter() - clock}

    n_sites, n_isp = len(model.sites), len(model.isps)
    n_links = len(model.links.ids)
    holds = np.zeros((len(model.appliances), len(cat)), dtype=bool)
    origin_rows = [i for i, s in enumerate(model.app_site.tolist()) if model.site_kind[s] == 3]
    holds[origin_rows] = True
    policy = EscalationPolicy(wait_s=spec.fill.wait_s, max_tier_sites=spec.fill.max_tier_sites)
    agents = FillAgents(model, holds, policy, n_slots)
    steering = BatchSteering(model, spec.steering.max_pathways, spec.steering.per_site, t0)
    snaps = _Snapshots(model, agents)

    # clients' ISP: population prefix by LPM (one batched call), else "other"
    entry_pop = population_entries(model.pops.prefixes)
    if len(sessions) and (sessions.pop < 0).any():
        found = np.zeros(len(sessions), dtype=np.int32)
        four = ~sessions.v6
        if four.any():
            found[four] = model.pop_index.lookup_v4_batch(sessions.ip_lo[four].astype(np.uint32))
        if (~four).any():
            found[~four] = model.pop_index.lookup_v6_batch(
                sessions.ip_hi[~four], sessions.ip_lo[~four]
            )
        pop = entry_pop[found]
    else:
        pop = sessions.pop
    isp_of_session = np.where(pop >= 0, model.pops.isp[np.maximum(pop, 0)], n_isp - 1).astype(
        np.int64
    )

    # the prior: the model's expected demand as history before the first day
    releases = _releases(model, popularity, spec)
    release_at = {cat.index[r.title_id]: r.release_at for r in releases}
    history: list[DemandRecord] = _prior(spec, model, popularity, steering, snaps)
    params = plan_params(spec)
    manifests: dict[str, ApplianceManifest] = {}
    churn: list[dict[str, Any]] = []
    region_names: list[str] = []
    region_index: dict[str, int] = {}

    src_bytes = np.zeros((n_slots, n_isp, 4))
    site_bytes = np.zeros((n_slots, n_sites))
    link_bytes = np.zeros((n_slots, n_links))
    own_demand = np.zeros((n_slots, n_sites))
    own_served = np.zeros((n_slots, n_sites))
    own_held = np.zeros((n_slots, n_sites))
    miss_bytes = np.zeros((days, n_isp, len(MISS_CLASSES)))
    miss_sessions = np.zeros((days, n_isp, len(MISS_CLASSES)), dtype=np.int64)
    reach_bytes = np.zeros((days, n_isp))
    started = np.zeros((days, n_isp), dtype=np.int64)
    cache_demand: list[tuple[I64, I64, F64]] = []
    cache_starts: list[tuple[I64, I64, F64]] = []
    start_offloaded = 0.0
    session_bytes: F64 = np.bincount(pieces.session, pieces.bytes, len(sessions)).astype(np.float64)
    site_cap = model.site_capacity_bps / 8.0 * slot_s
    link_cap = model.links.capacity_bps / 8.0 * slot_s
    link_of = model.links.of.astype(np.int64)
    best_of_class = np.zeros(0, dtype=np.int64)
    embedded_of_class = np.zeros(0, dtype=bool)
    region_of_class = np.zeros(0, dtype=np.int64)
    warm: Mapping[str, frozenset[str]] = {}
    t_steer = t_fill = t_plan = 0.0

    for day in range(days):
        now_day = t0 + day * DAY_S
        tp = time.perf_counter()
        plan: FillPlan = plan_fill(snaps.current, history, releases, manifests, now_day, params)
        if day == 0 and spec.sim.warm_start:
            agents.warm(plan.manifests)
            snaps.touch()
            warm = agents.holdings()
        added_bytes = 0
        for aid, m in plan.manifests.items():
            before = manifests.get(aid)
            new = m.titles - (before.titles if before else frozenset())
            added_bytes += int(sum(int(cat.sizes[cat.index[t]]) for t in new))
        churn.append(
            {
                "day": day,
                "copies_added": plan.churn,
                "copies_floor": churn_floor(
                    {a: m.titles for a, m in manifests.items()},
                    {a: m.titles for a, m in plan.manifests.items()},
                ),
                "bytes_added": added_bytes,
                "appliances_changed": len(plan.changed),
            }
        )
        manifests = dict(plan.manifests)
        agents.apply_plan(manifests, plan.forecast, release_at, now_day)
        t_plan += time.perf_counter() - tp
        day_records: list[tuple[I64, npt.NDArray[np.int32]]] = []
        say(f"day {day}: planned ({plan.churn:,} copies added)")

        for s in range(spd):
            k = day * spd + s
            now = t0 + k * slot_s
            ts = time.perf_counter()
            snaps.touch()
            lo, hi = int(pieces.bounds[k]), int(pieces.bounds[k + 1])
            if hi > lo:
                sess = pieces.session[lo:hi]
                nb = pieces.bytes[lo:hi]
                first = pieces.first[lo:hi]
                titles = sessions.title[sess]
                classes = steering.classify(
                    snaps.current, sessions.ip_hi[sess], sessions.ip_lo[sess], sessions.v6[sess]
                )
                if len(steering.classes) > len(best_of_class):
                    best_of_class = np.array([c.best for c in steering.classes], dtype=np.int64)
                    embedded_of_class = np.array([c.embedded for c in steering.classes])
                    for c in steering.classes[len(region_of_class) :]:
                        if c.region not in region_index:
                            region_index[c.region] = len(region_names)
                            region_names.append(c.region)
                    region_of_class = np.array(
                        [region_index[c.region] for c in steering.classes], dtype=np.int64
                    )
                choices, dmiss = steering.decide(
                    snaps.current, classes, titles, holds, snaps.version
                )
                isp = isp_of_session[sess]
                links = np.where(choices >= 0, link_of[np.maximum(choices, 0), isp[:, None]], -1)
                served, _rank, spill = allocate(
                    choices, nb, links.astype(np.int32), site_cap.copy(), link_cap.copy()
                )
                ts_acc = time.perf_counter()
                kind = model.site_kind[served].astype(np.int64)
                src_bytes[k] = np.bincount(isp * 4 + kind, nb, n_isp * 4).reshape(n_isp, 4)
                site_bytes[k] = np.bincount(served, nb, n_sites)
                used_link = link_of[served, isp]
                link_bytes[k] = np.bincount(used_link, nb, n_links)
                best = best_of_class[classes]
                has_best = best >= 0
                own_demand[k] = np.bincount(best[has_best], nb[has_best], n_sites)
                mine = has_best & (served == best)
                own_served[k] = np.bincount(best[mine], nb[mine], n_sites)
                held_best = has_best & (choices[:, 0] == best)
                own_held[k] = np.bincount(best[held_best], nb[held_best], n_sites)
                cls = np.full(len(nb), _C_OTHER, dtype=np.int64)
                cls[dmiss == MISS_CONTENT] = _C_CONTENT
                cls[dmiss == MISS_HEALTH] = _C_HEALTH
                cls[dmiss == MISS_OTHER] = _C_OTHER
                ok = dmiss == MISS_NONE
                cls[ok & mine] = _C_BEST
                cls[ok & ~mine & (spill == SPILL_SITE)] = _C_HEALTH
                cls[ok & ~mine & (spill == SPILL_LINK)] = _C_LINK
                cls[~has_best] = _C_NONE
                nm = len(MISS_CLASSES)
                miss_bytes[day] += np.bincount(isp * nm + cls, nb, n_isp * nm).reshape(n_isp, nm)
                miss_sessions[day] += (
                    np.bincount(isp[first] * nm + cls[first], None, n_isp * nm)
                    .reshape(n_isp, nm)
                    .astype(np.int64)
                )
                emb = embedded_of_class[classes]
                reach_bytes[day] += np.bincount(isp[emb], nb[emb], n_isp)
                started[day] += np.bincount(isp[first], None, n_isp).astype(np.int64)
                day_records.append((region_of_class[classes[first]], titles[first]))
                # the reactive caches' demand: bytes per (best site, title)
                key = best[has_best] * len(cat) + titles[has_best].astype(np.int64)
                uk, inv = np.unique(key, return_inverse=True)
                cache_demand.append(
                    (
                        (uk // len(cat)).astype(np.int64),
                        (uk % len(cat)).astype(np.int64),
                        np.bincount(inv.reshape(-1), nb[has_best], len(uk)).astype(np.float64),
                    )
                )
                # sessions by where they started: no credit for switching over mid-session
                start = (first | (k == 0)) & (isp < n_isp - 1)
                sb = session_bytes[sess[start]]
                start_offloaded += float(sb[kind[start] == 0].sum())
                with_best = has_best[start]
                cache_starts.append(
                    (
                        best[start][with_best],
                        titles[start][with_best].astype(np.int64),
                        sb[with_best],
                    )
                )
                counters["t_account_s"] = (
                    counters.get("t_account_s", 0.0) + time.perf_counter() - ts_acc
                )
            else:
                empty = np.zeros(0, dtype=np.int64)
                cache_demand.append((empty, empty, np.zeros(0)))
                cache_starts.append((empty, empty, np.zeros(0)))
            tf = time.perf_counter()
            t_steer += tf - ts
            agents.step(now, slot_s, k)
            t_fill += time.perf_counter() - tf
        history += _observed(day, t0, day_records, region_names, cat.ids)

    counters.update(
        {
            "t_plan_s": t_plan,
            "t_steer_s": t_steer,
            "t_fill_s": t_fill,
            "t_total_s": time.perf_counter() - clock,
            "lpm_calls": steering.lpm_calls,
            "steer_calls": steering.steer_calls,
            "route_classes": len(steering.classes),
            "decision_classes": len(steering.decisions),
            "sessions": int(pieces.first.sum()),
            "pieces": len(pieces),
            "fill_sources_calls": agents.stats.fill_sources_calls,
        }
    )
    return SimResult(
        spec=spec,
        model=model,
        t0=t0,
        slot_s=slot_s,
        n_slots=n_slots,
        src_bytes=src_bytes,
        site_bytes=site_bytes,
        link_bytes=link_bytes,
        own_demand=own_demand,
        own_served=own_served,
        own_held=own_held,
        miss_bytes=miss_bytes,
        miss_sessions=miss_sessions,
        reach_bytes=reach_bytes,
        sessions=started,
        demanded_bytes=float(pieces.bytes.sum()),
        fill=agents.stats,
        fill_slot_bytes=agents.slot_bytes,
        churn=churn,
        cache_demand=cache_demand,
        cache_starts=cache_starts,
        start_offloaded=start_offloaded,
        warm=warm,
        counters=counters,
    )


def _observed(
    day: int,
    t0: float,
    records: list[tuple[I64, npt.NDArray[np.int32]]],
    regions: list[str],
    ids: tuple[str, ...],
) -> list[DemandRecord]:
    """The sessions started on ``day``, per (region, title), as the control plane counts them."""
    if not records:
        return []
    region = np.concatenate([r for r, _ in records])
    title = np.concatenate([t for _, t in records]).astype(np.int64)
    key = region * len(ids) + title
    uk, counts = np.unique(key, return_counts=True)
    utc_day = int((t0 + day * DAY_S) // DAY_S)
    return [
        DemandRecord(utc_day, regions[k // len(ids)], ids[k % len(ids)], float(c))
        for k, c in zip(uk.tolist(), counts.tolist(), strict=True)
    ]


def _releases(model: SimModel, popularity: Popularity, spec: SimSpec) -> list[Release]:
    """The scheduled releases as the control plane is told them: the expected launch-day
    sessions (the model's, in its busiest region, times ``announce``)."""
    rel = popularity.releases
    out: list[Release] = []
    released = np.flatnonzero(np.isfinite(rel.at))
    if len(released) == 0:
        return out
    subs = np.bincount(
        model.pops.region, model.pops.subscribers.astype(np.float64), len(model.pops.regions)
    )
    per_day = subs * spec.demand.sessions_per_subscriber
    for t in released.tolist():
        day_start = spec.sim.start_ts + np.floor((rel.at[t] - spec.sim.start_ts) / DAY_S) * DAY_S
        p = popularity.probabilities(float(day_start))[:, t]
        expected = float((per_day * p).max()) * float(rel.announce[t])
        out.append(Release(model.catalog.ids[t], float(rel.at[t]), expected))
    return out


def _prior(
    spec: SimSpec,
    model: SimModel,
    popularity: Popularity,
    steering: BatchSteering,
    snaps: _Snapshots,
) -> list[DemandRecord]:
    """Expected sessions per (region, title) for ``prior_days`` days before the start."""
    days = spec.sim.prior_days
    pops = model.pops
    if days == 0 or len(pops.prefixes) == 0:
        return []
    one = np.ones(len(pops.prefixes), dtype=np.uint64)
    hosts_ok = pops.hosts > 2
    classes = steering.classify(
        snaps.current, pops.net_hi, pops.net_lo + np.where(hosts_ok, one, 0), pops.v6
    )
    region = [steering.classes[c].region for c in classes.tolist()]
    names = sorted(set(region))
    out: list[DemandRecord] = []
    t0 = spec.sim.start_ts
    for d in range(1, days + 1):
        day_start = t0 - d * DAY_S
        probs = popularity.probabilities(day_start)
        per_region = np.zeros((len(names), probs.shape[1]))
        for p, r in enumerate(region):
            sessions = pops.subscribers[p] * spec.demand.sessions_per_subscriber
            per_region[names.index(r)] += sessions * probs[pops.region[p]]
        utc_day = int(day_start // DAY_S)
        rows, cols = np.nonzero(per_region >= 1e-3)
        ids = model.catalog.ids
        out += [
            DemandRecord(utc_day, names[r], ids[c], float(per_region[r, c]))
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        ]
    return out
