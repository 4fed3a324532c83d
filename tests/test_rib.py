"""Adj-RIB-In per appliance, route deltas, and the route index over every appliance."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcast.core.rib import (
    AdjRibIn,
    Attributes,
    LearnedRoute,
    Origin,
    Path,
    Peer,
    RouteDelta,
    apply_delta,
    parse_prefix,
    prefix_text,
    router_id,
)
from localcast.core.routeindex import RouteIndex, rebased, rebuilt, with_delta, without_appliance

PEER = Peer(router_id("192.0.2.1"), "192.0.2.1", 64500)


def path(*as_path: int, at: float = 0.0, med: int = 0) -> Path:
    return Path(Attributes(as_path or (64500,), Origin.IGP, med), PEER, "192.0.2.1", at)


def routes(*prefixes: str, p: Path | None = None) -> list[LearnedRoute]:
    return [LearnedRoute(x, p or path()) for x in prefixes]


def rib(aid: str, *prefixes: str) -> AdjRibIn:
    return apply_delta(AdjRibIn(aid), RouteDelta.of(routes(*prefixes)))


def texts(r: AdjRibIn) -> list[str]:
    return [route.prefix for route in r.routes()]


def covering(index: RouteIndex, ip: str) -> list[tuple[str, tuple[str, ...]]]:
    a = ipaddress.ip_address(ip)
    return [(prefix_text(a.version, k), s) for k, s in index.covering(a.version, int(a))]


# --- prefixes ------------------------------------------------------------------------------------


def test_prefix_packing_round_trips() -> None:
    for text in ("203.0.113.0/24", "0.0.0.0/0", "2001:db8::/32", "::/0", "192.0.2.7/32"):
        assert prefix_text(*parse_prefix(text)) == text
    assert parse_prefix("10.0.0.0/8") == (4, (10 << 32) | 8)


def test_prefix_with_host_bits_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError):
        parse_prefix("10.0.0.1/8")


# --- Adj-RIB-In and deltas ---------------------------------------------------------------------


def test_announcements_add_and_replace_routes() -> None:
    r = rib("a1", "10.1.0.0/16", "2001:db8::/32")
    assert texts(r) == ["10.1.0.0/16", "2001:db8::/32"]
    newer = path(64500, 64500, at=5.0)
    r2 = apply_delta(r, RouteDelta.of(routes("10.1.0.0/16", p=newer)))
    assert r2.get("10.1.0.0/16") == newer
    assert r.get("10.1.0.0/16") == path()  # copy on write: the old RIB is unchanged


def test_withdrawals_remove_routes_and_ignore_unknown_prefixes() -> None:
    r = rib("a1", "10.1.0.0/16", "10.2.0.0/16")
    r2 = apply_delta(r, RouteDelta.of(withdrawn=["10.1.0.0/16", "10.9.0.0/16"]))
    assert texts(r2) == ["10.2.0.0/16"]


def test_one_delta_withdraws_before_it_announces() -> None:
    r = rib("a1", "10.1.0.0/16")
    delta = RouteDelta.of(routes("10.1.0.0/16", p=path(at=9.0)), withdrawn=["10.1.0.0/16"])
    assert apply_delta(r, delta).get("10.1.0.0/16") == path(at=9.0)


def test_full_resync_replaces_everything() -> None:
    r = rib("a1", "10.1.0.0/16", "10.2.0.0/16")
    r2 = apply_delta(r, RouteDelta.of(routes("10.3.0.0/16"), full=True))
    assert texts(r2) == ["10.3.0.0/16"]


def test_session_down_withdraws_every_route() -> None:
    r = rib("a1", "10.1.0.0/16", "2001:db8::/32")
    assert len(apply_delta(r, RouteDelta.session_down())) == 0


def test_prefixes_of_one_update_share_one_path_object() -> None:
    shared = path(64500, 65001)
    delta = RouteDelta.of(
        [LearnedRoute("10.1.0.0/16", shared), LearnedRoute("10.2.0.0/16", path(64500, 65001))]
    )
    a, b = delta.announced_v4.values()
    assert a is b


def test_neighbor_as_is_the_leftmost_as() -> None:
    assert Attributes((64500, 65001)).neighbor_as == 64500
    assert Attributes(()).neighbor_as is None


# --- the route index -----------------------------------------------------------------------------


def two_appliances() -> RouteIndex:
    return RouteIndex.build(
        {
            "a1": rib("a1", "10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"),
            "a2": rib("a2", "10.1.0.0/16", "2001:db8:1::/48"),
        }
    )


def test_covering_lists_each_prefix_with_the_appliances_that_heard_it() -> None:
    index = two_appliances()
    assert covering(index, "10.1.2.3") == [("10.1.0.0/16", ("a1", "a2")), ("10.0.0.0/8", ("a1",))]
    assert covering(index, "2001:db8:1::1") == [
        ("2001:db8:1::/48", ("a2",)),
        ("2001:db8::/32", ("a1",)),
    ]
    assert covering(index, "192.0.2.1") == []


def test_route_sets_are_interned() -> None:
    index = RouteIndex.build(
        {
            "a1": rib("a1", "10.1.0.0/16", "10.2.0.0/16"),
            "a2": rib("a2", "10.1.0.0/16", "10.2.0.0/16"),
        }
    )
    (_, s1), (_, s2) = covering(index, "10.1.0.1")[0], covering(index, "10.2.0.1")[0]
    assert s1 is s2


def test_a_delta_goes_to_the_overlay_and_lookups_see_it() -> None:
    index = with_delta(two_appliances(), "a3", RouteDelta.of(routes("10.1.2.0/24", "10.1.0.0/16")))
    index = with_delta(index, "a1", RouteDelta.of(withdrawn=["10.1.0.0/16"]))
    assert covering(index, "10.1.2.3") == [
        ("10.1.2.0/24", ("a3",)),
        ("10.1.0.0/16", ("a2", "a3")),
        ("10.0.0.0/8", ("a1",)),
    ]
    assert len(index.overlay) == 2 and not index.needs_rebuild
    assert index.speakers == {"a1", "a2", "a3"}


def test_session_down_keeps_the_appliance_a_speaker_with_no_route() -> None:
    index = with_delta(two_appliances(), "a2", RouteDelta.session_down())
    assert "a2" in index.speakers and len(index.ribs["a2"]) == 0
    assert covering(index, "2001:db8:1::1") == [("2001:db8::/32", ("a1",))]


def test_removing_an_appliance_drops_its_routes_and_its_speaker_status() -> None:
    index = without_appliance(two_appliances(), "a1")
    assert index.speakers == {"a2"}
    assert covering(index, "10.1.2.3") == [("10.1.0.0/16", ("a2",))]


def test_rebuilt_and_rebased_keep_the_routes_and_empty_the_overlay() -> None:
    index = with_delta(two_appliances(), "a1", RouteDelta.of(withdrawn=["10.0.0.0/8"]))
    fresh = rebuilt(index)
    assert len(fresh.overlay) == 0
    later = with_delta(index, "a1", RouteDelta.of(routes("10.0.0.0/8")))  # back as in the base
    published = rebased(later, fresh)
    assert covering(published, "10.9.9.9") == [("10.0.0.0/8", ("a1",))]
    assert len(published.overlay) == 1


# --- incremental == rebuilt, on random histories ------------------------------------------------

APPS = ("a1", "a2", "a3")
POOL = [
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.128/25",
    "10.2.0.0/16",
    "192.0.2.0/24",
    "::/0",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "2001:db8:1:2::/64",
    "2001:db8:1:2::80/121",
]
PROBES = [
    "10.1.2.200",
    "10.1.2.1",
    "10.1.9.9",
    "10.2.0.1",
    "10.3.0.1",
    "192.0.2.9",
    "8.8.8.8",
    "2001:db8:1:2::81",
    "2001:db8:1:2::1",
    "2001:db8:1:3::1",
    "2001:db8:2::1",
    "2002::1",
]

deltas = st.tuples(
    st.sampled_from(APPS),
    st.lists(st.sampled_from(POOL), max_size=5),
    st.lists(st.sampled_from(POOL), max_size=5),
    st.booleans(),
    st.integers(0, 3),  # 0: rebuild after this delta (background rebuild lands)
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(deltas, min_size=1, max_size=8))
def test_incremental_index_agrees_with_a_full_rebuild(
    history: list[tuple[str, list[str], list[str], bool, int]],
) -> None:
    index = RouteIndex.empty()
    pending: RouteIndex | None = None
    for aid, announce, withdraw, full, rebuild in history:
        delta = RouteDelta.of(routes(*announce), withdrawn=withdraw, full=full and not withdraw)
        index = with_delta(index, aid, delta)
        if pending is not None:  # a rebuild started before this delta lands now
            index = rebased(index, pending)
            pending = None
        if rebuild == 0:
            pending = rebuilt(index)
        reference = RouteIndex.build(index.ribs)
        for ip in PROBES:
            assert covering(index, ip) == covering(reference, ip), ip
