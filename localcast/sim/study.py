"""``localcast sim run``: the simulation, the baselines, the report, the plots, a storage sweep.

The sweep scales every cache site's disks by each factor: the reactive
baselines and the optimum are re-run on the same demand (cheap); the
proactive system is re-simulated at each factor when ``proactive_sweep`` (a
whole run per point, in worker processes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcast.core.fleet import SiteKind
from localcast.sim.baselines import CacheResult, all_caches, cache_sites, storage_of
from localcast.sim.config import SimSpec
from localcast.sim.report import (
    build_report,
    offload_of,
    plot_offload_vs_storage,
    plot_traffic,
    write_report,
)
from localcast.sim.run import SimResult, simulate


def scaled(spec: SimSpec, scale: float) -> SimSpec:
    """``spec`` with every non-origin appliance's disk times ``scale``."""
    if scale == 1.0:
        return spec
    sites = []
    for s in spec.sites:
        if s.kind is SiteKind.ORIGIN:
            sites.append(s)
            continue
        groups = [g.model_copy(update={"disk_tb": g.disk_tb * scale}) for g in s.appliances]
        sites.append(s.model_copy(update={"appliances": groups}))
    return spec.model_copy(update={"sites": sites})


def _proactive_offload(spec: SimSpec) -> float:
    return offload_of(simulate(spec))


def workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def sweep(
    result: SimResult,
    scales: Sequence[float],
    proactive: bool = False,
    say: Callable[[str], None] = lambda _m: None,
    base: dict[str, CacheResult] | None = None,
) -> list[dict[str, Any]]:
    """One comparison row per storage factor (see the module text)."""
    spec = result.spec
    others = [s for s in scales if s != 1.0]
    offloads: dict[float, float] = {1.0: offload_of(result)}
    if proactive and others:
        say(f"sweep: simulating the proactive fleet at {len(others)} more storage sizes")
        with ProcessPoolExecutor(max_workers=workers()) as pool:
            for s, value in zip(
                others, pool.map(_proactive_offload, [scaled(spec, s) for s in others]), strict=True
            ):
                offloads[s] = value
    rows = []
    sites = [i for i in cache_sites(result) if result.model.sites[i].kind is SiteKind.EMBEDDED]
    for s in sorted(set(scales)):
        caches = base if s == 1.0 and base is not None else all_caches(result, s)
        rows.append(
            {
                "scale": s,
                "storage_bytes": sum(storage_of(result, i, s) for i in sites),
                "proactive": offloads.get(s),
                **{name: offload_of(result, c) for name, c in caches.items()},
            }
        )
    return rows


@dataclass(frozen=True)
class Study:
    report: dict[str, Any]
    files: tuple[Path, ...]


def run_study(
    spec: SimSpec,
    out: Path,
    scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0),
    proactive_sweep: bool = False,
    plots: bool = True,
    say: Callable[[str], None] = lambda _m: None,
) -> Study:
    result = simulate(spec, progress=say)
    say("baselines: LRU, LFU, Belady on the same demand")
    caches = all_caches(result)
    rows = sweep(result, scales, proactive_sweep, say, caches) if scales else []
    report = build_report(result, caches, rows)
    files = [write_report(report, out)]
    if plots:
        files.append(plot_traffic(result, out / "traffic_by_source.png"))
        if rows:
            files.append(plot_offload_vs_storage(rows, out / "offload_vs_storage.png"))
    return Study(report, tuple(files))
