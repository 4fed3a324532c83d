"""Longest-prefix match: an immutable index from addresses to prefix entries.

What lives here: a pure data structure and nothing else. It is built once
from a set of distinct prefixes (IPv4 and IPv6), numbers them as *entries*
``1..size`` (IPv4 first, in input order, then IPv6), and answers "which entry
is the longest prefix covering this address" for one address or a numpy
batch. Entry ``0`` means "no prefix covers it". It knows nothing of BGP,
appliances or sites: callers keep their own per-entry data in arrays indexed
by entry. Each entry also knows its *parent* (the next shorter prefix of the
set covering it, ``0`` for none), so all covering prefixes of an address are
one lookup plus a walk up the chain.

Theory of operation (chosen by measurement, see ``benchmarks/lpm_steering.py``):

* **IPv4: DIR-24-8**, as router FIBs do. ``tbl24`` has one ``uint32`` slot
  per /24 (2^24 slots, 64 MiB, allocated zeroed so untouched pages cost no
  resident memory); a slot holds the entry of the longest prefix of length
  <= 24 covering it, or ``CHUNK | c`` when prefixes longer than /24 exist in
  that /24: then ``tbl8[c * 256 + last octet]`` holds the answer. A lookup is
  one or two array reads.
* **IPv6: sorted intervals** over the top 64 bits. The prefixes (<= /64) cut
  the 64-bit space into elementary intervals, each labelled with the longest
  covering prefix; a lookup is one binary search (``bisect`` for one address,
  ``numpy.searchsorted`` for a batch). A /64 holding longer prefixes is its
  own interval labelled ``CHUNK | c``, and chunk ``c`` is the same structure
  over the low 64 bits. (Measured against a dict per prefix length: see the
  benchmark.)
* **Building** is vectorised: prefixes are painted shortest first, so a
  longer prefix overwrites the shorter ones it sits in; before a length is
  painted, the label under each of its prefixes is its parent.

Pure: no I/O, no clock. Arrays are read-only once built.
"""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Label flag: the slot refers to a second-level chunk, not to an entry.
CHUNK = 0x8000_0000
_CHUNK_MASK = CHUNK - 1
#: The largest number of prefixes an index holds (labels must stay below ``CHUNK``).
MAX_ENTRIES = CHUNK - 1
_U64 = (1 << 64) - 1
_PAINT_BATCH = 1 << 22  # slots painted per numpy call when a level is large
_SLICE_SPAN = 256  # runs at least this long are painted one slice at a time

U32Array = npt.NDArray[np.uint32]
U64Array = npt.NDArray[np.uint64]
U8Array = npt.NDArray[np.uint8]
I64Array = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Intervals:
    """Elementary intervals over a 64-bit space: ``bounds`` sorted starts, ``labels``."""

    bounds: U64Array
    labels: U32Array


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _paint_fixed(table: U32Array, starts: I64Array, span: int, labels: I64Array) -> None:
    """``table[s : s + span] = label`` for each (disjoint) start."""
    if span == 1:
        table[starts] = labels
    elif span >= _SLICE_SPAN:  # few prefixes, each a long run: one memset each
        for s, label in zip(starts.tolist(), labels.tolist(), strict=True):
            table[s : s + span] = label
    else:  # many short runs: broadcast, in batches to bound the index arrays
        step = max(1, _PAINT_BATCH // span)
        offsets = np.arange(span, dtype=np.int64)
        for i in range(0, len(starts), step):
            s, lab = starts[i : i + step], labels[i : i + step]
            table[(s[:, None] + offsets).ravel()] = np.repeat(lab, span)


def _paint_ranges(labels: U32Array, lo: I64Array, hi: I64Array, values: I64Array) -> None:
    """``labels[lo_k : hi_k] = values_k`` for disjoint ranges of varying length."""
    lens = hi - lo
    total = int(lens.sum())
    if total == 0:
        return
    first = np.repeat(lo - (np.cumsum(lens) - lens), lens)
    labels[np.arange(total, dtype=np.int64) + first] = np.repeat(values, lens)


def _by_length(lengths: U8Array, top: int) -> list[I64Array]:
    """Positions of ``lengths`` grouped by value ``0..top`` (each group ascending)."""
    order = np.argsort(lengths, kind="stable").astype(np.int64)
    cuts = np.searchsorted(lengths[order], np.arange(top + 2))
    return [order[cuts[length] : cuts[length + 1]] for length in range(top + 1)]


def _intervals(
    starts: U64Array,
    lengths: U8Array,
    ids: I64Array,
    parents: I64Array,
    base: int,
    chunks: U64Array,
) -> _Intervals:
    """Label the 64-bit space with the longest of ``starts/lengths`` (lengths 0..64).

    ``base`` labels what no prefix covers; ``chunks`` are single values that
    must get an interval of their own (a /64 with longer prefixes). Writes
    each prefix's parent label into ``parents[ids]``.
    """
    span = np.zeros(len(starts), dtype=np.uint64)
    short = lengths < 64
    span[short] = (np.uint64(1) << (np.uint64(64) - lengths[short].astype(np.uint64))) - np.uint64(
        1
    )
    span[lengths == 0] = np.uint64(_U64)
    ends = starts + span  # inclusive; no overflow by construction
    after = ends[ends != np.uint64(_U64)] + np.uint64(1)
    chunk_after = chunks[chunks != np.uint64(_U64)] + np.uint64(1)
    bounds = np.unique(np.concatenate([np.zeros(1, np.uint64), starts, after, chunks, chunk_after]))
    labels = np.full(len(bounds), base, dtype=np.uint32)
    for group in _by_length(lengths, 64):
        if len(group) == 0:
            continue
        lo = np.searchsorted(bounds, starts[group]).astype(np.int64)
        hi = np.searchsorted(bounds, ends[group], side="right").astype(np.int64)
        parents[ids[group]] = labels[lo]
        _paint_ranges(labels, lo, hi, ids[group])
    return _Intervals(_frozen(bounds), labels)


def _v4_lookup_fn(t24: memoryview, t8: memoryview) -> Callable[[str], int]:
    def lookup_v4(
        ip: str,
        _pton: Callable[[int, str], bytes] = socket.inet_pton,
        _af: int = socket.AF_INET,
        _int: Callable[..., int] = int.from_bytes,
        _t24: memoryview = t24,
        _t8: memoryview = t8,
    ) -> int:
        a = _int(_pton(_af, ip), "big")
        v: int = _t24[a >> 8]
        if v >= CHUNK:
            v = _t8[((v & _CHUNK_MASK) << 8) | (a & 0xFF)]
        return v

    return lookup_v4


_Views = tuple[tuple[memoryview, memoryview], tuple[tuple[memoryview, memoryview], ...]]


def _views(top: _Intervals, subs: tuple[_Intervals, ...]) -> _Views:
    return (
        (top.bounds.data, top.labels.data),
        tuple((s.bounds.data, s.labels.data) for s in subs),
    )


def _v6_lookup_fn(views: _Views) -> Callable[[str], int]:
    (bounds, labels), sub_views = views

    def lookup_v6(
        ip: str,
        _pton: Callable[[int, str], bytes] = socket.inet_pton,
        _af: int = socket.AF_INET6,
        _int: Callable[..., int] = int.from_bytes,
        _bisect: Callable[[memoryview, int], int] = bisect_right,
    ) -> int:
        a = _int(_pton(_af, ip), "big")
        v: int = labels[_bisect(bounds, a >> 64) - 1]
        if v >= CHUNK:
            sb, sl = sub_views[v & _CHUNK_MASK]
            v = sl[_bisect(sb, a & _U64) - 1]
        return v

    return lookup_v6


class LpmIndex:
    """Longest-prefix match over a fixed set of IPv4 and IPv6 prefixes.

    Build with :meth:`build` (numpy columns) or :meth:`from_prefixes` (text).
    ``lookup_v4`` / ``lookup_v6`` / :meth:`lookup` take an address string and
    return an entry (``0``: none); the ``*_batch`` methods take numpy arrays.
    """

    __slots__ = (
        "_parent",
        "_t8",
        "_t24",
        "_v4_len",
        "_v4_net",
        "_v6_hi",
        "_v6_len",
        "_v6_lo",
        "_v6_views",
        "lookup_v4",
        "lookup_v6",
        "n4",
        "n6",
        "parents",
        "tbl8",
        "tbl24",
        "v4_len",
        "v4_net",
        "v6_hi",
        "v6_len",
        "v6_lo",
        "v6_subs",
        "v6_top",
    )

    def __init__(
        self,
        v4_net: U32Array,
        v4_len: U8Array,
        v6_hi: U64Array,
        v6_lo: U64Array,
        v6_len: U8Array,
    ) -> None:
        """Use :meth:`build`; this validates nothing."""
        self.n4, self.n6 = len(v4_net), len(v6_hi)
        # per-entry columns, index 0 is the "no prefix" entry
        self.v4_net = _frozen(np.concatenate([np.zeros(1, np.uint32), v4_net]))
        self.v4_len = _frozen(np.concatenate([np.zeros(1, np.uint8), v4_len]))
        self.v6_hi = _frozen(np.concatenate([np.zeros(1, np.uint64), v6_hi]))
        self.v6_lo = _frozen(np.concatenate([np.zeros(1, np.uint64), v6_lo]))
        self.v6_len = _frozen(np.concatenate([np.zeros(1, np.uint8), v6_len]))
        parents = np.zeros(1 + self.n4 + self.n6, dtype=np.int64)
        self.tbl24, self.tbl8 = self._build_v4(parents)
        self.v6_top, self.v6_subs = self._build_v6(parents)
        self.parents = _frozen(parents.astype(np.uint32))
        # memoryviews: indexing them yields plain ints, the fastest scalar path
        self._t24, self._t8 = self.tbl24.data, self.tbl8.data
        self._parent = self.parents.data
        self._v4_net, self._v4_len = self.v4_net.data, self.v4_len.data
        self._v6_hi, self._v6_lo = self.v6_hi.data, self.v6_lo.data
        self._v6_len = self.v6_len.data
        self._v6_views = _views(self.v6_top, self.v6_subs)
        self.lookup_v4: Callable[[str], int] = _v4_lookup_fn(self._t24, self._t8)
        self.lookup_v6: Callable[[str], int] = _v6_lookup_fn(self._v6_views)

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        v4_net: npt.ArrayLike = (),
        v4_len: npt.ArrayLike = (),
        v6_hi: npt.ArrayLike = (),
        v6_lo: npt.ArrayLike = (),
        v6_len: npt.ArrayLike = (),
    ) -> LpmIndex:
        """An index over the given prefixes (network columns and lengths).

        Entries are numbered ``1..n4`` for the IPv4 prefixes in the order
        given, then ``n4+1..n4+n6`` for the IPv6 ones. Raises ``ValueError``
        for a length out of range, host bits set, or a prefix given twice.
        """
        n4 = np.asarray(v4_net, dtype=np.uint32)
        l4 = np.asarray(v4_len, dtype=np.uint8)
        hi = np.asarray(v6_hi, dtype=np.uint64)
        lo = np.asarray(v6_lo, dtype=np.uint64)
        l6 = np.asarray(v6_len, dtype=np.uint8)
        if not (len(n4) == len(l4) and len(hi) == len(lo) == len(l6)):
            raise ValueError("prefix columns differ in length")
        if len(n4) + len(hi) > MAX_ENTRIES:
            raise ValueError(f"at most {MAX_ENTRIES} prefixes")
        _check_v4(n4, l4)
        _check_v6(hi, lo, l6)
        return cls(n4, l4, hi, lo, l6)

    @classmethod
    def from_prefixes(cls, prefixes: Iterable[str]) -> LpmIndex:
        """An index over text prefixes (IPv4 entries first, each family in the order given)."""
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int, int]] = []
        for text in prefixes:
            net = ipaddress.ip_network(text)
            addr = int(net.network_address)
            if net.version == 4:
                v4.append((addr, net.prefixlen))
            else:
                v6.append((addr >> 64, addr & _U64, net.prefixlen))
        return cls.build(
            [a for a, _ in v4],
            [n for _, n in v4],
            [h for h, _, _ in v6],
            [lo for _, lo, _ in v6],
            [n for _, _, n in v6],
        )

    def _build_v4(self, parents: I64Array) -> tuple[U32Array, U32Array]:
        net = self.v4_net[1:].astype(np.int64)
        length = self.v4_len[1:]
        entry = np.arange(1, self.n4 + 1, dtype=np.int64)
        tbl24 = np.zeros(1 << 24, dtype=np.uint32)  # zeroed pages: resident only when painted
        groups = _by_length(length, 32)
        for plen in range(25):
            g = groups[plen]
            if len(g):
                slots = net[g] >> 8
                parents[entry[g]] = tbl24[slots]
                _paint_fixed(tbl24, slots, 1 << (24 - plen), entry[g])
        long = length > 24
        blocks = np.unique(net[long] >> 8)
        tbl8 = np.repeat(tbl24[blocks], 256).astype(np.uint32)
        for plen in range(25, 33):
            g = groups[plen]
            if len(g):
                chunk = np.searchsorted(blocks, net[g] >> 8).astype(np.int64)
                slots = (chunk << 8) | (net[g] & 0xFF)
                parents[entry[g]] = tbl8[slots]
                _paint_fixed(tbl8, slots, 1 << (32 - plen), entry[g])
        tbl24[blocks] = CHUNK | np.arange(len(blocks), dtype=np.uint32)
        return _frozen(tbl24), _frozen(tbl8)

    def _build_v6(self, parents: I64Array) -> tuple[_Intervals, tuple[_Intervals, ...]]:
        hi, lo, length = self.v6_hi[1:], self.v6_lo[1:], self.v6_len[1:]
        entry = np.arange(self.n4 + 1, self.n4 + self.n6 + 1, dtype=np.int64)
        top_sel = length <= 64
        long = ~top_sel
        blocks = np.unique(hi[long])
        top = _intervals(
            hi[top_sel], length[top_sel], entry[top_sel], parents, 0, blocks.astype(np.uint64)
        )
        subs: list[_Intervals] = []
        if len(blocks):
            where = np.searchsorted(top.bounds, blocks)
            block_of = np.searchsorted(blocks, hi[long])
            long_entries, long_lo, long_len = entry[long], lo[long], length[long] - 64
            order = np.argsort(block_of, kind="stable")
            cuts = np.searchsorted(block_of[order], np.arange(len(blocks) + 1))
            for c in range(len(blocks)):
                sel = order[cuts[c] : cuts[c + 1]]
                base = int(top.labels[where[c]])
                subs.append(
                    _intervals(
                        long_lo[sel],
                        long_len[sel].astype(np.uint8),
                        long_entries[sel],
                        parents,
                        base,
                        np.zeros(0, np.uint64),
                    )
                )
                top.labels[where[c]] = CHUNK | c
        top.labels.flags.writeable = False
        for s in subs:
            s.labels.flags.writeable = False
        return top, tuple(subs)

    # --- lookups ----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self.n4 + self.n6

    def lookup(self, ip: str) -> int:
        """The entry of the longest prefix covering ``ip`` (``0``: none).

        ``ip`` is a canonical address string; ``OSError`` if it is not one.
        IPv4-mapped IPv6 addresses are looked up as IPv6 (unwrap them first).
        """
        return self.lookup_v6(ip) if ":" in ip else self.lookup_v4(ip)

    def lookup_int(self, version: int, address: int) -> int:
        """Like :meth:`lookup`, for an address already an int."""
        if version == 4:
            v: int = self._t24[address >> 8]
            if v >= CHUNK:
                v = self._t8[((v & _CHUNK_MASK) << 8) | (address & 0xFF)]
            return v
        (bounds, labels), subs = self._v6_views
        v = labels[bisect_right(bounds, address >> 64) - 1]
        if v >= CHUNK:
            sub_bounds, sub_labels = subs[v & _CHUNK_MASK]
            v = sub_labels[bisect_right(sub_bounds, address & _U64) - 1]
        return v

    def lookup_v4_batch(self, addresses: npt.ArrayLike) -> U32Array:
        """Entries for a ``uint32`` array of IPv4 addresses (``0``: none)."""
        a = np.asarray(addresses, dtype=np.uint32)
        v = self.tbl24[a >> np.uint32(8)]
        deep = v >= CHUNK
        if deep.any():
            slots = ((v[deep] & np.uint32(_CHUNK_MASK)).astype(np.int64) << 8) | (
                a[deep] & np.uint32(0xFF)
            )
            v[deep] = self.tbl8[slots]
        return v

    def lookup_v6_batch(self, hi: npt.ArrayLike, lo: npt.ArrayLike) -> U32Array:
        """Entries for IPv6 addresses given as top and bottom 64-bit halves (``0``: none)."""
        h = np.asarray(hi, dtype=np.uint64)
        low = np.asarray(lo, dtype=np.uint64)
        top = self.v6_top
        v = top.labels[np.searchsorted(top.bounds, h, side="right") - 1]
        deep = np.flatnonzero(v >= CHUNK)
        if len(deep):
            chunk = (v[deep] & np.uint32(_CHUNK_MASK)).astype(np.int64)
            for c in np.unique(chunk).tolist():
                at = deep[chunk == c]
                sub = self.v6_subs[c]
                v[at] = sub.labels[np.searchsorted(sub.bounds, low[at], side="right") - 1]
        return v

    # --- entries ----------------------------------------------------------------------------

    def version_of(self, entry: int) -> int:
        return 4 if entry <= self.n4 else 6

    def prefix_of(self, entry: int) -> tuple[int, int, int]:
        """``(version, network as int, length)`` of ``entry`` (``1..size``)."""
        if not 0 < entry <= self.size:
            raise IndexError(f"no entry {entry}")
        if entry <= self.n4:
            return 4, self._v4_net[entry], self._v4_len[entry]
        i = entry - self.n4
        return 6, (self._v6_hi[i] << 64) | self._v6_lo[i], self._v6_len[i]

    def key_of(self, entry: int) -> int:
        """The packed prefix ``(network << 8) | length`` of ``entry`` (``1..size``)."""
        if entry <= self.n4:
            key: int = (self._v4_net[entry] << 8) | self._v4_len[entry]
            return key
        i = entry - self.n4
        return (((self._v6_hi[i] << 64) | self._v6_lo[i]) << 8) | self._v6_len[i]

    def parent(self, entry: int) -> int:
        """The entry of the next shorter prefix covering ``entry`` (``0``: none)."""
        p: int = self._parent[entry]
        return p

    def chain(self, entry: int) -> list[int]:
        """``entry`` and every shorter prefix covering it, longest first."""
        out: list[int] = []
        parent = self._parent
        while entry:
            out.append(entry)
            entry = parent[entry]
        return out

    def find(self, version: int, network: int, length: int) -> int:
        """The entry of exactly this prefix (``0``: not in the index)."""
        if version == 4:
            entry = self.lookup_int(4, network)
            lengths: memoryview = self._v4_len
        else:
            entry = self.lookup_int(6, network)
            lengths = self._v6_len
        offset = 0 if version == 4 else self.n4
        while entry:
            here = lengths[entry - offset]
            if here == length:
                return entry
            if here < length:
                return 0
            entry = self._parent[entry]
        return 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (``tbl24`` counts whole, though mostly unpainted pages)."""
        arrays = [
            self.tbl24,
            self.tbl8,
            self.parents,
            self.v4_net,
            self.v4_len,
            self.v6_hi,
            self.v6_lo,
            self.v6_len,
            self.v6_top.bounds,
            self.v6_top.labels,
        ]
        arrays += [s.bounds for s in self.v6_subs] + [s.labels for s in self.v6_subs]
        return sum(a.nbytes for a in arrays)


def _check_v4(net: U32Array, length: U8Array) -> None:
    if len(net) == 0:
        return
    if int(length.max()) > 32:
        raise ValueError("IPv4 prefix length above 32")
    host = (np.uint64(1) << (np.uint64(32) - length.astype(np.uint64))) - np.uint64(1)
    if np.any(net.astype(np.uint64) & host):
        raise ValueError("IPv4 prefix with host bits set")
    keys = (net.astype(np.uint64) << np.uint64(8)) | length
    if len(np.unique(keys)) != len(keys):
        raise ValueError("IPv4 prefix given twice")


def _check_v6(hi: U64Array, lo: U64Array, length: U8Array) -> None:
    if len(hi) == 0:
        return
    if int(length.max()) > 128:
        raise ValueError("IPv6 prefix length above 128")
    ln = length.astype(np.int64)
    hi_bits = np.clip(64 - ln, 0, 64).astype(np.uint64)
    lo_bits = np.clip(128 - ln, 0, 64).astype(np.uint64)
    hi_host = np.where(hi_bits == 64, np.uint64(_U64), (np.uint64(1) << hi_bits) - np.uint64(1))
    lo_host = np.where(lo_bits == 64, np.uint64(_U64), (np.uint64(1) << lo_bits) - np.uint64(1))
    if np.any(hi & hi_host) or np.any(lo & lo_host):
        raise ValueError("IPv6 prefix with host bits set")
    rows = np.stack([hi, lo, length.astype(np.uint64)], axis=1)
    if len(np.unique(rows, axis=0)) != len(rows):
        raise ValueError("IPv6 prefix given twice")
