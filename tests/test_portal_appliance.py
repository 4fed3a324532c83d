"""The portal's appliance page and its actions: health, turn-up, BGP sessions, fill, traffic;
drain / disable / enable through forms (CSRF, durations 3 h .. 30 d), scoped per partner."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal_support import ALICE, OPERATOR, Portal, login, portal_plane

from localcast.control.route_feed import FeedState
from localcast.control.route_schemas import BgpSession
from localcast.portal.views.fleet_view import bgp_rows, fill_summary

FORM = {"duration": "3h", "duration_other": "", "reason": "router upgrade"}


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    p = portal_plane(tmp_path)
    yield p
    p.plane.close()


def client_as(portal: Portal, email: str) -> tuple[TestClient, str]:
    c = portal.client()
    return c, login(c, email)


def steering(portal: Portal, aid: str) -> tuple[bool, bool]:
    st = portal.plane.health.steering(aid, portal.clock())
    snap = portal.plane.snapshot.appliances[aid].steering
    assert (snap.new_sessions, snap.keep_in_flight) == (st.new_sessions, st.keep_in_flight)
    return st.new_sessions, st.keep_in_flight


def post(c: TestClient, path: str, **data: Any) -> Any:
    return c.post(path, data=data, follow_redirects=False)


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_the_page_shows_status_components_turnup_and_the_forms(portal: Portal) -> None:
    c, _ = client_as(portal, ALICE)
    r = c.get("/portal/appliances/a1")
    assert r.status_code == 200, r.text
    page = r.text
    text = text_of(page)
    assert "<title>Appliance a1" in page
    assert "Status OK" in text and "heartbeat OK OK alive: last heartbeat" in text
    assert "Steering serving" in text and "none active" in text
    assert "Turn-up" in text and "turned up" in text  # turn-up is not required here
    # the forms: posted to this appliance's actions, with the CSRF token and labelled inputs
    for mode in ("drain", "disable"):
        assert f'action="/portal/appliances/a1/{mode}"' in page
        for field in ("duration", "duration-other", "reason"):
            assert f'<label for="{mode}-{field}">' in page and f'id="{mode}-{field}"' in page
    assert page.count('name="csrf"') >= 3  # logout, drain, disable
    assert "/enable" not in page  # nothing to enable
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "duplicate element ids"
    assert 'href="/portal/#site-a-par"' in page


def test_drain_changes_steering_and_enable_restores_it(portal: Portal) -> None:
    c, csrf = client_as(portal, ALICE)
    assert steering(portal, "a1") == (True, True)
    r = post(c, "/portal/appliances/a1/drain", csrf=csrf, **FORM)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/portal/appliances/a1"
    assert steering(portal, "a1") == (False, True)  # no new sessions, in-flight kept
    assert steering(portal, "a2") == (True, True)
    m = portal.plane.health.maintenance["a1"]
    assert (m.mode, m.until - m.since) == ("drain", 3 * 3600)
    assert m.reason == f"router upgrade (by {ALICE})"

    page = c.get("/portal/appliances/a1").text  # the redirect's page, with its notice
    text = text_of(page)
    assert "a1 drained for 3h, until" in text and "sessions in flight finish" in text
    assert "Steering no new sessions, in-flight kept" in text
    assert "drained, 3h left: router upgrade (by alice@isp-a.example)" in text
    assert 'action="/portal/appliances/a1/enable"' in page
    # the home page shows the steering change too
    assert "no new sessions, in-flight kept" in text_of(c.get("/portal/").text)

    r = post(c, "/portal/appliances/a1/enable", csrf=csrf)
    assert r.status_code == 303
    assert steering(portal, "a1") == (True, True)
    assert "a1 enabled: its drain ended. Steering: serving." in text_of(
        c.get(r.headers["location"]).text
    )
    r = post(c, "/portal/appliances/a1/enable", csrf=csrf)
    assert "nothing to end" in text_of(c.get(r.headers["location"]).text)


def test_disable_takes_it_out_for_a_typed_duration(portal: Portal) -> None:
    c, csrf = client_as(portal, ALICE)
    r = post(
        c,
        "/portal/appliances/a2/disable",
        csrf=csrf,
        duration="other",
        duration_other="1d12h",
        reason="",
    )
    assert r.status_code == 303, r.text
    assert steering(portal, "a2") == (False, False)  # out: in-flight players move
    m = portal.plane.health.maintenance["a2"]
    assert (m.mode, m.until - m.since, m.reason) == ("disable", 36 * 3600, f"by {ALICE}")
    # a typed duration wins over the preset
    r = post(c, "/portal/appliances/a1/drain", csrf=csrf, duration="30d", duration_other=" 2d ")
    assert r.status_code == 303
    m = portal.plane.health.maintenance["a1"]
    assert m.until - m.since == 2 * 86400


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"duration": "3h", "duration_other": "2h"}, "duration 2h is too short"),
        ({"duration": "other", "duration_other": "31d"}, "duration 31d is too long"),
        ({"duration": "3h", "duration_other": "soon"}, "invalid duration 'soon'"),
        ({"duration": "other", "duration_other": ""}, "Choose a duration"),
        ({"duration": "3h", "reason": "x" * 201}, "At most 200 characters"),
    ],
)
def test_a_bad_duration_shows_the_form_again_with_the_message(
    portal: Portal, form: dict[str, str], message: str
) -> None:
    c, csrf = client_as(portal, ALICE)
    r = post(c, "/portal/appliances/a1/disable", csrf=csrf, **form)
    assert r.status_code == 422, r.text
    page = r.text
    assert message in html.unescape(page)
    field = "reason" if "reason" in form else "duration"
    # next to the field of the form that was posted, which keeps what was typed
    assert re.search(rf'id="disable-{field}-error" class="field-error" role="alert">', page)
    assert 'id="drain-duration-error"' not in page
    if form.get("duration_other"):
        assert f'value="{form["duration_other"]}"' in page
    assert steering(portal, "a1") == (True, True)
    assert "a1" not in portal.plane.health.maintenance


def test_post_without_the_csrf_token_is_refused(portal: Portal) -> None:
    c, csrf = client_as(portal, ALICE)
    for action in ("drain", "disable", "enable"):
        assert post(c, f"/portal/appliances/a1/{action}", **FORM).status_code == 403
        r = post(c, f"/portal/appliances/a1/{action}", csrf=csrf + "x", **FORM)
        assert r.status_code == 403
    assert steering(portal, "a1") == (True, True)


def test_another_partners_appliance_is_not_found_for_get_and_post(portal: Portal) -> None:
    c, csrf = client_as(portal, ALICE)
    for aid in ("b1", "ix1", "o1", "nope"):
        r = c.get(f"/portal/appliances/{aid}")
        assert r.status_code == 404, (aid, r.text)
        assert "b-lys" not in r.text
        for action in ("drain", "disable", "enable"):
            assert (
                post(c, f"/portal/appliances/{aid}/{action}", csrf=csrf, **FORM).status_code == 404
            )
    assert steering(portal, "b1") == (True, True)
    assert portal.plane.health.maintenance == {}

    op, op_csrf = client_as(portal, OPERATOR)  # the operator sees and acts on every appliance
    page = op.get("/portal/appliances/ix1").text
    assert "Appliance ix1" in page and 'href="/portal/operator/fleet"' in page
    assert post(op, "/portal/appliances/b1/drain", csrf=op_csrf, **FORM).status_code == 303
    assert steering(portal, "b1") == (False, True)
    assert 'href="/portal/?partner=isp-b#site-b-lys"' in op.get("/portal/appliances/b1").text
    # the layout's partner picker on an appliance page: another partner goes to its home page
    r = op.get("/portal/appliances/b1", params={"partner": "isp-a"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/portal/?partner=isp-a")
    assert op.get("/portal/appliances/b1", params={"partner": "isp-b"}).status_code == 200
    assert c.get("/portal/appliances/a1", params={"partner": "isp-b"}).status_code == 200


def test_bgp_sessions_fill_and_served_traffic(portal: Portal) -> None:
    auth = {"Authorization": f"Bearer {portal.credentials['a1']}"}
    with portal.client() as api:
        report = {
            "kind": "full",
            "seq": 1,
            "session": {
                "neighbor": "127.0.0.2",
                "local_as": 65001,
                "ebgp": True,
                "remote_as": 64501,
                "state": "established",
                "peer_router_id": "10.0.0.1",
                "description": "core router 1",
                "uptime_s": 3600,
                "received": 12,
                "accepted": 8,
                "filtered": {"bogon": 3, "too_specific": 1},
            },
            "announce": [
                {"prefixes": ["10.1.0.0/16"], "next_hop": "192.0.2.1", "as_path": [64501]}
            ],
        }
        assert api.post("/v1/appliances/a1/routes", json=report, headers=auth).status_code == 200
        traffic = {
            "report_id": "r1",
            "period_start": portal.clock() - 60,
            "period_end": portal.clock(),
            "rows": [
                {"net": "10.1.2.0/24", "kind": "viewer", "requests": 40, "bytes": 3 * 10**9},
            ],
        }
        r = api.post("/v1/appliances/a1/traffic", json=traffic, headers=auth)
        assert r.status_code == 200, r.text
    portal.plane.plan_fills()
    portal.clock.advance(120)

    c, _ = client_as(portal, ALICE)
    page = c.get("/portal/appliances/a1").text
    text = text_of(page)
    assert "127.0.0.2 core router 1 AS64501 established 1 h 2 min 12 8" in text
    assert "4: 3 bogon: private, reserved or documentation space" in text
    assert "1 more specific than the family allows" in text
    assert "1 prefix(es) held" in text
    assert 'href="/portal/routes?site=a-par"' in page
    assert "Plan version 1, complete Titles no titles planned" in text  # a2 holds the copy
    assert "total 3 GB 40 0" in text  # served at a-par
    assert 'href="/portal/traffic"' in page

    text = text_of(c.get("/portal/appliances/a2").text)
    assert "Titles 1 of 1 (100 %)" in text  # fill: its one planned title held
    assert "No BGP session reported." in text and "No appliance of a-par" not in text
    assert "total 3 GB 40 0" in text  # traffic is counted per site


def test_an_ix_appliance_shows_what_its_site_served_every_partner(portal: Portal) -> None:
    """An IX site serves every partner's clients: the operator sees their sum per day (clients
    of no partner left out, as on the partners' traffic pages)."""
    auth = {"Authorization": f"Bearer {portal.credentials['ix1']}"}
    rows = [
        {"net": "10.1.2.0/24", "kind": "viewer", "requests": 10, "bytes": 2 * 10**9},  # isp-a
        {"net": "10.2.3.0/24", "kind": "viewer", "requests": 5, "bytes": 10**9, "errors_5xx": 1},
        {"net": "192.0.2.0/24", "kind": "viewer", "requests": 7, "bytes": 10**9},  # no partner
    ]
    report = {"period_start": portal.clock() - 60, "period_end": portal.clock(), "rows": rows}
    with portal.client() as api:
        r = api.post("/v1/appliances/ix1/traffic", json=report, headers=auth)
        assert r.status_code == 200, r.text
    op, _ = client_as(portal, OPERATOR)
    text = text_of(op.get("/portal/appliances/ix1").text)
    assert "total 3 GB 15 1" in text  # isp-a's and isp-b's, not the unattributed GB
    c, _ = client_as(portal, ALICE)
    assert c.get("/portal/appliances/ix1").status_code == 404


# --- the pure rows ---------------------------------------------------------------------------


def test_bgp_rows_count_uptime_on_and_word_the_filters() -> None:
    session = BgpSession(
        neighbor="192.0.2.9",
        local_as=65001,
        ebgp=True,
        remote_as=64501,
        state="established",
        uptime_s=60,
        received=5,
        accepted=2,
        filtered={"rpki_invalid": 1, "bogon": 2, "new_reason": 0},
    )
    (row,) = bgp_rows([FeedState(1, 1000.0, None, session)], 1000.0 + 3600)
    assert (row.uptime, row.reported, row.filtered_total, row.css) == (
        "1 h 1 min",
        "1 h ago",
        3,
        "status-ok",
    )
    assert [(f.reason, f.count) for f in row.filtered] == [("bogon", 2), ("rpki_invalid", 1)]
    down = session.model_copy(update={"state": "active", "last_error": "hold timer expired"})
    (row,) = bgp_rows([FeedState(2, 1000.0, None, down)], 1000.0)
    assert (row.uptime, row.established, row.last_error, row.css) == (
        "",
        False,
        "hold timer expired",
        "status-error",
    )


def test_fill_summary_of_no_plan() -> None:
    s = fill_summary(None, 0.0)
    assert (s.planned, s.titles.text, s.missing) == (False, "no fill plan", ())


def test_an_unknown_action_is_404(portal: Portal) -> None:
    c, csrf = client_as(portal, ALICE)
    r = c.post("/portal/appliances/a1/reboot", data={"csrf": csrf, "duration": "3h"})
    assert r.status_code == 404
    r = c.post("/portal/appliances/b1/reboot", data={"csrf": csrf, "duration": "3h"})
    assert r.status_code == 404
