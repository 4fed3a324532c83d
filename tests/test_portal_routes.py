"""The portal's route explorer and steering explanation (``/portal/routes``): what each site
hears, the clients it gets, inconsistencies, lonely and filtered routes; the explanation for
an address with other partners' sites unnamed; scope (another partner's site is a 404).

Routes (fed as the appliances' BGP relays report them, :mod:`localcast.control.route_feed`):

* ``a1`` (isp-a, embedded ``a-par``): 203.0.113.0/24, 198.51.100.0/24 (MED 10),
  2001:db8:1::/48; its session filtered 3 bogons and 1 foreign origin, and says which; a
  second session of ``a1`` is down.
* ``a2`` (same site): 203.0.113.0/24 with local pref 200 (attributes differ), 2001:db8:1::/48;
  not 198.51.100.0/24 (missing); it filtered one too specific prefix (an older relay: the
  count only).
* ``b1`` (isp-b, PNI ``b-lys``): 203.0.113.0/25 (more specific: takes 203.0.113.0-127),
  2001:db8::/32 (covers a-par's /48: not lonely).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal_support import ALICE, BOB, OPERATOR, Portal, login, portal_plane

from localcast.control.route_schemas import RoutesReport
from localcast.core.fleet import Site, SiteKind
from localcast.portal.views import routes_view as rv


def group(*prefixes: str, as_path: tuple[int, ...] = (64501,), **extra: Any) -> dict[str, Any]:
    return {
        "prefixes": list(prefixes),
        "next_hop": "192.0.2.1",
        "as_path": list(as_path),
        "as_path_length": len(as_path),
        "origin": "igp",
        "communities": ["64501:100"],
        **extra,
    }


def report(
    neighbor: str, *groups: dict[str, Any], state: str = "established", **session: Any
) -> RoutesReport:
    up = state == "established"
    return RoutesReport.model_validate(
        {
            "kind": "full",
            "seq": 1,
            "sent_at": 1000.0,
            "session": {
                "neighbor": neighbor,
                "local_as": 65001,
                "ebgp": True,
                "remote_as": 64501,
                "state": state,
                "description": "core router",
                "peer_router_id": "10.0.0.1" if up else None,
                "uptime_s": 7200.0 if up else None,
                **session,
            },
            "announce": list(groups),
        }
    )


def feed(portal: Portal) -> None:
    plane, creds = portal.plane, portal.credentials
    a1 = report(
        "127.0.0.2",
        group("203.0.113.0/24", "2001:db8:1::/48"),
        group("198.51.100.0/24", med=10),
        received=7,
        accepted=3,
        filtered={"bogon": 3, "origin_not_allowed": 1},
        filtered_prefixes={
            "bogon": {"count": 3, "prefixes": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]},
            "origin_not_allowed": {"count": 1, "prefixes": ["192.0.2.0/24"]},
        },
    )
    a1_down = report("127.0.0.3", state="idle", last_error="hold timer expired")
    a2 = report(
        "127.0.0.4",
        group("203.0.113.0/24", local_pref=200),
        group("2001:db8:1::/48"),
        received=3,
        accepted=2,
        filtered={"too_specific": 1},
    )
    b1 = report(
        "127.0.0.5",
        group("203.0.113.0/25", "2001:db8::/32", as_path=(64502,), communities=[]),
        remote_as=64502,
    )
    for aid, r in (("a1", a1), ("a1", a1_down), ("a2", a2), ("b1", b1)):
        out = plane.ingest_routes(aid, creds[aid], r)
        assert not out.resync, out.reason


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    p = portal_plane(tmp_path)
    feed(p)
    yield p
    p.plane.close()


def client_as(portal: Portal, email: str) -> TestClient:
    c = portal.client()
    login(c, email)
    return c


def get(c: TestClient, **params: Any) -> str:
    r = c.get("/portal/routes", params=params)
    assert r.status_code == 200, r.text
    return html.unescape(r.text)


def section(page: str, heading_id: str) -> str:
    """The text of the <section> whose heading has ``heading_id``."""
    start = page.index(f'id="{heading_id}"')
    end = page.find("</section>", start)
    return page[start:end]


def rows(part: str) -> list[list[str]]:
    """The body rows of the tables in ``part``, as cell texts."""
    out = []
    for tbody in re.findall(r"<tbody>(.*?)</tbody>", part, re.S):
        for tr in re.findall(r"<tr>(.*?)</tr>", tbody, re.S):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
            out.append([" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells])
    return out


OTHERS = ("b-lys", "b1", "isp-b", "ix-fra", "ix1", "o1", "127.0.0.5", "64502")


def mentions(page: str, word: str) -> bool:
    """``word`` as a whole word in the page's content (not in a random token of the header)."""
    content = page[page.find("<main") :]
    return re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w-]|\.\d)", content) is not None


# --- the partner's sites and routes --------------------------------------------------------------


def test_a_partner_sees_what_its_site_hears_per_appliance_and_session(portal: Portal) -> None:
    page = get(client_as(portal, ALICE))
    for other in OTHERS:  # nothing of the other partner, nor of the operator's sites
        assert not mentions(page, other), other
    sites = rows(section(page, "sites-h"))
    assert sites == [["a-par", "embedded", "2 of 3 up", "2", "a1: 3; a2: 2"]]
    assert "Site a-par" in page  # the only BGP site is shown without asking

    heard = rows(section(page, "routes-h"))
    by = {(r[0], r[1]): r for r in heard}
    assert len(heard) == 6  # 3 prefixes x 2 appliances
    a1 = by[("198.51.100.0/24", "a1")]
    assert a1[2:8] == ["127.0.0.2 AS64501", "64501 igp", "64501", "10", "100", "64501:100"]
    assert by[("198.51.100.0/24", "a2")][2] == "not heard"
    assert "Not heard everywhere not heard by a2" in by[("198.51.100.0/24", "a1")][-1]
    assert by[("203.0.113.0/24", "a2")][6] == "200"
    assert by[("203.0.113.0/24", "a1")][-1].startswith("Attributes differ")
    assert by[("2001:db8:1::/48", "a1")][-1] == "Same everywhere"
    assert "3 prefix(es); showing 1–3." in page
    assert [r[0] for r in heard[::2]] == ["198.51.100.0/24", "203.0.113.0/24", "2001:db8:1::/48"]

    sessions = rows(section(page, "sessions-h"))
    assert [s[:3] for s in sessions] == [
        ["a1", "127.0.0.2 AS64501 · core router", "established"],
        ["a1", "127.0.0.3 AS64501 · core router", "idle hold timer expired"],
        ["a2", "127.0.0.4 AS64501 · core router", "established"],
    ]
    assert sessions[0][3:7] == ["2 h", "7", "3", "4"]
    assert "a1: 1 of 2 sessions down: every route rests on 127.0.0.2" in page

    filtered = rows(section(page, "filtered-h"))
    assert [f[:3] for f in filtered] == [
        ["a1", "127.0.0.2", "3"],
        ["a1", "127.0.0.2", "1"],
        ["a2", "127.0.0.4", "1"],
    ]
    assert filtered[0][3].startswith("bogon : inside a range never routed on the internet")
    assert filtered[0][4] == "3 prefix(es) 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16"
    assert filtered[1][3].startswith("origin_not_allowed : the origin AS is not one of your")
    assert filtered[1][4] == "1 prefix(es) 192.0.2.0/24"
    assert filtered[2][3].startswith("too_specific : longer than the session accepts")
    assert filtered[2][4] == "not listed: this appliance reports counts only (update its software)"


def test_clients_the_site_gets_inconsistencies_and_lonely_routes(portal: Portal) -> None:
    page = get(client_as(portal, ALICE))
    clients = section(page, "clients-h")
    assert "Steering ranks a-par first for clients of 2 of its 3 prefix(es)." in clients
    by = {r[0]: r for r in rows(clients)}
    assert by["198.51.100.0/24"][1:5] == ["198.51.100.0", "Yes", "1", "a-par"]
    assert by["198.51.100.0/24"][5] == "ahead of an IX site by longest-prefix"
    # the other partner's more specific /25 takes 203.0.113.0-127: named by kind only
    assert by["203.0.113.0/24"][1:5] == ["203.0.113.0", "No", "2", "another ISP's PNI site"]
    assert by["203.0.113.0/24"][5] == (
        "a more specific route at another ISP's PNI site takes these clients"
    )
    assert by["2001:db8:1::/48"][2] == "Yes"
    assert '<a href="/portal/routes?site=a-par&ip=203.0.113.0#explain">' in clients

    consistency = section(page, "consistency-h")
    assert "1 prefix(es) heard by some appliances and not others" in consistency
    assert "1 heard everywhere with different attributes" in consistency
    diffs = rows(consistency)
    assert diffs[0][:4] == ["198.51.100.0/24", "not heard everywhere", "a1", "a2"]
    assert diffs[1][:2] == ["203.0.113.0/24", "different attributes"]
    assert "a1: AS path 64501, origin igp, MED 0, local pref 100" in diffs[1][4]
    assert "a2: AS path 64501, origin igp, MED 0, local pref 200" in diffs[1][4]

    lonely = section(page, "lonely-h")  # 2001:db8:1::/48 is covered by b1's PNI /32
    assert "1 prefix(es) reach a-par through one BGP session only" in lonely
    assert "2 prefix(es) of this site are heard only from embedded appliances" in lonely
    single, unprotected = rows(lonely)[:1], rows(lonely)[1:]
    assert single == [["198.51.100.0/24", "a1 · 127.0.0.2", "nowhere else"]]
    assert unprotected == [
        ["198.51.100.0/24", "a1 · 127.0.0.2", ""],
        ["203.0.113.0/24", "a1 · 127.0.0.2, a2 · 127.0.0.4", ""],
    ]
    hints = section(page, "sessions-h")
    assert "a1 · 127.0.0.2 alone announces 1 prefix(es) of the site" in hints


def test_the_prefix_filter_and_pages(portal: Portal) -> None:
    c = client_as(portal, ALICE)
    inside = rows(section(get(c, site="a-par", q="2001:db8::/32"), "routes-h"))
    assert {r[0] for r in inside} == {"2001:db8:1::/48"}
    covering = section(get(c, site="a-par", q="203.0.113.9"), "routes-h")
    assert {r[0] for r in rows(covering)} == {"203.0.113.0/24"}
    assert "1 prefix(es) matching 203.0.113.9" in covering
    none = section(get(c, site="a-par", q="192.0.2.0/24"), "routes-h")
    assert "No route matches 192.0.2.0/24." in none
    bad = get(c, site="a-par", q="not-a-prefix")
    assert "'not-a-prefix' is neither a prefix (203.0.113.0/24) nor an address" in bad
    assert 'aria-invalid="true"' in bad

    first = section(get(c, site="a-par", limit=50, offset=0), "routes-h")
    assert "Next" not in first and "Previous" not in first


def test_paging_one_prefix_at_a_time(portal: Portal) -> None:
    c = client_as(portal, ALICE)
    page = section(get(c, site="a-par", limit=1), "routes-h")
    assert {r[0] for r in rows(page)} == {"198.51.100.0/24"}
    assert "showing 1–1" in page
    assert "/portal/routes?site=a-par&limit=1&offset=1" in page
    second = section(get(c, site="a-par", limit=1, offset=1), "routes-h")
    assert {r[0] for r in rows(second)} == {"203.0.113.0/24"}
    assert "offset=2" in second and "Previous 1" in second
    third = section(get(c, site="a-par", limit=1, offset=2), "routes-h")  # IPv6 after IPv4
    assert {r[0] for r in rows(third)} == {"2001:db8:1::/48"}
    assert "Next" not in third
    r = c.get("/portal/routes", params={"site": "a-par", "limit": 0})
    assert r.status_code == 422


# --- scope ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "params"),
    [
        (ALICE, {"site": "b-lys"}),  # the other partner's site
        (ALICE, {"site": "ix-fra"}),  # the operator's IX site
        (ALICE, {"site": "no-such-site"}),
        (ALICE, {"partner": "isp-b"}),
        (BOB, {"site": "a-par"}),
    ],
)
def test_another_partners_site_is_404(portal: Portal, email: str, params: dict[str, str]) -> None:
    c = client_as(portal, email)
    r = c.get("/portal/routes", params=params)
    assert r.status_code == 404
    assert not mentions(r.text, "a1") and "203.0.113" not in r.text


def test_logged_out_goes_to_login(portal: Portal) -> None:
    c = portal.client()
    r = c.get("/portal/routes", params={"site": "a-par"}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/portal/login?next=")


def test_the_other_partner_sees_its_own_site(portal: Portal) -> None:
    page = get(client_as(portal, BOB))
    assert "Site b-lys" in page
    assert not mentions(page, "a-par") and not mentions(page, "a1")
    assert {r[0] for r in rows(section(page, "routes-h"))} == {"203.0.113.0/25", "2001:db8::/32"}
    assert "Only embedded sites are checked" in section(page, "lonely-h")


def test_the_operator_sees_any_partner_and_its_ix_sites(portal: Portal) -> None:
    c = client_as(portal, OPERATOR)
    page = get(c, partner="isp-a")
    names = [r[0] for r in rows(section(page, "sites-h"))]
    assert names == ["a-par", "ix-fra"]
    assert "/portal/routes?partner=isp-a&site=ix-fra" in page
    ix = get(c, site="ix-fra")
    assert "Site ix-fra" in ix and "No appliance of this site speaks BGP" in ix
    other = get(c, site="b-lys")  # the page follows the site's partner
    assert "Site b-lys" in other and '<option value="isp-b" selected>' in other


# --- the steering explanation --------------------------------------------------------------------


def test_explanation_names_only_the_partners_sites(portal: Portal) -> None:
    page = get(client_as(portal, ALICE), ip="203.0.113.7", title="t1")
    part = section(page, "explain")
    for other in OTHERS:
        assert not mentions(part, other), other
    assert "4 pathway(s), best: another ISP's PNI site" in part
    assert "near another ISP's PNI site (its route matched best; no GeoIP answer)" in part
    ranking = rows(part)
    pathways, sites = ranking[:4], ranking[4:]
    assert [p[:4] for p in pathways] == [
        ["1", "another ISP's PNI site", "another ISP's PNI site", "pni"],
        ["2", "a1", "a-par", "embedded"],
        ["3", "a2", "a-par", "embedded"],
        ["4", "the origin (over transit)", "the origin (over transit)", "origin"],
    ]
    assert pathways[0][4] == "BGP route"  # nothing of the other partner's route
    assert pathways[1][4].endswith("(/24 vs /25); rendezvous #1 of 2 at the site for t1")
    # every candidate site, ranked; distances only from a named place (here: none)
    assert [s[:2] for s in sites] == [
        ["1", "another ISP's PNI site pni"],
        ["2", "a-par embedded"],
        ["3", "an IX site ix"],
        ["4", "the origin (over transit) origin"],
    ]
    pni, apar, ix, origin = sites
    assert pni[2:5] == ["BGP route", "longest-prefix vs a-par", "Chosen #1"]
    assert pni[5] == "BGP route; ahead of a-par by longest-prefix (/25 vs /24)"
    assert apar[2] == (
        "BGP route 203.0.113.0/24 a2 from 127.0.0.4 (AS64501): AS path 64501, origin igp, "
        "MED 0, local pref 200, communities 64501:100"
    )  # a2's route wins the site (local pref 200 over a1's 100)
    assert apar[4] == "Chosen #2, #3"
    assert apar[5] == (
        "embedded site a-par: a2 heard 203.0.113.0/24 over BGP from 127.0.0.4 (AS path 64501, "
        "local pref 200, origin igp, MED 0); behind another ISP's PNI site by longest-prefix "
        "(/24 vs /25)"
    )
    assert ix[2] == "IX peering (reachable from any network)"
    assert ix[4] == "Not chosen 1 appliance(s): beyond the pathways chosen"
    assert origin[4] == "Chosen #4"
    assert (
        origin[5]
        == "origin (over transit); behind an IX site by origin-last (origin vs not origin)"
    )


def test_the_operator_sees_every_site_named(portal: Portal) -> None:
    part = section(get(client_as(portal, OPERATOR), ip="203.0.113.7"), "explain")
    assert "4 pathway(s), best: pni site b-lys" in part
    sites = [r[1] for r in rows(part)[4:]]
    assert sites == [
        "b-lys pni 0 km",
        "a-par embedded 391 km",
        "ix-fra ix 562 km",
        "origin origin 9356 km",
    ]
    assert rows(part)[6][4] == "Not chosen ix1: beyond the 4 pathways chosen"
    assert "ahead of a-par by longest-prefix (/25 vs /24)" in part
    assert "at site b-lys, whose route matched best" in part


def test_explanation_of_a_drained_appliance_and_bad_input(portal: Portal) -> None:
    c = client_as(portal, ALICE)
    portal.plane.set_maintenance("a1", "drain", "3h", "new optics")
    part = section(get(c, ip="198.51.100.20", title="t1"), "explain")
    apar = next(r for r in rows(part)[1:] if r[1].startswith("a-par"))
    assert "a1: " in apar[4] and "drain" in apar[4].lower()
    bad = section(get(c, ip="300.1.2.3"), "explain")
    assert "'300.1.2.3' is not an IP address" in bad and 'role="alert"' in bad
    unknown = section(get(c, ip="198.51.100.20", title="nope"), "explain")
    assert "unknown title 'nope'" in unknown


# --- the pure parts ------------------------------------------------------------------------------


def test_parse_query() -> None:
    q = rv.parse_query(" 203.0.113.9/24 ")
    assert q is not None and (q.text, q.version, q.length, q.address) == (
        "203.0.113.0/24",
        4,
        24,
        None,
    )
    a = rv.parse_query("2001:db8::1")
    assert a is not None and a.version == 6 and a.address == 0x20010DB8 << 96 | 1
    assert rv.parse_query("  ") is None
    with pytest.raises(ValueError, match="neither a prefix"):
        rv.parse_query("10.0.0.0/33")


def test_labels_and_reason_classes() -> None:
    sites = {
        "mine": Site("mine", SiteKind.EMBEDDED, "p", 0, 0, "UTC"),
        "theirs": Site("theirs", SiteKind.PNI, "q", 0, 0, "UTC"),
        "ix": Site("ix", SiteKind.IX, None, 0, 0, "UTC"),
        "o": Site("o", SiteKind.ORIGIN, None, 0, 0, "UTC"),
    }
    labels = rv.Labels(sites, frozenset({"mine"}))
    assert [labels.site(s) for s in ("mine", "theirs", "ix", "o", None, "gone")] == [
        "mine",
        "another ISP's PNI site",
        "an IX site",
        "the origin (over transit)",
        "another site",
        "another site",
    ]
    assert rv.classify("heard no route covering 1.2.3.4 (...)") == "route"
    assert rv.classify("drained for maintenance") == "drain"
    assert rv.classify("content miss: does not hold t1 complete") == "content"
    assert rv.classify("health miss: saturated (9.90 of 10 Gbit/s)") == "load"
    assert rv.classify("health miss: dead") == "health"
    assert rv.classify("beyond the 4 pathways chosen") == "limit"
    assert rv.classify("disabled, 2d left: rack move") == "disabled"
    assert rv.classify("not turned up; status unknown: never heard from") == "turn-up"
    assert all(k in rv.CLASS_TEXT for k in ("route", "drain", "health", "load", "content"))


def test_site_reports_on_request_past_a_site_size_then_kept_until_the_routes_change(
    portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rv, "REPORT_AUTO_LIMIT", 2)  # a-par hears 3 prefixes
    c = client_as(portal, ALICE)
    page = get(c, site="a-par")
    part = section(page, "consistency-h")
    assert "/portal/routes?site=a-par&limit=50&check=consistency#consistency-h" in part
    assert rows(part) == [] and "the site hears 3 prefixes" in part
    lonely = section(page, "lonely-h")
    assert "/portal/routes?site=a-par&limit=50&check=lonely#lonely-h" in lonely
    assert rows(lonely) == [] and "alone announces" not in page
    asked = get(c, site="a-par", check="consistency")
    assert "1 prefix(es) heard by some appliances and not others" in section(asked, "consistency-h")
    assert "check=lonely" in section(asked, "lonely-h")
    asked = get(c, site="a-par", check="lonely")
    assert "2 prefix(es) of this site are heard only from embedded" in section(asked, "lonely-h")
    again = get(c, site="a-par")  # routes unchanged: both kept, shown unasked
    assert "1 prefix(es) heard by some appliances and not others" in section(again, "consistency-h")
    assert "2 prefix(es) of this site are heard only from embedded" in section(again, "lonely-h")
    assert "a1 · 127.0.0.2 alone announces 1 prefix(es)" in section(again, "sessions-h")
    announce(portal, "a1", "127.0.0.2", "198.18.0.0/15")  # a-par's routes change
    changed = get(c, site="a-par")
    assert "check=consistency" in section(changed, "consistency-h")
    assert "check=lonely" in section(changed, "lonely-h")


def announce(portal: Portal, aid: str, neighbor: str, *prefixes: str, **session: Any) -> None:
    """A delta announcing ``prefixes`` on a session fed by :func:`feed` (sequence 1)."""
    state = portal.plane.routes.state(aid, neighbor)
    assert state is not None
    body = report(neighbor, group(*prefixes), **session).model_dump()
    body.update(kind="delta", seq=state.seq + 1, base_seq=state.seq)
    out = portal.plane.ingest_routes(
        aid, portal.credentials[aid], RoutesReport.model_validate(body)
    )
    assert not out.resync, out.reason


def test_a_reload_computes_nothing_again_and_a_report_only_what_it_changed(
    portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: dict[str, int] = {"consistency": 0, "_single": 0, "_lonely": 0, "table_keys": 0}

    def counted(name: str) -> Any:
        real = getattr(rv, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        return call

    for name in calls:
        monkeypatch.setattr(rv, name, counted(name))
    c = client_as(portal, ALICE)
    first = get(c, site="a-par")
    assert calls["consistency"] == calls["_single"] == calls["_lonely"] == 1
    tables = calls["table_keys"]
    assert tables > 0
    for params in ({"site": "a-par"}, {"site": "a-par", "limit": 1, "offset": 1}):
        get(c, **params)
    assert calls == {"consistency": 1, "_single": 1, "_lonely": 1, "table_keys": tables}
    # b1 (another site) changes: a-par's own reports stay, the one reading b1 is done again,
    # and only b1's tables are sorted again (its two families: its Adj-RIB-In is new)
    announce(portal, "b1", "127.0.0.5", "198.18.0.0/15", remote_as=64502)
    after = get(c, site="a-par")
    assert calls == {"consistency": 1, "_single": 1, "_lonely": 2, "table_keys": tables + 2}
    assert section(after, "lonely-h") == section(first, "lonely-h")  # b1's /15 covers none
    announce(portal, "a1", "127.0.0.2", "198.51.101.0/24")
    assert "198.51.101.0/24" in section(get(c, site="a-par"), "lonely-h")
    assert calls["consistency"] == calls["_single"] == 2 and calls["_lonely"] == 3


def test_uptime_counts_on_from_the_report_like_the_appliance_page(portal: Portal) -> None:
    """A session reported 15 s ago with 1 s of uptime has been up 16 s (one function for the
    route explorer and the appliance page: fleet_view.session_uptime)."""
    r = report("127.0.0.4", group("203.0.113.0/24", local_pref=200), uptime_s=1.0)
    out = portal.plane.ingest_routes("a2", portal.credentials["a2"], r)
    assert not out.resync
    portal.clock.advance(15)
    c = client_as(portal, ALICE)
    sessions = {r[1].split()[0]: r for r in rows(section(get(c, site="a-par"), "sessions-h"))}
    assert sessions["127.0.0.4"][3] == "16 s" and sessions["127.0.0.4"][7] == "15 s ago"
    appliance = c.get("/portal/appliances/a2").text
    assert "16 s" in appliance


def two_routers(tmp_path: Path) -> Portal:
    """a1 with two sessions (two routers), a2 with one more; what each announces:

    * 203.0.113.0/24: a1 from both routers (redundant, though a1 holds one route for it);
    * 198.51.100.0/24: a1 from 127.0.0.2 only; 192.0.2.0/23: a1 from 127.0.0.3 only;
    * 192.0.2.0/24: a2 only, but inside a1's /23 (covered: not alone);
    * 2001:db8:1::/48: a2 from two routers.
    """
    portal = portal_plane(tmp_path)
    listed = [f"10.{i}.0.0/16" for i in range(100)]
    reports = (
        (
            "a1",
            report(
                "127.0.0.2",
                group("203.0.113.0/24", "198.51.100.0/24"),
                filtered={"bogon": 150},
                filtered_prefixes={"bogon": {"count": 150, "prefixes": listed}},
            ),
        ),
        ("a1", report("127.0.0.3", group("203.0.113.0/24", "192.0.2.0/23"))),
        ("a2", report("127.0.0.4", group("192.0.2.0/24", "2001:db8:1::/48"))),
        ("a2", report("127.0.0.5", group("2001:db8:1::/48"))),
    )
    for aid, r in reports:
        out = portal.plane.ingest_routes(aid, portal.credentials[aid], r)
        assert not out.resync, out.reason
    return portal


def test_a_prefix_one_session_alone_announces_is_a_single_point_of_failure(
    tmp_path: Path,
) -> None:
    portal = two_routers(tmp_path)
    try:
        c = client_as(portal, ALICE)
        page = get(c, site="a-par")
        lonely = section(page, "lonely-h")
        assert "2 prefix(es) reach a-par through one BGP session only" in lonely
        assert rows(lonely)[:2] == [
            ["192.0.2.0/23", "a1 · 127.0.0.3", "nowhere else"],
            ["198.51.100.0/24", "a1 · 127.0.0.2", "nowhere else"],
        ]
        hints = section(page, "sessions-h")
        assert "a1 · 127.0.0.2 alone announces 1 prefix(es) of the site" in hints
        assert "a1 · 127.0.0.3 alone announces 1 prefix(es) of the site" in hints
        assert "a2 · " not in hints
        heard = {(r[0], r[1]): r[2] for r in rows(section(page, "routes-h"))}
        held = portal.plane.snapshot.routes.learned.ribs["a1"].get("203.0.113.0/24")
        assert held is not None
        other = "127.0.0.3" if held.peer.address == "127.0.0.2" else "127.0.0.2"
        assert heard[("203.0.113.0/24", "a1")] == f"{held.peer.address} AS64501 also from {other}"
        assert heard[("198.51.100.0/24", "a1")] == "127.0.0.2 AS64501"
        filtered = rows(section(page, "filtered-h"))
        assert filtered[0][:3] == ["a1", "127.0.0.2", "150"]
        assert filtered[0][4].startswith("first 100 of 150 10.0.0.0/16 10.1.0.0/16 ")
        assert "<details open>" not in section(page, "filtered-h")  # 100 listed: folded

        # the router of 127.0.0.3 goes away: its /23 is gone, a2's /24 now rests on a2 alone
        state = portal.plane.routes.state("a1", "127.0.0.3")
        assert state is not None
        down = report("127.0.0.3", state="idle").model_dump()
        down.update(kind="delta", seq=2, base_seq=1)
        out = portal.plane.ingest_routes(
            "a1", portal.credentials["a1"], RoutesReport.model_validate(down)
        )
        assert not out.resync
        single = rows(section(get(c, site="a-par"), "lonely-h"))
        assert [r[:2] for r in single[:3]] == [
            ["192.0.2.0/24", "a2 · 127.0.0.4"],
            ["198.51.100.0/24", "a1 · 127.0.0.2"],
            ["203.0.113.0/24", "a1 · 127.0.0.2"],
        ]
    finally:
        portal.plane.close()


def test_no_peering_alternate_agrees_with_the_core_report(portal: Portal) -> None:
    """The site's "no PNI or IX alternate" (set operations over sorted prefixes) is the
    core's fleet-wide report narrowed to the site."""
    from localcast.core.route_reports import no_alternate_source

    snap = portal.plane.snapshot
    view = rv.sources(snap, "a-par", portal.plane.routes.session_prefixes)
    core = [r.prefix for r in no_alternate_source(snap).routes if "a-par" in r.sites]
    assert [r.prefix for r in view.lonely] == core and view.lonely_count == len(core)
    assert rv.sources(snap, "b-lys").checked is False


def test_a_site_without_bgp_uses_its_configured_prefixes(tmp_path: Path) -> None:
    portal = portal_plane(tmp_path)  # no route fed: every site steers by its configured prefixes
    try:
        c = client_as(portal, BOB)
        page = get(c)
        assert rows(section(page, "sites-h")) == [
            ["b-lys", "pni", "No BGP", "1", "2 configured prefix(es), no BGP"]
        ]
        sessions = section(page, "sessions-h")
        assert "No appliance of this site speaks BGP" in sessions
        assert "10.2.0.0/16, 127.0.2.0/24" in sessions
        assert 'id="clients-h"' not in page  # nothing learned to rank
        part = section(get(c, ip="10.2.3.4"), "explain")
        pathways, ranking = rows(part)[:3], rows(part)[3:]
        assert [p[:3] for p in pathways] == [
            ["1", "b1", "b-lys"],
            ["2", "an IX site", "an IX site"],
            ["3", "the origin (over transit)", "the origin (over transit)"],
        ]
        assert ranking[0][:5] == [
            "1",
            "b-lys pni 0 km",  # placed at its own site: distances are shown
            "configured prefix 10.2.0.0/16",
            "longest-prefix vs an IX site",
            "Chosen #1",
        ]
    finally:
        portal.plane.close()


def test_the_ranking_alone_without_a_title() -> None:
    """No catalog: the explanation is the site ranking (candidate_sites), names kept in scope."""
    from control_fixtures import appliance, site, snapshot

    from localcast.core.steering import candidate_sites

    sites = [
        site("mine", SiteKind.EMBEDDED, ("10.1.0.0/16",), partner="p"),
        site("theirs", SiteKind.PNI, ("10.1.2.0/24",), partner="q"),
        site("ix", SiteKind.IX),
        site("origin", SiteKind.ORIGIN),
    ]
    apps = [appliance(f"{s.id}-1", s.id) for s in sites]
    snap = snapshot(sites, apps, title_ids=())
    labels = rv.Labels(snap.sites, frozenset({"mine"}))
    ranked = candidate_sites(snap, "10.1.2.3")
    e = rv.explanation(snap, "10.1.2.3", labels, candidates=ranked)
    assert not e.with_title and e.pathways == () and e.title_id is None
    assert e.summary == "best site: another ISP's PNI site"
    assert e.location == "near another ISP's PNI site (its route matched best; no GeoIP answer)"
    assert [(s.rank, s.label, s.rule, s.prefix) for s in e.sites] == [
        (1, "another ISP's PNI site", "configured prefix", ""),
        (2, "mine", "configured prefix", "10.1.0.0/16"),
        (3, "an IX site", "IX peering (reachable from any network)", ""),
        (4, "the origin (over transit)", "origin (over transit)", ""),
    ]
    assert e.sites[1].reason == (
        "embedded site mine: configured prefix 10.1.0.0/16; behind another ISP's PNI site by "
        "longest-prefix (/16 vs /24)"
    )
    assert all(s.distance == "" for s in e.sites)  # placed at an unnamed site
    seen = rv.explanation(
        snap, "10.1.2.3", rv.Labels(snap.sites, frozenset(snap.sites)), candidates=ranked
    )
    assert seen.summary == "best site: theirs" and seen.location.startswith("at site theirs")


@pytest.mark.parametrize("version", [4, 6])
def test_set_operations_over_sorted_prefixes_agree_with_the_core(version: int) -> None:
    """Membership, union and "inside a shorter prefix" over sorted arrays of packed prefixes
    (IPv6: Python ints, its first 64 bits as uint64 up to /64) against the core's own
    definitions (:func:`localcast.core.rib.covering_keys`)."""
    import random

    from localcast.core.rib import BITS, covering_keys, mask, pack

    rnd = random.Random(version)
    bits = BITS[version]
    pool = [rnd.getrandbits(bits) for _ in range(60)]  # few networks: prefixes nest
    short = [8, 12, 16, 20] if version == 4 else [16, 32, 48, 60, 64, 65, 80]
    longer = [*short, 24, 32] if version == 4 else [*short, 96, 128]

    def prefixes(n: int, lengths: list[int]) -> set[int]:
        out = set()
        for _ in range(n):
            length = rnd.choice(lengths)
            out.add(pack(rnd.choice(pool) & mask(version, length), length))
        return out

    values, by = prefixes(3000, longer), prefixes(100, short)
    a = rv.table_keys(dict.fromkeys(values), version)
    b = rv.table_keys(dict.fromkeys(by), version)
    assert [int(k) for k in a] == sorted(values)
    assert list(rv._member(a, b)) == [int(k) in by for k in a]
    expected = [any(c in by for c in covering_keys(version, int(k))) for k in a]
    got = rv._covered(a, version, b)
    assert list(got) == expected and 0 < sum(expected) < len(expected)
    assert [int(k) for k in rv._union([a, b], version)] == sorted(values | by)


def test_the_memo_holds_no_replaced_table(portal: Portal) -> None:
    """What the page keeps refers to Adj-RIB-Ins weakly: a table a report replaced is freed
    with its snapshot, and what was derived from it goes with it."""
    import gc
    import weakref

    from localcast.portal.pages import routes as page

    c = client_as(portal, ALICE)
    get(c, site="a-par")
    memo = page._memo(portal.plane.routes)
    old = weakref.ref(portal.plane.snapshot.routes.learned.ribs["a1"])
    assert memo._values
    announce(portal, "a1", "127.0.0.2", "198.51.101.0/24")
    gc.collect()
    assert old() is None
    get(c, site="a-par")  # the values derived from the old table are dropped, new ones kept
    assert memo._values
    assert all(w() is not None for refs, _ in memo._values.values() for w in refs)
