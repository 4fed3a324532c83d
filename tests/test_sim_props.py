"""Properties of the simulator, over generated fleets and demand (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_fixtures import small_doc, spec_of

from localcast.sim.baselines import all_caches, cache_sites
from localcast.sim.report import offload_of
from localcast.sim.run import simulate
from localcast.sim.study import scaled

PROPS = settings(max_examples=6, deadline=None, derandomize=True)


@PROPS
@given(
    seed=st.integers(0, 10_000),
    zipf=st.floats(0.5, 1.3),
    disk_titles=st.integers(2, 12),
    factor=st.sampled_from([1.5, 2.0, 3.0]),
)
def test_offload_never_falls_when_storage_grows(
    seed: int, zipf: float, disk_titles: int, factor: float
) -> None:
    """Every policy, proactive included, with titles of one size, one appliance per site,
    room to serve everything, one day from a filled fleet (the plan is the day's content):
    more disk never holds less of what is asked."""
    title_tb = 0.0123  # a 60-minute title on the default ladder
    doc = small_doc(
        seed=seed, zipf=zipf, titles=40, equal_titles=True, disk_tb=disk_titles * title_tb
    )
    small = spec_of(doc)
    big = scaled(small, factor)
    a, b = simulate(small), simulate(big)
    assert offload_of(b) >= offload_of(a) - 1e-12
    ca, cb = all_caches(a), all_caches(b)
    for policy in ("lru", "lfu", "belady"):
        assert offload_of(b, cb[policy]) >= offload_of(a, ca[policy]) - 1e-12, policy


@PROPS
@given(
    seed=st.integers(0, 10_000),
    days=st.integers(1, 2),
    appliances=st.integers(1, 3),
    disk_tb=st.floats(0.02, 0.4),
    gbps=st.sampled_from([0.05, 0.5, 100.0]),
)
def test_belady_is_never_below_any_policy(
    seed: int, days: int, appliances: int, disk_tb: float, gbps: float
) -> None:
    """Per cache site and slot: the optimum serves at least what LRU, LFU and the proactive
    fleet served there to the clients whose best site it is, with the same storage."""
    r = simulate(
        spec_of(small_doc(seed=seed, days=days, appliances=appliances, disk_tb=disk_tb, gbps=gbps))
    )
    caches = all_caches(r)
    opt = caches["belady"].hit_bytes
    eps = 1e-6 * max(float(opt.max()), 1.0)
    for s in cache_sites(r):
        assert (opt[:, s] + eps >= caches["lru"].hit_bytes[:, s]).all()
        assert (opt[:, s] + eps >= caches["lfu"].hit_bytes[:, s]).all()
        assert (opt[:, s] + eps >= r.own_served[:, s]).all(), r.model.sites[s].id


@PROPS
@given(
    seed=st.integers(0, 10_000),
    days=st.integers(1, 2),
    disk_tb=st.floats(0.01, 0.3),
    gbps=st.sampled_from([0.05, 1.0, 100.0]),
    slot=st.sampled_from([15, 30, 60]),
)
def test_bytes_are_conserved_served_equals_demanded(
    seed: int, days: int, disk_tb: float, gbps: float, slot: int
) -> None:
    r = simulate(
        spec_of(small_doc(seed=seed, days=days, disk_tb=disk_tb, gbps=gbps, slot_minutes=slot))
    )
    total = r.demanded_bytes
    assert total > 0
    by_slot = r.src_bytes.sum(axis=(1, 2))
    assert np.isclose(by_slot.sum(), total, rtol=1e-12)
    assert np.allclose(r.site_bytes.sum(axis=1), by_slot)
    assert np.allclose(r.link_bytes.sum(axis=1), by_slot)
    assert np.isclose(r.miss_bytes.sum(), total, rtol=1e-12)
