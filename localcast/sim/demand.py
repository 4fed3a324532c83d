"""Demand: playback sessions, generated vectorised from the model or read from a trace.

The model, per simulated UTC day ``d`` (a generator seeded by ``(seed, d)``,
so a day's sessions do not depend on how many days are run):

* **Sessions per prefix**: Poisson with mean ``subscribers x sessions_per_subscriber``.
* **Start**: a local hour drawn from the diurnal curve (24 weights, evening
  peak by default), a uniform second in it, converted with the prefix's time
  zone to UTC and wrapped into the UTC day (each UTC day carries a full day).
* **Title**: Zipf-like popularity, weight ``(rank + 1) ** -zipf`` over a
  seeded global ranking, times ``exp(regional_skew x Z)`` per (region, title)
  (``Z`` standard normal, seeded by the region's name): 0 is one ranking
  everywhere. A release is not watchable before its day; from it, its weight
  is multiplied by ``1 + boost x exp(-days_since / launch_days)`` (the
  launch spike). Sessions of a title released later that day start after
  the release (squeezed into the rest of the day).
* **Length**: exponential with mean ``session_minutes``, at least a minute,
  at most the title.
* **Bit rate**: a rendition drawn with the ladder's shares (a device mix).
* **Client**: subscriber ``k`` of a prefix always has the address ``network + 1 + k``
  (wrapped in the prefix).

A trace (CSV with a header: ``time`` (unix seconds or ISO 8601), ``client_ip``,
``title``, ``bitrate`` (bits/s), optionally ``duration_s``) replaces the model.

:func:`explode` cuts sessions at slot boundaries: one *piece* per (session,
slot), carrying its bytes in that slot; capacity and accounting work on pieces.
"""

from __future__ import annotations

import csv
import ipaddress
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from localcast.sim.catalog import SimCatalog
from localcast.sim.config import DemandSpec, SimConfigError, SimSpec

DAY_S = 86400.0
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class Populations:
    """The subscribers, one row per ISP prefix."""

    prefixes: tuple[str, ...]
    isp: I32  # ISP index
    region: I32  # popularity region index
    subscribers: I64
    tz: tuple[str, ...]
    net_hi: U64
    net_lo: U64
    hosts: I64  # usable addresses (>= 1)
    v6: BoolArray
    regions: tuple[str, ...]


def populations(spec: SimSpec) -> Populations:
    rows = [(i, isp, p) for i, isp in enumerate(spec.isps) for p in isp.prefixes]
    regions = tuple(dict.fromkeys(p.region or isp.id for _, isp, p in rows))
    rindex = {r: k for k, r in enumerate(regions)}
    nets = [ipaddress.ip_network(p.prefix) for _, _, p in rows]
    hosts = []
    for n in nets:
        size = n.num_addresses
        hosts.append(max(1, min(size - 2, 2**62)) if size > 2 else size)
    return Populations(
        prefixes=tuple(p.prefix for _, _, p in rows),
        isp=np.array([i for i, _, _ in rows], dtype=np.int32),
        region=np.array([rindex[p.region or isp.id] for _, isp, p in rows], dtype=np.int32),
        subscribers=np.array([p.subscribers for _, _, p in rows], dtype=np.int64),
        tz=tuple(p.tz or isp.tz for _, isp, p in rows),
        net_hi=np.array([int(n.network_address) >> 64 for n in nets], dtype=np.uint64),
        net_lo=np.array([int(n.network_address) & (2**64 - 1) for n in nets], dtype=np.uint64),
        hosts=np.array(hosts, dtype=np.int64),
        v6=np.array([n.version == 6 for n in nets], dtype=bool),
        regions=regions,
    )


@dataclass(frozen=True, eq=False)
class Releases:
    """Per title: the release time (unix s; -inf: always out), boost, announced factor."""

    at: F64
    boost: F64
    announce: F64

    def released_titles(self) -> npt.NDArray[np.intp]:
        return np.flatnonzero(np.isfinite(self.at) & (self.at > -np.inf))


def releases(spec: SimSpec, catalog: SimCatalog) -> Releases:
    n = len(catalog)
    at = np.full(n, -np.inf)
    boost = np.zeros(n)
    announce = np.zeros(n)
    t0 = spec.sim.start_ts
    for r in spec.catalog.releases:
        i = catalog.index.get(r.title)
        if i is None:
            raise SimConfigError(f"catalog.releases: unknown title {r.title!r}")
        at[i] = t0 + r.day * DAY_S + r.hour * 3600.0
        boost[i] = r.boost
        announce[i] = r.announce
    k = spec.catalog.releases_per_day
    if k:
        rng = np.random.default_rng([spec.sim.seed, 0x7E1])
        free = np.flatnonzero(~np.isfinite(at))
        picks = rng.choice(free, size=min(len(free), k * spec.sim.days), replace=False)
        for j, i in enumerate(picks.tolist()):
            at[i] = t0 + (j // k) * DAY_S + float(rng.uniform(0, 20)) * 3600.0
            boost[i] = 30.0
            announce[i] = 1.0
    return Releases(at, boost, announce)


class Popularity:
    """Title weights per popularity region and day (see the module rules)."""

    def __init__(self, spec: SimSpec, catalog: SimCatalog, pops: Populations) -> None:
        n = len(catalog)
        d = spec.demand
        rng = np.random.default_rng([spec.sim.seed, 0x20F])
        rank = rng.permutation(n)
        base = (rank + 1.0) ** -d.zipf
        self.weights = np.empty((len(pops.regions), n))
        for k, name in enumerate(pops.regions):
            r = np.random.default_rng([spec.sim.seed, zlib.crc32(name.encode())])
            self.weights[k] = base * np.exp(d.regional_skew * r.standard_normal(n))
        self.releases = releases(spec, catalog)
        self.launch_days = d.launch_days
        self.t0 = spec.sim.start_ts

    def day_factor(self, day_start: float) -> F64:
        """Per title: 0 before its release day, the launch spike from it, 1 for the rest."""
        rel = self.releases
        factor = np.ones(len(rel.at))
        released = np.isfinite(rel.at)
        day_of_rel = np.floor((rel.at[released] - self.t0) / DAY_S)
        today = np.floor((day_start - self.t0) / DAY_S)
        since = today - day_of_rel
        f = np.where(
            since < 0,
            0.0,
            1.0 + rel.boost[released] * np.exp(-np.maximum(since, 0) / self.launch_days),
        )
        factor[released] = f
        return factor

    def probabilities(self, day_start: float) -> F64:
        """(regions, titles) title probabilities for the day starting at ``day_start``."""
        w = self.weights * self.day_factor(day_start)[None, :]
        total = w.sum(axis=1, keepdims=True)
        out: F64 = w / np.where(total > 0, total, 1.0)
        return out


@dataclass(frozen=True, eq=False)
class Sessions:
    """Playback sessions, sorted by start time."""

    start: F64
    duration: F64
    title: I32
    bitrate: F64  # bits/s
    ip_hi: U64
    ip_lo: U64
    v6: BoolArray
    pop: I32  # population (ISP prefix) index, -1: unknown (a trace address outside them)

    def __len__(self) -> int:
        return len(self.start)

    @property
    def bytes(self) -> F64:
        out: F64 = self.bitrate / 8.0 * self.duration
        return out


def _utc_offsets(tzs: tuple[str, ...], at: float) -> F64:
    when = datetime.fromtimestamp(at, UTC)
    out = []
    for name in tzs:
        off = when.astimezone(ZoneInfo(name)).utcoffset()
        out.append(0.0 if off is None else off.total_seconds())
    return np.array(out)


def model_day(
    spec: SimSpec, catalog: SimCatalog, pops: Populations, popularity: Popularity, day: int
) -> Sessions:
    """One UTC day of sessions from the model (``day`` 0 is the first simulated day)."""
    d: DemandSpec = spec.demand
    rng = np.random.default_rng([spec.sim.seed, 0x5E55, day + 1])  # day -1: the carry-in
    day_start = spec.sim.start_ts + day * DAY_S
    counts = rng.poisson(pops.subscribers * d.sessions_per_subscriber)
    pop = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    n = len(pop)
    diurnal = np.asarray(d.diurnal, dtype=np.float64)
    hour = rng.choice(24, size=n, p=diurnal / diurnal.sum())
    local = hour * 3600.0 + rng.uniform(0.0, 3600.0, size=n)
    offsets = _utc_offsets(pops.tz, day_start + DAY_S / 2)
    start = day_start + np.mod(local - offsets[pop], DAY_S)
    probs = popularity.probabilities(day_start)
    title = np.empty(n, dtype=np.int32)
    region = pops.region[pop]
    u = rng.uniform(size=n)
    for k in range(len(pops.regions)):
        sel = np.flatnonzero(region == k)
        if len(sel) == 0:
            continue
        cdf = np.cumsum(probs[k])
        title[sel] = np.minimum(np.searchsorted(cdf, u[sel] * cdf[-1], side="right"), len(cdf) - 1)
    rel_at = popularity.releases.at[title]
    late = rel_at > start  # released later today: start after the release
    if late.any():
        room = (day_start + DAY_S) - rel_at[late]
        start[late] = rel_at[late] + (start[late] - day_start) / DAY_S * np.maximum(room, 0.0)
    duration = np.clip(
        rng.exponential(d.session_minutes * 60.0, size=n), 60.0, catalog.duration_s[title]
    )
    column = rng.choice(len(catalog.shares), size=n, p=catalog.shares)
    bitrate = catalog.bitrates[title, column]
    sub = (rng.uniform(size=n) * pops.subscribers[pop]).astype(np.int64)
    offset = (1 + sub % np.maximum(pops.hosts[pop], 1)).astype(np.uint64)
    offset[pops.hosts[pop] <= 2] = 0
    lo = pops.net_lo[pop] + offset
    hi = pops.net_hi[pop] + (lo < pops.net_lo[pop]).astype(np.uint64)  # carry
    order = np.argsort(start, kind="stable")
    return Sessions(
        start=start[order],
        duration=duration[order],
        title=title[order],
        bitrate=bitrate[order],
        ip_hi=hi[order],
        ip_lo=lo[order],
        v6=pops.v6[pop][order],
        pop=pop[order],
    )


def concat(parts: list[Sessions]) -> Sessions:
    if not parts:
        e = np.zeros(0)
        return Sessions(
            e,
            e,
            np.zeros(0, np.int32),
            e,
            np.zeros(0, np.uint64),
            np.zeros(0, np.uint64),
            np.zeros(0, bool),
            np.zeros(0, np.int32),
        )
    out = Sessions(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in Sessions.__dataclass_fields__)
    )
    order = np.argsort(out.start, kind="stable")
    return Sessions(*(getattr(out, f)[order] for f in Sessions.__dataclass_fields__))


def _time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.timestamp()


def load_trace(path: Path, catalog: SimCatalog, default_duration_s: float) -> Sessions:
    """Sessions from a trace CSV (see the module text); errors name the line and column."""
    starts: list[float] = []
    durations: list[float] = []
    titles: list[int] = []
    rates: list[float] = []
    his: list[int] = []
    los: list[int] = []
    v6s: list[bool] = []
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            need = {"time", "client_ip", "title", "bitrate"}
            if reader.fieldnames is None or not need <= set(reader.fieldnames):
                raise SimConfigError(
                    f"demand.trace: {path}: header must name {', '.join(sorted(need))} "
                    f"(and optionally duration_s)"
                )
            for line, row in enumerate(reader, start=2):
                where = f"demand.trace: {path}:{line}"
                try:
                    t = _time(row["time"])
                except ValueError as exc:
                    raise SimConfigError(f"{where}: time: {exc}") from exc
                try:
                    addr = ipaddress.ip_address(row["client_ip"].strip())
                except ValueError as exc:
                    raise SimConfigError(f"{where}: client_ip: {exc}") from exc
                if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                    addr = addr.ipv4_mapped
                title = catalog.index.get(row["title"].strip())
                if title is None:
                    raise SimConfigError(f"{where}: title: {row['title']!r} is not in the catalog")
                try:
                    rate = float(row["bitrate"])
                    dur_text = (row.get("duration_s") or "").strip()
                    dur = float(dur_text) if dur_text else default_duration_s
                except ValueError as exc:
                    raise SimConfigError(f"{where}: bitrate/duration_s: {exc}") from exc
                if rate <= 0 or dur <= 0:
                    raise SimConfigError(f"{where}: bitrate and duration_s must be positive")
                value = int(addr)
                starts.append(t)
                durations.append(dur)
                titles.append(title)
                rates.append(rate)
                his.append(value >> 64)
                los.append(value & (2**64 - 1))
                v6s.append(addr.version == 6)
    except OSError as exc:
        raise SimConfigError(f"demand.trace: {path}: {exc}") from exc
    s = Sessions(
        start=np.array(starts, dtype=np.float64),
        duration=np.array(durations, dtype=np.float64),
        title=np.array(titles, dtype=np.int32),
        bitrate=np.array(rates, dtype=np.float64),
        ip_hi=np.array(his, dtype=np.uint64),
        ip_lo=np.array(los, dtype=np.uint64),
        v6=np.array(v6s, dtype=bool),
        pop=np.full(len(starts), -1, dtype=np.int32),
    )
    return concat([s])


@dataclass(frozen=True, eq=False)
class Pieces:
    """Sessions cut at slot boundaries, sorted by slot then by session start."""

    slot: I32
    session: I32
    bytes: F64
    first: BoolArray  # the session starts in this piece
    bounds: I64  # pieces of slot k: [bounds[k], bounds[k + 1])

    def __len__(self) -> int:
        return len(self.slot)


def explode(s: Sessions, t0: float, slot_s: float, n_slots: int) -> Pieces:
    """One piece per (session, slot) it overlaps within ``[t0, t0 + n_slots x slot_s)``.

    A session that started before ``t0`` (the day before's evening) brings the
    pieces it still plays; only a session starting inside has a ``first`` piece.
    """
    end = s.start + s.duration
    k0 = np.floor((s.start - t0) / slot_s).astype(np.int64)
    k1 = np.floor((end - t0) / slot_s - 1e-9).astype(np.int64)
    keep = (k1 >= 0) & (k0 < n_slots) & (end > t0)
    idx = np.flatnonzero(keep)
    inside = k0[idx] >= 0
    k0 = np.maximum(k0[idx], 0)
    k1 = np.minimum(np.maximum(k1[idx], k0), n_slots - 1)
    n = (k1 - k0 + 1).astype(np.int64)
    session = np.repeat(idx, n)
    offset = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
    slot = np.repeat(k0, n) + offset
    lo = np.maximum(s.start[session], t0 + slot * slot_s)
    hi = np.minimum(end[session], t0 + (slot + 1) * slot_s)
    nbytes = s.bitrate[session] / 8.0 * np.maximum(hi - lo, 0.0)
    first = (offset == 0) & np.repeat(inside, n)
    order = np.lexsort((session, slot))  # sessions are sorted by start: arrival order
    slot = slot[order]
    return Pieces(
        slot=slot.astype(np.int32),
        session=session[order].astype(np.int32),
        bytes=nbytes[order],
        first=first[order],
        bounds=np.searchsorted(slot, np.arange(n_slots + 1)).astype(np.int64),
    )
