"""``localcast sim plan``: how many embedded appliances, and how big, for a target offload.

For one ISP (the others are left out: their demand does not share its links),
with the IX and origin sites of the file:

1. **Without** embedded appliances (its embedded sites removed): its traffic,
   peak Gbit/s (**eligibility**: at least ``eligibility_gbps`` at the peak, about
   5 Gbit/s in production) and its transit at the peak.
2. **Search**: for each disk size, the fewest appliances per embedded site
   (1 .. ``max_per_site``, each of ``appliance_gbps``) whose simulated offload
   (embedded share of the ISP's bytes at its peak hour, or over the day)
   reaches the target, by bisection (more appliances never hold less: the
   search assumes what the property tests check, offload does not fall when
   storage grows). Each point is a whole simulation with the same seed.
3. **Choice**: the candidate that reaches the target with the least storage
   (then the fewest appliances); if none does, the one with the best offload.
4. **Savings and cost**: against step 1, the bytes and peak Gbit/s that no
   longer enter the ISP over its interconnects (PNI, IX ports, transit; the
   share over transit proper given apart), and the fill bytes: what the first
   fill brings (the placed bytes) and, over the following days, the daily fill
   into the ISP's embedded sites.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from localcast.core.fleet import SiteKind
from localcast.sim.config import ApplianceGroupSpec, SimConfigError, SimSpec
from localcast.sim.report import hourly
from localcast.sim.run import SimResult, simulate
from localcast.sim.study import workers

GBIT = 1e9


def isp_only(spec: SimSpec, isp: str, embedded: ApplianceGroupSpec | None) -> SimSpec:
    """``spec`` reduced to ``isp``'s subscribers and sites (plus IX and origin sites); its
    embedded sites get ``embedded`` appliances, or are removed when None."""
    sites = []
    for s in spec.sites:
        if s.kind in (SiteKind.IX, SiteKind.ORIGIN):
            sites.append(s)
        elif s.isp == isp:
            if s.kind is SiteKind.EMBEDDED:
                if embedded is None:
                    continue
                s = s.model_copy(update={"appliances": [embedded]})
            sites.append(s)
    return spec.model_copy(update={"isps": [i for i in spec.isps if i.id == isp], "sites": sites})


@dataclass(frozen=True)
class Outcome:
    per_site: int
    disk_tb: float
    offload_peak: float
    offload_day: float
    peak_gbps: float
    external_bytes: float  # per day, over the ISP's PNI, IX ports and transit
    external_peak_gbps: float
    transit_bytes: float
    transit_peak_gbps: float
    fill_first_bytes: float  # what the placement puts on the embedded appliances
    fill_daily_bytes: float  # fill into the embedded sites per day after the first
    storage_tb: float
    appliances: int


def measure(r: SimResult, isp: str) -> dict[str, float]:
    m = r.model
    i = m.isps.index(isp)
    slots = r.src_bytes[:, i, :]
    h = hourly(slots, r)
    total_h = h.sum(axis=1)
    peak = int(np.argmax(total_h)) if len(total_h) else 0
    external = slots[:, 1:]  # pni, ix, transit: what enters the ISP from outside
    ext_slot = external.sum(axis=1)
    days = r.spec.sim.days
    emb = [k for k, s in enumerate(m.sites) if s.kind is SiteKind.EMBEDDED and s.partner == isp]
    per_day = r.fill_slot_bytes[:, emb].sum(axis=1).reshape(r.spec.sim.days, -1).sum(axis=1)
    emb_ids = {m.sites[k].id for k in emb}
    first_fill = sum(
        int(m.catalog.sizes[m.catalog.index[t]])
        for aid, titles in r.warm.items()
        if m.appliances[m.app_index[aid]].site_id in emb_ids
        for t in titles
    )
    return {
        "offload_peak": float(h[peak, 0] / total_h[peak]) if total_h[peak] > 0 else 0.0,
        "offload_day": float(slots[:, 0].sum() / slots.sum()) if slots.sum() > 0 else 0.0,
        "peak_gbps": float(total_h[peak] * 8 / 3600 / GBIT),
        "external_bytes": float(ext_slot.sum()) / days,
        "external_peak_gbps": float(ext_slot.max() * 8 / r.slot_s / GBIT) if len(ext_slot) else 0.0,
        "pni_bytes": float(external[:, 0].sum()) / days,
        "ix_bytes": float(external[:, 1].sum()) / days,
        "transit_bytes": float(external[:, 2].sum()) / days,
        "transit_peak_gbps": float(external[:, 2].max() * 8 / r.slot_s / GBIT)
        if len(ext_slot)
        else 0.0,
        "fill_daily_bytes": float(per_day[1:].mean()) if len(per_day) > 1 else float(per_day.sum()),
        "fill_first_bytes": float(first_fill),
    }


def _evaluate(args: tuple[SimSpec, str, int, float]) -> Outcome:
    spec, isp, n, disk = args
    p = spec.planner
    group = ApplianceGroupSpec.model_validate(
        {"count": n, "disk_tb": disk, "gbps": p.appliance_gbps, "class": p.appliance_class}
    )
    sub = isp_only(spec, isp, group)
    r = simulate(sub)
    got = measure(r, isp)
    n_sites = sum(1 for s in sub.sites if s.kind is SiteKind.EMBEDDED)
    return Outcome(
        per_site=n,
        disk_tb=disk,
        offload_peak=got["offload_peak"],
        offload_day=got["offload_day"],
        peak_gbps=got["peak_gbps"],
        external_bytes=got["external_bytes"],
        external_peak_gbps=got["external_peak_gbps"],
        transit_bytes=got["transit_bytes"],
        transit_peak_gbps=got["transit_peak_gbps"],
        fill_first_bytes=got["fill_first_bytes"],
        fill_daily_bytes=got["fill_daily_bytes"],
        storage_tb=n * disk * n_sites,
        appliances=n * n_sites,
    )


def _search(args: tuple[SimSpec, str, float, float, str]) -> list[Outcome]:
    """Bisection over appliances per site for one disk size; every point it ran."""
    spec, isp, disk, target, at = args
    tried: dict[int, Outcome] = {}

    def get(n: int) -> Outcome:
        if n not in tried:
            tried[n] = _evaluate((spec, isp, n, disk))
        return tried[n]

    def value(o: Outcome) -> float:
        return o.offload_peak if at == "peak" else o.offload_day

    lo, hi = 1, spec.planner.max_per_site
    if value(get(hi)) < target:
        return list(tried.values())
    while lo < hi:
        mid = (lo + hi) // 2
        if value(get(mid)) >= target:
            hi = mid
        else:
            lo = mid + 1
    get(lo)
    return sorted(tried.values(), key=lambda o: o.per_site)


def plan_capacity(
    spec: SimSpec,
    isp: str | None = None,
    target: float | None = None,
    at: str | None = None,
    disk_tb: list[float] | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    p = spec.planner
    isp = isp or p.isp or (spec.isps[0].id if spec.isps else None)
    if isp is None or isp not in {i.id for i in spec.isps}:
        raise SimConfigError(f"planner.isp: unknown ISP {isp!r}")
    if not any(s.kind is SiteKind.EMBEDDED and s.isp == isp for s in spec.sites):
        raise SimConfigError(
            f"sites: ISP {isp} has no embedded site to size (declare its embedded sites "
            "with their prefixes; their appliances are what the planner chooses)"
        )
    target = p.target if target is None else target
    at = at or p.at
    sizes = disk_tb or list(p.disk_tb)
    say(f"planning {isp}: without embedded appliances first")
    before = measure(simulate(isp_only(spec, isp, None)), isp)
    eligible = before["peak_gbps"] >= p.eligibility_gbps
    say(f"{isp}: {before['peak_gbps']:.1f} Gbit/s at the peak; searching {len(sizes)} disk sizes")
    with ProcessPoolExecutor(max_workers=workers()) as pool:
        found = list(pool.map(_search, [(spec, isp, d, target, at) for d in sizes]))
    points = [o for got in found for o in got]

    def value(o: Outcome) -> float:
        return o.offload_peak if at == "peak" else o.offload_day

    ok = [o for o in points if value(o) >= target]
    chosen = (
        min(ok, key=lambda o: (o.storage_tb, o.appliances))
        if ok
        else max(points, key=lambda o: (value(o), -o.storage_tb))
    )
    return {
        "isp": isp,
        "target": target,
        "at": at,
        "eligibility": {
            "peak_gbps": before["peak_gbps"],
            "threshold_gbps": p.eligibility_gbps,
            "eligible": eligible,
        },
        "without_embedded": before,
        "reached": bool(ok),
        "chosen": _row(chosen),
        "transit_saving": {
            # what no longer enters the ISP over its interconnects (PNI, IX, transit)
            "bytes_per_day": before["external_bytes"] - chosen.external_bytes,
            "share": (
                (before["external_bytes"] - chosen.external_bytes) / before["external_bytes"]
                if before["external_bytes"] > 0
                else 0.0
            ),
            "peak_gbps_before": before["external_peak_gbps"],
            "peak_gbps_after": chosen.external_peak_gbps,
            # of which over transit proper (the origin's traffic)
            "transit_bytes_per_day": before["transit_bytes"] - chosen.transit_bytes,
            "transit_peak_gbps_before": before["transit_peak_gbps"],
            "transit_peak_gbps_after": chosen.transit_peak_gbps,
        },
        "fill_cost": {
            "first_fill_bytes": chosen.fill_first_bytes,
            "daily_bytes": chosen.fill_daily_bytes,
        },
        "candidates": [_row(o) for o in sorted(points, key=lambda o: (o.disk_tb, o.per_site))],
    }


def _row(o: Outcome) -> dict[str, Any]:
    return {
        "appliances_per_site": o.per_site,
        "disk_tb": o.disk_tb,
        "appliances": o.appliances,
        "storage_tb": o.storage_tb,
        "offload_at_peak": o.offload_peak,
        "offload_over_day": o.offload_day,
        "external_bytes_per_day": o.external_bytes,
        "external_peak_gbps": o.external_peak_gbps,
        "transit_bytes_per_day": o.transit_bytes,
        "transit_peak_gbps": o.transit_peak_gbps,
        "first_fill_bytes": o.fill_first_bytes,
        "daily_fill_bytes": o.fill_daily_bytes,
    }
