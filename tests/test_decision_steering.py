"""Steering with BGP-learned routes: the right site, as an ISP's routing changes would expect."""

from __future__ import annotations

from pathlib import Path

import pytest
from control_fixtures import NOW, appliance
from route_fixtures import bgp_path, bgp_snapshot, heard, site_at

from localcast.core.decision import Rule, Step
from localcast.core.fleet import FleetSnapshot, SiteKind, with_route_delta
from localcast.core.geo import Location
from localcast.core.rib import RouteDelta
from localcast.core.steering import SteeringDecision, candidate_sites, rerank, steer

E, P, X, ORG = SiteKind.EMBEDDED, SiteKind.PNI, SiteKind.IX, SiteKind.ORIGIN


def ids(decision: SteeringDecision) -> list[str]:
    return [p.appliance_id for p in decision.pathways]


def sites_of(decision: SteeringDecision) -> list[str]:
    return [p.site_id for p in decision.pathways]


def two_embedded(a_path: RouteDelta, b_path: RouteDelta) -> FleetSnapshot:
    """Two embedded sites of one ISP (a in Paris, b in Lyon), an IX in Frankfurt, the origin."""
    return bgp_snapshot(
        [
            site_at("a", E, 48.85, 2.35),
            site_at("b", E, 45.76, 4.84),
            site_at("ix", X, 50.11, 8.68),
            site_at("origin", ORG, 39.0, -77.5),
        ],
        [
            appliance("a1", "a"),
            appliance("b1", "b"),
            appliance("ix1", "ix"),
            appliance("o1", "origin"),
        ],
        {"a1": a_path, "b1": b_path},
    )


def test_a_bgp_route_sends_its_clients_to_the_site_that_heard_it() -> None:
    snap = two_embedded(heard("10.1.0.0/16"), heard("10.2.0.0/16"))
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert ids(d) == ["a1", "ix1", "o1"]
    assert d.pathways[0].rule is Rule.BGP_ROUTE
    assert "a1 heard 10.1.0.0/16 over BGP" in d.pathways[0].reason
    assert ids(steer(snap, "10.2.0.9", "t1", NOW)) == ["b1", "ix1", "o1"]
    assert ids(steer(snap, "10.3.0.1", "t1", NOW)) == ["ix1", "o1"]


def test_as_path_prepending_moves_clients_to_the_other_site() -> None:
    snap = two_embedded(heard("10.1.0.0/16", p=bgp_path(64500, 64500, 64500)), heard("10.1.0.0/16"))
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert sites_of(d)[:2] == ["b", "a"]
    assert d.pathways[0].decided_by is Step.AS_PATH


def test_med_moves_clients_between_sites_of_one_isp() -> None:
    snap = two_embedded(
        heard("10.1.0.0/16", p=bgp_path(med=10)), heard("10.1.0.0/16", p=bgp_path(med=20))
    )
    assert sites_of(steer(snap, "10.1.2.3", "t1", NOW))[:2] == ["a", "b"]
    later = with_route_delta(snap, "a1", heard("10.1.0.0/16", p=bgp_path(med=30)))
    assert later.version == snap.version + 1
    d = steer(later, "10.1.2.3", "t1", NOW)
    assert sites_of(d)[:2] == ["b", "a"] and d.pathways[0].decided_by is Step.MED


def test_a_more_specific_route_wins_over_a_better_path() -> None:
    snap = two_embedded(
        heard("10.1.0.0/16"), heard("10.1.2.0/24", p=bgp_path(64500, 64500, 64500, 64500))
    )
    assert sites_of(steer(snap, "10.1.2.3", "t1", NOW))[:2] == ["b", "a"]
    assert sites_of(steer(snap, "10.1.3.3", "t1", NOW))[:1] == ["a"]


def test_withdrawal_and_session_down_stop_steering_to_the_site() -> None:
    snap = two_embedded(heard("10.1.0.0/16"), heard("10.1.0.0/16", p=bgp_path(64500, 64500)))
    assert sites_of(steer(snap, "10.1.2.3", "t1", NOW))[0] == "a"
    withdrawn = with_route_delta(snap, "a1", RouteDelta.of(withdrawn=["10.1.0.0/16"]))
    assert sites_of(steer(withdrawn, "10.1.2.3", "t1", NOW)) == ["b", "ix", "origin"]
    down = with_route_delta(withdrawn, "b1", RouteDelta.session_down())
    assert sites_of(steer(down, "10.1.2.3", "t1", NOW)) == ["ix", "origin"]


def test_embedded_wins_over_an_ix_appliance_that_heard_the_same_prefix_better() -> None:
    snap = bgp_snapshot(
        [site_at("a", E), site_at("ix", X)],
        [appliance("a1", "a"), appliance("ix1", "ix")],
        {
            "a1": heard("10.1.0.0/16", p=bgp_path(64500, 64500, 64500, med=99)),
            "ix1": heard("10.1.0.0/16", p=bgp_path(64500, local_pref=500)),
        },
    )
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert ids(d) == ["a1", "ix1"]
    assert d.pathways[0].decided_by is Step.CONNECTION_KIND


def test_an_ix_site_with_bgp_serves_only_what_it_heard() -> None:
    snap = bgp_snapshot(
        [site_at("ix", X), site_at("origin", ORG)],
        [appliance("ix1", "ix"), appliance("o1", "origin")],
        {"ix1": heard("10.1.0.0/16")},
    )
    assert ids(steer(snap, "10.1.2.3", "t1", NOW)) == ["ix1", "o1"]
    assert ids(steer(snap, "10.9.2.3", "t1", NOW)) == ["o1"]


def test_an_appliance_that_did_not_hear_the_prefix_does_not_serve_it() -> None:
    snap = bgp_snapshot(
        [site_at("a", E), site_at("ix", X)],
        [appliance("a1", "a"), appliance("a2", "a"), appliance("ix1", "ix")],
        {"a1": heard("10.1.0.0/16", "10.2.0.0/16"), "a2": heard("10.2.0.0/16")},
    )
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert ids(d) == ["a1", "ix1"]
    reason = next(x.reason for x in d.excluded if x.appliance_id == "a2")
    assert reason.startswith("heard no route covering 10.1.2.3")
    assert set(ids(steer(snap, "10.2.0.1", "t1", NOW))[:2]) == {"a1", "a2"}


def test_content_held_only_by_the_appliance_without_the_route_goes_off_site() -> None:
    snap = bgp_snapshot(
        [site_at("a", E), site_at("ix", X)],
        [appliance("a1", "a", titles=()), appliance("a2", "a"), appliance("ix1", "ix")],
        {"a1": heard("10.1.0.0/16"), "a2": RouteDelta()},
    )
    assert ids(steer(snap, "10.1.2.3", "t1", NOW)) == ["ix1"]


def test_configured_prefixes_are_ignored_once_a_site_speaks_bgp() -> None:
    snap = bgp_snapshot(
        [site_at("a", E, prefixes=("10.1.0.0/16",)), site_at("ix", X)],
        [appliance("a1", "a"), appliance("ix1", "ix")],
        {"a1": RouteDelta.session_down()},
    )
    assert ids(steer(snap, "10.1.2.3", "t1", NOW)) == ["ix1"]


def test_configured_prefixes_remain_the_source_for_sites_without_bgp() -> None:
    snap = bgp_snapshot(
        [site_at("a", E), site_at("c", E, prefixes=("10.1.2.0/24",)), site_at("ix", X)],
        [appliance("a1", "a"), appliance("c1", "c"), appliance("ix1", "ix")],
        {"a1": heard("10.1.0.0/16")},
    )
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert ids(d) == ["c1", "a1", "ix1"]
    assert [p.rule for p in d.pathways] == [Rule.PREFIX_MATCH, Rule.BGP_ROUTE, Rule.PEERING_DEFAULT]
    same = bgp_snapshot(
        [site_at("a", E), site_at("c", E, prefixes=("10.1.0.0/16",))],
        [appliance("a1", "a"), appliance("c1", "c")],
        {"a1": heard("10.1.0.0/16")},
    )
    d = steer(same, "10.1.2.3", "t1", NOW)
    assert ids(d) == ["a1", "c1"] and d.pathways[0].decided_by is Step.LEARNED


def test_ipv6_routes_steer_ipv6_clients() -> None:
    snap = two_embedded(heard("2001:db8:a::/48"), heard("2001:db8::/32"))
    assert sites_of(steer(snap, "2001:db8:a::1", "t1", NOW))[:2] == ["a", "b"]
    assert sites_of(steer(snap, "2001:db8:b::1", "t1", NOW))[:1] == ["b"]


def test_peering_sites_are_ordered_by_distance_from_the_clients_site() -> None:
    snap = bgp_snapshot(
        [
            site_at("a", E, 48.85, 2.35),  # Paris
            site_at("ix-fra", X, 50.11, 8.68),
            site_at("ix-ams", X, 52.37, 4.90),
            site_at("ix-nyc", X, 40.71, -74.0),
        ],
        [
            appliance("a1", "a"),
            appliance("f1", "ix-fra"),
            appliance("m1", "ix-ams"),
            appliance("n1", "ix-nyc"),
        ],
        {"a1": heard("10.1.0.0/16")},
    )
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert ids(d) == ["a1", "m1", "f1", "n1"]
    assert d.client_location is not None and "site a" in d.client_location.source
    explained = {s.site_id: s for s in d.sites}
    assert explained["ix-fra"].decided_by is Step.DISTANCE
    assert explained["ix-fra"].versus == "ix-ams"


def test_a_locator_places_the_client() -> None:
    snap = bgp_snapshot(
        [site_at("ix-fra", X, 50.11, 8.68), site_at("ix-nyc", X, 40.71, -74.0)],
        [appliance("f1", "ix-fra"), appliance("n1", "ix-nyc")],
        {},
    )
    boston = Location(42.36, -71.06, "geoip")
    assert ids(steer(snap, "192.0.2.1", "t1", NOW, locate=lambda ip: boston)) == ["n1", "f1"]
    assert ids(steer(snap, "192.0.2.1", "t1", NOW)) == ["f1", "n1"]  # no location: site id


def test_explain_lists_every_candidate_site_with_its_step() -> None:
    snap = two_embedded(heard("10.1.0.0/16"), heard("10.1.0.0/16", p=bgp_path(64500, 64500)))
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert [(s.site_id, s.rule, s.decided_by) for s in d.sites] == [
        ("a", Rule.BGP_ROUTE, Step.AS_PATH),
        ("b", Rule.BGP_ROUTE, Step.AS_PATH),
        ("ix", Rule.PEERING_DEFAULT, Step.LONGEST_PREFIX),
        ("origin", Rule.ORIGIN, Step.ORIGIN_LAST),
    ]
    assert d.sites[0].appliance_id == "a1" and d.sites[0].prefix == "10.1.0.0/16"


def test_site_best_route_is_the_best_of_its_appliances() -> None:
    snap = bgp_snapshot(
        [site_at("a", E), site_at("b", E)],
        [appliance("a1", "a"), appliance("a2", "a"), appliance("b1", "b")],
        {
            "a1": heard("10.1.0.0/16", p=bgp_path(64500, 64500, 64500)),
            "a2": heard("10.1.0.0/16", p=bgp_path(64500, peer="192.0.2.2")),
            "b1": heard("10.1.0.0/16", p=bgp_path(64500, 64500)),
        },
    )
    (first, second) = candidate_sites(snap, "10.1.2.3")
    assert (first.site.id, second.site.id) == ("a", "b")
    assert first.ranked is not None and first.ranked.candidate.appliance_id == "a2"
    assert first.routed == {"a1", "a2"}


def test_rerank_follows_route_changes() -> None:
    snap = two_embedded(heard("10.1.0.0/16"), heard("10.1.0.0/16", p=bgp_path(64500, 64500)))
    session = ids(steer(snap, "10.1.2.3", "t1", NOW))
    assert session[0] == "a1"
    gone = with_route_delta(snap, "a1", RouteDelta.session_down())
    again = rerank(gone, "10.1.2.3", "t1", session, NOW)
    assert again.order[0] == "b1" and again.order[-1] == "a1"
    assert again.demoted[0].reason == "no longer a candidate for this client"


def test_geoip_database_locates_clients(tmp_path: Path) -> None:
    netaddr = pytest.importorskip("netaddr")
    mmdb_writer = pytest.importorskip("mmdb_writer")
    from localcast.control.geoip import GeoIpLocator

    writer = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    writer.insert_network(
        netaddr.IPSet(["198.51.100.0/24"]),
        {"location": {"latitude": 42.36, "longitude": -71.06}},
    )
    writer.insert_network(netaddr.IPSet(["2001:db8::/32"]), {"location": {"latitude": 50.1}})
    db = tmp_path / "city.mmdb"
    writer.to_db_file(str(db))
    locate = GeoIpLocator(db)
    try:
        found = locate("198.51.100.7")
        assert found is not None and (found.lat, found.lon) == (42.36, -71.06)
        assert locate("203.0.113.1") is None  # not in the database
        assert locate("2001:db8::1") is None  # no longitude
        assert locate("not-an-ip") is None
    finally:
        locate.close()
