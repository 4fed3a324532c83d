"""The decision process: one test per step, in the documented order, and the explanations."""

from __future__ import annotations

from route_fixtures import bgp_path, site_at

from localcast.core.decision import (
    Candidate,
    Rule,
    Step,
    client_location,
    order,
    rank_sites,
)
from localcast.core.fleet import SiteKind
from localcast.core.geo import Location, haversine_km
from localcast.core.rib import Origin, Path

E, P, X, ORG = SiteKind.EMBEDDED, SiteKind.PNI, SiteKind.IX, SiteKind.ORIGIN


def bgp(
    sid: str,
    path: Path | None = None,
    kind: SiteKind = E,
    prefix_len: int = 16,
    lat: float = 0.0,
    lon: float = 0.0,
    utilisation: float = 0.0,
) -> Candidate:
    return Candidate(
        site_at(sid, kind, lat, lon),
        Rule.BGP_ROUTE,
        f"10.1.0.0/{prefix_len}",
        prefix_len,
        path or bgp_path(),
        f"{sid}1",
        utilisation,
    )


def configured(sid: str, kind: SiteKind = E, prefix_len: int = 16) -> Candidate:
    return Candidate(site_at(sid, kind), Rule.PREFIX_MATCH, f"10.1.0.0/{prefix_len}", prefix_len)


def ranking(*cands: Candidate, client: Location | None = None) -> list[str]:
    return [r.site_id for r in rank_sites(cands, client)]


def step_between(better: Candidate, worse: Candidate, client: Location | None = None) -> Step:
    """Check ``better`` wins in either input order; return the step that decided it."""
    for pair in ((better, worse), (worse, better)):
        ranked = rank_sites(pair, client)
        assert [r.site_id for r in ranked] == [better.site.id, worse.site.id]
    assert ranked[0].decided_by is ranked[1].decided_by
    return ranked[1].decided_by


# --- each step -------------------------------------------------------------------------------


def test_origin_sites_come_last_even_with_a_longer_prefix() -> None:
    origin = bgp("o", kind=ORG, prefix_len=24)
    assert step_between(bgp("a", prefix_len=8), origin) is Step.ORIGIN_LAST


def test_longest_prefix_beats_connection_kind_and_attributes() -> None:
    narrow = bgp("b", bgp_path(64500, 64500, 64500, local_pref=50), kind=X, prefix_len=24)
    assert step_between(narrow, bgp("a", prefix_len=16)) is Step.LONGEST_PREFIX


def test_any_route_beats_no_route() -> None:
    peering_default = Candidate(site_at("ix", X), Rule.PEERING_DEFAULT)
    assert step_between(bgp("a", prefix_len=0), peering_default) is Step.LONGEST_PREFIX


def test_embedded_beats_peering_for_the_same_prefix_whatever_the_attributes() -> None:
    embedded = bgp("a", bgp_path(64500, 64500, 64500, local_pref=50, med=900))
    ix = bgp("b", bgp_path(64500, local_pref=300), kind=X)
    assert step_between(embedded, ix) is Step.CONNECTION_KIND


def test_embedded_beats_pni_beats_ix() -> None:
    assert ranking(bgp("x", kind=X), bgp("p", kind=P), bgp("e", kind=E)) == ["e", "p", "x"]


def test_higher_local_pref_wins() -> None:
    high = bgp("b", bgp_path(64500, 64500, local_pref=200))
    assert step_between(high, bgp("a", bgp_path(local_pref=100))) is Step.LOCAL_PREF


def test_shorter_as_path_wins() -> None:
    prepended = bgp("a", bgp_path(64500, 64500, 64500))
    assert step_between(bgp("b", bgp_path(64500)), prepended) is Step.AS_PATH


def test_lower_origin_wins_igp_egp_incomplete() -> None:
    igp = bgp("c", bgp_path(origin=Origin.IGP))
    egp = bgp("b", bgp_path(origin=Origin.EGP))
    incomplete = bgp("a", bgp_path(origin=Origin.INCOMPLETE))
    assert step_between(igp, egp) is Step.ORIGIN
    assert step_between(egp, incomplete) is Step.ORIGIN
    assert ranking(incomplete, egp, igp) == ["c", "b", "a"]


def test_lower_med_wins_between_routes_from_the_same_neighbor_as() -> None:
    assert step_between(bgp("b", bgp_path(med=10)), bgp("a", bgp_path(med=50))) is Step.MED


def test_med_is_not_compared_between_different_neighbor_ases() -> None:
    # a has the worse MED but comes from another AS: MED is skipped, router id decides
    a = bgp("a", bgp_path(65001, med=500, rid="192.0.2.1"))
    b = bgp("b", bgp_path(64500, med=0, rid="192.0.2.9"))
    assert step_between(a, b) is Step.ROUTER_ID


def test_med_ranking_is_deterministic_per_neighbor_as() -> None:
    # a and b come from AS 64500 (b has the lower MED), c from AS 65001.
    # Pairwise without MED a would beat c (router id), but b eliminates a first.
    a = bgp("a", bgp_path(64500, med=20, rid="192.0.2.1"))
    b = bgp("b", bgp_path(64500, med=10, rid="192.0.2.3"))
    c = bgp("c", bgp_path(65001, med=0, rid="192.0.2.2"))
    expected = ["c", "b", "a"]
    for perm in ((a, b, c), (c, b, a), (b, a, c), (a, c, b)):
        assert ranking(*perm) == expected
    ranked = rank_sites((a, b, c))
    assert [r.decided_by for r in ranked] == [Step.ROUTER_ID, Step.ROUTER_ID, Step.MED]


def test_ebgp_beats_ibgp() -> None:
    assert step_between(bgp("b", bgp_path(ebgp=True)), bgp("a", bgp_path(ebgp=False))) is Step.EBGP


def test_learned_route_beats_configured_prefix_with_equal_defaults() -> None:
    assert step_between(bgp("b"), configured("a")) is Step.LEARNED


def test_lower_router_id_wins() -> None:
    low = bgp("b", bgp_path(rid="192.0.2.1", peer="198.51.100.9"))
    high = bgp("a", bgp_path(rid="192.0.2.2", peer="198.51.100.1"))
    assert step_between(low, high) is Step.ROUTER_ID


def test_oldest_route_wins() -> None:
    old, new = bgp("b", bgp_path(at=100.0)), bgp("a", bgp_path(at=200.0))
    assert step_between(old, new) is Step.AGE


def test_lower_peer_address_wins_last_among_bgp_steps() -> None:
    low = bgp("b", bgp_path(peer="192.0.2.1", rid="10.0.0.1"))
    high = bgp("a", bgp_path(peer="192.0.2.2", rid="10.0.0.1"))
    assert step_between(low, high) is Step.PEER_ADDRESS


def test_nearer_site_wins_when_the_routes_tie() -> None:
    client = Location(48.85, 2.35)  # Paris
    near = bgp("b", lat=50.11, lon=8.68)  # Frankfurt
    far = bgp("a", lat=40.71, lon=-74.0)  # New York
    assert step_between(near, far, client) is Step.DISTANCE
    ranked = rank_sites((far, near), client)
    assert ranked[0].distance_km is not None and 400 < ranked[0].distance_km < 500


def test_less_loaded_site_wins_at_equal_distance() -> None:
    idle, busy = bgp("b", utilisation=0.2), bgp("a", utilisation=0.7)
    assert step_between(idle, busy) is Step.LOAD


def test_site_id_decides_when_everything_else_ties() -> None:
    assert step_between(bgp("a"), bgp("b")) is Step.SITE_ID


def test_a_single_candidate_is_ranked_by_no_step() -> None:
    (only,) = rank_sites([bgp("a")])
    assert only.decided_by is Step.ONLY and only.versus is None


# --- explanations --------------------------------------------------------------------------------


def test_each_place_names_the_step_and_the_site_it_was_compared_with() -> None:
    ranked = rank_sites(
        [
            bgp("ix", kind=X),
            bgp("b", bgp_path(64500, 64500)),
            bgp("a", bgp_path(64500)),
            Candidate(site_at("o", ORG), Rule.ORIGIN),
        ]
    )
    assert [(r.site_id, r.decided_by, r.versus) for r in ranked] == [
        ("a", Step.AS_PATH, "b"),
        ("b", Step.AS_PATH, "a"),
        ("ix", Step.CONNECTION_KIND, "b"),
        ("o", Step.ORIGIN_LAST, "ix"),
    ]
    assert ranked[0].reason.startswith("embedded site a: a1 heard 10.1.0.0/16 over BGP")
    assert "ahead of b by as-path-length (AS path length 1 vs AS path length 2)" in ranked[0].reason
    assert "behind b by connection-kind (ix vs embedded)" in ranked[2].reason


def test_order_matches_rank_sites() -> None:
    cands = [bgp("b", bgp_path(med=5)), bgp("a", bgp_path(med=9)), bgp("c", kind=X)]
    assert [c.site.id for c in order(cands)] == ranking(*cands) == ["b", "a", "c"]


# --- the client's location -----------------------------------------------------------------------


def test_client_location_prefers_the_locator() -> None:
    cands = [bgp("a", lat=10.0, lon=10.0)]
    found = client_location("10.1.2.3", cands, lambda ip: Location(1.0, 2.0, "geoip"))
    assert found == Location(1.0, 2.0, "geoip")


def test_client_location_falls_back_to_the_best_matching_site() -> None:
    cands = [
        bgp("wide", prefix_len=8, lat=1.0, lon=1.0),
        bgp("narrow", kind=X, prefix_len=24, lat=2.0, lon=2.0),
        Candidate(site_at("o", ORG, 9.0, 9.0), Rule.ORIGIN),
    ]
    found = client_location("10.1.2.3", cands, lambda ip: None)
    assert found is not None and (found.lat, found.lon) == (2.0, 2.0)
    assert "narrow" in found.source
    assert client_location("10.1.2.3", [cands[2]]) is None


def test_haversine_is_about_right() -> None:
    assert 340 < haversine_km(51.5, -0.13, 48.85, 2.35) < 350  # London - Paris
    assert haversine_km(10, 10, 10, 10) == 0.0


def test_the_step_table_follows_the_documented_order() -> None:
    from localcast.core.decision import STEPS, _score

    assert [step for step, _ in STEPS] == [s for s in Step if s is not Step.ONLY]
    assert len(_score(bgp("a"), None).key) == len(STEPS)
    assert len(_score(configured("a"), None).key) == len(STEPS)


def test_best_path_of_one_appliance_sessions_uses_the_same_steps() -> None:
    from localcast.core.decision import best_path

    short = bgp_path(64500, peer="192.0.2.2")
    long = bgp_path(64500, 64500, peer="192.0.2.1")
    assert best_path([long, short]) is short and best_path([short]) is short
    preferred = bgp_path(64500, 64500, 64500, local_pref=200, peer="192.0.2.3")
    assert best_path([short, long, preferred]) is preferred
    # MED between routes from the same neighbor AS; then router id decides the tie
    low_med = bgp_path(64500, med=5, peer="192.0.2.9")
    high_med = bgp_path(64500, med=50, peer="192.0.2.1")
    assert best_path([high_med, low_med]) is low_med
    assert best_path([bgp_path(64500, peer="192.0.2.9"), short]) is short
