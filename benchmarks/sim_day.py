"""Benchmark: one simulated day of a national fleet, at two scales.

The fleet is :func:`localcast.sim.scenario.national`: 100 sites (an origin, 5
IX sites, 10 ISPs each with a PNI and embedded sites over BGP), 10,000 titles,
1,000,000 subscribers (and the same at 100,000, so the growth of cost with
scale shows). Each scale runs in its own process: demand generation, the day
(plan, fill, batched steering with capacity), the LRU / LFU / Belady
baselines on the same demand, and the JSON report.

Prints per scale: sessions, wall seconds per phase and in all, the peak
resident memory of that process, and the steering work (LPM batch calls,
``steer`` calls, classes) next to the targets (<= 60 s and <= 4 GB for the
1,000,000-subscriber day on this 2-core machine). Nothing is enforced: the
exit status is non-zero only if something failed.

    .venv/bin/python benchmarks/sim_day.py [--subscribers 1000000] [--titles 10000]
        [--sites 100] [--days 1] [--seed 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from typing import Any

TARGET_S = 60.0
TARGET_GB = 4.0


def one(args: tuple[int, int, int, int, int]) -> dict[str, Any]:
    subscribers, titles, sites, days, seed = args
    from localcast.sim.baselines import all_caches
    from localcast.sim.config import parse_sim
    from localcast.sim.report import build_report
    from localcast.sim.run import simulate
    from localcast.sim.scenario import national

    started = time.perf_counter()
    spec = parse_sim(
        national(subscribers=subscribers, titles=titles, sites=sites, days=days, seed=seed)
    )
    result = simulate(spec)
    t_sim = time.perf_counter() - started
    caches = all_caches(result)
    t_caches = time.perf_counter() - started - t_sim
    report = build_report(result, caches)
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    c = result.counters
    return {
        "subscribers": subscribers,
        "sessions": int(c["sessions"]),
        "pieces": int(c["pieces"]),
        "wall_s": wall,
        "sim_s": t_sim,
        "baselines_s": t_caches,
        "phases": {k: round(v, 2) for k, v in c.items() if k.startswith("t_")},
        "peak_gb": peak_kb * 1024 / 1e9,
        "lpm_calls": int(c["lpm_calls"]),
        "steer_calls": int(c["steer_calls"]),
        "route_classes": int(c["route_classes"]),
        "offload": report["totals"]["offload_ratio"],
        "comparison": {
            k: round(v["offload_ratio"], 4) for k, v in report["comparison"]["policies"].items()
        },
        "conserved": report["totals"]["conserved"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--titles", type=int, default=10_000)
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    ctx = mp.get_context("spawn")  # a fresh process per scale: its own peak memory
    ok = True
    for subs in (a.subscribers, a.subscribers // 10):
        with ctx.Pool(1) as pool:
            r = pool.apply(one, ((subs, a.titles, a.sites, a.days, a.seed),))
        target = subs == a.subscribers
        verdict = ""
        if target:
            fine = r["wall_s"] <= TARGET_S * a.days and r["peak_gb"] <= TARGET_GB
            verdict = f"  [target <= {TARGET_S:.0f} s, <= {TARGET_GB:.0f} GB: " + (
                "met]" if fine else "MISSED]"
            )
        print(
            f"{subs:>9,} subscribers, {a.titles:,} titles, {a.sites} sites, {a.days} day(s): "
            f"{r['sessions']:,} sessions ({r['pieces']:,} slot pieces)\n"
            f"    wall {r['wall_s']:.1f} s (simulation {r['sim_s']:.1f} s, baselines "
            f"{r['baselines_s']:.1f} s), peak memory {r['peak_gb']:.2f} GB{verdict}\n"
            f"    phases {r['phases']}\n"
            f"    steering: {r['lpm_calls']} LPM batch calls, {r['steer_calls']} steer calls, "
            f"{r['route_classes']} route classes\n"
            f"    offload {100 * r['offload']:.1f}%; side by side {r['comparison']}; "
            f"bytes conserved: {r['conserved']}",
            flush=True,
        )
        ok = ok and bool(r["conserved"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
