"""Every appliance's learned routes, indexed by longest-prefix match.

What lives here: the part of the steering snapshot that holds BGP-learned
routes. A :class:`RouteIndex` is the Adj-RIB-In of every appliance that
speaks BGP plus one index over all of them, answering "which prefixes cover
this address, and which appliances heard each" (a *route set*: the
appliances that heard that exact prefix, interned, so a million prefixes
heard by the same four appliances share one tuple). Which of them wins is
:mod:`localcast.core.decision`'s job, not this module's.

Theory of operation: a full build (:meth:`RouteIndex.build`, vectorised,
2-3 s for 1.1 M prefixes heard by 4 appliances) makes the *base*: an
:class:`~localcast.core.lpm.LpmIndex` over every prefix any appliance heard
and an array ``entry -> route set``. Deltas do not rebuild it:
:func:`with_delta` applies the delta to the appliance's Adj-RIB-In (copy on
write) and records, in a small *overlay*, the current route set of every
prefix touched since the base was built. Lookups read the base, then let the
overlay override or add prefixes (one dict probe per distinct prefix length
in the overlay). When :attr:`RouteIndex.needs_rebuild` says the overlay has
grown, the shell builds a fresh base off the lock with :func:`rebuilt` and
publishes ``rebased(current, fresh)``, which keeps the overlay entries for
whatever changed meanwhile. The overlay never forgets a touched prefix before
a rebuild (even one that went back to its base route set): that is what makes
``rebased`` exact.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from localcast.core.lpm import LpmIndex
from localcast.core.rib import AdjRibIn, RouteDelta, apply_delta, changed_keys, mask, pack

#: Overlay size (prefixes touched since the base was built) at which to rebuild the base.
REBUILD_AT = 50_000
#: ... or this fraction of the base's prefixes, when bigger: a table streamed in as deltas
#: (a chunked full) costs a geometric series of rebuilds, not one full build per chunk.
REBUILD_FRACTION = 1.0

RouteSet = tuple[str, ...]
_NO_SET: RouteSet = ()
_V6_ROW = np.dtype([("hi", ">u8"), ("lo", ">u8"), ("len", "u1")])


@dataclass(frozen=True)
class Overlay:
    """Prefix -> current route set, for every prefix touched since the base was built."""

    v4: Mapping[int, RouteSet] = field(default_factory=lambda: MappingProxyType({}))
    v6: Mapping[int, RouteSet] = field(default_factory=lambda: MappingProxyType({}))
    lengths_v4: tuple[int, ...] = ()  # distinct prefix lengths, longest first
    lengths_v6: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.v4) + len(self.v6)

    def table(self, version: int) -> Mapping[int, RouteSet]:
        return self.v4 if version == 4 else self.v6

    def lengths(self, version: int) -> tuple[int, ...]:
        return self.lengths_v4 if version == 4 else self.lengths_v6


def _lengths(table: Mapping[int, RouteSet]) -> tuple[int, ...]:
    return tuple(sorted({k & 0xFF for k in table}, reverse=True))


def _more_lengths(lengths: tuple[int, ...], added: list[int]) -> tuple[int, ...]:
    """``lengths`` plus those of the ``added`` keys (the overlay only grows between builds)."""
    new = {k & 0xFF for k in added}
    if new.issubset(lengths):
        return lengths
    return tuple(sorted(new.union(lengths), reverse=True))


@dataclass(frozen=True, eq=False)
class _Base:
    """The built part: an LPM index and its entries' route sets."""

    lpm: LpmIndex | None
    entry_sets: memoryview  # entry -> route set id (entry 0 unused)
    route_sets: tuple[RouteSet, ...]

    def route_set(self, entry: int) -> RouteSet:
        return self.route_sets[self.entry_sets[entry]]


_EMPTY_BASE = _Base(None, np.zeros(1, np.int32).data, (_NO_SET,))


@dataclass(frozen=True, eq=False)
class RouteIndex:
    """Adj-RIB-In per BGP-speaking appliance, and the index over all of them."""

    ribs: Mapping[str, AdjRibIn]
    base: _Base = _EMPTY_BASE
    overlay: Overlay = field(default_factory=Overlay)

    @classmethod
    def empty(cls) -> RouteIndex:
        return cls(MappingProxyType({}))

    @classmethod
    def build(cls, ribs: Mapping[str, AdjRibIn]) -> RouteIndex:
        """A fresh base over ``ribs`` (appliance id -> its Adj-RIB-In), no overlay."""
        return cls(MappingProxyType(dict(ribs)), _build_base(ribs))

    # --- reading ------------------------------------------------------------------------------

    @property
    def speakers(self) -> frozenset[str]:
        """Appliances that speak BGP (have an Adj-RIB-In, maybe empty)."""
        return frozenset(self.ribs)

    @property
    def route_count(self) -> int:
        """Routes held, over all appliances (a prefix heard by two counts twice)."""
        return sum(len(r) for r in self.ribs.values())

    @property
    def needs_rebuild(self) -> bool:
        lpm = self.base.lpm
        base_size = lpm.size if lpm is not None else 0
        return len(self.overlay) >= max(REBUILD_AT, int(base_size * REBUILD_FRACTION))

    def route_set(self, version: int, key: int) -> RouteSet:
        """The appliances that heard exactly prefix ``key`` now."""
        over = self.overlay.table(version)
        if key in over:
            return over[key]
        return self._base_set(version, key)

    def _base_set(self, version: int, key: int) -> RouteSet:
        lpm = self.base.lpm
        if lpm is None:
            return _NO_SET
        entry = lpm.find(version, key >> 8, key & 0xFF)
        return self.base.route_set(entry) if entry else _NO_SET

    def covering(self, version: int, address: int) -> list[tuple[int, RouteSet]]:
        """Every prefix that covers ``address`` and that someone heard, longest first.

        Each item is ``(packed prefix, route set)``.
        """
        out: list[tuple[int, RouteSet]] = []
        over = self.overlay.table(version)
        lpm = self.base.lpm
        chain_keys: list[int] = []
        if lpm is not None:
            entry = lpm.lookup_int(version, address)
            while entry:
                key = lpm.key_of(entry)
                routes = over.get(key) if over else None
                if routes is None:
                    routes = self.base.route_set(entry)
                if routes:
                    out.append((key, routes))
                if over:
                    chain_keys.append(key)
                entry = lpm.parent(entry)
        if over:
            added = False
            for length in self.overlay.lengths(version):
                key = pack(address & mask(version, length), length)
                routes = over.get(key)
                if routes and key not in chain_keys:
                    out.append((key, routes))
                    added = True
            if added:
                out.sort(key=lambda item: -(item[0] & 0xFF))
        return out

    def prefixes(self, version: int) -> Iterator[tuple[int, RouteSet]]:
        """Every prefix of ``version`` heard now, with its route set (base order, then new)."""
        over = self.overlay.table(version)
        lpm = self.base.lpm
        seen: set[int] = set()
        if lpm is not None:
            first, last = (1, lpm.n4) if version == 4 else (lpm.n4 + 1, lpm.size)
            for entry in range(first, last + 1):
                key = lpm.key_of(entry)
                seen.add(key)
                routes = over.get(key, self.base.route_set(entry))
                if routes:
                    yield key, routes
        for key, routes in over.items():
            if key not in seen and routes:
                yield key, routes


# --- transitions ---------------------------------------------------------------------------


def with_delta(index: RouteIndex, appliance_id: str, delta: RouteDelta) -> RouteIndex:
    """``index`` with ``delta`` applied to ``appliance_id``'s Adj-RIB-In.

    An appliance seen for the first time becomes a BGP speaker. Cost: the
    copy of that appliance's table and of the overlay, plus one base lookup
    per prefix whose presence changed.
    """
    before = index.ribs.get(appliance_id, AdjRibIn(appliance_id))
    after = apply_delta(before, delta)
    ribs = dict(index.ribs)
    ribs[appliance_id] = after
    return _with_rib(index, ribs, before, after, delta)


def without_appliance(index: RouteIndex, appliance_id: str) -> RouteIndex:
    """``index`` without ``appliance_id`` (no longer a BGP speaker: its BGP was removed)."""
    before = index.ribs.get(appliance_id)
    if before is None:
        return index
    ribs = dict(index.ribs)
    del ribs[appliance_id]
    return _with_rib(index, ribs, before, AdjRibIn(appliance_id), RouteDelta.session_down())


def _with_rib(
    index: RouteIndex,
    ribs: dict[str, AdjRibIn],
    before: AdjRibIn,
    after: AdjRibIn,
    delta: RouteDelta,
) -> RouteIndex:
    aid = after.appliance_id
    tables: dict[int, dict[int, RouteSet]] = {}
    lengths: dict[int, tuple[int, ...]] = {}
    for version in (4, 6):
        keys = changed_keys(before, delta, version)
        old, new = before.table(version), after.table(version)
        touched = [k for k in keys if (k in old) != (k in new)]
        if not touched:
            continue
        over = index.overlay.table(version)
        table = over.copy() if isinstance(over, MappingProxyType | dict) else dict(over)
        joined: dict[RouteSet, RouteSet] = {}  # route set -> with/without aid (few distinct)
        left: dict[RouteSet, RouteSet] = {}
        for key in touched:
            current = table[key] if key in table else index._base_set(version, key)
            if key in new:
                routes = joined.get(current)
                if routes is None:
                    routes = joined[current] = tuple(sorted({*current, aid}))
            else:
                routes = left.get(current)
                if routes is None:
                    routes = left[current] = tuple(a for a in current if a != aid)
            table[key] = routes
        tables[version] = table
        lengths[version] = _more_lengths(index.overlay.lengths(version), touched)
    overlay = index.overlay
    if tables:
        v4 = tables.get(4)
        v6 = tables.get(6)
        overlay = Overlay(
            MappingProxyType(v4) if v4 is not None else overlay.v4,
            MappingProxyType(v6) if v6 is not None else overlay.v6,
            lengths.get(4, overlay.lengths_v4),
            lengths.get(6, overlay.lengths_v6),
        )
    return replace(index, ribs=MappingProxyType(ribs), overlay=overlay)


def rebuilt(index: RouteIndex) -> RouteIndex:
    """The same routes with a fresh base and an empty overlay (seconds at a full table)."""
    return RouteIndex.build(index.ribs)


def rebased(current: RouteIndex, fresh: RouteIndex) -> RouteIndex:
    """``current``'s routes over ``fresh``'s base.

    ``fresh`` must be :func:`rebuilt` from ``current`` or from an earlier
    index of the same lineage built on the same or a later base than
    ``current``'s; what changed since is carried as overlay.
    """
    tables: dict[int, dict[int, RouteSet]] = {4: {}, 6: {}}
    for version in (4, 6):
        for key, routes in current.overlay.table(version).items():
            if fresh._base_set(version, key) != routes:
                tables[version][key] = routes
    overlay = Overlay(
        MappingProxyType(tables[4]),
        MappingProxyType(tables[6]),
        _lengths(tables[4]),
        _lengths(tables[6]),
    )
    return RouteIndex(current.ribs, fresh.base, overlay)


# --- the vectorised build --------------------------------------------------------------------


def _v4_rows(rib: AdjRibIn) -> npt.NDArray[np.uint64]:
    return np.fromiter(rib.v4.keys(), dtype=np.uint64, count=len(rib.v4))


def _v6_rows(rib: AdjRibIn) -> npt.NDArray[np.void]:
    buf = b"".join(k.to_bytes(17, "big") for k in rib.v6)
    return np.frombuffer(buf, dtype=_V6_ROW)


def _group_masks(
    order: npt.NDArray[np.intp],
    changes: npt.NDArray[np.bool_],
    owner: npt.NDArray[np.int64],
    words: int,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
    """Group starts (in ``order``) and, per group, the bitmask of owners (``words`` x 64 bits)."""
    starts = np.flatnonzero(changes)
    owner_sorted = owner[order]
    masks = np.zeros((len(starts), words), dtype=np.uint64)
    bit = np.uint64(1) << (owner_sorted % 64).astype(np.uint64)
    word = owner_sorted // 64
    for w in range(words):
        masks[:, w] = np.bitwise_or.reduceat(np.where(word == w, bit, np.uint64(0)), starts)
    return starts, masks


def _build_base(ribs: Mapping[str, AdjRibIn]) -> _Base:
    speakers = sorted(ribs)
    words = max(1, (len(speakers) + 63) // 64)
    # IPv4: packed keys fit in 40 bits
    keys4 = [_v4_rows(ribs[a]) for a in speakers]
    owner4 = np.concatenate(
        [np.full(len(k), i, np.int64) for i, k in enumerate(keys4)] or [np.zeros(0, np.int64)]
    )
    all4 = np.concatenate(keys4 or [np.zeros(0, np.uint64)])
    order4 = np.argsort(all4, kind="stable")
    sorted4 = all4[order4]
    change4 = np.ones(len(sorted4), dtype=bool)
    change4[1:] = sorted4[1:] != sorted4[:-1]
    starts4, masks4 = (
        _group_masks(order4, change4, owner4, words)
        if len(sorted4)
        else (np.zeros(0, np.intp), np.zeros((0, words), np.uint64))
    )
    uniq4 = sorted4[starts4]
    # IPv6: rows of (hi, lo, len)
    rows6 = [_v6_rows(ribs[a]) for a in speakers]
    owner6 = np.concatenate(
        [np.full(len(r), i, np.int64) for i, r in enumerate(rows6)] or [np.zeros(0, np.int64)]
    )
    all6 = np.concatenate(rows6) if rows6 else np.zeros(0, _V6_ROW)
    hi = all6["hi"].astype(np.uint64)
    lo = all6["lo"].astype(np.uint64)
    ln = all6["len"].astype(np.uint8)
    order6 = np.lexsort((ln, lo, hi))
    h, lw, n = hi[order6], lo[order6], ln[order6]
    change6 = np.ones(len(h), dtype=bool)
    change6[1:] = (h[1:] != h[:-1]) | (lw[1:] != lw[:-1]) | (n[1:] != n[:-1])
    starts6, masks6 = (
        _group_masks(order6, change6, owner6, words)
        if len(h)
        else (np.zeros(0, np.intp), np.zeros((0, words), np.uint64))
    )
    # intern route sets (bitmasks) across both families
    masks = np.concatenate([masks4, masks6])
    if len(masks) == 0:
        return _EMPTY_BASE
    unique, inverse = np.unique(masks, axis=0, return_inverse=True)
    route_sets = tuple(_members(row, speakers) for row in unique.tolist())
    lpm = LpmIndex.build(
        (uniq4 >> np.uint64(8)).astype(np.uint32),
        (uniq4 & np.uint64(0xFF)).astype(np.uint8),
        h[starts6],
        lw[starts6],
        n[starts6],
    )
    entry_sets = np.concatenate([np.zeros(1, np.int32), inverse.reshape(-1).astype(np.int32)])
    entry_sets.flags.writeable = False
    return _Base(lpm, entry_sets.data, route_sets)


def _members(words: list[int], speakers: list[str]) -> RouteSet:
    out: list[str] = []
    for w, bits in enumerate(words):
        while bits:
            low = bits & -bits
            out.append(speakers[w * 64 + low.bit_length() - 1])
            bits ^= low
    return tuple(out)
