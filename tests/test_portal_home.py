"""The portal's home page: a partner's sites and appliances with their status, utilisation and
actionable items; scope per partner; the pure view rows behind it."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from control_fixtures import NOW
from fastapi.testclient import TestClient
from portal_support import ALICE, BOB, OPERATOR, Portal, login, portal_plane

from localcast.control.health import Alert
from localcast.core.fleet import (
    Appliance,
    ApplianceState,
    FleetSnapshot,
    Health,
    Load,
    Site,
    SiteKind,
    frozen_map,
)
from localcast.core.routes import RouteTable
from localcast.core.status import StatusLevel
from localcast.portal.views.fleet_view import (
    alert_rows,
    appliance_rows,
    format_age,
    format_bits,
    format_bytes,
    level_counts,
    site_rows,
)

GIB = 1 << 30


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    p = portal_plane(tmp_path)
    yield p
    p.plane.close()


def client_as(portal: Portal, email: str) -> TestClient:
    c = portal.client()
    login(c, email)
    return c


def beat(portal: Portal, aid: str, **body: Any) -> None:
    with portal.client() as c:
        r = c.post(
            f"/v1/appliances/{aid}/heartbeat",
            json=body,
            headers={"Authorization": f"Bearer {portal.credentials[aid]}"},
        )
        assert r.status_code == 200, r.text


def appliance_statuses(page: str) -> dict[str, str]:
    """Appliance id -> the status badge on its row."""
    rows = re.findall(
        r'<th scope="row"><a href="/portal/appliances/([^"]+)">[^<]*</a></th>\s*'
        r'<td><span class="status status-(\w+)">(\w+)</span>',
        page,
    )
    out = {}
    for aid, css, label in rows:
        assert css == label.lower()
        out[aid] = label
    return out


def test_a_partner_sees_its_appliances_with_status_reason_and_utilisation(portal: Portal) -> None:
    c = client_as(portal, ALICE)
    # a2 beats with its load and disk; a1 falls silent past its liveness window (3 x 5 s)
    portal.clock.advance(10)
    disk = {"used_bytes": 6 * 10**9, "free_bytes": 4 * 10**9}
    beat(portal, "a2", load={"egress_bps": 2.5e9}, disk=disk)
    portal.clock.advance(6)
    r = c.get("/portal/")
    assert r.status_code == 200, r.text
    page = r.text
    assert appliance_statuses(page) == {"a1": "Error", "a2": "OK"}
    assert "b1" not in page and "isp-b" not in page  # the other partner: nothing of it
    text = html.unescape(page)
    assert "dead: no heartbeat for 16.0 s" in text  # a1's reason
    assert "2.5 Gbit/s of 10 Gbit/s (25 %)" in text  # a2's egress against capacity
    assert "6 GB of 10 GB (60 %)" in text  # a2's disk
    assert "out, in-flight moved" in text  # a1's steering
    # the actionable item, linked to the appliance's page, and the site's status
    assert re.search(r"Appliance down</td>\s*<td><a href=\"/portal/appliances/a1\">a1</a>", page)
    assert 'id="site-a-par"' in page and "a1: dead: no heartbeat" in text
    assert "<caption>Appliances at a-par</caption>" in page


def test_actionable_items_bgp_down_and_disk_near_full(portal: Portal) -> None:
    c = client_as(portal, BOB)
    with portal.client() as api:
        body = {
            "kind": "full",
            "seq": 1,
            "session": {
                "neighbor": "127.0.0.2",
                "local_as": 65001,
                "ebgp": True,
                "remote_as": 64502,
                "state": "idle",
            },
            "announce": [],
        }
        auth = {"Authorization": f"Bearer {portal.credentials['b1']}"}
        assert api.post("/v1/appliances/b1/routes", json=body, headers=auth).status_code == 200
    portal.clock.advance(121)  # longer than the BGP grace
    beat(portal, "b1", disk={"used_bytes": 99 * GIB, "free_bytes": GIB})
    page = c.get("/portal/").text
    text = html.unescape(page)
    assert appliance_statuses(page) == {"b1": "Error"}
    assert "BGP session down" in text and "all sessions down: 127.0.0.2" in text
    assert "Disk near full" in text and "99.0 % used" in text
    assert "a1" not in page and "a-par" not in page


def test_the_page_observes_the_partners_appliances_only(portal: Portal) -> None:
    """Its appliances are observed at the page view; the rest of the fleet is the refresh
    tick's to look at (a page view costs the partner's appliances, not the fleet's)."""
    held = portal.plane.health.statuses["b1"]
    portal.clock.advance(16)  # every appliance silent past its liveness window
    page = client_as(portal, ALICE).get("/portal/").text
    assert appliance_statuses(page) == {"a1": "Error", "a2": "Error"}
    assert portal.plane.health.statuses["b1"] is held


def test_nothing_to_act_on_says_so(portal: Portal) -> None:
    page = client_as(portal, ALICE).get("/portal/").text
    assert "Nothing needs your attention." in page
    assert appliance_statuses(page) == {"a1": "OK", "a2": "OK"}


def test_scope_a_partner_cannot_pick_another_partner_the_operator_can(portal: Portal) -> None:
    alice = client_as(portal, ALICE)
    assert alice.get("/portal/", params={"partner": "isp-b"}).status_code == 404
    assert alice.get("/portal/", params={"partner": "isp-a"}).status_code == 200

    op = client_as(portal, OPERATOR)
    page = op.get("/portal/", params={"partner": "isp-b"}).text
    assert appliance_statuses(page) == {"b1": "OK"}
    assert 'id="partner-pick"' in page  # the operator's partner picker
    assert appliance_statuses(op.get("/portal/").text) == {"a1": "OK", "a2": "OK"}  # the first
    assert op.get("/portal/", params={"partner": "isp-z"}).status_code == 404


def test_not_logged_in_goes_to_the_login_page(portal: Portal) -> None:
    c = portal.client()
    r = c.get("/portal/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/login")


# --- the pure rows ---------------------------------------------------------------------------


def _fleet() -> FleetSnapshot:
    def site(sid: str, kind: SiteKind, partner: str | None) -> Site:
        return Site(sid, kind, partner, 0.0, 0.0, "UTC")

    def app(aid: str, sid: str, **kw: Any) -> Appliance:
        return Appliance(
            aid,
            sid,
            f"http://{aid}",
            10**10,
            10.0,
            ApplianceState.REGISTERED,
            Health(5.0, NOW - 1, NOW - 100, 20),
            **kw,
        )

    sites = [site("s1", SiteKind.EMBEDDED, "p"), site("s2", SiteKind.PNI, "p")]
    apps = [
        app(
            "x1",
            "s1",
            load=Load(egress_bps=1e9, disk_used_bytes=2 * 10**9, disk_free_bytes=8 * 10**9),
        ),
        app("x2", "s1"),
        Appliance("x3", "s2", "http://x3", 10**10, 0.0, ApplianceState.PROVISIONED, Health(5.0)),
    ]
    return FleetSnapshot(
        1,
        frozen_map((s.id, s) for s in sites),
        frozen_map((a.id, a) for a in apps),
        frozen_map({}),
        RouteTable.build(()),
    )


def test_rows_without_held_statuses_are_unknown_and_sites_take_the_worst() -> None:
    snap = _fleet()
    rows = appliance_rows(snap, snap.appliances.values(), {}, NOW)
    assert [(r.id, r.level, r.reason) for r in rows] == [
        ("x1", StatusLevel.UNKNOWN, "registered: its first heartbeat is due"),
        ("x2", StatusLevel.UNKNOWN, "registered: its first heartbeat is due"),
        ("x3", StatusLevel.UNKNOWN, "provisioned: never registered"),
    ]
    assert rows[0].egress.text == "1 Gbit/s of 10 Gbit/s (10 %)"
    assert rows[0].disk.text == "2 GB of 10 GB (20 %)" and rows[0].disk.percent == 20
    assert rows[1].disk.text == "not reported (10 GB configured)" and not rows[1].disk.known
    assert rows[2].egress.text == "no capacity configured"
    assert level_counts(rows) == {"Error": 0, "Warning": 0, "Unknown": 3, "OK": 0}

    alert = Alert("warning", "route-inconsistency", "s1", None, "s1 hears different things", NOW)
    sites = site_rows(snap.sites.values(), rows, [alert])
    assert [(s.id, s.level, len(s.appliances), s.alerts) for s in sites] == [
        ("s1", StatusLevel.WARNING, 2, 1),  # the site's own alert is worse than Unknown
        ("s2", StatusLevel.UNKNOWN, 1, 0),
    ]
    assert sites[0].reason == "s1 hears different things"
    assert sites[0].egress.text == "1 Gbit/s of 20 Gbit/s (5.0 %)"
    assert sites[0].disk.text == "2 GB of 10 GB (20 %)"  # x2 reported no disk
    assert sites[1].disk.text == "not reported"
    assert site_rows([Site("s9", SiteKind.PNI, "p", 0, 0, "UTC")], rows)[0].reason == (
        "no appliances"
    )

    (row,) = alert_rows([alert], NOW + 3 * 3600 + 120)
    assert (row.what, row.label, row.css, row.since) == (
        "Routes differ across the site",
        "Warning",
        "status-warning",
        "for 3 h 2 min",
    )


def test_wording_of_numbers() -> None:
    assert [format_bytes(n) for n in (0, 999, 1500, 9.9e9, 512e9, 2e15)] == [
        "0 B",
        "999 B",
        "1.5 kB",
        "9.9 GB",
        "512 GB",
        "2 PB",
    ]
    assert [format_bits(b) for b in (0, 850e6, 1.25e9, 40e9)] == [
        "0 bit/s",
        "850 Mbit/s",
        "1.25 Gbit/s",
        "40 Gbit/s",
    ]
    assert [format_age(s) for s in (0, 59, 60, 3600, 3660, 90000, 86400 + 59)] == [
        "0 s",
        "59 s",
        "1 min",
        "1 h",
        "1 h 1 min",
        "1 d 1 h",
        "1 d",
    ]
