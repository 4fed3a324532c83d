"""Traffic accounting and /metrics of the control plane in process (TestClient, hand-moved clock).

Topology (:data:`control_fixtures.TOPOLOGY`): ISP A's embedded site a-par (a1, a2;
10.1.0.0/16), ISP B's PNI site b-lys (b1; 10.2.0.0/16), the IX ix-fra (ix1), the
origin (o1). Every expected figure below is computed by hand from the reports posted.

With ``LOCALCAST_TEST_POSTGRES`` set (see ``test_control_fill``), the control planes here
get a fresh PostgreSQL database instead of SQLite.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from control_fixtures import (
    NOW,
    FakeClock,
    SyntheticTitle,
    bring_up,
    client_for,
    make_plane,
    provision,
    synthetic_title,
)
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from test_control_fill import database
from typer.testing import CliRunner

from localcast.appliance.traffic import TrafficCounter
from localcast.cli import app as cli_app
from localcast.control.app import create_app
from localcast.control.reporter import LoadSample, Reporter
from localcast.control.service import ControlPlane

ALL = ("a1", "a2", "b1", "ix1", "o1")
PLAY = {"title_id": "t1", "profile_id": "p1", "device": {"codecs": ["avc1", "mp4a"]}}
TODAY = "2027-01-15"  # control_fixtures.NOW


@dataclass
class Env:
    root: Path
    plane: ControlPlane
    clock: FakeClock
    title: SyntheticTitle
    creds: dict[str, str]
    clients: dict[str, TestClient] = field(default_factory=dict)
    db: dict[str, str] = field(default_factory=dict)  # database_url, when not SQLite

    def client(self, ip: str = "127.0.0.1") -> TestClient:
        if ip not in self.clients:
            self.clients[ip] = client_for(self.plane, ip)
        return self.clients[ip]

    def auth(self, aid: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds[aid]}"}

    def report(self, aid: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.client().post(f"/v1/appliances/{aid}/traffic", json=body, headers=self.auth(aid))
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def play(self, ip: str) -> str:
        r = self.client(ip).post("/v1/playback", json=PLAY)
        assert r.status_code == 200, r.text
        site: str = r.json()["pathways"][0]["site_id"]
        return site

    def beat(self, aid: str, body: dict[str, Any]) -> None:
        r = self.client().post(f"/v1/appliances/{aid}/heartbeat", json=body, headers=self.auth(aid))
        assert r.status_code == 200, r.text

    def traffic(self, partner: str, days: int = 1) -> dict[str, Any]:
        r = self.client().get(f"/v1/partners/{partner}/traffic", params={"days": days})
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock = FakeClock()
    db = database(tmp_path)
    plane = make_plane(tmp_path, clock, **db)
    title = synthetic_title("t1")
    creds = provision(plane, title)
    e = Env(tmp_path, plane, clock, title, creds, db=db)
    bring_up(e.client(), creds, {a: [title] for a in ALL})
    yield e
    e.plane.close()


def row(net: str, requests: int, nbytes: int, errors: int = 0, kind: str = "viewer") -> Any:
    return {"net": net, "kind": kind, "requests": requests, "bytes": nbytes, "errors_5xx": errors}


def report(*rows: Any, at: float = NOW, report_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"period_start": at - 5, "period_end": at, "rows": list(rows)}
    if report_id is not None:
        body["report_id"] = report_id
    return body


A1_REPORT = report(
    row("10.1.2.0/24", 10, 6000, errors=1),
    row("10.1.3.0/24", 2, 1000),
    row("10.1.2.0/24", 1, 50_000, kind="fill"),  # a2 filling from its peer: not viewer bytes
    report_id="a1-1",
)
IX_REPORT = report(
    row("10.1.2.0/24", 3, 3000),
    row("10.2.5.0/24", 4, 4000, errors=2),
    row("192.0.2.0/24", 1, 999),  # no partner's route covers it
    row("2001:db8:ffff::/48", 1, 1),
)
B1_REPORT = report(row("10.2.5.0/24", 6, 16_000))


def post_reports(env: Env, ix_attributed: int = 2) -> None:
    out = env.report("a1", A1_REPORT)
    assert out == {
        "ok": True,
        "rows": 3,
        "attributed": 3,
        "unattributed": 0,
        "day": TODAY,
        "duplicate": False,
        "site_id": "a-par",
        "source_kind": "embedded",
    }
    out = env.report("ix1", IX_REPORT)
    assert (out["attributed"], out["source_kind"]) == (ix_attributed, "ix")
    assert out["unattributed"] == 4 - ix_attributed
    assert env.report("b1", B1_REPORT)["source_kind"] == "pni"
    again = env.report("a1", A1_REPORT)  # a retry after a lost answer: same report id
    assert again["duplicate"] is True


def test_traffic_reports_make_offload_and_bytes_by_source_per_partner(env: Env) -> None:
    post_reports(env)
    a = env.traffic("isp-a")
    assert (a["partner"], a["days"], a["first_date"], a["last_date"]) == ("isp-a", 1, TODAY, TODAY)
    (day,) = a["daily"]
    assert day["date"] == TODAY
    # ISP A: 7000 B from its embedded site, 3000 B from the IX -> 0.7
    assert day["bytes_by_source"] == {"embedded": 7000, "pni": 0, "ix": 3000, "origin": 0}
    assert day["requests_by_source"] == {"embedded": 12, "pni": 0, "ix": 3, "origin": 0}
    assert day["viewer"] == {"requests": 15, "bytes": 10_000, "errors_5xx": 1}
    assert day["offload_ratio"] == 0.7
    assert day["fill"] == {"requests": 1, "bytes": 50_000, "errors_5xx": 0}
    assert day["fill_bytes_by_source"]["embedded"] == 50_000
    sites = {s["site_id"]: s for s in day["sites"]}
    assert sites["a-par"]["bytes"] == 7000 and sites["a-par"]["byte_share"] == 0.7
    assert sites["ix-fra"]["bytes"] == 3000 and sites["ix-fra"]["byte_share"] == 0.3
    assert a["total"]["offload_ratio"] == 0.7 and a["total"]["date"] is None
    # ISP B: 16000 B over its PNI, 4000 B from the IX -> nothing embedded
    b = env.traffic("isp-b")["daily"][0]
    assert b["bytes_by_source"] == {"embedded": 0, "pni": 16_000, "ix": 4000, "origin": 0}
    assert b["viewer"] == {"requests": 10, "bytes": 20_000, "errors_5xx": 2}
    assert b["offload_ratio"] == 0.0


def test_decisions_misses_and_caching_efficiency_per_site(env: Env) -> None:
    assert env.play("10.1.2.3") == "a-par"
    assert env.play("10.1.7.7") == "a-par"
    for aid in ("a1", "a2"):  # ISP A's site loses the title: its clients go to the IX
        env.beat(aid, {"inventory": {"kind": "full", "seq": 2, "titles": {}}})
    assert env.play("10.1.2.3") == "ix-fra"
    assert env.play("10.2.0.9") == "b-lys"
    post_reports(env)
    day = env.traffic("isp-a")["daily"][0]
    assert day["decisions"] == 3
    assert day["by_outcome"] == {
        "embedded": 2,
        "pni": 0,
        "ix": 0,
        "origin": 0,
        "content_miss": 1,
        "health_miss": 0,
    }
    assert day["misses"] == {"content_miss": 1, "health_miss": 0}
    sites = {s["site_id"]: s for s in day["sites"]}
    assert (sites["a-par"]["served"], sites["a-par"]["content_misses"]) == (2, 1)
    assert sites["a-par"]["caching_efficiency"] == pytest.approx(2 / 3)
    assert sites["a-par"]["kind"] == "embedded"
    assert (sites["ix-fra"]["served"], sites["ix-fra"]["caching_efficiency"]) == (1, 1.0)
    b = env.traffic("isp-b")["daily"][0]
    assert b["decisions"] == 1 and b["by_outcome"]["pni"] == 1
    assert b["misses"] == {"content_miss": 0, "health_miss": 0}


def test_days_window_and_persistence_across_a_restart(env: Env) -> None:
    post_reports(env)
    env.play("10.1.2.3")
    env.clock.advance(86_400)  # the next UTC day
    env.report("a1", report(row("10.1.2.0/24", 1, 500), at=env.clock()))
    env.report("ix1", report(row("10.1.2.0/24", 1, 500), at=env.clock()))
    env.plane.close()  # counts to the database; a new process reads them back
    env.plane = make_plane(env.root, env.clock, **env.db)
    env.clients.clear()
    t = env.traffic("isp-a", days=3)
    assert [d["date"] for d in t["daily"]] == ["2027-01-14", TODAY, "2027-01-16"]
    assert [d["offload_ratio"] for d in t["daily"]] == [None, 0.7, 0.5]
    assert [d["viewer"]["bytes"] for d in t["daily"]] == [0, 10_000, 1000]
    assert [d["decisions"] for d in t["daily"]] == [0, 1, 0]
    total = t["total"]
    assert total["bytes_by_source"] == {"embedded": 7500, "pni": 0, "ix": 3500, "origin": 0}
    assert total["offload_ratio"] == 7500 / 11_000
    assert total["by_outcome"]["embedded"] == 1


def test_unknown_partner_is_404_and_bad_days_422(env: Env) -> None:
    r = env.client().get("/v1/partners/isp-zz/traffic")
    assert r.status_code == 404 and "isp-zz" in r.json()["detail"]
    assert env.client().get("/v1/partners/isp-a/traffic?days=0").status_code == 422
    assert env.client().get("/v1/partners/isp-a/traffic?days=367").status_code == 422


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"period_start": 10, "period_end": 5, "rows": []}, "period_end is before"),
        (report(row("10.1.2.3/24", 1, 1)), "host bits"),
        (report(row("10.1.2.0/25", 1, 1)), "longer than /24"),
        (report(row("2001:db8::/64", 1, 1)), "longer than /48"),
        (report(row("not-a-net", 1, 1)), "rows.0.net"),
        (report(row("10.1.2.0/24", 1, 1, kind="other")), "rows.0.kind"),
        (report(row("10.1.2.0/24", -1, 1)), "rows.0.requests"),
        (report(row("10.1.2.0/24", 1, 1, errors=2)), "exceeds requests"),
        (report({**row("10.1.2.0/24", 1, 1), "status": 200}), "rows.0.status"),
        ({"period_start": 0, "period_end": 1, "rows": "x"}, "rows"),
    ],
)
def test_malformed_reports_are_422(env: Env, body: dict[str, Any], where: str) -> None:
    r = env.client().post("/v1/appliances/a1/traffic", json=body, headers=env.auth("a1"))
    assert r.status_code == 422, r.text
    details = r.json()["detail"]
    text = " ".join(f"{'.'.join(str(x) for x in d['loc'])} {d['msg']}" for d in details)
    assert where in text, text


def test_reports_need_the_appliance_credential(env: Env) -> None:
    c = env.client()
    assert c.post("/v1/appliances/a1/traffic", json=A1_REPORT).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert c.post("/v1/appliances/a1/traffic", json=A1_REPORT, headers=bad).status_code == 401
    assert (
        c.post("/v1/appliances/zz/traffic", json=A1_REPORT, headers=env.auth("a1")).status_code
        == 404
    )
    assert env.traffic("isp-a")["daily"][0]["viewer"]["bytes"] == 0


# --- /metrics ------------------------------------------------------------------------------------


def _bgp_full(prefix: str) -> dict[str, Any]:
    """A relay's full report: one established session announcing ``prefix``."""
    return {
        "kind": "full",
        "seq": 1,
        "base_seq": None,
        "sent_at": NOW,
        "session": {
            "neighbor": "127.0.0.2",
            "local_as": 65001,
            "ebgp": True,
            "remote_as": 64502,
            "state": "established",
            "peer_router_id": "10.0.0.2",
            "received": 1,
            "accepted": 1,
        },
        "announce": [
            {
                "prefixes": [prefix],
                "next_hop": "192.0.2.1",
                "as_path": [64502],
                "origin": "igp",
            }
        ],
        "withdraw": [],
    }


def scrape(env: Env) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = env.client().get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def m(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


def test_metrics_read_the_plane_at_scrape_time(env: Env) -> None:
    env.play("10.1.2.3")
    env.play("10.2.0.9")
    for aid in ("a1", "a2"):
        env.beat(aid, {"inventory": {"kind": "full", "seq": 2, "titles": {}}})
    env.play("10.1.2.3")  # a content miss at a-par: the IX serves
    env.beat("b1", {"disk": {"used_bytes": 12_345, "free_bytes": 67_890}})
    r = env.client().post(
        "/v1/appliances/b1/routes", json=_bgp_full("203.0.113.0/24"), headers=env.auth("b1")
    )
    assert r.status_code == 200, r.text
    post_reports(env, ix_attributed=1)
    # ISP B's router announces 203.0.113.0/24 to b1: those clients are ISP B's now
    env.report("ix1", report(row("203.0.113.0/24", 2, 2000), report_id="ix-2"))
    seg = env.title.manifest.renditions[0].segments[0].file.name
    init = env.title.manifest.renditions[0].init.name
    fill = {
        "state": "idle",
        "transfers": [
            {"title_id": "t1", "name": seg, "source_id": "a1", "bytes": 1000, "completed_at": NOW},
            {"title_id": "t1", "name": init, "source_id": "o1", "bytes": 500, "completed_at": NOW},
        ],
    }
    r = env.client().post("/v1/appliances/a2/fill/report", json=fill, headers=env.auth("a2"))
    assert r.status_code == 200, r.text
    statuses = [a["status"] for a in env.client().get("/v1/appliances").json()]
    env.clock.advance(2.5)

    got = scrape(env)
    assert got[m("localcast_control_playback_requests_total")] == 3
    outcome = "localcast_control_steering_decisions_total"
    assert {o: got[m(outcome, outcome=o)] for o in ("embedded", "pni", "ix", "origin")} == {
        "embedded": 1,
        "pni": 1,
        "ix": 0,
        "origin": 0,
    }
    assert got[m(outcome, outcome="content_miss")] == 1
    assert got[m(outcome, outcome="health_miss")] == 0
    assert got[m("localcast_control_steering_content_misses_total", site="a-par")] == 1
    # appliances: held statuses as the API shows them, liveness, heartbeat age, disk
    for level in ("ok", "warning", "error", "unknown"):
        assert got[m("localcast_control_appliances", status=level)] == statuses.count(level)
    assert sum(got[m("localcast_control_appliances", status=s)] for s in set(statuses)) == 5
    b1 = {"appliance": "b1", "site": "b-lys"}
    assert got[m("localcast_control_appliance_up", **b1)] == 1
    assert got[m("localcast_control_appliance_heartbeat_age_seconds", **b1)] == 2.5
    assert got[m("localcast_control_appliance_disk_used_bytes", **b1)] == 12_345
    assert got[m("localcast_control_appliance_disk_free_bytes", **b1)] == 67_890
    # BGP: b1's session and its Adj-RIB-In; the configured prefixes of TOPOLOGY (4)
    sess = {"appliance": "b1", "neighbor": "127.0.0.2"}
    assert got[m("localcast_control_bgp_session_state", state="established", **sess)] == 1
    assert got[m("localcast_control_bgp_session_state", state="idle", **sess)] == 0
    assert got[m("localcast_control_bgp_session_routes_accepted", **sess)] == 1
    assert got[m("localcast_control_appliance_routes", **b1)] == 1
    assert m("localcast_control_appliance_routes", appliance="a1", site="a-par") not in got
    assert got[m("localcast_control_route_table_routes", source="configured")] == 4
    assert got[m("localcast_control_route_table_routes", source="learned")] == 1
    # fill transfers by source kind
    fill_bytes = "localcast_control_fill_bytes_total"
    assert got[m(fill_bytes, appliance="a2", source_kind="peer")] == 1000
    assert got[m(fill_bytes, appliance="a2", source_kind="origin")] == 500
    # traffic: since start, and today (the 203.0.113.0/24 bytes are ISP B's, over the IX);
    # b-lys speaks BGP now: its configured 10.2.0.0/16 no longer counts, so the IX's 10.2.5.0/24
    # bytes reported after the BGP report (all of them, here) belong to no partner
    assert got[m("localcast_control_traffic_reports_total")] == 4
    tb = "localcast_control_traffic_bytes_total"
    assert got[m(tb, partner="isp-a", kind="viewer", source_kind="embedded")] == 7000
    assert got[m(tb, partner="isp-a", kind="fill", source_kind="embedded")] == 50_000
    assert got[m(tb, partner="isp-a", kind="viewer", source_kind="ix")] == 3000
    assert got[m(tb, partner="isp-b", kind="viewer", source_kind="ix")] == 2000
    assert got[m(tb, partner="", kind="viewer", source_kind="ix")] == 4000 + 999 + 1
    assert got[m(tb, partner="", kind="viewer", source_kind="pni")] == 16_000
    today = "localcast_control_partner_bytes_today"
    assert got[m(today, partner="isp-a", source_kind="embedded")] == 7000
    assert got[m(today, partner="isp-a", source_kind="ix")] == 3000
    assert got[m(today, partner="isp-b", source_kind="ix")] == 2000
    ratio = "localcast_control_partner_offload_ratio"
    assert got[m(ratio, partner="isp-a")] == 0.7
    assert got[m(ratio, partner="isp-b")] == 0.0
    assert m(ratio, partner="") not in got


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_prints_the_partner_figures_from_the_database(tmp_path: Path) -> None:
    clock = FakeClock(time.time())  # the CLI's plane counts days from the real clock
    plane = make_plane(tmp_path, clock)
    title = synthetic_title("t1")
    creds = provision(plane, title)
    e = Env(tmp_path, plane, clock, title, creds)
    bring_up(e.client(), creds, {a: [title] for a in ALL})
    e.report("a1", report(row("10.1.2.0/24", 3, 3000), at=clock()))
    e.report("ix1", report(row("10.1.2.0/24", 1, 1000), at=clock()))
    plane.close()
    args = ["--home", str(tmp_path / "home"), "control", "traffic", "isp-a", "--days", "2"]
    result = CliRunner().invoke(cli_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["days"] == 2 and len(doc["daily"]) == 2
    assert doc["total"]["bytes_by_source"]["embedded"] == 3000
    assert doc["total"]["offload_ratio"] == 0.75
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert "partner isp-a" in result.output and "75.0%" in result.output
    assert "a-par (embedded): 3.0 kB (75.0% of the bytes)" in result.output
    result = CliRunner().invoke(cli_app, [*args[:4], "nobody"])
    assert result.exit_code == 1 and "unknown partner 'nobody'" in result.output


# --- the reporter (in process) -------------------------------------------------------------------


def test_the_reporter_posts_the_workers_counts(env: Env) -> None:
    directory = env.root / "run" / "traffic"
    store = env.root / "store-a1"
    env.title.write(store, with_manifest=False)
    app = create_app(env.plane, background_refresh=False)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as http:
            rep = Reporter(
                http,
                "http://control",
                "a1",
                env.creds["a1"],
                store,
                0.5,
                env.clock,
                LoadSample,
                traffic_dir=directory,
            )
            worker = TrafficCounter(directory)  # a data plane worker beside it
            token = b"/lc1~k1~1900000000~1~-~sig/t1/x.m4s"
            worker.add("10.1.2.3", token, 200, 4000, NOW - 2)
            worker.add("10.1.2.4", token, 502, 100, NOW - 1)
            worker.write(NOW)
            await rep.step()
            assert rep.trouble is None and rep.traffic is not None
            assert rep.traffic.sent_reports == 1 and rep.traffic.unsent == []
            await rep.step()  # nothing new: nothing sent
            assert rep.traffic.sent_reports == 1

    asyncio.run(scenario())
    day = env.traffic("isp-a")["daily"][0]
    assert day["viewer"] == {"requests": 2, "bytes": 4100, "errors_5xx": 1}
    assert day["bytes_by_source"]["embedded"] == 4100
