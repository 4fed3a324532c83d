"""Fill sources: peer > tier > origin orders, leaders, no wait cycles, each link crossed once.

The last tests simulate, in pure code, a whole fill of a small catalog over two
ISP sites (two embedded appliances each), one IX site (two appliances) and the
origin: every appliance asks ``fill_sources`` and ``next_step`` what to do as
holdings change, transfers take a few ticks, and per file we count the copies
that crossed each link.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcast.core.fillqueue import Attempt, SourceFailures, Wait, next_step, record_failure
from localcast.core.fillsources import (
    EscalationPolicy,
    FillNode,
    FillSource,
    Holding,
    SourceKind,
    fill_sources,
    site_leader,
)
from localcast.core.fleet import SiteKind

E, P, X, ORG = SiteKind.EMBEDDED, SiteKind.PNI, SiteKind.IX, SiteKind.ORIGIN
C, PA, PL = Holding.COMPLETE, Holding.PARTIAL, Holding.PLANNED

# ISP A near Paris, ISP B near Lyon, the IX in Paris, a far IX in Frankfurt, origin in Dublin
SITES: Mapping[str, tuple[SiteKind, float, float]] = {
    "isp-a": (E, 48.9, 2.4),
    "isp-b": (E, 45.8, 4.8),
    "ix": (X, 48.86, 2.35),
    "ix-far": (X, 50.1, 8.7),
    "pni": (P, 48.0, 3.0),
    "origin": (ORG, 53.3, -6.3),
}


def node(appliance_id: str, site_id: str, weight: float = 1.0) -> FillNode:
    kind, lat, lon = SITES[site_id]
    return FillNode(appliance_id, site_id, kind, lat, lon, weight)


A1, A2 = node("a1", "isp-a"), node("a2", "isp-a")
B1, B2 = node("b1", "isp-b"), node("b2", "isp-b")
X1, X2 = node("x1", "ix"), node("x2", "ix")
O1 = node("o1", "origin")
TOPOLOGY = (A1, A2, B1, B2, X1, X2, O1)


def ids(nodes: Sequence[FillNode]) -> frozenset[str]:
    return frozenset(n.appliance_id for n in nodes)


def title_led_by(leader: str, others: Sequence[FillNode]) -> str:
    """A title id for which ``leader`` is the rendezvous leader among ``others``."""
    for i in range(1000):
        title = f"t{i}"
        if site_leader(title, others) == leader:
            return title
    raise AssertionError("no such title")


def rows(sources: Sequence[FillSource]) -> list[tuple[str, str, str, int]]:
    return [(s.appliance_id, s.kind.value, s.holding.value, s.hop) for s in sources]


# --- leaders ------------------------------------------------------------------------------------


def test_leader_is_rendezvous_first_and_stable() -> None:
    assert site_leader("t", []) is None
    assert site_leader("t", [A1]) == "a1"
    leaders = Counter(site_leader(f"t{i}", [A1, A2]) for i in range(2000))
    assert set(leaders) == {"a1", "a2"}
    assert abs(leaders["a1"] - 1000) < 150  # equal weights: about half each
    assert site_leader("t7", [A1, A2]) == site_leader("t7", [A2, A1])


def test_leader_share_follows_weight() -> None:
    big, small = node("big", "isp-a", weight=3.0), node("small", "isp-a", weight=1.0)
    leaders = Counter(site_leader(f"t{i}", [big, small]) for i in range(4000))
    assert 0.70 < leaders["big"] / 4000 < 0.80  # 3:1


# --- orders ---------------------------------------------------------------------------------------


def test_non_leader_waits_on_its_leader_then_the_ix_leader_then_origin() -> None:
    title = title_led_by("a1", [A1, A2])
    ix_leader = site_leader(title, [X1, X2])
    got = fill_sources(A2, title, TOPOLOGY, {}, ids(TOPOLOGY))
    assert rows(got) == [
        ("a1", "peer", "planned", 0),
        (ix_leader, "tier", "planned", 1),
        ("o1", "origin", "complete", 2),
    ]


def test_leader_goes_straight_to_the_tier() -> None:
    title = title_led_by("a1", [A1, A2])
    got = fill_sources(A1, title, TOPOLOGY, {}, ids(TOPOLOGY))
    assert [s.kind for s in got] == [SourceKind.TIER, SourceKind.ORIGIN]
    assert [s.hop for s in got] == [1, 2]


def test_ix_leader_waits_on_nobody_and_ix_peer_waits_on_it() -> None:
    title = title_led_by("x1", [X1, X2])
    assert rows(fill_sources(X1, title, TOPOLOGY, {}, ids(TOPOLOGY))) == [
        ("o1", "origin", "complete", 1)
    ]
    assert rows(fill_sources(X2, title, TOPOLOGY, {}, ids(TOPOLOGY))) == [
        ("x1", "peer", "planned", 0),
        ("o1", "origin", "complete", 1),
    ]


def test_holders_complete_before_partial_and_leader_also_planned() -> None:
    a3, a4 = node("a3", "isp-a"), node("a4", "isp-a")
    site = [A1, A2, a3, a4]
    title = title_led_by("a1", site)
    got = fill_sources(a4, title, [*site, O1], {"a1": PA, "a2": C, "a3": PA}, ids(site))
    assert rows(got)[0] == ("a2", "peer", "complete", 0)
    assert {r[0] for r in rows(got)[1:3]} == {"a1", "a3"}
    assert all(r[2] == "partial" for r in rows(got)[1:3])
    assert rows(got)[3:] == [("a1", "peer", "planned", 0), ("o1", "origin", "complete", 1)]
    # a complete leader stays listed as planned too: if it is in backoff, wait for it
    done = fill_sources(a4, title, [*site, O1], {"a1": C}, ids(site))
    assert rows(done) == [
        ("a1", "peer", "complete", 0),
        ("a1", "peer", "planned", 0),
        ("o1", "origin", "complete", 1),
    ]


def test_no_planned_peer_when_nobody_else_plans_it() -> None:
    title = "t-alone"
    got = fill_sources(A1, title, TOPOLOGY, {}, frozenset({"a1"}))
    assert [s.kind for s in got] == [SourceKind.ORIGIN]  # no IX planner either


def test_holders_spread_over_targets() -> None:
    many = [node(f"a{i}", "isp-a") for i in range(1, 9)]
    holding = {n.appliance_id: C for n in many[:4]}
    firsts = {fill_sources(t, "t", many, holding, ids(many))[0].appliance_id for t in many[4:]} | {
        fill_sources(node(f"z{i}", "isp-a"), "t", many, holding, ids(many))[0].appliance_id
        for i in range(40)
    }
    assert firsts == {"a1", "a2", "a3", "a4"}


def test_tier_sites_nearest_first_and_capped() -> None:
    far1, far2 = node("f1", "ix-far"), node("f2", "ix-far")
    pni1 = node("p1", "pni")
    nodes = [A1, X1, far1, far2, pni1, O1]
    planned = ids(nodes)
    got = fill_sources(A1, "t", nodes, {}, planned)
    # isp-a -> ix (~4 km) -> pni (~125 km) -> ix-far (~470 km): two tier sites, then origin
    assert [(s.site_id, s.hop) for s in got] == [("ix", 1), ("pni", 2), ("origin", 3)]
    wider = fill_sources(A1, "t", nodes, {}, planned, EscalationPolicy(max_tier_sites=3))
    assert [s.site_id for s in wider] == ["ix", "pni", "ix-far", "origin"]
    assert fill_sources(A1, "t", nodes, {}, planned, EscalationPolicy(max_tier_sites=0)) == (
        FillSource("o1", "origin", SourceKind.ORIGIN, C, 1),
    )


def test_tier_site_with_nothing_to_offer_does_not_use_a_slot() -> None:
    far1 = node("f1", "ix-far")
    pni1 = node("p1", "pni")
    nodes = [A1, X1, pni1, far1, O1]
    got = fill_sources(A1, "t", nodes, {"f1": C}, frozenset({"a1", "f1"}))
    # ix and pni plan nothing and hold nothing: the far IX holder is within two useful sites
    assert rows(got) == [
        ("f1", "tier", "complete", 1),
        ("f1", "tier", "planned", 1),
        ("o1", "origin", "complete", 2),
    ]


def test_ix_target_uses_other_tier_holders_only_then_origin() -> None:
    far1, far2 = node("f1", "ix-far"), node("f2", "ix-far")
    pni1 = node("p1", "pni")
    nodes = [X1, far1, far2, pni1, O1]
    everyone = ids(nodes)
    assert rows(fill_sources(X1, "t", nodes, {}, everyone)) == [("o1", "origin", "complete", 1)]
    got = fill_sources(X1, "t", nodes, {"f2": C}, everyone)
    assert rows(got) == [("f2", "tier", "complete", 1), ("o1", "origin", "complete", 2)]
    pni_target = fill_sources(pni1, "t", nodes, {"x1": PA}, everyone)
    assert rows(pni_target) == [("x1", "tier", "partial", 1), ("o1", "origin", "complete", 2)]


def test_other_embedded_sites_are_never_sources() -> None:
    got = fill_sources(A1, "t", TOPOLOGY, {"b1": C, "b2": C}, ids(TOPOLOGY))
    assert not {"b1", "b2"} & {s.appliance_id for s in got}


def test_origin_is_complete_unless_said_partial_and_target_never_listed() -> None:
    o2 = node("o2", "origin")
    got = fill_sources(A1, "t", [A1, O1, o2], {"o2": PA, "a1": C}, frozenset({"a1"}))
    assert rows(got) == [("o1", "origin", "complete", 1), ("o2", "origin", "partial", 1)]
    assert "a1" not in {s.appliance_id for s in got}


# --- no wait cycles, on any topology -------------------------------------------------------------


def wait_edges(
    nodes: Sequence[FillNode], title: str, holding: Mapping[str, Holding], planned: frozenset[str]
) -> dict[str, set[str]]:
    """Who may wait on whom (PLANNED sources) for ``title``."""
    return {
        n.appliance_id: {
            s.appliance_id
            for s in fill_sources(n, title, nodes, holding, planned)
            if s.holding is PL
        }
        for n in nodes
        if n.appliance_id in planned
    }


def has_cycle(edges: Mapping[str, set[str]]) -> bool:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(v: str) -> bool:
        if state.get(v) == 1:
            return True
        if state.get(v) == 2:
            return False
        state[v] = 1
        found = any(visit(w) for w in edges.get(v, ()))
        state[v] = 2
        return found

    return any(visit(v) for v in list(edges))


def test_cycle_detector_detects() -> None:
    assert has_cycle({"a": {"b"}, "b": {"a"}})
    assert not has_cycle({"a": {"b"}, "b": {"c"}})


@settings(max_examples=200, deadline=None)
@given(
    layout=st.lists(
        st.tuples(st.sampled_from([E, E, P, X, ORG]), st.integers(1, 4)), min_size=1, max_size=6
    ),
    title=st.text("abcdef", min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
)
def test_wait_graph_is_acyclic_on_random_topologies(
    layout: list[tuple[SiteKind, int]], title: str, seed: int
) -> None:
    rng = random.Random(seed)
    nodes = [
        FillNode(f"s{i}n{j}", f"s{i}", kind, rng.uniform(-60, 60), rng.uniform(-180, 180))
        for i, (kind, count) in enumerate(layout)
        for j in range(count)
    ]
    planned = frozenset(n.appliance_id for n in nodes if rng.random() < 0.7)
    holding = {n.appliance_id: rng.choice([C, PA]) for n in nodes if rng.random() < 0.2}
    edges = wait_edges(nodes, title, holding, planned)
    assert not has_cycle(edges)
    kinds = {n.appliance_id: n for n in nodes}
    for waiter, targets in edges.items():
        for t in targets:  # only leaders are waited on, and never from a tier site to another
            w, o = kinds[waiter], kinds[t]
            assert t == site_leader(
                title, [n for n in nodes if n.site_id == o.site_id and n.appliance_id in planned]
            )
            assert w.site_id == o.site_id or (w.site_kind is E and o.site_kind in (P, X))


# --- a whole fill, simulated --------------------------------------------------------------------


@dataclass
class Transfer:
    target: str
    title: str
    file: str
    source: FillSource
    done_at: int


@dataclass
class FillSim:
    """Appliances filling in ticks; every decision from ``fill_sources`` and ``next_step``."""

    nodes: Sequence[FillNode]
    files: Mapping[str, tuple[str, ...]]  # title -> its files, in order
    planned: Mapping[str, frozenset[str]]  # title -> appliances whose manifest lists it
    policy: EscalationPolicy
    per_file_holding: bool
    rng: random.Random
    max_duration: int = 3
    store: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    busy: dict[str, Transfer] = field(default_factory=dict)
    failures: dict[tuple[str, str, str], SourceFailures] = field(default_factory=dict)
    crossings: dict[tuple[str, str], Counter[tuple[str, str]]] = field(default_factory=dict)
    waits: dict[tuple[str, str], dict[str, set[str]]] = field(default_factory=dict)
    misses: int = 0

    def __post_init__(self) -> None:
        for n in self.nodes:
            self.store[n.appliance_id] = set()
            if n.site_kind is ORG:  # the origin holds the whole catalog
                self.store[n.appliance_id] = {(t, f) for t, fs in self.files.items() for f in fs}

    def site(self, appliance_id: str) -> str:
        return next(n.site_id for n in self.nodes if n.appliance_id == appliance_id)

    def holding(self, title: str, file: str) -> dict[str, Holding]:
        out: dict[str, Holding] = {}
        for a, held in self.store.items():
            if self.per_file_holding:
                if (title, file) in held:
                    out[a] = C
            else:
                have = sum((title, f) in held for f in self.files[title])
                if have == len(self.files[title]):
                    out[a] = C
                elif have:
                    out[a] = PA
        return out

    def wanted(self, appliance_id: str) -> list[tuple[str, str]]:
        return [
            (t, f)
            for t, fs in self.files.items()
            if appliance_id in self.planned[t]
            for f in fs
            if (t, f) not in self.store[appliance_id]
        ]

    def done(self) -> bool:
        return not self.busy and all(not self.wanted(n.appliance_id) for n in self.nodes)

    def record_wait(
        self, who: str, title: str, file: str, sources: Sequence[FillSource], now: int
    ) -> None:
        """The PLANNED sources ``who`` is actually waiting on (first hop still within its wait)."""
        for hop in sorted({s.hop for s in sources}):
            deadline = self.policy.wait_s * (hop + 1)
            planned = {s.appliance_id for s in sources if s.hop == hop and s.holding is PL}
            if planned and now < deadline:
                self.waits.setdefault((title, file), {}).setdefault(who, set()).update(planned)
                return

    def tick(self, now: int) -> None:
        for who, tr in list(self.busy.items()):
            if tr.done_at <= now:
                del self.busy[who]
                self.store[who].add((tr.title, tr.file))
                src_site, dst_site = tr.source.site_id, self.site(who)
                self.crossings.setdefault((tr.title, tr.file), Counter())[(src_site, dst_site)] += 1
        order = list(self.nodes)
        self.rng.shuffle(order)
        for n in order:
            if n.appliance_id in self.busy:
                continue
            for title, file in self.wanted(n.appliance_id):
                sources = fill_sources(
                    n,
                    title,
                    self.nodes,
                    self.holding(title, file),
                    self.planned[title],
                    self.policy,
                )
                fails = {
                    s.appliance_id: self.failures[(n.appliance_id, file, s.appliance_id)]
                    for s in sources
                    if (n.appliance_id, file, s.appliance_id) in self.failures
                }
                step = next_step(sources, fails, 0.0, float(now), self.policy)
                if isinstance(step, Wait):
                    assert step.until > now
                    self.record_wait(n.appliance_id, title, file, sources, now)
                    continue
                assert isinstance(step, Attempt)
                src = step.source
                if (title, file) not in self.store[src.appliance_id]:  # a 404 from a partial
                    key = (n.appliance_id, file, src.appliance_id)
                    self.failures[key] = record_failure(self.failures.get(key), float(now))
                    self.misses += 1
                    continue
                duration = self.rng.randint(1, self.max_duration)
                self.busy[n.appliance_id] = Transfer(
                    n.appliance_id, title, file, src, now + duration
                )
                break

    def run(self, limit: int = 5000) -> int:
        for now in range(limit):
            self.tick(now)
            if self.done():
                return now
        raise AssertionError(f"fill did not finish in {limit} ticks: {self.busy}")


def random_plan(rng: random.Random, titles: Sequence[str]) -> dict[str, frozenset[str]]:
    """Per title: at least one IX appliance, any subset of each ISP site's appliances."""
    plan: dict[str, frozenset[str]] = {}
    for t in titles:
        ix = {x for x in ("x1", "x2") if rng.random() < 0.6} or {rng.choice(["x1", "x2"])}
        isp = {a for a in ("a1", "a2", "b1", "b2") if rng.random() < 0.75}
        plan[t] = frozenset(ix | isp)
    return plan


def catalog(n_titles: int, n_files: int) -> dict[str, tuple[str, ...]]:
    return {
        f"title{t}": tuple(f"{t:02d}{f:02d}".ljust(64, "0") + ".m4s" for f in range(n_files))
        for t in range(n_titles)
    }


def expected_crossings(sim: FillSim, title: str) -> Counter[tuple[str, str]]:
    """Per file of ``title``: origin -> IX once, IX -> each planning ISP site once, peers rest."""
    sites = {n.appliance_id: n.site_id for n in sim.nodes}
    planned_sites = Counter(sites[a] for a in sim.planned[title])
    expected = Counter({("origin", "ix"): 1})
    for isp in ("isp-a", "isp-b"):
        if planned_sites[isp]:
            expected[("ix", isp)] = 1
    for site, count in planned_sites.items():
        if count > 1:
            expected[(site, site)] = count - 1  # the rest by peer fill
    return expected


def check_links_once(sim: FillSim) -> None:
    for title, files in sim.files.items():
        expected = expected_crossings(sim, title)
        for f in files:
            crossed = sim.crossings.get((title, f), Counter())
            assert crossed == expected, (title, f, sim.planned[title])


def link_copies(counts: Counter[tuple[str, str]]) -> int:
    return sum(n for (src, dst), n in counts.items() if src != dst)


@pytest.mark.parametrize("per_file_holding", [True, False], ids=["per-file", "per-title"])
def test_a_whole_fill_crosses_each_link_once(per_file_holding: bool) -> None:
    files = catalog(4, 3)
    plan = {
        "title0": ids(TOPOLOGY) - {"o1"},
        "title1": frozenset({"a1", "a2", "b1", "x1"}),
        "title2": frozenset({"a2", "b1", "b2", "x1", "x2"}),
        "title3": frozenset({"a1", "a2", "b1", "b2", "x2"}),
    }
    sim = FillSim(
        TOPOLOGY, files, plan, EscalationPolicy(wait_s=600.0), per_file_holding, random.Random(5)
    )
    ticks = sim.run()
    check_links_once(sim)
    for n in TOPOLOGY:  # every appliance holds exactly its manifest
        want = {(t, f) for t, fs in files.items() if n.appliance_id in plan[t] for f in fs}
        assert n.site_kind is ORG or sim.store[n.appliance_id] == want
    for edges in sim.waits.values():
        assert not has_cycle(edges)
    total = sum(sum(c.values()) for c in sim.crossings.values())
    print(
        f"\nfill of {len(files)} titles x 3 files: {ticks} ticks, {total} transfers, "
        f"{sim.misses} partial misses ({'per file' if per_file_holding else 'per title'})"
    )


@pytest.mark.parametrize("seed", range(12))
def test_random_plans_and_timings_cross_each_link_once(seed: int) -> None:
    rng = random.Random(seed)
    files = catalog(6, rng.randint(1, 4))
    plan = random_plan(rng, list(files))
    sim = FillSim(
        TOPOLOGY,
        files,
        plan,
        EscalationPolicy(wait_s=10_000.0),
        seed % 2 == 0,
        rng,
        max_duration=rng.randint(1, 6),
    )
    sim.run()
    check_links_once(sim)
    for edges in sim.waits.values():
        assert not has_cycle(edges)


@pytest.mark.parametrize("seed", range(6))
def test_short_waits_escalate_but_always_finish(seed: int) -> None:
    """Waits shorter than transfers: some links carry a second copy, nobody deadlocks."""
    rng = random.Random(seed)
    files = catalog(5, 3)
    plan = random_plan(rng, list(files))
    sim = FillSim(
        TOPOLOGY, files, plan, EscalationPolicy(wait_s=2.0), seed % 2 == 0, rng, max_duration=8
    )
    sim.run()
    for t, fs in files.items():
        for a in plan[t]:
            assert {(t, f) for f in fs} <= sim.store[a]
    for edges in sim.waits.values():
        assert not has_cycle(edges)
    copies = sum(link_copies(c) for c in sim.crossings.values())
    minimum = sum(link_copies(expected_crossings(sim, t)) * len(fs) for t, fs in files.items())
    assert copies >= minimum
    print(f"\nshort waits (seed {seed}): {copies} link copies, minimum {minimum}")


def test_without_waiting_every_appliance_would_cross_the_links() -> None:
    """Control: with wait_s = 0 the same fill pulls many more copies over the links."""
    files = catalog(3, 2)
    plan = {t: ids(TOPOLOGY) - {"o1"} for t in files}
    sim = FillSim(TOPOLOGY, files, plan, EscalationPolicy(wait_s=0.0), True, random.Random(1))
    sim.run()
    from_origin = sum(c[("origin", s)] for c in sim.crossings.values() for s in SITES)
    assert from_origin > len(files) * 2  # more than once per file
