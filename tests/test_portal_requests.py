"""Appliance requests: the form's validation, the planner's answer, the operator's decision.

The planner's answers (:mod:`localcast.portal.eligibility`) are checked on small forms
with the real planner; the pages run with a stand-in planner (instant, recorded) except
one test that goes through the real background worker end to end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from portal_support import ALICE, BOB, OPERATOR, Portal, login, portal_plane

from localcast.portal import eligibility
from localcast.portal.eligibility import (
    RequestForm,
    build_spec,
    evaluate,
    parse_form,
    parse_sites,
    split_sixteens,
)
from localcast.portal.evaluator import RUNNER
from localcast.portal.requests_store import RequestStore
from localcast.sim.config import SimSpec

GOOD = {
    "peak_gbps": "12.5",
    "sites": "Paris: 60%\nLyon",
    "rack_u": "8",
    "power_w": "800",
    "port_count": "2",
    "port_gbps": "25",
    "contact": "noc@isp-a.example, weekdays",
}


def form_of(**over: str) -> RequestForm:
    form, errors = parse_form({**GOOD, **over})
    assert form is not None, errors
    return form


# --- the form ------------------------------------------------------------------------------------


def test_a_good_form_parses() -> None:
    f = form_of()
    assert f.peak_gbps == 12.5
    assert [s.name for s in f.sites] == ["Paris", "Lyon"]
    assert [s.share for s in f.sites] == [0.6, pytest.approx(0.4)]
    assert (f.rack_u, f.power_w, f.port_count, f.port_gbps) == (8, 800, 2, 25)
    assert f.appliance_gbps == 50.0
    assert form_of(port_count="4", port_gbps="100G").appliance_gbps == 100.0  # the cap
    assert RequestForm.from_json(f.to_json()) == f


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Paris", [("Paris", 1.0)]),
        ("Paris 30\nLyon, 70 %", [("Paris", 0.3), ("Lyon", 0.7)]),
        ("A: 50\nB\nC", [("A", 0.5), ("B", 0.25), ("C", 0.25)]),
        ("Saint-Denis\n\n  Nice  ", [("Saint-Denis", 0.5), ("Nice", 0.5)]),
        ("Site 2: 12.5%\nSite 3: 87,5%", [("Site 2", 0.125), ("Site 3", 0.875)]),
    ],
)
def test_sites_lines_and_shares(text: str, want: list[tuple[str, float]]) -> None:
    sites, err = parse_sites(text)
    assert err is None
    assert [(s.name, s.share) for s in sites] == [(n, pytest.approx(v)) for n, v in want]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one site"),
        ("A: 50\nB: 30", "add up to 80%, not 100%"),
        ("A: 100\nB", "nothing is left for the 1 site(s)"),
        ("A\na", "given twice"),
        (": 40\nB", "give the site's name"),
        ("A: 0\nB", "above 0"),
        ("\n".join(f"s{i}" for i in range(17)), "At most 16 sites"),
    ],
)
def test_sites_errors_say_what_is_wrong(text: str, message: str) -> None:
    sites, err = parse_sites(text)
    assert sites == [] and err is not None and message in err


def test_every_field_gets_its_own_message() -> None:
    form, errors = parse_form(
        {
            "peak_gbps": "lots",
            "sites": "",
            "rack_u": "1.5",
            "power_w": "-3",
            "port_count": "",
            "port_gbps": "40",
            "contact": "x" * 2001,
        }
    )
    assert form is None
    assert set(errors) == set(eligibility.FIELDS)
    assert "as a number, not 'lots'" in errors["peak_gbps"]
    assert "whole number" in errors["rack_u"]
    assert "between 1 and 20000, not -3" in errors["power_w"]
    assert errors["port_count"].startswith("Enter the number of ports")
    assert "10G, 25G, 100G" in errors["port_gbps"]
    assert "At most 2000 characters" in errors["contact"]
    assert parse_form({**GOOD, "peak_gbps": "nan"})[1]["peak_gbps"].endswith("not 'nan'.")
    assert parse_form({**GOOD, "peak_gbps": "0"})[1]["peak_gbps"].startswith("The peak")


# --- the simulation it builds --------------------------------------------------------------------


def test_sites_split_ten_slash_eight_by_share() -> None:
    assert split_sixteens([0.6, 0.4]) == [154, 102]
    assert split_sixteens([0.999, 0.001]) == [255, 1]  # every site gets a /16
    assert sum(split_sixteens([1 / 3] * 3)) == 256
    sim = build_spec(form_of(peak_gbps="3", sites="Paris: 75%\nLyon: 25%"))
    sites = {s.id: s for s in sim.spec.sites}
    assert sim.site_ids == {"site-1": "Paris", "site-2": "Lyon"}
    assert sites["site-1"].prefixes == ["10.0.0.0/9", "10.128.0.0/10"]  # 192 /16s
    assert sites["site-2"].prefixes == ["10.192.0.0/10"]  # 64 /16s
    assert {s.kind.value for s in sites.values()} == {"embedded", "ix", "origin"}
    (isp,) = sim.spec.isps
    subs = {p.prefix: p.subscribers for p in isp.prefixes}
    assert sim.scale == 1.0 and sum(subs.values()) == sim.subscribers
    assert subs["10.192.0.0/10"] == round(sim.subscribers * 0.25)
    assert sim.subscribers == round(3 / eligibility.PEAK_GBPS_PER_SUBSCRIBER)
    assert sim.spec.planner.max_per_site == 4  # 8U / 2U
    assert sim.spec.planner.appliance_gbps == 50.0
    assert build_spec(form_of(rack_u="5")).max_per_site == 2


def test_a_large_isp_is_simulated_scaled_down_and_scaled_back() -> None:
    seen: list[SimSpec] = []

    def planner(spec: SimSpec) -> dict[str, Any]:
        seen.append(spec)
        return fake_plan(peak_gbps=spec.planner.eligibility_gbps * 3, eligible=True)

    out = evaluate(form_of(peak_gbps="200"), plan=planner)
    (spec,) = seen
    k = out["scale"]
    assert k == pytest.approx(200 / eligibility.PEAK_GBPS_PER_SUBSCRIBER / 20_000)
    assert sum(p.subscribers for p in spec.isps[0].prefixes) == pytest.approx(20_000, abs=2)
    assert spec.planner.appliance_gbps == pytest.approx(50 / k)
    assert spec.planner.eligibility_gbps == pytest.approx(5 / k)
    ix = next(s for s in spec.sites if s.id == "ix")
    assert ix.appliances[0].gbps == pytest.approx(100 / k)
    assert out["peak_gbps"] == pytest.approx(15.0)  # 3 x the scaled threshold, scaled back
    assert out["inbound_peak_gbps_before"] == pytest.approx(2.0 * k)


def test_hardware_that_does_not_fit_makes_a_request_ineligible() -> None:
    out = evaluate(
        form_of(rack_u="1", power_w="400"), plan=lambda s: fake_plan(peak_gbps=50, eligible=True)
    )
    assert out["eligible"] is False
    assert out["reasons"] == [
        "An appliance takes 2U of rack space; each site offers 1U.",
        "An appliance draws up to 650 W; 400 W is available.",
    ]


def test_the_planner_finds_a_large_enough_isp_eligible() -> None:
    out = evaluate(form_of(peak_gbps="8", sites="Paris: 70%\nLyon"))
    assert out["eligible"] is True and out["reasons"] == []
    assert 7.0 < out["peak_gbps"] < 9.0  # the demand model's peak, near what was asked
    assert out["reached"] is True and out["offload_at_peak"] >= 0.95
    assert out["appliances"] == 2 * out["appliances_per_site"]["Paris"]
    assert out["appliances_per_site"]["Paris"] == out["appliances_per_site"]["Lyon"] >= 1
    assert out["disk_tb"] in eligibility.DISK_TB
    assert out["inbound_peak_gbps_after"] < out["inbound_peak_gbps_before"]


def test_the_planner_finds_a_small_isp_not_eligible() -> None:
    out = evaluate(form_of(peak_gbps="1.5", sites="Nice"))
    assert out["eligible"] is False
    assert out["peak_gbps"] < 2.0
    assert out["reasons"][0].startswith("Peak traffic of 1.")
    assert "below the 5 Gbit/s" in out["reasons"][0]
    assert out["appliances_per_site"] == {"Nice": out["appliances"]}  # still sized


def fake_plan(peak_gbps: float, eligible: bool) -> dict[str, Any]:
    """What plan_capacity answers, with made-up figures."""
    row = {
        "appliances_per_site": 2,
        "disk_tb": 6.0,
        "appliances": 4,
        "storage_tb": 24.0,
        "offload_at_peak": 0.96,
        "offload_over_day": 0.97,
    }
    return {
        "target": 0.95,
        "eligibility": {"peak_gbps": peak_gbps, "threshold_gbps": 5.0, "eligible": eligible},
        "reached": True,
        "chosen": row,
        "transit_saving": {"peak_gbps_before": 2.0, "peak_gbps_after": 0.1, "share": 0.9},
        "fill_cost": {"first_fill_bytes": 12e12},
        "candidates": [row],
    }


# --- the pages -----------------------------------------------------------------------------------


class FakePlanner:
    def __init__(self) -> None:
        self.forms: list[RequestForm] = []
        self.fail = False

    def __call__(self, form: RequestForm) -> dict[str, Any]:
        self.forms.append(form)
        if self.fail:
            raise RuntimeError("simulated planner crash")
        return evaluate(form, plan=lambda s: fake_plan(form.peak_gbps, form.peak_gbps >= 5))


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    p = portal_plane(tmp_path)
    yield p
    p.plane.close()


@pytest.fixture
def planner(monkeypatch: pytest.MonkeyPatch) -> FakePlanner:
    fake = FakePlanner()
    monkeypatch.setattr(RUNNER, "evaluate", fake)
    return fake


def client(portal: Portal) -> TestClient:
    return portal.client("10.1.2.3")


def submit(c: TestClient, csrf: str, **over: str) -> int:
    r = c.post("/portal/requests", data={**GOOD, **over, "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    found = re.fullmatch(r"/portal/requests/(\d+)", r.headers["location"])
    assert found, r.headers["location"]
    rid = int(found.group(1))
    assert RUNNER.wait(rid, timeout=120)
    return rid


def status_of(portal: Portal, rid: int) -> str:
    found = RequestStore(portal.plane.sessions).get(rid)
    assert found is not None
    return found.status


def test_a_partner_requests_and_gets_the_planners_answer(
    portal: Portal, planner: FakePlanner
) -> None:
    with client(portal) as c:
        csrf = login(c, ALICE)
        r = c.get("/portal/requests")
        assert r.status_code == 200
        for name in eligibility.FIELDS:
            assert f'<label for="{name}">' in r.text and f'id="{name}"' in r.text
        assert "No appliance requests yet." in r.text
        rid = submit(c, csrf)
        assert planner.forms == [form_of()]
        assert status_of(portal, rid) == "submitted"
        r = c.get(f"/portal/requests/{rid}")
        assert r.status_code == 200
        assert "Awaiting decision" in r.text and "Eligible" in r.text
        assert "96.0%" in r.text  # the expected offload at the peak
        assert "4 in all: 2 per site" in r.text
        assert "Paris" in r.text and "60.0%" in r.text
        assert "noc@isp-a.example, weekdays" in r.text
        assert c.get(f"/portal/requests/{rid}/status").json() == {"id": rid, "status": "submitted"}
        listing = c.get("/portal/requests").text
        assert f'href="/portal/requests/{rid}"' in listing and "12.5 Gbit/s" in listing
        stored = RequestStore(portal.plane.sessions).get(rid)
        assert stored is not None
        assert (stored.partner, stored.created_by_name, stored.form) == (
            "isp-a",
            "alice",
            form_of().to_json(),
        )
        assert stored.eligibility is not None and stored.eligibility["eligible"] is True
        assert "seconds" in stored.eligibility


def test_a_small_isp_hears_it_is_not_eligible(portal: Portal, planner: FakePlanner) -> None:
    with client(portal) as c:
        csrf = login(c, ALICE)
        rid = submit(c, csrf, peak_gbps="2")
        r = c.get(f"/portal/requests/{rid}")
        assert "Not eligible" in r.text and "below the 5 Gbit/s" in r.text


def test_invalid_fields_answer_422_with_the_form_kept(portal: Portal, planner: FakePlanner) -> None:
    with client(portal) as c:
        csrf = login(c, ALICE)
        bad = {**GOOD, "peak_gbps": "ten", "sites": "A: 50\nB: 20", "port_gbps": "40"}
        r = c.post("/portal/requests", data={**bad, "csrf": csrf})
        assert r.status_code == 422
        assert "Please correct 3 fields" in r.text
        assert "Enter the peak traffic (Gbit/s) as a number, not &#39;ten&#39;." in r.text
        assert "The shares add up to 70%, not 100%." in r.text
        assert "The port speed is one of 10G, 25G, 100G." in r.text
        assert 'value="ten"' in r.text and ">A: 50\nB: 20</textarea>" in r.text
        assert 'aria-invalid="true"' in r.text and 'href="#peak_gbps"' in r.text
        assert ">noc@isp-a.example, weekdays</textarea>" in r.text
        assert 'value="800"' in r.text  # the good fields too
    assert RequestStore(portal.plane.sessions).list_for(None) == []
    assert planner.forms == []


def test_posts_without_the_csrf_token_are_refused(portal: Portal, planner: FakePlanner) -> None:
    with client(portal) as c:
        csrf = login(c, ALICE)
        assert c.post("/portal/requests", data=GOOD).status_code == 403
        assert c.post("/portal/requests", data={**GOOD, "csrf": "x" * 43}).status_code == 403
        rid = submit(c, csrf)
    with client(portal) as c:
        login(c, OPERATOR)
        r = c.post(f"/portal/requests/{rid}/approve", data={"note": "ok"})
        assert r.status_code == 403
    assert RequestStore(portal.plane.sessions).list_for(None)[0].status == "submitted"


def test_a_partner_sees_only_its_own_requests(portal: Portal, planner: FakePlanner) -> None:
    with client(portal) as c:
        rid = submit(c, login(c, ALICE))
    with client(portal) as c:
        csrf = login(c, BOB)
        assert c.get(f"/portal/requests/{rid}").status_code == 404
        assert c.get(f"/portal/requests/{rid}/status").status_code == 404
        assert c.get("/portal/requests/999").status_code == 404
        assert c.get("/portal/requests", params={"partner": "isp-a"}).status_code == 404
        assert f"/portal/requests/{rid}" not in c.get("/portal/requests").text
        r = c.post(f"/portal/requests/{rid}/approve", data={"csrf": csrf, "note": "mine now"})
        assert r.status_code == 404
    with client(portal) as c:
        csrf = login(c, ALICE)  # its own partner's user cannot approve either
        r = c.post(f"/portal/requests/{rid}/approve", data={"csrf": csrf})
        assert r.status_code == 404
        r = c.post(f"/portal/requests/{rid}/decline", data={"csrf": csrf, "note": "x"})
        assert r.status_code == 404
    assert status_of(portal, rid) == "submitted"


def test_the_operator_sees_every_request_and_approves(portal: Portal, planner: FakePlanner) -> None:
    with client(portal) as c:
        a = submit(c, login(c, ALICE))
    with client(portal) as c:
        b = submit(c, login(c, BOB), peak_gbps="30", sites="Lyon")
    with client(portal) as c:
        csrf = login(c, OPERATOR)
        r = c.get("/portal/requests")
        assert f'href="/portal/requests/{a}"' in r.text and f'href="/portal/requests/{b}"' in r.text
        assert "2 requests await your decision" in r.text
        assert 'name="peak_gbps"' not in r.text  # no form for the operator
        r = c.get("/portal/requests", params={"partner": "isp-b"})
        assert f'href="/portal/requests/{b}"' in r.text
        assert f'href="/portal/requests/{a}"' not in r.text
        assert c.get("/portal/requests", params={"partner": "nope"}).status_code == 404
        r = c.get(f"/portal/requests/{a}")
        assert f'action="/portal/requests/{a}/approve"' in r.text
        assert f'formaction="/portal/requests/{a}/decline"' in r.text
        r = c.post(
            f"/portal/requests/{a}/approve",
            data={"csrf": csrf, "note": "We ship next week."},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == f"/portal/requests/{a}"
        r = c.get(f"/portal/requests/{a}")
        assert f"Request #{a} approved." in r.text  # the flash
        assert "Approved" in r.text and "We ship next week." in r.text and "by op" in r.text
        assert 'formaction="/portal/requests/' not in r.text  # decided: no more buttons
        r = c.post(f"/portal/requests/{a}/decline", data={"csrf": csrf, "note": "no"})
        assert "this request is already approved" in r.text
        assert status_of(portal, a) == "approved"
        # declining needs a note the partner can read
        r = c.post(f"/portal/requests/{b}/decline", data={"csrf": csrf, "note": "  "})
        assert r.status_code == 422 and "Say why you decline" in r.text
        assert status_of(portal, b) == "submitted"
        c.post(f"/portal/requests/{b}/decline", data={"csrf": csrf, "note": "No room at Lyon."})
        assert status_of(portal, b) == "declined"
        # the operator does not file requests
        assert c.post("/portal/requests", data={**GOOD, "csrf": csrf}).status_code == 404
    with client(portal) as c:
        login(c, BOB)
        r = c.get(f"/portal/requests/{b}")
        assert "Declined" in r.text and "No room at Lyon." in r.text
        stored = RequestStore(portal.plane.sessions).get(b)
        assert stored is not None and stored.decided_by_name == "op"


def test_a_failed_evaluation_is_shown_and_can_still_be_decided(
    portal: Portal, planner: FakePlanner
) -> None:
    planner.fail = True
    with client(portal) as c:
        rid = submit(c, login(c, ALICE))
        assert status_of(portal, rid) == "failed"
        r = c.get(f"/portal/requests/{rid}")
        assert "Evaluation failed" in r.text and "simulated planner crash" not in r.text
    with client(portal) as c:
        csrf = login(c, OPERATOR)
        assert "RuntimeError: simulated planner crash" in c.get(f"/portal/requests/{rid}").text
        c.post(f"/portal/requests/{rid}/decline", data={"csrf": csrf, "note": "Please resend."})
        assert status_of(portal, rid) == "declined"


def test_a_request_left_evaluating_by_a_restart_is_answered_when_seen(
    portal: Portal, planner: FakePlanner
) -> None:
    store = RequestStore(portal.plane.sessions)
    rid = store.create("isp-a", None, form_of().to_json(), portal.clock())
    with client(portal) as c:
        login(c, ALICE)
        r = c.get(f"/portal/requests/{rid}")
        assert "Evaluating" in r.text and "/portal/static/requests.js" in r.text
        assert RUNNER.wait(rid, timeout=60)
        assert status_of(portal, rid) == "submitted"
        assert "Awaiting decision" in c.get(f"/portal/requests/{rid}").text
    assert len(planner.forms) == 1


def test_the_real_planner_answers_through_the_background_worker(portal: Portal) -> None:
    with client(portal) as c:
        rid = submit(c, login(c, ALICE), peak_gbps="6", sites="Paris")
        found = RequestStore(portal.plane.sessions).get(rid)
        assert found is not None and found.status == "submitted", found
        e = found.eligibility
        assert e is not None and e["eligible"] is True
        assert e["appliances_per_site"] == {"Paris": e["appliances"]}
        assert e["seconds"] < 60
        assert "Eligible" in c.get(f"/portal/requests/{rid}").text
