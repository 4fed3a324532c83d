"""Operator pages: the fleet across partners, the catalog and where titles are live, users."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from portal_support import ALICE, BOB, OPERATOR, Portal, login, portal_plane

from localcast.portal.views.catalog_view import catalog_figures


@pytest.fixture
def portal(tmp_path: Path) -> Portal:
    return portal_plane(tmp_path)


def test_operator_pages_are_404_to_a_partner(portal: Portal) -> None:
    with portal.client() as c:
        csrf = login(c, ALICE)
        for path in ("/portal/operator/users", "/portal/operator/catalog"):
            r = c.get(path)
            assert r.status_code == 404, path
            assert "text/html" in r.headers["content-type"]
        r = c.post("/portal/operator/users/invite", data={"csrf": csrf, "email": "e@x.example"})
        assert r.status_code == 404


def test_the_operator_invites_a_partner_user_from_the_users_page(portal: Portal) -> None:
    with portal.client() as c:
        csrf = login(c, OPERATOR)
        r = c.post(
            "/portal/operator/users/invite",
            data={"email": "dave@isp-b.example", "role": "partner", "partner": "isp-b"},
        )
        assert r.status_code == 403
        r = c.post(
            "/portal/operator/users/invite",
            data={"csrf": csrf, "email": "dave@isp-b.example", "role": "partner", "partner": ""},
        )
        assert r.status_code == 422 and "needs its partner" in r.text
        assert 'value="dave@isp-b.example"' in r.text  # nothing typed is lost
        r = c.post(
            "/portal/operator/users/invite",
            data={
                "csrf": csrf,
                "email": "dave@isp-b.example",
                "role": "partner",
                "partner": "isp-b",
            },
        )
        assert r.status_code == 201
        link = re.search(r"(/portal/invite/[A-Za-z0-9_-]+)", r.text)
        assert link
    with portal.client() as c:
        assert "dave@isp-b.example" in c.get(link.group(1)).text


def test_the_catalog_shows_where_each_title_is_live(portal: Portal) -> None:
    with portal.client() as c:
        login(c, OPERATOR)
        r = c.get("/portal/operator/catalog")
        assert r.status_code == 200
        assert portal.title_id in r.text
        # every appliance holds the title: live in each site's region (a-par, b-lys, ix-fra)
        assert r.text.count(">Live<") == 3


def test_the_catalog_figures_follow_what_appliances_hold(portal: Portal) -> None:
    """The figures are kept while no appliance's holdings change (a heartbeat without an
    inventory keeps them), and follow a changed inventory at once."""
    plane = portal.plane
    settings = plane.settings
    first = catalog_figures(plane.snapshot, settings.live_min_sites, settings.live_min_copies)
    assert first.copies == {portal.title_id: 4}  # a1, a2, b1, ix1 (the origin's left out)
    assert first.live == {portal.title_id: ("a-par", "b-lys", "ix-fra")}  # a region per site
    with portal.client() as c:
        login(c, OPERATOR)
        before = c.get("/portal/operator/catalog").text
        auth = {"Authorization": f"Bearer {portal.credentials['b1']}"}
        assert c.post("/v1/appliances/b1/heartbeat", json={}, headers=auth).status_code == 200
        again = catalog_figures(plane.snapshot, settings.live_min_sites, settings.live_min_copies)
        assert again is first  # the same holdings: the same figures
        assert c.get("/portal/operator/catalog").text == before
        body = {"inventory": {"kind": "full", "seq": 2, "titles": {}}}  # b1 lost the title
        assert c.post("/v1/appliances/b1/heartbeat", json=body, headers=auth).status_code == 200
        after = c.get("/portal/operator/catalog").text
    assert after.count(">Live<") == 2  # not in b-lys's region any more
    now = catalog_figures(plane.snapshot, settings.live_min_sites, settings.live_min_copies)
    assert (now.copies, now.live) == ({portal.title_id: 3}, {portal.title_id: ("a-par", "ix-fra")})


def test_the_fleet_page_shows_every_partner_and_operator_site(portal: Portal) -> None:
    with portal.client() as c:
        login(c, OPERATOR)
        r = c.get("/portal/operator/fleet")
        assert r.status_code == 200
        for name in ("isp-a", "isp-b", "a-par", "b-lys", "ix-fra", "origin"):
            assert name in r.text
        for aid in ("a1", "a2", "b1", "ix1", "o1"):
            assert f'href="/portal/appliances/{aid}"' in r.text
    with portal.client() as c:
        login(c, BOB)
        assert c.get("/portal/operator/fleet").status_code == 404
