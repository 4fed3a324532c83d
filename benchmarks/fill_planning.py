"""Benchmark: fill planning (forecast + placement + manifests) for a large fleet.

Generates a deterministic catalog and fleet (fixed seed): 100,000 placement
objects over 1,000 appliances in 100 sites (10 each, disks of two sizes, 1x
and 2x), the sites grouped in 20 regions (popularity feeds). The issue counts
*files*; placement works on titles, so here each placement object is one
file-sized object (a title of one file, lognormal sizes, median 2 MB), and
every site's storage holds about 30 % of the catalog's bytes. Demand history:
per region, 14 days of sessions on its 2,000 most popular titles that day (a
Zipf law over a regional reshuffle of one global ranking, with daily noise);
100 scheduled releases due within two days.

Prints, for day 1 (no previous manifests) and day 2 (one more day of history
with a popularity shift, one appliance added to one site and one removed from
another, previous manifests):

* seconds for the forecast, the placement of every site, the manifests, and
  their sum, next to the target (< 10 s);
* memory: RSS before and after planning, peak RSS of the process (inputs
  included), and with ``--tracemalloc`` the peak traced allocation of the
  planning (a slower, separate pass);
* copies placed, titles left out, and on day 2 the churn (title copies added)
  against its floor (:func:`~localcast.core.placement.churn_floor`).

Nothing is enforced: the exit status is non-zero only if something failed.

    .venv/bin/python benchmarks/fill_planning.py [--titles 100000] [--sites 100]
        [--per-site 10] [--regions 20] [--days 14] [--per-day 2000] [--hold 0.3]
        [--seed 7] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from localcast.core.forecast import DAY_S, DemandRecord, Forecast, Release, forecast
from localcast.core.placement import (
    ApplianceManifest,
    PlacementAppliance,
    PlacementParams,
    SitePlacement,
    churn,
    churn_floor,
    next_manifests,
    place_site,
    prepare_catalog,
)

TARGET_S = 10.0
DAY1 = 20_000  # a UTC day number
MEDIAN_BYTES = 2_000_000


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class World:
    sizes: dict[str, int]
    sites: dict[str, list[PlacementAppliance]]  # site -> appliances
    region_of: dict[str, str]  # site -> region
    history: list[DemandRecord]
    releases: list[Release]


def build_world(args: argparse.Namespace, rng: np.random.Generator) -> World:
    ids = [f"t{i:06d}" for i in range(args.titles)]
    raw = rng.lognormal(np.log(MEDIAN_BYTES), 0.6, args.titles).astype(np.int64) + 1
    sizes = dict(zip(ids, raw.tolist(), strict=True))
    site_bytes = args.hold * float(raw.sum()) / PlacementParams().fill_ratio
    units = np.array([1 + (i % 2) for i in range(args.per_site)], dtype=np.float64)  # 1x, 2x
    disks = (site_bytes * units / units.sum()).astype(np.int64)
    sites: dict[str, list[PlacementAppliance]] = {}
    region_of: dict[str, str] = {}
    for s in range(args.sites):
        sid = f"s{s:03d}"
        region_of[sid] = f"r{s % args.regions:02d}"
        sites[sid] = [
            PlacementAppliance(f"{sid}-a{i:02d}", sid, int(disks[i])) for i in range(args.per_site)
        ]
    history = [
        rec
        for r in range(args.regions)
        for rec in region_history(rng, ids, f"r{r:02d}", args.days, args.per_day)
    ]
    releases = [
        Release(
            title_id=ids[int(i)],
            release_at=(DAY1 + 1) * DAY_S + float(rng.uniform(0, DAY_S)),
            expected_sessions=float(rng.uniform(500, 5000)),
            regions=None if k % 2 else (f"r{k % args.regions:02d}",),
        )
        for k, i in enumerate(rng.choice(args.titles, size=100, replace=False))
    ]
    return World(sizes, sites, region_of, history, releases)


def region_history(
    rng: np.random.Generator,
    ids: Sequence[str],
    region: str,
    days: int,
    per_day: int,
    first_day: int | None = None,
    shift: float = 0.0,
) -> list[DemandRecord]:
    """``days`` days of a region's demand: its ``per_day`` most popular titles each day."""
    n = len(ids)
    # the regional ranking: the global one (title index) reshuffled by lognormal noise
    score = np.log1p(np.arange(n)) + rng.normal(0.0, 1.0 + shift, n)
    records: list[DemandRecord] = []
    start = DAY1 - days if first_day is None else first_day
    for d in range(start, start + days):
        daily = score + rng.normal(0.0, 0.3, n)
        top = np.argpartition(daily, per_day)[:per_day]
        ranks = np.argsort(np.argsort(daily[top]))
        sessions = 50_000.0 / (ranks + 1.0) ** 0.9
        records.extend(
            DemandRecord(d, region, ids[int(t)], float(s))
            for t, s in zip(top, sessions, strict=True)
        )
    return records


@dataclass(frozen=True)
class Plan:
    fc: Forecast
    placements: list[SitePlacement]
    manifests: dict[str, ApplianceManifest]
    seconds: tuple[float, float, float]  # forecast, placement, manifests


def plan(
    world: World,
    sites: Mapping[str, list[PlacementAppliance]],
    history: Sequence[DemandRecord],
    now: float,
    previous: Mapping[str, ApplianceManifest],
) -> Plan:
    t0 = time.perf_counter()
    fc = forecast(history, world.releases, sorted(set(world.region_of.values())), now)
    t1 = time.perf_counter()
    catalog = prepare_catalog(world.sizes)
    placements = [
        place_site(sid, apps, world.sizes, fc[world.region_of[sid]], catalog=catalog)
        for sid, apps in sites.items()
    ]
    t2 = time.perf_counter()
    manifests = next_manifests(placements, previous, int(now // DAY_S))
    t3 = time.perf_counter()
    return Plan(fc, placements, manifests, (t1 - t0, t2 - t1, t3 - t2))


def report(label: str, p: Plan, rss_before: float) -> None:
    fs, ps, ms = p.seconds
    total = fs + ps + ms
    copies = sum(sum(p.replicas.values()) for p in p.placements)
    left = sum(len(p.left_out) for p in p.placements)
    demanded = sum(len(titles) for titles in p.fc.values())
    print(f"\n{label}")
    print(f"  forecast   {fs:6.2f} s  ({demanded:,} (region, title) figures)")
    print(f"  placement  {ps:6.2f} s  ({len(p.placements)} sites, {copies:,} copies placed)")
    print(f"  manifests  {ms:6.2f} s  ({len(p.manifests):,} appliances)")
    verdict = "ok" if total < TARGET_S else "MISSED"
    print(f"  total      {total:6.2f} s  target < {TARGET_S:.0f} s: {verdict}")
    print(
        f"  memory: RSS {rss_before:.0f} -> {rss_mib():.0f} MiB, "
        f"process peak {peak_rss_mib():.0f} MiB (inputs included)"
    )
    print(f"  titles with demand left out (site full): {left:,} over all sites")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--titles", type=int, default=100_000)
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--per-site", type=int, default=10)
    ap.add_argument("--regions", type=int, default=20)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--per-day", type=int, default=2000)
    ap.add_argument("--hold", type=float, default=0.3, help="site storage / catalog bytes")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tracemalloc", action="store_true", help="also trace allocations")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    t = time.perf_counter()
    world = build_world(args, rng)
    appliances = sum(len(a) for a in world.sites.values())
    print(
        f"{args.titles:,} placement objects (each one file-sized object: a title of one file), "
        f"{appliances:,} appliances in {args.sites} sites, {args.regions} regions; "
        f"{len(world.history):,} demand records over {args.days} days, "
        f"{len(world.releases)} releases; seed {args.seed}"
    )
    print(f"  inputs generated in {time.perf_counter() - t:.1f} s (not counted)")

    now1 = DAY1 * DAY_S + 3600.0
    rss = rss_mib()
    day1 = plan(world, world.sites, world.history, now1, {})
    report(f"day {DAY1}: first plan, no previous manifests", day1, rss)

    # day 2: one more day of (shifted) demand, one appliance added and one removed
    extra = [
        rec
        for r in range(args.regions)
        for rec in region_history(rng, world_ids(world), f"r{r:02d}", 1, args.per_day, DAY1, 0.5)
    ]
    sites2 = {sid: list(apps) for sid, apps in world.sites.items()}
    first, second = sorted(sites2)[:2]
    sites2[first].append(PlacementAppliance(f"{first}-new", first, sites2[first][0].disk_bytes))
    removed = sites2[second].pop(0)
    rss = rss_mib()
    day2 = plan(world, sites2, world.history + extra, now1 + DAY_S, day1.manifests)
    report(f"day {DAY1 + 1}: shifted demand, {first} +1 appliance, {second} -1", day2, rss)
    changed = sum(1 for a, m in day2.manifests.items() if day1.manifests.get(a) is not m)
    print(f"  manifests with a new version: {changed:,} of {len(day2.manifests):,}")
    by_site1 = {p.site_id: p for p in day1.placements}
    for p in day2.placements:
        if p.site_id not in (first, second):
            continue
        before = by_site1[p.site_id].holdings
        held = sum(len(t) for t in p.holdings.values())
        what = "added" if p.site_id == first else f"removed {removed.id}"
        print(
            f"  site {p.site_id} ({what}): churn {churn(before, p.holdings):,} copies, "
            f"floor {churn_floor(before, p.holdings):,}, of {held:,} copies held"
        )
    all1 = {a: m.titles for a, m in day1.manifests.items()}
    all2 = {a: m.titles for a, m in day2.manifests.items()}
    total2 = sum(len(t) for t in all2.values())
    print(
        f"  whole fleet: churn {churn(all1, all2):,} copies, floor "
        f"{churn_floor(all1, all2):,}, of {total2:,} copies held"
    )

    if args.tracemalloc:
        tracemalloc.start()
        plan(world, world.sites, world.history, now1, {})
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"\ntracemalloc: planning day {DAY1} peaks at {peak / 2**20:.0f} MiB allocated")
    return 0


def world_ids(world: World) -> list[str]:
    return sorted(world.sizes)


if __name__ == "__main__":
    sys.exit(main())
