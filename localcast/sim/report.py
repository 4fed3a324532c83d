"""The report: JSON a program can read and PNGs a person would rather look at.

Fields (bytes are bytes, rates Gbit/s, ratios 0..1, times ISO 8601 UTC):

* ``run``: seed, start, days, slot, sizes, timings, how many LPM calls and
  ``steer`` calls the run made (``steering``);
* ``totals``: bytes demanded and served (equal: every byte is served
  somewhere), ``by_source`` (embedded, pni, ix, transit: the kind of the
  serving site; origin is over transit), ``offload_ratio`` (embedded share);
* ``days`` and ``hours``: the same per UTC day and hour, with Gbit/s per source
  per hour and, per day, its peak hour, misses, churn and fill bytes;
* ``isps``: per ISP: subscribers, bytes by source, offload over the day and at
  its peak hour, peak Gbit/s, transit peak against its capacity, eligibility
  (peak Gbit/s against ``planner.eligibility_gbps``), ``reach`` (share of bytes
  whose clients have an embedded site at all), misses;
* ``misses``: bytes and sessions per class, per day and ISP: ``best_site``
  (served by the client's best site), ``content_miss`` (it did not hold the
  title complete), ``health_miss`` (saturated: steering's health miss, or its
  capacity was used up in the slot: spilled), ``link_full`` (the link to it
  was), ``other`` (drained...), ``no_site`` (only the origin serves it);
* ``sites``: per site: capacity, bytes served, peak Gbit/s, **caching
  efficiency** (of the bytes of the clients whose best site it is, the share it
  served) and content hit ratio (the share whose title it held, before
  capacity), fill bytes in;
* ``links``: per link (ISP to embedded site, PNI, each ISP's IX port, each
  ISP's transit): capacity, peak Gbit/s and when, slots over capacity, bytes;
* ``fill``: bytes per (source site -> site) link, files, transfers, the most
  times one file crossed it and how many files crossed it n times
  (``crossings``), titles filled and evicted, peak fill Gbit/s into a site;
* ``churn``: per day, title copies the plan added (and the floor any plan with
  the same copy counts would add), their bytes;
* ``comparison``: proactive vs LRU vs LFU vs Belady on the same demand and
  appliances (see :mod:`localcast.sim.baselines`: same room, same fill rate
  caps): offload (embedded bytes over the ISPs' bytes), bytes served by the
  caches to the clients whose best site they are, fill bytes and those at the
  ISPs' peak hour, and what enters the embedded sites from outside (bytes not
  served by them plus their fill) over the run (``inbound_bytes``,
  ``net_offload_ratio``) and in that hour (``inbound_peak_hour_*``);
  ``session_offload_ratio``: the offload counting each session (all its bytes)
  where it started, so a session that starts upstream and switches over once
  its title arrives counts upstream (a reactive cache's first viewer of a title
  triggers its fetch and would otherwise be credited the rest of its session);
  per site the same offload;
* ``sweep`` (when asked): the same comparison at other storage sizes.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from localcast.core.fleet import SiteKind
from localcast.sim.baselines import POLICIES, CacheResult, cache_sites, storage_of
from localcast.sim.fill import crossings_summary
from localcast.sim.model import OTHER, SOURCES
from localcast.sim.run import MISS_CLASSES, SimResult

F64 = npt.NDArray[np.float64]
GBIT = 1e9


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else 0.0


def _gbps(nbytes: float | F64, seconds: float) -> Any:
    return nbytes * 8.0 / seconds / GBIT


def _sources(v: F64) -> dict[str, float]:
    return {name: float(v[i]) for i, name in enumerate(SOURCES)}


def _finite(x: float) -> float | None:
    return None if math.isinf(x) else x


def hourly(a: F64, r: SimResult) -> F64:
    """(slots, ...) -> (hours, ...) sums."""
    per = round(3600.0 / r.slot_s)
    out: F64 = a.reshape(a.shape[0] // per, per, *a.shape[1:]).sum(axis=1)
    return out


def daily(a: F64, r: SimResult) -> F64:
    out: F64 = a.reshape(a.shape[0] // r.slots_per_day, r.slots_per_day, *a.shape[1:]).sum(axis=1)
    return out


def offload_of(r: SimResult, cache: CacheResult | None = None) -> float:
    """Embedded bytes over the bytes of the ISPs' clients (the pseudo-ISP ``other`` excluded)."""
    isp_bytes = r.src_bytes[:, :-1, :]
    total = float(isp_bytes.sum())
    if cache is None:
        return _ratio(float(isp_bytes[:, :, 0].sum()), total)
    emb = [i for i, s in enumerate(r.model.sites) if s.kind is SiteKind.EMBEDDED]
    return _ratio(float(cache.hit_bytes[:, emb].sum()), total)


def comparison(r: SimResult, caches: dict[str, CacheResult]) -> dict[str, Any]:
    """Proactive vs the reactive caches: offload, bytes served by the cache sites, fill, and
    what enters the embedded sites from outside (the bytes they did not serve plus their
    fill), over the run (``inbound_bytes``, ``net_offload_ratio``: one minus it over the
    ISPs' bytes) and in the ISPs' peak hour (a pull-through cache fills at the peak)."""
    m = r.model
    sites = cache_sites(r)
    emb = [i for i, s in enumerate(m.sites) if s.kind is SiteKind.EMBEDDED]
    isp_slots = r.src_bytes[:, :-1, :].sum(axis=(1, 2))
    hours = hourly(isp_slots, r)
    peak = int(np.argmax(hours)) if len(hours) else 0
    per = round(3600.0 / r.slot_s)
    at_peak = slice(peak * per, (peak + 1) * per)
    peak_bytes = float(isp_slots[at_peak].sum())
    isp_bytes = float(isp_slots.sum())

    def inbound(hit_emb: F64, fill_emb: F64 | None) -> dict[str, float | None]:
        """``hit_emb`` / ``fill_emb``: (slots,) bytes served by / filled into embedded sites."""
        fill_all = float(fill_emb.sum()) if fill_emb is not None else 0.0
        fill_peak = float(fill_emb[at_peak].sum()) if fill_emb is not None else 0.0
        total = isp_bytes - float(hit_emb.sum()) + fill_all
        nbytes = peak_bytes - float(hit_emb[at_peak].sum()) + fill_peak
        return {
            "inbound_bytes": total,
            "net_offload_ratio": 1.0 - _ratio(total, isp_bytes) if isp_bytes > 0 else 0.0,
            "inbound_peak_hour_bytes": nbytes,
            "inbound_peak_hour_gbps": float(_gbps(nbytes, 3600.0)),
        }

    proactive_fill = r.fill_slot_bytes
    rows: dict[str, Any] = {
        "proactive": {
            "offload_ratio": offload_of(r),
            "session_offload_ratio": _ratio(r.start_offloaded, isp_bytes),
            "served_bytes": float(r.own_served[:, sites].sum()),
            "fill_bytes": float(proactive_fill.sum()),
            "fill_bytes_peak_hour": float(proactive_fill[at_peak].sum()),
            **inbound(r.src_bytes[:, :-1, 0].sum(axis=1), proactive_fill[:, emb].sum(axis=1)),
        }
    }
    for name in POLICIES:
        c = caches.get(name)
        if c is None:
            continue
        reactive = name != "belady"
        rows[name] = {
            "offload_ratio": offload_of(r, c),
            "session_offload_ratio": (
                _ratio(float(c.start_hit_bytes[:, emb].sum()), isp_bytes) if reactive else None
            ),
            "served_bytes": float(c.hit_bytes[:, sites].sum()),
            "fill_bytes": float(c.fill_bytes.sum()) if reactive else None,
            "fill_bytes_peak_hour": float(c.fill_bytes[at_peak].sum()) if reactive else None,
            **inbound(
                c.hit_bytes[:, emb].sum(axis=1),
                c.fill_bytes[:, emb].sum(axis=1) if reactive else None,
            ),
        }
    per_site = []
    for s in sites:
        demand = float(r.own_demand[:, s].sum())
        row = {
            "site": m.sites[s].id,
            "storage_bytes": storage_of(r, s),
            "demand_bytes": demand,
            "proactive": _ratio(float(r.own_served[:, s].sum()), demand),
        }
        for name, c in caches.items():
            row[name] = _ratio(float(c.hit_bytes[:, s].sum()), demand)
        per_site.append(row)
    return {"peak_hour": _iso(r.t0 + peak * 3600.0), "policies": rows, "sites": per_site}


def build_report(
    r: SimResult,
    caches: dict[str, CacheResult] | None = None,
    sweep: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    m = r.model
    spec = r.spec
    slot_s = r.slot_s
    by_src_slot = r.src_bytes.sum(axis=1)  # (slots, 4)
    total_src = by_src_slot.sum(axis=0)
    served = float(total_src.sum())
    hours = hourly(by_src_slot, r)
    days_src = daily(by_src_slot, r)
    n_days = spec.sim.days
    per_hour = round(3600.0 / slot_s)
    report: dict[str, Any] = {
        "run": {
            "seed": spec.sim.seed,
            "start": _iso(r.t0),
            "days": n_days,
            "slot_minutes": spec.sim.slot_minutes,
            "subscribers": int(m.pops.subscribers.sum()),
            "titles": len(m.catalog),
            "catalog_bytes": int(m.catalog.sizes.sum()),
            "sites": len(m.sites),
            "appliances": len(m.appliances),
            "storage_bytes": int(
                sum(a.disk_bytes for a in m.appliances if a.site_id in _placed(r))
            ),
            "steering": {
                k: r.counters.get(k)
                for k in ("lpm_calls", "steer_calls", "route_classes", "decision_classes")
            },
            "counters": {k: v for k, v in r.counters.items() if k.startswith("t_")},
        },
        "totals": {
            "demanded_bytes": r.demanded_bytes,
            "served_bytes": served,
            "conserved": bool(math.isclose(served, r.demanded_bytes, rel_tol=1e-9, abs_tol=1.0)),
            "by_source": _sources(total_src),
            "offload_ratio": _ratio(float(total_src[0]), served),
            "sessions": int(r.sessions.sum()),
        },
    }
    # days
    day_rows = []
    fill_by_day = daily(r.fill_slot_bytes, r).sum(axis=1)
    for d in range(n_days):
        h = hours[d * 24 : (d + 1) * 24]
        peak = int(np.argmax(h.sum(axis=1)))
        ph = h[peak]
        day_rows.append(
            {
                "day": _iso(r.t0 + d * 86400.0)[:10],
                "by_source": _sources(days_src[d]),
                "offload_ratio": _ratio(float(days_src[d][0]), float(days_src[d].sum())),
                "sessions": int(r.sessions[d].sum()),
                "peak": {
                    "hour": _iso(r.t0 + (d * 24 + peak) * 3600.0),
                    "gbps": float(_gbps(ph.sum(), 3600.0)),
                    "offload_ratio": _ratio(float(ph[0]), float(ph.sum())),
                },
                "misses": _misses(r.miss_bytes[d].sum(axis=0), r.miss_sessions[d].sum(axis=0)),
                "churn": r.churn[d],
                "fill_bytes": float(fill_by_day[d]),
            }
        )
    report["days"] = day_rows
    report["hours"] = [
        {
            "hour": _iso(r.t0 + i * 3600.0),
            "by_source": _sources(h),
            "gbps": {k: float(v) for k, v in _sources(_gbps(h, 3600.0)).items()},
            "offload_ratio": _ratio(float(h[0]), float(h.sum())),
        }
        for i, h in enumerate(hours)
    ]
    report["isps"] = _isps(r)
    report["misses"] = {
        "total": _misses(r.miss_bytes.sum(axis=(0, 1)), r.miss_sessions.sum(axis=(0, 1))),
        "by_isp": {
            isp: _misses(r.miss_bytes[:, i].sum(axis=0), r.miss_sessions[:, i].sum(axis=0))
            for i, isp in enumerate(m.isps)
            if r.sessions[:, i].sum() > 0
        },
    }
    report["sites"] = _sites(r)
    report["links"] = _links(r, per_hour)
    report["fill"] = _fill(r)
    report["churn"] = r.churn
    if caches:
        report["comparison"] = comparison(r, caches)
    if sweep:
        report["sweep"] = sweep
    return report


def _placed(r: SimResult) -> set[str]:
    return {s.id for s in r.model.sites if s.kind is not SiteKind.ORIGIN}


def _misses(nbytes: F64, sessions: npt.NDArray[np.int64]) -> dict[str, dict[str, float]]:
    return {
        name: {"bytes": float(nbytes[i]), "sessions": int(sessions[i])}
        for i, name in enumerate(MISS_CLASSES)
    }


def _isps(r: SimResult) -> list[dict[str, Any]]:
    m = r.model
    spec = r.spec
    out = []
    for i, isp in enumerate(m.isps):
        slots = r.src_bytes[:, i, :]
        total = float(slots.sum())
        if total == 0 and isp == OTHER:
            continue
        h = hourly(slots, r)
        peak = int(np.argmax(h.sum(axis=1))) if len(h) else 0
        peak_gbps = float(_gbps(h[peak].sum(), 3600.0)) if len(h) else 0.0
        transit = m.links.ids.index(f"transit/{isp}")
        t_slots = r.link_bytes[:, transit]
        subs = int(m.pops.subscribers[m.pops.isp == i].sum()) if isp != OTHER else 0
        out.append(
            {
                "id": isp,
                "subscribers": subs,
                "bytes": total,
                "by_source": _sources(slots.sum(axis=0)),
                "offload_ratio": _ratio(float(slots[:, 0].sum()), total),
                "peak_hour": _iso(r.t0 + peak * 3600.0),
                "peak_gbps": peak_gbps,
                "offload_at_peak": _ratio(float(h[peak][0]), float(h[peak].sum()))
                if len(h)
                else 0.0,
                "eligible": peak_gbps >= spec.planner.eligibility_gbps,
                "eligibility_gbps": spec.planner.eligibility_gbps,
                "reach_ratio": _ratio(float(r.reach_bytes[:, i].sum()), total),
                "transit": {
                    "bytes": float(t_slots.sum()),
                    "peak_gbps": float(_gbps(t_slots.max(), r.slot_s)) if len(t_slots) else 0.0,
                    "capacity_gbps": _finite(float(m.links.capacity_bps[transit]) / GBIT),
                },
            }
        )
    return out


def _sites(r: SimResult) -> list[dict[str, Any]]:
    m = r.model
    fill_in = r.fill_slot_bytes.sum(axis=0)
    out = []
    for s, site in enumerate(m.sites):
        apps = [a for a in m.appliances if a.site_id == site.id]
        own = float(r.own_demand[:, s].sum())
        cap = float(m.site_capacity_bps[s])
        out.append(
            {
                "id": site.id,
                "kind": str(site.kind),
                "isp": site.partner,
                "appliances": len(apps),
                "storage_bytes": int(sum(a.disk_bytes for a in apps)),
                "capacity_gbps": _finite(cap / GBIT),
                "served_bytes": float(r.site_bytes[:, s].sum()),
                "peak_gbps": float(_gbps(r.site_bytes[:, s].max(), r.slot_s)),
                "best_site_of_bytes": own,
                "caching_efficiency": _ratio(float(r.own_served[:, s].sum()), own),
                "content_hit_ratio": _ratio(float(r.own_held[:, s].sum()), own),
                "fill_bytes_in": float(fill_in[s]),
            }
        )
    return out


def _links(r: SimResult, per_hour: int) -> list[dict[str, Any]]:
    m = r.model
    out = []
    for i, link in enumerate(m.links.ids):
        slots = r.link_bytes[:, i]
        if slots.sum() == 0 and m.links.isp[i] == OTHER:
            continue
        gbps = _gbps(slots, r.slot_s)
        k = int(np.argmax(gbps)) if len(gbps) else 0
        cap = float(m.links.capacity_bps[i]) / GBIT
        out.append(
            {
                "id": link,
                "kind": m.links.kinds[i],
                "isp": m.links.isp[i],
                "capacity_gbps": _finite(cap),
                "peak_gbps": float(gbps[k]) if len(gbps) else 0.0,
                "peak_at": _iso(r.t0 + k * r.slot_s),
                "peak_utilisation": _finite(float(gbps[k]) / cap) if len(gbps) and cap else None,
                "over_capacity_slots": int(np.sum(gbps > cap * (1 + 1e-9))),
                "bytes": float(slots.sum()),
            }
        )
    return out


def _fill(r: SimResult) -> dict[str, Any]:
    m = r.model
    st = r.fill
    files = [len(f) for f in m.catalog.files]
    links = []
    for (src, dst), nbytes in sorted(st.link_bytes.items()):
        kind_src = m.sites[src].kind
        links.append(
            {
                "from_site": m.sites[src].id,
                "to_site": m.sites[dst].id,
                "from_kind": "peer"
                if src == dst
                else ("origin" if kind_src is SiteKind.ORIGIN else "tier"),
                "bytes": float(nbytes),
                **crossings_summary(st.crossings.get((src, dst), {}), files),
            }
        )
    into = r.fill_slot_bytes
    return {
        "bytes": float(into.sum()),
        "peak_gbps_into_a_site": float(_gbps(into.max(), r.slot_s)) if into.size else 0.0,
        "titles_filled": st.titles_filled,
        "titles_evicted": st.titles_evicted,
        "bytes_evicted": st.bytes_evicted,
        "no_room": st.no_room,
        "links": links,
    }


def write_report(report: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n")
    return path


# --- plots ---------------------------------------------------------------------------------


def plot_traffic(r: SimResult, path: Path) -> Path:
    """Gbit/s per source over the run, stacked (slot resolution)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_src = r.src_bytes.sum(axis=1)
    gbps = _gbps(by_src, r.slot_s)
    x = np.arange(len(gbps)) * r.slot_s / 3600.0
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    colors = ("#2a9d8f", "#8ab17d", "#e9c46a", "#e76f51")
    ax.stackplot(
        x,
        gbps.T,
        labels=[s.upper() if s != "transit" else "transit (origin)" for s in SOURCES],
        colors=colors,
        alpha=0.9,
    )
    ax.set_xlabel(f"hours since {_iso(r.t0)[:16]} UTC")
    ax.set_ylabel("Gbit/s")
    total = float(by_src.sum())
    emb = float(by_src[:, 0].sum())
    ax.set_title(
        f"Traffic by source — offload {100 * _ratio(emb, total):.1f}% from embedded appliances"
    )
    ax.legend(loc="upper left", frameon=False)
    ax.set_xlim(x[0] if len(x) else 0, x[-1] if len(x) else 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_offload_vs_storage(sweep: list[dict[str, Any]], path: Path) -> Path:
    """Offload per policy against storage (one point per sweep entry)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    xs = [row["storage_bytes"] / 1e12 for row in sweep]
    styles = {
        "proactive": ("#264653", "o-"),
        "lru": ("#e76f51", "s--"),
        "lfu": ("#f4a261", "^--"),
        "belady": ("#2a9d8f", "d:"),
    }
    for name, (color, fmt) in reversed(list(styles.items())):  # proactive drawn on top
        pts = [
            (x, row[name]) for x, row in zip(xs, sweep, strict=True) if row.get(name) is not None
        ]
        if pts:
            big = name == "proactive"
            ax.plot(
                [p[0] for p in pts],
                [100 * p[1] for p in pts],
                fmt,
                color=color,
                label=name,
                markersize=9 if big else 6,
                zorder=3 if big else 2,
            )
    ax.set_xlabel("storage at the embedded sites (TB)")
    ax.set_ylabel("offload: embedded share of the ISPs' bytes (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Offload vs storage")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
