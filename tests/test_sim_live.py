"""One small fleet through the live control plane (in process) and through the simulator:
they decide the same.

The simulator's model of the fleet is applied to a real control plane as its
topology (``sim.model.topology_doc``), its titles imported, every appliance
registered with an inventory, and every BGP appliance's routes posted through
the routes API as its relay would. Then, for clients across every route class
and every title, the live answer (``/v1/steering/explain`` and a real
``/v1/playback``) is compared with the simulator's: ``steer`` on the snapshot
the simulator builds, and the batched path the simulator runs sessions through.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
from control_fixtures import FakeClock, client_for, make_plane
from sim_fixtures import small_doc, spec_of

from localcast.control.topology import parse_topology
from localcast.core.fleet import SiteKind
from localcast.core.steering import steer
from localcast.sim.model import build_model, topology_doc
from localcast.sim.steering import BatchSteering

PEER = "192.0.2.1"  # the ISP router the simulator's routes come from


def fleet_doc() -> dict[str, Any]:
    doc = small_doc(appliances=2, titles=12)
    sites = doc["sites"]
    # a-mrs also hears a-par's prefix, less preferred: local pref decides between them
    sites[1]["prefixes"] = ["10.1.1.0/24", "10.1.0.0/24"]
    sites[1]["local_pref"] = 80
    return doc


def routes_report(prefixes: list[str], asn: int, local_pref: int, med: int) -> dict[str, Any]:
    return {
        "kind": "full",
        "seq": 1,
        "base_seq": None,
        "sent_at": 0.0,  # the simulator's routes were received at 0
        "session": {
            "neighbor": PEER,
            "local_as": 65001,
            "ebgp": True,
            "address": PEER,
            "remote_as": asn,
            "description": "isp",
            "state": "established",
            "state_since": 0.0,
            "uptime_s": 10.0,
            "last_error": None,
            "peer_router_id": PEER,
            "hold_time_s": 90,
            "families": ["ipv4", "ipv6"],
            "received": len(prefixes),
            "accepted": len(prefixes),
            "filtered": {},
            "rejected_total": {},
            "max_prefix_alarm": False,
        },
        "announce": [
            {
                "prefixes": prefixes,
                "next_hop": PEER,
                "as_path": [asn],
                "as_path_length": 1,
                "origin_as": asn,
                "origin": "igp",
                "med": med,
                "local_pref": local_pref,
                "communities": [],
                "large_communities": [],
                "atomic_aggregate": False,
            }
        ],
        "withdraw": [],
    }


def test_live_control_plane_and_simulator_decide_the_same(tmp_path: Path) -> None:
    rng = random.Random(11)
    spec = spec_of(fleet_doc())
    model = build_model(spec)
    cat = model.catalog
    # what each appliance holds: random, the origin everything
    holdings: dict[str, frozenset[str]] = {}
    for a in model.appliances:
        if model.sites[model.site_index[a.site_id]].kind is SiteKind.ORIGIN:
            holdings[a.id] = frozenset(cat.ids)
        else:
            holdings[a.id] = frozenset(t for t in cat.ids if rng.random() < 0.5)

    clock = FakeClock()
    plane = make_plane(tmp_path, clock)
    try:
        creds = plane.apply_topology(parse_topology(topology_doc(model))).credentials
        plane.import_manifests([cat.entries[t].manifest for t in cat.ids])
        client = client_for(plane, "10.1.0.9")
        for a in model.appliances:
            auth = {"Authorization": f"Bearer {creds[a.id]}"}
            r = client.post(
                f"/v1/appliances/{a.id}/register", json={"heartbeat_interval_s": 5.0}, headers=auth
            )
            assert r.status_code == 200, r.text
            inv = {t: sorted(cat.entries[t].required_files) for t in sorted(holdings[a.id])}
            r = client.post(
                f"/v1/appliances/{a.id}/heartbeat",
                json={"inventory": {"kind": "full", "seq": 1, "titles": inv}},
                headers=auth,
            )
            assert r.status_code == 200, r.text
        isp_asn = {i.id: i.asn for i in spec.isps}
        for s in spec.sites:
            if not (s.bgp and s.prefixes) or s.kind is SiteKind.ORIGIN:
                continue
            for a in model.appliances:
                if a.site_id == s.id:
                    body = routes_report(s.prefixes, isp_asn[s.isp], s.local_pref, s.med)
                    r = client.post(
                        f"/v1/appliances/{a.id}/routes",
                        json=body,
                        headers={"Authorization": f"Bearer {creds[a.id]}"},
                    )
                    assert r.status_code == 200 and not r.json()["resync"], r.text

        now = clock()
        sim_snap = model.snapshot(holdings)
        holds = np.array([[t in holdings[a.id] for t in cat.ids] for a in model.appliances])
        batched = BatchSteering(model, spec.steering.max_pathways, spec.steering.per_site, now)
        clients = ["10.1.0.9", "10.1.0.200", "10.1.1.7", "10.1.7.1", "10.2.0.3", "203.0.113.9"]
        compared = 0
        for ip in clients:
            for title in cat.ids:
                live = client.get("/v1/steering/explain", params={"ip": ip, "title": title})
                assert live.status_code == 200, live.text
                live_path = [(p["appliance_id"], p["site_id"]) for p in live.json()["pathways"]]
                d = steer(
                    sim_snap, ip, title, now, spec.steering.max_pathways, spec.steering.per_site
                )
                assert [(p.appliance_id, p.site_id) for p in d.pathways] == live_path, (ip, title)
                sites = batched.pathway_sites(sim_snap, ip, title, holds, 1)
                assert [model.sites[s].id for s in sites] == [s for _, s in live_path], (ip, title)
                compared += 1
        # a real playback session decides the same as explain
        for ip in ("10.1.0.9", "10.2.0.3"):
            c = client_for(plane, ip)
            r = c.post("/v1/playback", json={"title_id": cat.ids[0], "profile_id": "p1"})
            assert r.status_code == 200, r.text
            d = steer(
                sim_snap, ip, cat.ids[0], now, spec.steering.max_pathways, spec.steering.per_site
            )
            assert [p["appliance_id"] for p in r.json()["pathways"]] == [
                p.appliance_id for p in d.pathways
            ]
        assert compared == len(clients) * len(cat)
        # the route classes the batch found: a-par's clients, a-mrs's, the PNI's, isp-b's, others
        assert len(batched.classes) >= 4
    finally:
        plane.close()
