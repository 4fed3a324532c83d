"""Steering v0 as a pure function: each rule and each tie-break, no I/O."""

from __future__ import annotations

import ipaddress

import pytest
from control_fixtures import NOW, alive_health, appliance, site, snapshot

from localcast.core.fleet import ApplianceState, FleetSnapshot, Health, Load, SiteKind
from localcast.core.routes import Route, RouteTable, select_routes
from localcast.core.steering import (
    Rule,
    SteeringDecision,
    candidate_sites,
    rendezvous_order,
    rerank,
    steer,
)

E, P, X, ORG = SiteKind.EMBEDDED, SiteKind.PNI, SiteKind.IX, SiteKind.ORIGIN


def fleet() -> FleetSnapshot:
    """ISP A embedded (10.1/16), ISP B pni (10.2/16), one IX, the origin."""
    sites = [
        site("a", E, ("10.1.0.0/16",), "isp-a"),
        site("b", P, ("10.2.0.0/16",), "isp-b"),
        site("ix", X),
        site("origin", ORG),
    ]
    apps = [
        appliance("a1", "a"),
        appliance("a2", "a"),
        appliance("b1", "b"),
        appliance("ix1", "ix"),
        appliance("o1", "origin"),
    ]
    return snapshot(sites, apps)


def ids(decision: SteeringDecision) -> list[str]:
    return [p.appliance_id for p in decision.pathways]


# --- rule 1 and 2: candidate sites and their order -----------------------------------------


def test_client_inside_embedded_prefix_gets_embedded_site_first() -> None:
    d = steer(fleet(), "10.1.2.3", "t1", NOW)
    assert ids(d)[:2] in (["a1", "a2"], ["a2", "a1"])
    assert ids(d)[2:] == ["ix1", "o1"]
    assert d.pathways[0].rule is Rule.PREFIX_MATCH
    assert "10.1.0.0/16" in d.pathways[0].reason


def test_embedded_site_does_not_serve_clients_outside_its_prefixes() -> None:
    d = steer(fleet(), "10.2.9.9", "t1", NOW)
    assert ids(d) == ["b1", "ix1", "o1"]


def test_ix_without_prefixes_serves_any_network_over_peering() -> None:
    d = steer(fleet(), "192.0.2.10", "t1", NOW)
    assert ids(d) == ["ix1", "o1"]
    assert d.pathways[0].rule is Rule.PEERING_DEFAULT


def test_longest_prefix_wins_before_connection_kind() -> None:
    snap = snapshot(
        [site("a", E, ("10.0.0.0/8",), "isp"), site("b", P, ("10.1.0.0/16",), "isp")],
        [appliance("a1", "a"), appliance("b1", "b")],
    )
    assert ids(steer(snap, "10.1.0.1", "t1", NOW)) == ["b1", "a1"]


def test_embedded_beats_pni_beats_ix_for_the_same_prefix() -> None:
    snap = snapshot(
        [
            site("ix", X, ("10.1.0.0/16",)),
            site("b", P, ("10.1.0.0/16",), "isp"),
            site("a", E, ("10.1.0.0/16",), "isp"),
        ],
        [appliance("ix1", "ix"), appliance("b1", "b"), appliance("a1", "a")],
    )
    assert ids(steer(snap, "10.1.0.1", "t1", NOW)) == ["a1", "b1", "ix1"]


def test_ix_site_with_prefixes_serves_only_those_prefixes() -> None:
    snap = snapshot([site("ix", X, ("10.9.0.0/16",))], [appliance("ix1", "ix")])
    assert ids(steer(snap, "10.9.0.1", "t1", NOW)) == ["ix1"]
    assert ids(steer(snap, "10.8.0.1", "t1", NOW)) == []


def test_origin_comes_last_even_with_a_matching_prefix() -> None:
    snap = snapshot(
        [site("origin", ORG, ("10.1.2.0/24",)), site("ix", X)],
        [appliance("o1", "origin"), appliance("ix1", "ix")],
    )
    assert ids(steer(snap, "10.1.2.3", "t1", NOW)) == ["ix1", "o1"]


def test_candidate_sites_tie_break_is_the_site_id() -> None:
    snap = snapshot(
        [site("z", E, ("10.1.0.0/16",), "p"), site("m", E, ("10.1.0.0/16",), "p")],
        [appliance("z1", "z"), appliance("m1", "m")],
    )
    assert [c.site.id for c in candidate_sites(snap, "10.1.1.1")] == ["m", "z"]


# --- rule 3: eligibility ---------------------------------------------------------------------


def excluded(decision: SteeringDecision, aid: str) -> str:
    return next(x.reason for x in decision.excluded if x.appliance_id == aid)


def test_dead_appliance_is_left_out_with_its_reason() -> None:
    snap = snapshot(
        [site("a", E, ("10.1.0.0/16",), "isp"), site("ix", X)],
        [
            appliance("a1", "a", health=Health(5.0, NOW - 16.0, NOW - 100, 10)),
            appliance("ix1", "ix"),
        ],
    )
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert ids(d) == ["ix1"]
    assert excluded(d, "a1").startswith("dead: no heartbeat for 16.0 s")


def test_content_miss_sends_the_client_to_the_ix() -> None:
    snap = snapshot(
        [site("a", E, ("10.1.0.0/16",), "isp"), site("ix", X)],
        [appliance("a1", "a", titles=("other",)), appliance("ix1", "ix")],
        title_ids=("t1", "other"),
    )
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert ids(d) == ["ix1"]
    assert excluded(d, "a1") == "content miss: does not hold t1 complete"


def test_saturated_appliance_is_a_health_miss() -> None:
    hot = Load(egress_bps=9.8e9)
    snap = snapshot(
        [site("a", E, ("10.1.0.0/16",), "isp")],
        [appliance("a1", "a", load=hot), appliance("a2", "a")],
    )
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert ids(d) == ["a2"]
    assert excluded(d, "a1").startswith("health miss: saturated")


def test_drained_and_never_registered_appliances_are_left_out() -> None:
    snap = snapshot(
        [site("a", E, ("10.1.0.0/16",), "isp")],
        [
            appliance("a1", "a", drained=True),
            appliance("a2", "a", state=ApplianceState.PROVISIONED, health=Health(5.0)),
            appliance("a3", "a"),
        ],
    )
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert ids(d) == ["a3"]
    assert excluded(d, "a1") == "drained for maintenance"
    assert excluded(d, "a2") == "provisioned: never registered"


# --- rule 4: rendezvous hashing ----------------------------------------------------------------


def test_rendezvous_order_is_deterministic_per_title() -> None:
    apps = [appliance(f"a{i}", "a") for i in range(5)]
    assert rendezvous_order("t1", apps) == rendezvous_order("t1", list(reversed(apps)))
    firsts = {rendezvous_order(f"title-{i}", apps)[0].id for i in range(200)}
    assert firsts == {a.id for a in apps}  # titles spread over every appliance


def test_rendezvous_moves_only_the_titles_an_added_appliance_wins() -> None:
    apps = [appliance(f"a{i}", "a") for i in range(4)]
    bigger = [*apps, appliance("a4", "a")]
    for i in range(300):
        before = rendezvous_order(f"title-{i}", apps)[0].id
        after = rendezvous_order(f"title-{i}", bigger)[0].id
        assert after in (before, "a4")


def test_rendezvous_share_follows_capacity() -> None:
    apps = [appliance("big", "a", gbps=30.0), appliance("small", "a", gbps=10.0)]
    n = 4000
    big = sum(rendezvous_order(f"title-{i}", apps)[0].id == "big" for i in range(n))
    assert 0.70 < big / n < 0.80  # expected 30 / (30 + 10)


# --- rule 5: selection -------------------------------------------------------------------------


def test_per_site_cap_leaves_room_for_another_site() -> None:
    snap = snapshot(
        [site("a", E, ("10.1.0.0/16",), "isp"), site("ix", X), site("origin", ORG)],
        [appliance(f"a{i}", "a") for i in range(4)]
        + [appliance("ix1", "ix"), appliance("o1", "origin")],
    )
    d = steer(snap, "10.1.2.3", "t1", NOW, limit=4, per_site=2)
    kinds = [p.site_id for p in d.pathways]
    assert kinds == ["a", "a", "ix", "origin"]


def test_free_slots_are_filled_from_the_best_site_in_order() -> None:
    snap = snapshot(
        [site("a", E, ("10.1.0.0/16",), "isp"), site("origin", ORG)],
        [appliance(f"a{i}", "a") for i in range(4)] + [appliance("o1", "origin")],
    )
    d = steer(snap, "10.1.2.3", "t1", NOW, limit=4, per_site=2)
    assert [p.site_id for p in d.pathways] == ["a", "a", "a", "origin"]
    assert [p.rank for p in d.pathways] == [1, 2, 3, 4]


def test_limit_keeps_one_slot_for_the_origin() -> None:
    d = steer(fleet(), "10.1.2.3", "t1", NOW, limit=2)
    assert ids(d)[-1] == "o1"
    assert len(ids(d)) == 2


def test_limit_of_one_prefers_the_best_appliance_over_the_origin() -> None:
    assert ids(steer(fleet(), "10.2.0.1", "t1", NOW, limit=1)) == ["b1"]


def test_origin_is_a_last_resort_when_nothing_is_alive() -> None:
    stale = Health(5.0, NOW - 60, NOW - 100, 10)
    snap = snapshot(
        [site("ix", X), site("origin", ORG)],
        [appliance("ix1", "ix", health=stale), appliance("o1", "origin", health=stale)],
    )
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert ids(d) == ["o1"]
    assert d.pathways[0].rule is Rule.ORIGIN_LAST_RESORT


def test_no_pathway_when_the_title_is_unknown_or_nowhere() -> None:
    d = steer(fleet(), "10.1.2.3", "nope", NOW)
    assert d.pathways == () and "not in the catalog" in d.reason
    snap = snapshot([site("ix", X)], [appliance("ix1", "ix", titles=())])
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert d.pathways == () and "no live appliance holds t1" in d.reason


def test_malformed_client_address_is_an_error() -> None:
    with pytest.raises(ValueError):
        steer(fleet(), "not-an-ip", "t1", NOW)


def test_ipv6_prefixes_and_ipv4_mapped_clients() -> None:
    snap = snapshot(
        [site("a", E, ("2001:db8:a::/48", "10.1.0.0/16"), "isp"), site("ix", X)],
        [appliance("a1", "a"), appliance("ix1", "ix")],
    )
    assert ids(steer(snap, "2001:db8:a::1", "t1", NOW)) == ["a1", "ix1"]
    assert ids(steer(snap, "2001:db8:b::1", "t1", NOW)) == ["ix1"]
    d = steer(snap, "::ffff:10.1.2.3", "t1", NOW)
    assert ids(d) == ["a1", "ix1"] and d.client_ip == "10.1.2.3"


# --- re-ranking a session's pathways ---------------------------------------------------------


def test_rerank_keeps_the_order_while_everyone_is_alive() -> None:
    snap = fleet()
    first = steer(snap, "10.1.2.3", "t1", NOW)
    again = rerank(snap, "10.1.2.3", "t1", ids(first), NOW + 1)
    assert list(again.order) == ids(first) and again.demoted == ()


def test_rerank_moves_a_dead_pathway_to_the_end_with_its_reason() -> None:
    snap = fleet()
    session = ids(steer(snap, "10.1.2.3", "t1", NOW))
    best = session[0]
    dead = appliance(best, "a", health=Health(5.0, NOW - 30, NOW - 100, 10))
    apps = {**snap.appliances, best: dead}
    later = snapshot(list(snap.sites.values()), list(apps.values()))
    again = rerank(later, "10.1.2.3", "t1", session, NOW)
    assert again.order[-1] == best
    assert again.order[:-1] == tuple(p for p in session if p != best)
    assert again.demoted[0].reason.startswith("dead")


def test_rerank_demotes_an_appliance_that_left_the_fleet() -> None:
    snap = fleet()
    again = rerank(snap, "10.1.2.3", "t1", ["gone", "ix1"], NOW)
    assert again.order == ("ix1", "gone")


def test_alive_health_fixture_is_alive() -> None:
    from localcast.core.health import liveness

    assert liveness(alive_health(), NOW).alive


# --- the route table -----------------------------------------------------------------------------


def test_select_routes_returns_each_site_once_most_specific_first() -> None:
    table = RouteTable.build(
        [
            Route(ipaddress.ip_network("10.0.0.0/8"), "wide"),
            Route(ipaddress.ip_network("10.1.0.0/16"), "narrow"),
            Route(ipaddress.ip_network("10.1.2.0/24"), "wide"),
            Route(ipaddress.ip_network("0.0.0.0/0"), "default"),
            Route(ipaddress.ip_network("2001:db8::/32"), "v6"),
        ]
    )
    got = [(m.site_id, m.prefix_len) for m in select_routes(table, "10.1.2.3")]
    assert got == [("wide", 24), ("narrow", 16), ("default", 0)]
    assert [m.site_id for m in select_routes(table, "2001:db8::1")] == ["v6"]
    assert [m.site_id for m in select_routes(table, "192.0.2.1")] == ["default"]
