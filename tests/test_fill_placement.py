"""Placement: small cases by hand, the vectorised greedy against a title-by-title reference,
capacity, replica counts, proportional shares, churn against its floor, manifests."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcast.core.forecast import DAY_S, DemandRecord, Release, forecast
from localcast.core.placement import (
    ApplianceManifest,
    PlacementAppliance,
    PlacementParams,
    SitePlacement,
    capacity_bytes,
    churn,
    churn_floor,
    next_manifests,
    place_site,
    placement_order,
    placement_score,
    prepare_catalog,
    replica_target,
)

GB = 10**9
DEFAULT = PlacementParams()


def app(aid: str, disk: int, weight: float = 1.0, site: str = "s") -> PlacementAppliance:
    return PlacementAppliance(aid, site, disk, weight)


def reference(
    appliances: Sequence[PlacementAppliance],
    sizes: Mapping[str, int],
    demand: Mapping[str, float],
    params: PlacementParams = DEFAULT,
) -> tuple[dict[str, frozenset[str]], dict[str, int], tuple[str, ...]]:
    """The placement rules read literally, title by title (holdings, replicas, left_out)."""
    room = {a.id: capacity_bytes(a, params) for a in appliances}
    held: dict[str, set[str]] = {a.id: set() for a in appliances}
    hot = [t for t in sizes if demand.get(t, 0.0) > 0]
    total = sum(demand[t] for t in hot)
    hot.sort(key=lambda t: (-(demand[t] / max(sizes[t], 1)), t))
    replicas: dict[str, int] = {}
    left: list[str] = []
    n = len(appliances)

    def put(t: str, want: int, order: Sequence[PlacementAppliance]) -> int:
        got = 0
        for a in order:
            if got == want:
                break
            if room[a.id] >= sizes[t]:
                room[a.id] -= sizes[t]
                held[a.id].add(t)
                got += 1
        return got

    for t in hot:
        got = put(t, replica_target(demand[t] / total, n, params), placement_order(t, appliances))
        if got:
            replicas[t] = got
        else:
            left.append(t)
    if params.fill_cold and appliances:
        cold = sorted(t for t in sizes if demand.get(t, 0.0) <= 0)
        first_pass = {t for t in cold if put(t, 1, placement_order(t, appliances)[:1])}
        rest = {
            t for t in cold if t not in first_pass and put(t, 1, placement_order(t, appliances))
        }
        replicas.update((t, 1) for t in cold if t in first_pass | rest)
    return {a: frozenset(ts) for a, ts in held.items()}, replicas, tuple(left)


def check_invariants(
    placement: SitePlacement,
    appliances: Sequence[PlacementAppliance],
    sizes: Mapping[str, int],
    demand: Mapping[str, float],
    params: PlacementParams = DEFAULT,
) -> None:
    n = len(appliances)
    assert set(placement.holdings) == {a.id for a in appliances}
    for a in appliances:  # capacity never exceeded
        assert sum(sizes[t] for t in placement.holdings[a.id]) <= capacity_bytes(a, params)
    copies: dict[str, int] = {}
    for titles in placement.holdings.values():
        for t in titles:
            copies[t] = copies.get(t, 0) + 1
    assert copies == dict(placement.replicas)
    assert all(1 <= c <= n for c in placement.replicas.values())  # 1 <= N <= n
    hot = {t for t in sizes if demand.get(t, 0.0) > 0}
    assert set(placement.left_out) == hot - set(placement.replicas)


# --- by hand -------------------------------------------------------------------------------


def test_replica_target_by_hand() -> None:
    p = PlacementParams(replica_share=0.25)
    assert replica_target(0.5, 4, p) == 4  # above replica_share: every appliance
    assert replica_target(0.25, 4, p) == 4
    assert replica_target(0.1, 4, p) == 2  # ceil(0.1 / 0.25 * 4) = ceil(1.6)
    assert replica_target(0.0625, 4, p) == 1  # exactly 1.0, not rounded up to 2
    assert replica_target(0.0, 4, p) == 1  # at least 1
    assert replica_target(0.3, 0, p) == 0  # no appliance
    # 0.035 / 0.05 * 10 is 7.000000000000001 in floating point: still 7
    assert replica_target(0.035, 10, PlacementParams()) == 7
    apps = [app(f"a{i}", GB) for i in range(10)]
    placed = place_site("s", apps, {"x": 1, "y": 1}, {"x": 35.0, "y": 965.0})
    assert dict(placed.replicas) == {"y": 10, "x": 7}


def test_one_appliance_by_demand_per_byte() -> None:
    """Room 250 (disk 278 * 0.9): a (300 / 100 bytes) then c (100 / 50) then b (200 / 120);
    b does not fit (120 > 250 - 150), d (cold, 110) does not fit either, e (cold, 40) does."""
    sizes = {"a": 100, "b": 120, "c": 50, "d": 110, "e": 40}
    demand = {"a": 300.0, "b": 200.0, "c": 100.0}
    p = place_site("s", [app("x", 278)], sizes, demand)
    assert capacity_bytes(app("x", 278), PlacementParams()) == 250
    assert p.holdings["x"] == {"a", "c", "e"}
    assert list(p.replicas) == ["a", "c", "e"]  # placement order: the order to fill in
    assert p.left_out == ("b",)
    # no cold fill: e stays out, and is not "left out" (it has no demand)
    p = place_site("s", [app("x", 278)], sizes, demand, PlacementParams(fill_cold=False))
    assert p.holdings["x"] == {"a", "c"}
    assert p.left_out == ("b",)


def test_ties_go_by_title_id() -> None:
    sizes = {"b": 10, "a": 10, "c": 20}
    demand = {"a": 1.0, "b": 1.0, "c": 2.0}  # equal demand per byte
    p = place_site("s", [app("x", 1000)], sizes, demand)
    assert list(p.replicas) == ["a", "b", "c"]


def test_a_full_appliance_is_skipped_down_the_order() -> None:
    """Two appliances, room 100 each. 'big' (size 100) takes one whole appliance; the next
    title, whose first choice is that one, goes to the other."""
    apps = [app("x", 112), app("y", 112)]  # floor(112 * 0.9) = 100
    first = placement_order("big", apps)[0].id
    # find a title whose first choice is the same appliance
    t = next(f"t{i}" for i in range(100) if placement_order(f"t{i}", apps)[0].id == first)
    params = PlacementParams(replica_share=10.0)  # N = 1 for everyone here
    p = place_site("s", apps, {"big": 100, t: 10}, {"big": 10.0, t: 0.5}, params)
    other = "y" if first == "x" else "x"
    assert p.holdings[first] == {"big"}
    assert p.holdings[other] == {t}


def test_popular_titles_are_everywhere() -> None:
    """replica_share 0.05: 'hit' has 90 % of the demand -> all 4 appliances; the 20 others
    have 0.5 % each -> ceil(0.005 / 0.05 * 4) = 1 copy."""
    apps = [app(f"a{i}", 10 * GB) for i in range(4)]
    sizes = {"hit": GB} | {f"t{i:02d}": GB // 10 for i in range(20)}
    demand = {"hit": 90.0} | {f"t{i:02d}": 0.5 for i in range(20)}
    p = place_site("s", apps, sizes, demand)
    assert p.replicas["hit"] == 4
    assert all(p.replicas[f"t{i:02d}"] == 1 for i in range(20))
    assert all("hit" in titles for titles in p.holdings.values())


def test_no_appliance_leaves_out_every_title_with_demand() -> None:
    p = place_site("s", [], {"a": 1, "b": 2}, {"b": 5.0})
    assert p.holdings == {} and p.replicas == {} and p.left_out == ("b",)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="not s"):
        place_site("s", [app("x", 10, site="other")], {}, {})
    with pytest.raises(ValueError, match="twice"):
        place_site("s", [app("x", 10), app("x", 20)], {}, {})
    with pytest.raises(ValueError, match="replica_share"):
        PlacementParams(replica_share=0)


def test_demand_for_unknown_titles_is_ignored() -> None:
    p = place_site("s", [app("x", 1000)], {"a": 10}, {"gone": 100.0, "a": 1.0})
    assert dict(p.replicas) == {"a": 1}
    assert p.left_out == ()


def test_output_is_read_only() -> None:
    p = place_site("s", [app("x", 1000)], {"a": 10}, {"a": 1.0})
    with pytest.raises(TypeError):
        p.holdings["x"] = frozenset()  # type: ignore[index]
    with pytest.raises(TypeError):
        p.replicas["a"] = 2  # type: ignore[index]


def test_placement_score_is_a_weighted_rendezvous() -> None:
    """Deterministic, higher with weight, and the first choice of a share of titles in
    proportion to weight (1:3)."""
    assert placement_score("t", "a", 1.0) == placement_score("t", "a", 1.0)
    assert placement_score("t", "a", 2.0) == pytest.approx(2 * placement_score("t", "a", 1.0))
    apps = [app("small", 1), app("large", 3)]
    firsts = [placement_order(f"t{i}", apps)[0].id for i in range(4000)]
    assert firsts.count("large") / len(firsts) == pytest.approx(0.75, abs=0.03)


# --- the vectorised greedy is the title-by-title greedy -------------------------------------

appliance_lists = st.lists(
    st.tuples(st.integers(0, 3000), st.sampled_from([0.5, 1.0, 2.0])),
    min_size=0,
    max_size=6,
).map(lambda xs: [app(f"a{i}", d, w) for i, (d, w) in enumerate(xs)])
catalogs = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=3), st.integers(0, 800), max_size=40
)


@st.composite
def sites(
    draw: st.DrawFn,
) -> tuple[list[PlacementAppliance], dict[str, int], dict[str, float], PlacementParams]:
    apps = draw(appliance_lists)
    sizes = draw(catalogs)
    titles = sorted(sizes)
    with_demand = draw(st.lists(st.sampled_from(titles), unique=True)) if titles else []
    demand = {t: draw(st.floats(0, 1000)) for t in with_demand}
    if draw(st.booleans()):
        demand["unknown"] = draw(st.floats(0, 10))  # not in the catalog: ignored
    params = PlacementParams(
        fill_ratio=draw(st.sampled_from([0.5, 0.9, 1.0])),
        replica_share=draw(st.sampled_from([0.01, 0.05, 0.3])),
        fill_cold=draw(st.booleans()),
    )
    return apps, sizes, demand, params


@settings(max_examples=300, deadline=None)
@given(sites())
def test_matches_the_title_by_title_greedy(
    site: tuple[list[PlacementAppliance], dict[str, int], dict[str, float], PlacementParams],
) -> None:
    apps, sizes, demand, params = site
    p = place_site("s", apps, sizes, demand, params)
    holdings, replicas, left = reference(apps, sizes, demand, params)
    assert dict(p.holdings) == holdings
    assert list(p.replicas.items()) == list(replicas.items())  # same order too
    assert p.left_out == left
    check_invariants(p, apps, sizes, demand, params)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32))
def test_matches_the_greedy_over_many_chunks(seed: int) -> None:
    """Thousands of titles (many chunks, appliances filling up mid-chunk) and a prepared
    catalog: still the title-by-title greedy."""
    rng = random.Random(seed)
    sizes = {f"t{i:04d}": rng.choice([1, 10, 100, 1000, 5000]) for i in range(3000)}
    demand = {t: rng.paretovariate(1.0) for t in rng.sample(sorted(sizes), 1500)}
    apps = [app(f"a{i}", rng.randint(10_000, 400_000), rng.choice([1.0, 2.0])) for i in range(5)]
    p = place_site("s", apps, sizes, demand, catalog=prepare_catalog(sizes))
    holdings, replicas, left = reference(apps, sizes, demand)
    assert dict(p.holdings) == holdings
    assert list(p.replicas.items()) == list(replicas.items())
    assert p.left_out == left


@settings(max_examples=50, deadline=None)
@given(sites(), st.randoms(use_true_random=False))
def test_appliance_order_does_not_matter(
    site: tuple[list[PlacementAppliance], dict[str, int], dict[str, float], PlacementParams],
    rnd: random.Random,
) -> None:
    apps, sizes, demand, params = site
    shuffled = list(apps)
    rnd.shuffle(shuffled)
    assert place_site("s", apps, sizes, demand, params) == place_site(
        "s", shuffled, sizes, demand, params
    )


# --- replica counts ------------------------------------------------------------------------


@given(st.floats(0, 1), st.floats(0, 1), st.integers(1, 50), st.sampled_from([0.01, 0.05, 0.3]))
def test_more_share_never_fewer_replicas_wanted(a: float, b: float, n: int, rs: float) -> None:
    p = PlacementParams(replica_share=rs)
    lo, hi = sorted((a, b))
    assert 1 <= replica_target(lo, n, p) <= replica_target(hi, n, p) <= n


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.01, 1000), min_size=1, max_size=30),
    st.integers(0, 29),
    st.floats(1.0, 100.0),
    st.integers(1, 8),
)
def test_more_demand_never_fewer_replicas_with_room(
    demands: list[float], which: int, factor: float, n: int
) -> None:
    """Room for every copy: a title's copies never drop when its demand grows."""
    apps = [app(f"a{i}", 10**9) for i in range(n)]
    sizes = {f"t{i:02d}": 1000 + i for i in range(len(demands))}
    demand = {f"t{i:02d}": d for i, d in enumerate(demands)}
    t = f"t{which % len(demands):02d}"
    before = place_site("s", apps, sizes, demand).replicas[t]
    after = place_site("s", apps, sizes, demand | {t: demand[t] * factor}).replicas[t]
    assert 1 <= before <= after <= n


@settings(max_examples=200, deadline=None)
@given(sites(), st.floats(1.0, 100.0), st.integers(0, 39))
def test_more_demand_never_fewer_replicas_wanted_in_place(
    site: tuple[list[PlacementAppliance], dict[str, int], dict[str, float], PlacementParams],
    factor: float,
    which: int,
) -> None:
    """Whatever the room: the copies placed never exceed the copies wanted, and the copies
    wanted for a title never drop when its demand grows."""
    apps, sizes, demand, params = site
    hot = sorted(t for t in sizes if demand.get(t, 0) > 0)
    if not hot or not apps:
        return
    t = hot[which % len(hot)]
    bumped = demand | {t: demand[t] * factor}

    def wanted(d: Mapping[str, float]) -> int:
        total = sum(v for k, v in d.items() if k in sizes and v > 0)
        return replica_target(d[t] / total, len(apps), params)

    assert wanted(demand) <= wanted(bumped)
    p = place_site("s", apps, sizes, bumped, params)
    assert p.replicas.get(t, 0) <= wanted(bumped)


# --- shares and churn ----------------------------------------------------------------------


def test_disk_sizes_get_proportional_shares() -> None:
    """Disks 1:2:3, room for everything, one copy per title: titles in proportion (+-10 %)."""
    apps = [app("one", 10_000 * GB), app("two", 20_000 * GB), app("three", 30_000 * GB)]
    sizes = {f"t{i:05d}": GB for i in range(6000)}
    p = place_site("s", apps, sizes, {})
    counts = {a: len(t) for a, t in p.holdings.items()}
    print(f"\ntitles per appliance, disks 1:2:3: {counts}")
    for a, share in (("one", 1), ("two", 2), ("three", 3)):
        assert counts[a] == pytest.approx(1000 * share, rel=0.1)


def test_disk_sizes_get_proportional_bytes_when_full() -> None:
    """Disks 1:3, a catalog three times the site: both appliances full (within a title)."""
    apps = [app("small", 100 * GB), app("large", 300 * GB)]
    sizes = {f"t{i:04d}": GB for i in range(1200)}
    demand = {f"t{i:04d}": 1.0 / (i + 1) for i in range(1200)}
    p = place_site("s", apps, sizes, demand)
    held = {a: len(t) for a, t in p.holdings.items()}
    assert held == {"small": 90, "large": 270}  # floor(0.9 * disk) / 1 GB each


def site_demand(seed: int, titles: int = 3000) -> tuple[dict[str, int], dict[str, float]]:
    rng = random.Random(seed)
    sizes = {f"t{i:05d}": int(rng.lognormvariate(20, 0.5)) for i in range(titles)}
    ranked = rng.sample(sorted(sizes), titles * 3 // 5)
    return sizes, {t: 1000.0 / (r + 1) ** 0.9 for r, t in enumerate(ranked)}


@settings(max_examples=30, deadline=None)
@given(
    st.integers(2, 12),
    st.integers(0, 2**16),
    st.sampled_from([0.01, 0.05, 0.2]),
    st.booleans(),
)
def test_churn_is_the_minimum_with_room(n: int, seed: int, rs: float, add: bool) -> None:
    """Room for everything: adding or removing one appliance adds exactly the floor
    (the new appliance's titles, or the removed one's, plus copies its count changes force)."""
    sizes, demand = site_demand(seed, titles=400)
    params = PlacementParams(replica_share=rs)
    rng = random.Random(seed)
    apps = [app(f"a{i}", rng.choice([1, 2, 4]) * 10**12) for i in range(n)]
    changed = [*apps, app("new", 2 * 10**12)] if add else apps[1:]
    before = place_site("s", apps, sizes, demand, params).holdings
    after = place_site("s", changed, sizes, demand, params).holdings
    moved, floor = churn(before, after), churn_floor(before, after)
    assert moved == floor
    if add:
        assert floor >= len(after["new"])


@pytest.mark.parametrize("per_site", [4, 10])
@pytest.mark.parametrize("hold", [0.3, 0.6])
def test_churn_near_the_minimum_when_full(per_site: int, hold: float) -> None:
    """Site storage for 30 % / 60 % of the catalog's bytes, 5,000 titles, 3,000 with demand:
    one appliance added or removed; churn within 1.3x its floor (printed)."""
    sizes, demand = site_demand(11, titles=5000)
    cap = int(sum(sizes.values()) * hold / per_site / 0.9)
    apps = [app(f"a{i}", cap * (1 + i % 2)) for i in range(per_site)]
    base = place_site("s", apps, sizes, demand).holdings
    for label, changed in (("add", [*apps, app("new", cap)]), ("remove", apps[1:])):
        after = place_site("s", changed, sizes, demand).holdings
        moved, floor = churn(base, after), churn_floor(base, after)
        held = sum(len(t) for t in after.values())
        print(
            f"\n{per_site} appliances, storage {hold:.0%} of the catalog, {label} one: "
            f"churn {moved} copies, minimum {floor}, of {held} held"
        )
        assert floor <= moved <= 1.3 * floor


def test_popularity_change_replaces_the_cold_tail_near_the_minimum() -> None:
    sizes, demand = site_demand(5, titles=5000)
    _, shifted = site_demand(6, titles=5000)
    cap = int(sum(sizes.values()) * 0.4 / 8 / 0.9)
    apps = [app(f"a{i}", cap) for i in range(8)]
    before = place_site("s", apps, sizes, demand).holdings
    after = place_site("s", apps, sizes, shifted).holdings
    moved, floor = churn(before, after), churn_floor(before, after)
    print(f"\npopularity change, 8 appliances: churn {moved} copies, minimum {floor}")
    assert floor <= moved <= 1.3 * floor


def test_churn_and_floor_by_hand() -> None:
    before = {"x": frozenset({"a", "b"}), "y": frozenset({"b"}), "gone": frozenset({"c"})}
    after = {"x": frozenset({"a", "c"}), "y": frozenset({"b", "a"}), "new": frozenset({"b"})}
    # added: x+c, y+a, new+b
    assert churn(before, after) == 3
    # a: 2 copies after, 1 kept (x) -> 1; b: 2 after, 1 on new, 1 kept (y) -> 1 (new);
    # c: 1 after, held only by 'gone' -> 1
    assert churn_floor(before, after) == 3
    # moving b from x to y is avoidable: churn 1, floor 0
    assert churn({"x": frozenset("b"), "y": frozenset()}, {"x": frozenset(), "y": frozenset("b")})
    assert (
        churn_floor(
            {"x": frozenset("b"), "y": frozenset()}, {"x": frozenset(), "y": frozenset("b")}
        )
        == 0
    )


# --- releases are placed before they happen ------------------------------------------------


def test_release_is_placed_before_release_at() -> None:
    today = 20_000
    release_at = (today + 2) * DAY_S + 20 * 3600.0  # in two days, 20:00 UTC
    history = [DemandRecord(today - 1, "r", f"old{i}", 100.0 / (i + 1)) for i in range(50)]
    sizes = {f"old{i}": GB for i in range(50)} | {"premiere": 2 * GB}
    apps = [app(f"a{i}", 20 * GB) for i in range(3)]
    no_cold = PlacementParams(fill_cold=False)
    rel = Release("premiere", release_at, expected_sessions=500.0)

    def placed(now: float) -> int:
        fc = forecast(history, [rel], ["r"], now)
        return place_site("s", apps, sizes, fc["r"], no_cold).replicas.get("premiere", 0)

    assert placed(today * DAY_S) == 0  # 2 days 20 h ahead: beyond the 2-day lead
    assert placed(release_at - 2 * DAY_S) == 3  # from the lead on: on every appliance
    assert placed(release_at - 1) == 3


# --- manifests -----------------------------------------------------------------------------


def placement(holdings: Mapping[str, set[str]], site: str = "s") -> SitePlacement:
    return SitePlacement(site, {a: frozenset(t) for a, t in holdings.items()}, {}, ())


def test_manifest_versions_move_only_on_change() -> None:
    day1 = next_manifests([placement({"x": {"a"}, "y": {"b"}})], {}, 100)
    assert day1 == {
        "x": ApplianceManifest("x", 1, frozenset({"a"}), 100),
        "y": ApplianceManifest("y", 1, frozenset({"b"}), 100),
    }
    day2 = next_manifests(
        [placement({"x": {"a"}, "y": {"b", "c"}}), placement({"z": set()}, "t")], day1, 101
    )
    assert day2["x"] is day1["x"]  # unchanged: same version, same day
    assert day2["y"] == ApplianceManifest("y", 2, frozenset({"b", "c"}), 101)
    assert day2["z"] == ApplianceManifest("z", 1, frozenset(), 101)
    day3 = next_manifests([placement({"y": {"b", "c"}})], day2, 102)
    assert day3 == {"y": day2["y"]}  # x and z are no longer placed: no manifest
    with pytest.raises(ValueError, match="twice"):
        next_manifests([placement({"x": set()}), placement({"x": set()}, "t")], {}, 1)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from("xyz"), st.sets(st.sampled_from("abc"))),
        min_size=1,
        max_size=6,
    )
)
def test_versions_count_the_changes(days: list[dict[str, set[str]]]) -> None:
    """Over a run of days, an appliance's version is the number of distinct consecutive
    title sets it was given while placed, and the stored day is when its set last changed."""
    manifests: dict[str, ApplianceManifest] = {}
    history: dict[str, list[frozenset[str]]] = {}
    for day, holdings in enumerate(days):
        manifests = next_manifests([placement(holdings)], manifests, day) | {
            a: m for a, m in manifests.items() if a not in holdings
        }
        for a, titles in holdings.items():
            sets = history.setdefault(a, [])
            if not sets or sets[-1] != frozenset(titles):
                sets.append(frozenset(titles))
                assert manifests[a].day == day
    for a, sets in history.items():
        assert manifests[a].version == len(sets)
        assert manifests[a].titles == sets[-1]
