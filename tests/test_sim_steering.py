"""The simulator's batched steering decides what ``core.steering.steer`` decides, per session."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import numpy as np
import pytest
from sim_fixtures import small_doc, spec_of

from localcast.core.steering import steer
from localcast.sim.model import SimModel, build_model
from localcast.sim.steering import MISS_CONTENT, MISS_NONE, BatchSteering


def overlapping_doc() -> dict[str, Any]:
    """Routes that overlap: two embedded sites hear parts of one /23 (one of them with a
    lower local pref), a PNI is configured with the aggregate, an IPv6 embedded site."""
    doc = small_doc(appliances=3, titles=40)
    sites = doc["sites"]
    sites[0]["prefixes"] = ["10.1.0.0/23"]
    sites[0]["local_pref"] = 90
    sites[1]["prefixes"] = ["10.1.1.0/24", "10.1.0.0/23"]
    doc["isps"][1]["prefixes"].append({"prefix": "2001:db8:b::/48", "subscribers": 100})
    sites.insert(
        2,
        {
            "id": "b-ber",
            "kind": "embedded",
            "isp": "isp-b",
            "lat": 52.5,
            "lon": 13.4,
            "tz": "Europe/Berlin",
            "prefixes": ["10.2.0.0/25", "2001:db8:b::/48"],
            "appliances": [{"count": 2, "disk_tb": 0.2, "gbps": 10}],
        },
    )
    return doc


def random_holdings(model: SimModel, rng: random.Random) -> np.ndarray:
    holds = np.zeros((len(model.appliances), len(model.catalog)), dtype=bool)
    for i in range(len(model.appliances)):
        if model.sites[model.app_site[i]].kind.value == "origin":
            holds[i] = True
        else:
            p = rng.choice((0.1, 0.5, 0.9))
            holds[i] = [rng.random() < p for _ in range(len(model.catalog))]
    return holds


def snapshot_of(model: SimModel, holds: np.ndarray) -> Any:
    ids = model.catalog.ids
    return model.snapshot(
        {
            a.id: frozenset(ids[t] for t in np.flatnonzero(holds[i]))
            for i, a in enumerate(model.appliances)
        }
    )


def client_ips(rng: random.Random, n: int) -> list[str]:
    nets = ["10.1.0.0/24", "10.1.1.0/24", "10.2.0.0/24", "2001:db8:b::/64", "192.0.2.0/24"]
    out = []
    for _ in range(n):
        net = ipaddress.ip_network(rng.choice(nets))
        out.append(str(net.network_address + rng.randrange(1, min(net.num_addresses, 2**32))))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batched_decisions_equal_steer_for_every_session(seed: int) -> None:
    rng = random.Random(seed)
    spec = spec_of(overlapping_doc())
    model = build_model(spec)
    holds = random_holdings(model, rng)
    snap = snapshot_of(model, holds)
    now = spec.sim.start_ts + 3600
    bs = BatchSteering(model, spec.steering.max_pathways, spec.steering.per_site, now)
    ips = client_ips(rng, 400)
    titles = [rng.choice(model.catalog.ids) for _ in ips]
    # the batched path: one LPM call for the batch
    addrs = [int(ipaddress.ip_address(ip)) for ip in ips]
    hi = np.array([a >> 64 for a in addrs], dtype=np.uint64)
    lo = np.array([a & (2**64 - 1) for a in addrs], dtype=np.uint64)
    v6 = np.array([":" in ip for ip in ips])
    classes = bs.classify(snap, hi, lo, v6)
    assert bs.lpm_calls == 1
    tidx = np.array([model.catalog.index[t] for t in titles], dtype=np.int32)
    choices, miss = bs.decide(snap, classes, tidx, holds, 1)
    calls = bs.steer_calls
    assert calls < len(ips) // 4  # classes, not sessions
    for i, (ip, title) in enumerate(zip(ips, titles, strict=True)):
        d = steer(snap, ip, title, now, spec.steering.max_pathways, spec.steering.per_site)
        sites = [model.site_index[p.site_id] for p in d.pathways]
        assert bs.pathway_sites(snap, ip, title, holds, 1) == tuple(sites), (ip, title)
        distinct = list(dict.fromkeys(sites))
        assert choices[i, : len(distinct)].tolist() == distinct
        assert (choices[i, len(distinct) :] == -1).all()
        best = bs.classes[int(classes[i])].best
        if sites and sites[0] == best:
            assert miss[i] == MISS_NONE
        elif any(
            x.reason.startswith("content miss")
            for x in d.excluded
            if model.site_index[x.site_id] == best
        ):
            assert miss[i] == MISS_CONTENT
    assert bs.steer_calls == calls  # every answer above came from the cache


def test_route_classes_group_addresses_with_the_same_candidates() -> None:
    spec = spec_of(overlapping_doc())
    model = build_model(spec)
    holds = random_holdings(model, random.Random(0))
    snap = snapshot_of(model, holds)
    bs = BatchSteering(model, 4, 2, spec.sim.start_ts)
    a = bs.class_of_ip(snap, "10.1.1.7")
    assert bs.class_of_ip(snap, "10.1.1.200") == a
    # a-mrs's /24 does not cover 10.1.0.9, but its /23 beats a-par's by local pref: the
    # same candidates in the same order, so the same class (other LPM entry)
    assert bs.lpm.lookup("10.1.0.9") != bs.lpm.lookup("10.1.1.7")
    assert bs.class_of_ip(snap, "10.1.0.9") == a
    pni_only = bs.classes[bs.class_of_ip(snap, "10.1.2.1")]  # outside the /23: the PNI's /16
    assert model.sites[pni_only.best].id == "a-pni" and not pni_only.embedded
    other = bs.class_of_ip(snap, "203.0.113.5")
    c = bs.classes[other]
    assert [model.sites[s].kind.value for s in c.sites] == ["ix", "origin"]
    assert c.best == model.site_index["ix-fra"] and not c.embedded
    v6 = bs.classes[bs.class_of_ip(snap, "2001:db8:b::1")]
    assert model.sites[v6.best].id == "b-ber"
