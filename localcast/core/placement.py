"""Placement: which titles each appliance of a site should hold, and the manifests that say so.

The placement unit is a title (all its renditions' files): an appliance is
steered to only for titles it holds complete. Inputs are data only: the
site's appliances, the catalog's title sizes, the site's expected demand
(sessions per day, from :mod:`localcast.core.forecast`). The rules of
:func:`place_site`, in the order they apply:

1. **Room**: an appliance holds at most ``floor(disk_bytes * fill_ratio)``
   bytes.
2. **Order**: titles with demand, by demand per byte, best first (ties: title
   id).
3. **Replicas**: a title with a share ``s`` of the site's demand wants
   ``N = clamp(ceil(s / replica_share * n), 1, n)`` copies (``n`` appliances):
   a title with at least ``replica_share`` of the demand is on every appliance
   (:func:`replica_target`).
4. **Where**: weighted rendezvous hashing (highest random weight) of the title
   id over the appliances, weight ``disk_bytes * weight``
   (:func:`placement_score`; ties: appliance id), so an appliance's share of
   titles is in proportion to its disk and adding or removing one appliance
   moves only the titles that rank it in their top N. In order, a title goes to
   the first N appliances of its rendezvous order that still have room for it
   (a full one is skipped, going down the order); with fewer than N such
   appliances it gets fewer copies, with none it is left out.
5. **Cold fill** (``fill_cold``, the default): then every title without demand,
   in title-id order, gets one copy on its *first* rendezvous appliance when
   that one has room; then those still out, in title-id order, one copy on the
   first appliance of their order with room. Each appliance so fills its own
   slice of the cold catalog up to its room and a change in the hot set moves
   the boundary of that slice only, not the other appliances' tails (a fallback
   for every cold title measured 1.9x the churn floor on a popularity change;
   see ``benchmarks/fill_planning.py``).

:func:`place_site` computes these greedy passes exactly, but in vectorised
chunks (numpy): a chunk of titles is assigned from the room at its start, and
the longest prefix whose assignments still fit once the chunk's own earlier
titles are counted is kept (the first title of a chunk always is), so the
result is the title-by-title greedy. A pass stops when no remaining title
fits on any appliance.

More demand for a title never means fewer copies *wanted* (rule 3), nor
fewer placed while appliances have room. When appliances are full a title's
higher demand lowers the others' shares and may let an earlier title take the
room a fallback copy used, so placed copies are monotone only in the wanted N.

:func:`next_manifests` versions each appliance's title set (the version moves
only when the set changes); :func:`churn` counts the title copies a change
adds, :func:`churn_floor` the fewest any placement with the same copy counts
would add.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

U64 = (1 << 64) - 1
_M1 = 0xFF51AFD7ED558CCD
_M2 = 0xC4CEB9FE1A85EC53
_EPS = 1e-9  # ceil() of a share computed as 2.0000000001 is still 2
_MIN_WEIGHT = 1e-9
_FIRST_CHUNK = 256
_MAX_CHUNK = 4096

IntArray = npt.NDArray[np.int64]
U64Array = npt.NDArray[np.uint64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PlacementAppliance:
    id: str
    site_id: str
    disk_bytes: int
    weight: float = 1.0


@dataclass(frozen=True)
class PlacementParams:
    fill_ratio: float = 0.9  # use at most this share of each disk
    replica_share: float = 0.05  # a title with this share of the site's demand gets every appliance
    fill_cold: bool = True  # titles without demand fill the room left, one copy each

    def __post_init__(self) -> None:
        if not 0.0 <= self.fill_ratio <= 1.0:
            raise ValueError(f"fill_ratio must be in [0, 1], not {self.fill_ratio}")
        if not self.replica_share > 0.0:
            raise ValueError(f"replica_share must be positive, not {self.replica_share}")


@dataclass(frozen=True)
class SitePlacement:
    """What each appliance of a site should hold.

    ``holdings`` lists every appliance (possibly with no title); ``replicas``
    holds the copies placed per title, in placement order (most demand per byte
    first: the order to fill in); ``left_out`` the titles with demand that got
    no copy, in the same order.
    """

    site_id: str
    holdings: Mapping[str, frozenset[str]]  # appliance_id -> title ids
    replicas: Mapping[str, int]  # title_id -> copies placed (1..n)
    left_out: tuple[str, ...]  # titles with demand that did not fit


@dataclass(frozen=True)
class ApplianceManifest:
    appliance_id: str
    version: int
    titles: frozenset[str]
    day: int  # the UTC day this version was planned


# --- hashing --------------------------------------------------------------------------------


def _hash64(text: str, person: bytes) -> int:
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=person).digest()
    return int.from_bytes(digest, "big")


def title_hash(title_id: str) -> int:
    return _hash64(title_id, b"localcast-title")


def appliance_hash(appliance_id: str) -> int:
    return _hash64(appliance_id, b"localcast-appl")


def _fmix64(x: int) -> int:
    """MurmurHash3's 64-bit finaliser (the vectorised twin is :func:`_fmix64_array`)."""
    x ^= x >> 33
    x = (x * _M1) & U64
    x ^= x >> 33
    x = (x * _M2) & U64
    x ^= x >> 33
    return x


def placement_score(title_id: str, appliance_id: str, weight: float) -> float:
    """Weighted rendezvous score of ``appliance_id`` for ``title_id``: ``-weight / ln(u)``.

    ``u`` is uniform in (0, 1) from the two ids' hashes; the highest score wins,
    and an appliance is first for a share of titles in proportion to its weight.
    """
    x = _fmix64(title_hash(title_id) ^ appliance_hash(appliance_id))
    u = ((x >> 12) + 0.5) * 2.0**-52
    return -max(weight, _MIN_WEIGHT) / math.log(u)


def placement_weight(appliance: PlacementAppliance) -> float:
    return float(appliance.disk_bytes) * appliance.weight


def placement_order(
    title_id: str, appliances: Sequence[PlacementAppliance]
) -> tuple[PlacementAppliance, ...]:
    """``appliances`` in ``title_id``'s rendezvous order, best first (ties: appliance id)."""
    return tuple(
        sorted(
            appliances,
            key=lambda a: (-placement_score(title_id, a.id, placement_weight(a)), a.id),
        )
    )


def _fmix64_array(x: U64Array) -> U64Array:
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(_M1)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(_M2)
    return x ^ (x >> np.uint64(33))


def _score_matrix(titles: U64Array, appliances: U64Array, weights: FloatArray) -> FloatArray:
    """Scores of :func:`placement_score`, one row per title hash, one column per appliance."""
    x = _fmix64_array(titles[:, None] ^ appliances[None, :])
    u = ((x >> np.uint64(12)).astype(np.float64) + 0.5) * 2.0**-52
    scores: FloatArray = -weights[None, :] / np.log(u)
    return scores


# --- the catalog, prepared once for every site ----------------------------------------------


@dataclass(frozen=True, eq=False)
class Catalog:
    """The catalog as arrays, in title-id order: prepare once, place every site with it."""

    ids: tuple[str, ...]
    index: Mapping[str, int]
    sizes: IntArray
    hashes: U64Array
    names: npt.NDArray[np.object_]  # ids as an object array, for fancy indexing


def prepare_catalog(sizes: Mapping[str, int]) -> Catalog:
    """``sizes`` (title_id -> bytes) as a :class:`Catalog` (read-only arrays)."""
    ids = tuple(sorted(sizes))
    size_arr = np.fromiter((max(int(sizes[t]), 0) for t in ids), dtype=np.int64, count=len(ids))
    hash_arr = np.fromiter((title_hash(t) for t in ids), dtype=np.uint64, count=len(ids))
    names = np.empty(len(ids), dtype=object)
    names[:] = ids
    for arr in (size_arr, hash_arr, names):
        arr.flags.writeable = False
    return Catalog(
        ids=ids,
        index=MappingProxyType({t: i for i, t in enumerate(ids)}),
        sizes=size_arr,
        hashes=hash_arr,
        names=names,
    )


# --- one site -------------------------------------------------------------------------------


def capacity_bytes(appliance: PlacementAppliance, params: PlacementParams) -> int:
    """Rule 1: the bytes ``appliance`` may hold."""
    return max(math.floor(appliance.disk_bytes * params.fill_ratio), 0)


def replica_target(share: float, n: int, params: PlacementParams) -> int:
    """Rule 3: copies wanted for a title with ``share`` of the site's demand (0 if n = 0)."""
    if n <= 0:
        return 0
    return min(max(math.ceil(share / params.replica_share * n - _EPS), 1), n)


def _site_appliances(
    site_id: str, appliances: Sequence[PlacementAppliance]
) -> list[PlacementAppliance]:
    seen: set[str] = set()
    for a in appliances:
        if a.site_id != site_id:
            raise ValueError(f"appliance {a.id} is in site {a.site_id}, not {site_id}")
        if a.id in seen:
            raise ValueError(f"appliance {a.id} is listed twice")
        seen.add(a.id)
    return sorted(appliances, key=lambda a: a.id)


def _title_order(
    catalog: Catalog, demand: Mapping[str, float], fill_cold: bool
) -> tuple[IntArray, FloatArray, int]:
    """(title indices in placement order, demand per title index, how many have demand)."""
    d = np.zeros(len(catalog.ids), dtype=np.float64)
    idx = [catalog.index.get(t, -1) for t in demand]
    vals = np.fromiter(demand.values(), dtype=np.float64, count=len(idx))
    known = np.asarray(idx, dtype=np.int64)
    keep = (known >= 0) & (vals > 0)
    d[known[keep]] = vals[keep]
    hot = np.flatnonzero(d > 0)
    density = d[hot] / np.maximum(catalog.sizes[hot], 1)
    hot = hot[np.lexsort((hot, -density))]  # ids are sorted: index order is title-id order
    if not fill_cold:
        return hot, d, len(hot)
    cold = np.flatnonzero(d <= 0)
    return np.concatenate((hot, cold)), d, len(hot)


def place_site(
    site_id: str,
    appliances: Sequence[PlacementAppliance],
    sizes: Mapping[str, int],
    demand: Mapping[str, float],
    params: PlacementParams = PlacementParams(),
    catalog: Catalog | None = None,
) -> SitePlacement:
    """The titles each of ``site_id``'s appliances should hold (see the module rules).

    ``sizes`` is the catalog (title_id -> bytes; demand for titles not in it is
    ignored); ``demand`` the site's expected sessions per day per title.
    ``catalog`` is ``prepare_catalog(sizes)`` when the caller places many sites.
    """
    apps = _site_appliances(site_id, appliances)
    cat = catalog if catalog is not None else prepare_catalog(sizes)
    order, d, n_hot = _title_order(cat, demand, params.fill_cold)
    n = len(apps)
    if n == 0 or len(order) == 0:
        return SitePlacement(
            site_id=site_id,
            holdings=MappingProxyType({a.id: frozenset() for a in apps}),
            replicas=MappingProxyType({}),
            left_out=tuple(cat.names[order[:n_hot]].tolist()),
        )

    total = float(d.sum())
    share = d[order[:n_hot]] / total if total > 0 else np.zeros(n_hot)
    wanted = np.clip(np.ceil(share / params.replica_share * n - _EPS), 1, n).astype(np.int64)
    app_hashes = np.array([appliance_hash(a.id) for a in apps], dtype=np.uint64)
    weights = np.array([max(placement_weight(a), _MIN_WEIGHT) for a in apps])
    room = np.array([capacity_bytes(a, params) for a in apps], dtype=np.int64)

    def run(titles: IntArray, want: IntArray, first_only: bool) -> tuple[IntArray, IntArray]:
        copies, pair_t, pair_a = _greedy(
            titles=titles,
            sizes=cat.sizes[titles],
            wanted=want,
            hashes=cat.hashes[titles],
            appliance_hashes=app_hashes,
            weights=weights,
            room=room,
            first_only=first_only,
        )
        pairs_t.append(pair_t)
        pairs_a.append(pair_a)
        return copies, pair_t

    pairs_t: list[IntArray] = []
    pairs_a: list[IntArray] = []
    hot = order[:n_hot]
    hot_copies, _ = run(hot, wanted, first_only=False)
    cold = order[n_hot:]
    cold_placed = np.zeros(len(cold), dtype=bool)
    if len(cold):
        _, got = run(cold, np.ones(len(cold), dtype=np.int64), first_only=True)
        cold_placed[np.searchsorted(cold, got)] = True  # cold is in title-index order
        rest = cold[~cold_placed]
        rest = rest[cat.sizes[rest] <= room.max()]
        _, got = run(rest, np.ones(len(rest), dtype=np.int64), first_only=False)
        cold_placed[np.searchsorted(cold, got)] = True

    all_t = np.concatenate(pairs_t)
    all_a = np.concatenate(pairs_a)
    by_app = np.argsort(all_a, kind="stable")
    bounds = np.cumsum(np.bincount(all_a, minlength=n))
    titles_of = np.split(cat.names[all_t[by_app]], bounds[:-1])
    hot_placed = hot_copies > 0
    replicas = dict(
        zip(cat.names[hot[hot_placed]].tolist(), hot_copies[hot_placed].tolist(), strict=True)
    )
    replicas.update(dict.fromkeys(cat.names[cold[cold_placed]].tolist(), 1))
    return SitePlacement(
        site_id=site_id,
        holdings=MappingProxyType(
            {a.id: frozenset(titles_of[i].tolist()) for i, a in enumerate(apps)}
        ),
        replicas=MappingProxyType(replicas),
        left_out=tuple(cat.names[hot[~hot_placed]].tolist()),
    )


def _greedy(
    *,
    titles: IntArray,
    sizes: IntArray,
    wanted: IntArray,
    hashes: U64Array,
    appliance_hashes: U64Array,
    weights: FloatArray,
    room: IntArray,
    first_only: bool,
) -> tuple[IntArray, IntArray, IntArray]:
    """Rule 4 over ``titles`` in order, in chunks (see the module docstring); ``room`` is
    updated in place. ``first_only``: a title may go only to its first appliance.

    Returns (copies per position of ``titles``, title index of each copy, appliance
    index of each copy), copies in title order.
    """
    total = len(titles)
    copies = np.zeros(total, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    if total == 0:
        return copies, empty, empty
    # the smallest title from each position on: once nothing fits anywhere, stop
    smallest_after = np.minimum.accumulate(sizes[::-1])[::-1]
    out_t: list[IntArray] = []
    out_a: list[IntArray] = []
    pos, chunk = 0, _FIRST_CHUNK
    while pos < total and room.max() >= smallest_after[pos]:
        end = min(pos + chunk, total)
        # rooms only shrink: a title larger than every room now never fits
        rows_in = np.flatnonzero(sizes[pos:end] <= room.max()) + pos
        size = sizes[rows_in, None]
        scores = _score_matrix(hashes[rows_in], appliance_hashes, weights)
        if first_only:
            prefs = np.argmax(scores, axis=1)[:, None]  # the first of equal scores: lowest id
        else:
            prefs = np.argsort(-scores, axis=1, kind="stable")
        fits = room[prefs] >= size
        pick = fits & (np.cumsum(fits, axis=1) <= wanted[rows_in, None])
        use = np.zeros(scores.shape, dtype=np.int64)
        np.put_along_axis(use, prefs, pick * size, axis=1)
        used = np.cumsum(use, axis=0)
        over = ((used > room) & (use > 0)).any(axis=1)
        if over.any():  # the first row never is: it was assigned from the exact room
            keep = int(np.argmax(over))
            chunk = max(16, 2 * (int(rows_in[keep]) - pos))
            end = int(rows_in[keep])
        else:
            keep = len(rows_in)
            chunk = min(2 * chunk, _MAX_CHUNK)
        if keep:
            room -= used[keep - 1]
            copies[rows_in[:keep]] = pick[:keep].sum(axis=1)
            rows, slots = np.nonzero(pick[:keep])
            out_t.append(titles[rows_in[rows]])
            out_a.append(prefs[rows, slots])
        pos = end
    if not out_t:
        return copies, empty, empty
    return copies, np.concatenate(out_t), np.concatenate(out_a).astype(np.int64)


# --- manifests and churn --------------------------------------------------------------------


def next_manifests(
    placements: Iterable[SitePlacement],
    previous: Mapping[str, ApplianceManifest],
    day: int,
) -> dict[str, ApplianceManifest]:
    """One manifest per placed appliance: the previous one unchanged when its title set is
    the same, else version + 1 (1 for a new appliance) dated ``day``. Appliances no
    longer placed have no manifest."""
    out: dict[str, ApplianceManifest] = {}
    for placement in placements:
        for appliance_id, titles in placement.holdings.items():
            if appliance_id in out:
                raise ValueError(f"appliance {appliance_id} is placed twice")
            prev = previous.get(appliance_id)
            if prev is not None and prev.titles == titles:
                out[appliance_id] = prev
            else:
                version = prev.version + 1 if prev is not None else 1
                out[appliance_id] = ApplianceManifest(appliance_id, version, titles, day)
    return out


def churn(before: Mapping[str, frozenset[str]], after: Mapping[str, frozenset[str]]) -> int:
    """Title copies added: present in ``after``, absent in ``before``, per appliance."""
    empty: frozenset[str] = frozenset()
    return sum(len(titles - before.get(a, empty)) for a, titles in after.items())


def churn_floor(before: Mapping[str, frozenset[str]], after: Mapping[str, frozenset[str]]) -> int:
    """The fewest copies any change from ``before`` must add to reach ``after``'s copy count
    of every title, given what ``after`` puts on appliances new in it (they start empty).

    Per title: its copies on new appliances, plus the copies it needs beyond those
    and beyond the appliances that held it before and are still there.
    """
    new_copies: dict[str, int] = {}
    kept: dict[str, int] = {}
    count: dict[str, int] = {}
    for a, titles in after.items():
        held = before.get(a)
        for t in titles:
            count[t] = count.get(t, 0) + 1
            if held is None:
                new_copies[t] = new_copies.get(t, 0) + 1
    for a, titles in before.items():
        if a in after:
            for t in titles:
                kept[t] = kept.get(t, 0) + 1
    return sum(
        new_copies.get(t, 0) + max(0, c - new_copies.get(t, 0) - kept.get(t, 0))
        for t, c in count.items()
    )
