"""Benchmark: the route index and BGP steering over a full table, pytricia in the same run.

Generates a deterministic table (900,000 IPv4 + 200,000 IPv6 prefixes, a
realistic length mix, fixed seed) heard by 4 appliances in 2 sites (an
embedded site and an IX site; each site hears most prefixes on both of its
appliances, a few on one only), then prints:

* building: the Adj-RIBs-In, the full route index (route sets + LPM);
  the LPM alone and pytricia (the reference, same IPv4 prefixes) each in a
  fresh process, for an honest RSS growth;
* single lookups/s from address strings: our DIR-24-8 IPv4 path, the
  dispatching ``lookup()``, pytricia ``get``, IPv6 intervals vs a dict per
  prefix length (the alternative we did not take);
* batched lookups/s (numpy): IPv4 and IPv6;
* route deltas: applying 1,000 routes to a 1.1 M-route appliance, lookups
  with a non-empty overlay, a full rebuild;
* in-process steering decisions/s: the full ``steer()`` for random clients.

Targets (reported, not enforced): >= 2 M single IPv4 lookups/s (and 3x
pytricia), >= 20 M/s batched. The exit status is non-zero only if something
failed. About a minute.

    .venv/bin/python benchmarks/lpm_steering.py [--v4 900000] [--v6 200000] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from localcast.core.fleet import (
    Appliance,
    ApplianceState,
    CatalogTitle,
    FleetSnapshot,
    Health,
    Site,
    SiteKind,
    frozen_map,
)
from localcast.core.lpm import LpmIndex
from localcast.core.rib import AdjRibIn, Attributes, Origin, Path, Peer, RouteDelta
from localcast.core.routeindex import RouteIndex, with_delta
from localcast.core.routes import RouteTable
from localcast.core.steering import steer
from localcast.media.manifest import FileRef, TitleManifest

U64 = (1 << 64) - 1
APPLIANCES = {"a1": "isp-a", "a2": "isp-a", "x1": "ix-1", "x2": "ix-1"}
NOW = 1_800_000_000.0

# prefix length mixes (share of prefixes), roughly today's global tables
V4_LENGTHS = {
    8: 0.0003,
    12: 0.002,
    14: 0.004,
    16: 0.015,
    17: 0.01,
    18: 0.016,
    19: 0.03,
    20: 0.05,
    21: 0.05,
    22: 0.12,
    23: 0.1,
    24: 0.6027,
}
V6_LENGTHS = {
    24: 0.005,
    28: 0.02,
    29: 0.04,
    32: 0.15,
    36: 0.05,
    40: 0.06,
    44: 0.08,
    46: 0.03,
    47: 0.02,
    48: 0.545,
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds / 1e6:6.2f} M/s"


# --- the table ---------------------------------------------------------------------------------


def v4_table(
    rng: np.random.Generator, n: int
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8]]:
    lengths = np.array(list(V4_LENGTHS), dtype=np.uint64)
    share = np.array(list(V4_LENGTHS.values()))
    want = int(n * 1.3)
    ln = rng.choice(lengths, size=want, p=share / share.sum())
    addr = rng.integers(1 << 24, 224 << 24, size=want, dtype=np.uint64)
    net = addr & ((np.uint64(0xFFFFFFFF) << (np.uint64(32) - ln)) & np.uint64(0xFFFFFFFF))
    keys = np.unique((net << np.uint64(8)) | ln)
    keys = rng.permutation(keys)[:n]
    return (keys >> np.uint64(8)).astype(np.uint32), (keys & np.uint64(0xFF)).astype(np.uint8)


def v6_table(
    rng: np.random.Generator, n: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8]]:
    lengths = np.array(list(V6_LENGTHS), dtype=np.uint64)
    share = np.array(list(V6_LENGTHS.values()))
    want = int(n * 1.3)
    ln = rng.choice(lengths, size=want, p=share / share.sum())
    hi = rng.integers(0x2000 << 48, 0x2C00 << 48, size=want, dtype=np.uint64)
    hi &= np.uint64(U64) << (np.uint64(64) - ln)
    rows = np.unique(np.stack([hi, ln], axis=1), axis=0)
    rows = rows[rng.permutation(len(rows))[:n]]
    return rows[:, 0].copy(), rows[:, 1].astype(np.uint8)


def paths_for(aid: str, rng: np.random.Generator, count: int = 2000) -> list[Path]:
    peer = Peer(0x0A000001 + hash(aid) % 250, f"192.0.2.{1 + hash(aid) % 250}", 64500)
    out = []
    for i in range(count):
        extra = int(rng.integers(0, 4))
        attrs = Attributes((64500,) * (1 + extra) + (64501 + i % 50,), Origin.IGP, i % 7)
        out.append(Path(attrs, peer, peer.address, float(i)))
    return out


def hearing(rng: np.random.Generator, n: int) -> dict[str, npt.NDArray[np.bool_]]:
    """Which appliance hears which prefix: each site most, both appliances alike but 1%."""
    in_a, in_x = rng.random(n) < 0.6, rng.random(n) < 0.7
    in_x |= ~(in_a | in_x)
    out: dict[str, npt.NDArray[np.bool_]] = {}
    for first, second, site in (("a1", "a2", in_a), ("x1", "x2", in_x)):
        odd = rng.random(n) < 0.01
        which = rng.random(n) < 0.5
        out[first] = site & ~(odd & which)
        out[second] = site & ~(odd & ~which)
    return out


def build_ribs(
    rng: np.random.Generator,
    n4: npt.NDArray[np.uint32],
    l4: npt.NDArray[np.uint8],
    h6: npt.NDArray[np.uint64],
    l6: npt.NDArray[np.uint8],
) -> dict[str, AdjRibIn]:
    keys4 = ((n4.astype(np.uint64) << np.uint64(8)) | l4).tolist()
    keys6 = [(h << 72) | ln for h, ln in zip(h6.tolist(), l6.tolist(), strict=True)]
    who4, who6 = hearing(rng, len(keys4)), hearing(rng, len(keys6))
    ribs: dict[str, AdjRibIn] = {}
    for aid in APPLIANCES:
        paths = paths_for(aid, rng)
        pick4 = rng.integers(0, len(paths), len(keys4)).tolist()
        pick6 = rng.integers(0, len(paths), len(keys6)).tolist()
        m4, m6 = who4[aid].tolist(), who6[aid].tolist()
        v4 = {k: paths[p] for k, p, m in zip(keys4, pick4, m4, strict=True) if m}
        v6 = {k: paths[p] for k, p, m in zip(keys6, pick6, m6, strict=True) if m}
        ribs[aid] = AdjRibIn(aid, MappingProxyType(v4), MappingProxyType(v6))
    return ribs


# --- measuring ---------------------------------------------------------------------------------


def measured(fn: Callable[[], object]) -> tuple[object, float, int, int]:
    """(result, seconds, tracemalloc peak bytes, RSS growth bytes)."""
    gc.collect()
    rss0 = rss_bytes()
    tracemalloc.start()
    t = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak, rss_bytes() - rss0


def per_second(fn: Callable[[str], object], ips: Sequence[str], rounds: int = 3) -> float:
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for ip in ips:
            fn(ip)
        best = max(best, len(ips) / (time.perf_counter() - t))
    return best


def client_ips(
    rng: np.random.Generator, n4: npt.NDArray[np.uint32], l4: npt.NDArray[np.uint8], count: int
) -> list[str]:
    """Half inside announced prefixes, half anywhere."""
    pick = rng.integers(0, len(n4), count // 2)
    span = (np.uint64(1) << (np.uint64(32) - l4[pick].astype(np.uint64))).astype(np.uint64)
    inside = n4[pick].astype(np.uint64) + (
        rng.integers(0, 1 << 32, len(pick), dtype=np.uint64) % span
    )
    anywhere = rng.integers(0, 1 << 32, count - len(pick), dtype=np.uint64)
    both = rng.permutation(np.concatenate([inside, anywhere]).astype(np.uint32))
    return [socket.inet_ntoa(int(a).to_bytes(4, "big")) for a in both.tolist()]


def v6_ips(rng: np.random.Generator, h6: npt.NDArray[np.uint64], count: int) -> list[str]:
    pick = h6[rng.integers(0, len(h6), count // 2)]
    anywhere = rng.integers(0x2000 << 48, 0x2C00 << 48, count - len(pick), dtype=np.uint64)
    his = np.concatenate([pick | rng.integers(0, 1 << 16, len(pick), dtype=np.uint64), anywhere])
    return [
        socket.inet_ntop(socket.AF_INET6, ((int(h) << 64) | 0x1234).to_bytes(16, "big"))
        for h in his.tolist()
    ]


def fleet(learned: RouteIndex) -> FleetSnapshot:
    sites = {
        "isp-a": Site("isp-a", SiteKind.EMBEDDED, "isp-a", 48.85, 2.35, "UTC"),
        "ix-1": Site("ix-1", SiteKind.IX, None, 50.11, 8.68, "UTC"),
        "origin": Site("origin", SiteKind.ORIGIN, None, 39.0, -77.5, "UTC"),
    }
    health = Health(5.0, NOW - 1.0, NOW - 100.0, 20)
    registered, titles = ApplianceState.REGISTERED, frozenset({"t1"})
    apps = {
        aid: Appliance(aid, sid, f"http://{aid}", 10**12, 10.0, registered, health, titles=titles)
        for aid, sid in {**APPLIANCES, "o1": "origin"}.items()
    }
    ref = FileRef("0" * 64, "m3u8", 1)
    manifest = TitleManifest("t1", "t1", 60.0, 4.0, "0" * 64, (), ref, replace(ref, ext="mpd"))
    return FleetSnapshot(
        version=1,
        sites=frozen_map(sites),
        appliances=frozen_map(apps),
        catalog=frozen_map({"t1": CatalogTitle(manifest, frozenset())}),
        routes=RouteTable.build((), learned),
    )


def v4_texts(n4: npt.NDArray[np.uint32], l4: npt.NDArray[np.uint8]) -> list[str]:
    return [
        f"{socket.inet_ntoa(int(a).to_bytes(4, 'big'))}/{ln}"
        for a, ln in zip(n4.tolist(), l4.tolist(), strict=True)
    ]


def memory_probe(kind: str, v4: int, v6: int, seed: int) -> None:
    """In a fresh process: build one structure, print its RSS growth (bytes) and seconds."""
    rng = np.random.default_rng(seed)
    n4, l4 = v4_table(rng, v4)
    h6, l6 = v6_table(rng, v6)
    keep: object
    if kind == "pytricia":
        import pytricia  # type: ignore[import-not-found]

        texts = v4_texts(n4, l4)
        gc.collect()
        rss0, t = rss_bytes(), time.perf_counter()
        tree = pytricia.PyTricia(32)
        for i, p in enumerate(texts):
            tree[p] = i
        keep = tree
    else:
        if kind == "lpm-v4":
            h6, l6 = h6[:0], l6[:0]
        lo = np.zeros(len(h6), np.uint64)
        gc.collect()
        rss0, t = rss_bytes(), time.perf_counter()
        keep = LpmIndex.build(n4, l4, h6, lo, l6)
    print(rss_bytes() - rss0, time.perf_counter() - t, type(keep).__name__)


def fresh_process(kind: str, args: argparse.Namespace) -> tuple[int, float] | None:
    cmd = [
        sys.executable,
        __file__,
        "--memory-of",
        kind,
        "--v4",
        str(args.v4),
        "--v6",
        str(args.v6),
        "--seed",
        str(args.seed),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        return None
    grew, secs, _ = done.stdout.split()
    return int(grew), float(secs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--v4", type=int, default=900_000)
    parser.add_argument("--v6", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lookups", type=int, default=300_000)
    parser.add_argument(
        "--memory-of", choices=("pytricia", "lpm", "lpm-v4"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.memory_of:
        memory_probe(args.memory_of, args.v4, args.v6, args.seed)
        return 0
    rng = np.random.default_rng(args.seed)

    print(
        f"table: {args.v4:,} IPv4 + {args.v6:,} IPv6 prefixes, seed {args.seed}, "
        f"4 appliances in 2 sites"
    )
    t = time.perf_counter()
    n4, l4 = v4_table(rng, args.v4)
    h6, l6 = v6_table(rng, args.v6)
    print(f"  generated in {time.perf_counter() - t:.1f} s")
    ribs_obj, secs, peak, grew = measured(lambda: build_ribs(rng, n4, l4, h6, l6))
    ribs: dict[str, AdjRibIn] = ribs_obj  # type: ignore[assignment]
    routes = sum(len(r) for r in ribs.values())
    print(
        f"  Adj-RIBs-In: {routes:,} routes in {secs:.1f} s, RSS +{mib(grew)} "
        f"(tracemalloc peak {mib(peak)})"
    )

    print("\nbuild")
    index_obj, secs, peak, grew = measured(lambda: RouteIndex.build(ribs))
    index: RouteIndex = index_obj  # type: ignore[assignment]
    lpm = index.base.lpm
    assert lpm is not None
    print(
        f"  route index (route sets + LPM), {lpm.size:,} prefixes: {secs:.2f} s, "
        f"tracemalloc peak {mib(peak)}; LPM arrays {mib(lpm.nbytes)} "
        "(64 MiB tbl24 counted whole: only painted pages are resident)"
    )
    for kind, label in (
        ("lpm-v4", "LPM, IPv4 only"),
        ("lpm", "LPM, IPv4 + IPv6"),
        ("pytricia", "pytricia, IPv4 (reference)"),
    ):
        got = fresh_process(kind, args)
        if got is None:
            print(f"  {label}: could not run (pytricia not installed?)")
        else:
            print(f"  {label:28s} {got[1]:5.2f} s, RSS +{mib(got[0])} (fresh process)")
    try:
        import pytricia
    except ImportError:
        pytricia = None
    pyt = None
    if pytricia is not None:
        pyt = pytricia.PyTricia(32)
        for i, p in enumerate(v4_texts(n4, l4)):
            pyt[p] = i

    print("\nsingle lookups, address string -> longest prefix")
    ips = client_ips(rng, n4, l4, args.lookups)
    ours = per_second(lpm.lookup_v4, ips)
    print(f"  IPv4 DIR-24-8 (lookup_v4)        {ours / 1e6:6.2f} M/s")
    print(f"  IPv4 lookup() (dispatch on ':')  {per_second(lpm.lookup, ips) / 1e6:6.2f} M/s")
    if pyt is not None:
        ref = per_second(pyt.get, ips)  # type: ignore[attr-defined]
        print(
            f"  IPv4 pytricia get (reference)    {ref / 1e6:6.2f} M/s  -> ours {ours / ref:.1f}x "
            f"(target >= 2 M/s and 3x)"
        )
    ips6 = v6_ips(rng, h6, args.lookups // 2)
    print(f"  IPv6 intervals (lookup_v6)       {per_second(lpm.lookup_v6, ips6) / 1e6:6.2f} M/s")
    tables: dict[int, set[int]] = {}
    for h, ln in zip(h6.tolist(), l6.tolist(), strict=True):
        tables.setdefault(ln, set()).add(h >> (64 - ln))
    by_len = [(64 - ln, tables[ln]) for ln in sorted(tables, reverse=True)]

    def dict_per_length(ip: str) -> int:
        top = int.from_bytes(socket.inet_pton(socket.AF_INET6, ip)[:8], "big")
        for shift, nets in by_len:
            if top >> shift in nets:
                return shift
        return -1

    alt = per_second(dict_per_length, ips6)
    print(f"  IPv6 dict per length (not taken) {alt / 1e6:6.2f} M/s ({len(by_len)} lengths)")

    print("\nbatched lookups (numpy)")
    batch = rng.integers(0, 1 << 32, 10_000_000, dtype=np.uint64).astype(np.uint32)
    t = time.perf_counter()
    lpm.lookup_v4_batch(batch)
    print(
        f"  IPv4, 10 M addresses             {rate(len(batch), time.perf_counter() - t)} "
        "(target >= 20 M/s)"
    )
    bh = rng.integers(0x2000 << 48, 0x2C00 << 48, 2_000_000, dtype=np.uint64)
    t = time.perf_counter()
    lpm.lookup_v6_batch(bh, bh)
    print(f"  IPv6, 2 M addresses              {rate(len(bh), time.perf_counter() - t)}")

    print("\nroute deltas (no rebuild: an overlay over the built index)")
    a1 = ribs["a1"]
    moved = (n4[:1000] ^ np.uint32(1 << 31)).astype(np.uint64)  # /24s in the other half
    fresh = ((moved << np.uint64(8)) | np.uint64(24)).tolist()
    some_path = next(iter(a1.v4.values()))
    delta = RouteDelta(announced_v4=MappingProxyType(dict.fromkeys(fresh, some_path)))
    t = time.perf_counter()
    changed = with_delta(index, "a1", delta)
    ms = 1e3 * (time.perf_counter() - t)
    print(
        f"  1,000 routes into a {len(a1):,}-route appliance: {ms:.0f} ms "
        f"(copy on write of its table); overlay {len(changed.overlay):,} prefixes"
    )
    addrs = [int.from_bytes(socket.inet_aton(ip), "big") for ip in ips[:100_000]]
    for label, idx in (("empty overlay", index), ("1,000-prefix overlay", changed)):
        t = time.perf_counter()
        for a in addrs:
            idx.covering(4, a)
        print(f"  covering() with {label:22s} {rate(len(addrs), time.perf_counter() - t)}")
    t = time.perf_counter()
    RouteIndex.build(changed.ribs)
    print(f"  full rebuild (background):       {time.perf_counter() - t:.2f} s")

    print("\nsteering, in process")
    snap = fleet(index)
    clients = ips[:20_000]
    steer(snap, clients[0], "t1", NOW)
    t = time.perf_counter()
    for ip in clients:
        steer(snap, ip, "t1", NOW)
    secs = time.perf_counter() - t
    print(
        f"  steer() for random clients       {len(clients) / secs:8,.0f} decisions/s "
        f"({1e6 * secs / len(clients):.0f} us each)"
    )
    d = steer(snap, ips[0], "t1", NOW)
    print(f"  e.g. {ips[0]}: " + ", ".join(f"{s.site_id} ({s.decided_by})" for s in d.sites))
    return 0


if __name__ == "__main__":
    sys.exit(main())
