"""Route reports for the ISP: inconsistent advertisements in a site, routes with no alternate."""

from __future__ import annotations

from control_fixtures import appliance
from route_fixtures import bgp_path, bgp_snapshot, heard, site_at

from localcast.core.fleet import SiteKind
from localcast.core.rib import RouteDelta
from localcast.core.route_reports import no_alternate_source, site_consistency

E, P, X = SiteKind.EMBEDDED, SiteKind.PNI, SiteKind.IX


def test_identical_advertisements_are_consistent() -> None:
    snap = bgp_snapshot(
        [site_at("a", E)],
        [appliance("a1", "a"), appliance("a2", "a")],
        {"a1": heard("10.1.0.0/16", "2001:db8::/32"), "a2": heard("10.1.0.0/16", "2001:db8::/32")},
    )
    (report,) = site_consistency(snap)
    assert report.consistent and report.diffs == ()
    assert report.appliances == ("a1", "a2")


def test_a_prefix_missing_on_one_appliance_sends_its_clients_off_site() -> None:
    snap = bgp_snapshot(
        [site_at("a", E)],
        [appliance("a1", "a"), appliance("a2", "a")],
        {"a1": heard("10.1.0.0/16", "10.2.0.0/16"), "a2": heard("10.2.0.0/16")},
    )
    (report,) = site_consistency(snap)
    assert not report.consistent and report.missing_count == 1
    (diff,) = report.diffs
    assert (diff.prefix, diff.heard_by, diff.missing_from, diff.off_site) == (
        "10.1.0.0/16",
        ("a1",),
        ("a2",),
        ("a2",),
    )
    assert "sent off-site" in diff.reason


def test_a_missing_more_specific_is_not_off_site_when_a_covering_route_is_there() -> None:
    snap = bgp_snapshot(
        [site_at("a", E)],
        [appliance("a1", "a"), appliance("a2", "a")],
        {"a1": heard("10.1.0.0/16", "10.1.2.0/24"), "a2": heard("10.1.0.0/16")},
    )
    (diff,) = site_consistency(snap)[0].diffs
    assert diff.prefix == "10.1.2.0/24" and diff.missing_from == ("a2",) and diff.off_site == ()


def test_different_attributes_for_the_same_prefix_are_reported() -> None:
    snap = bgp_snapshot(
        [site_at("a", E)],
        [appliance("a1", "a"), appliance("a2", "a")],
        {
            "a1": heard("10.1.0.0/16", "10.2.0.0/16"),
            "a2": [
                heard("10.1.0.0/16", p=bgp_path(64500, 64500)),
                heard("10.2.0.0/16", p=bgp_path(peer="192.0.2.77", at=50.0)),
            ],
        },
    )
    (report,) = site_consistency(snap)
    assert (report.missing_count, report.attribute_count) == (0, 1)
    (diff,) = report.diffs
    assert diff.prefix == "10.1.0.0/16"
    assert [a.as_path for _, a in diff.attributes] == [(64500,), (64500, 64500)]


def test_an_appliance_without_bgp_at_a_bgp_site_hears_nothing() -> None:
    snap = bgp_snapshot(
        [site_at("a", E), site_at("c", E, prefixes=("10.9.0.0/16",))],
        [appliance("a1", "a"), appliance("a2", "a"), appliance("c1", "c")],
        {"a1": heard("10.1.0.0/16")},
    )
    reports = site_consistency(snap)
    assert [r.site_id for r in reports] == ["a"]  # c has no BGP: nothing to compare
    assert reports[0].diffs[0].missing_from == ("a2",)


def test_reports_are_capped_but_counted() -> None:
    prefixes = [f"10.{i}.0.0/16" for i in range(20)]
    snap = bgp_snapshot(
        [site_at("a", E)],
        [appliance("a1", "a"), appliance("a2", "a")],
        {"a1": heard(*prefixes), "a2": RouteDelta()},
    )
    (report,) = site_consistency(snap, limit=5)
    assert report.missing_count == 20 and len(report.diffs) == 5


def test_routes_heard_only_from_embedded_appliances_have_no_alternate() -> None:
    snap = bgp_snapshot(
        [site_at("a", E), site_at("b", E), site_at("ix", X), site_at("p", P)],
        [appliance("a1", "a"), appliance("b1", "b"), appliance("ix1", "ix"), appliance("p1", "p")],
        {
            "a1": heard("10.1.0.0/16", "10.2.0.0/16", "10.3.1.0/24", "2001:db8:a::/48"),
            "b1": heard("10.1.0.0/16"),
            "ix1": heard("10.2.0.0/16"),
            "p1": heard("10.3.0.0/16"),
        },
    )
    report = no_alternate_source(snap)
    assert report.count == 2
    assert [(r.prefix, r.heard_by, r.sites) for r in report.routes] == [
        ("10.1.0.0/16", ("a1", "b1"), ("a", "b")),
        ("2001:db8:a::/48", ("a1",), ("a",)),
    ]


def test_no_alternate_report_sees_routes_not_yet_in_the_built_index() -> None:
    snap = bgp_snapshot(
        [site_at("a", E), site_at("ix", X)],
        [appliance("a1", "a"), appliance("ix1", "ix")],
        {"a1": [heard("10.1.0.0/16"), heard("10.2.0.0/16")], "ix1": heard("10.2.0.0/15")},
    )
    assert [r.prefix for r in no_alternate_source(snap).routes] == ["10.1.0.0/16"]
