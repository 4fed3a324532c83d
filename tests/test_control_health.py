"""Appliance health in the control plane, in process (FastAPI TestClient, hand-moved clock).

Status from heartbeats and from time alone (the refresh tick), with its
reasons and its hysteresis; turn-up checks against real appliance data
planes (``serve_in_thread``) gating steering, then sticky across a control
plane restart; drain / disable / enable through the API and the CLI and
what they do to new sessions and to in-flight steering manifests; a
saturated site spilling to the next one as a health miss; alerts per
partner.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from control_fixtures import (
    NOW,
    TOPOLOGY,
    FakeClock,
    SyntheticTitle,
    appliance,
    beat,
    bring_up,
    client_for,
    make_plane,
    provision,
    site,
    snapshot,
    synthetic_title,
)
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from localcast.appliance.launch import serve_in_thread
from localcast.appliance.settings import ApplianceSettings
from localcast.cli import app as cli_app
from localcast.config import load_config
from localcast.control import repository as repo
from localcast.control.db import alembic_config, make_engine, migrate, session_factory
from localcast.control.models import Base, UTCDateTime
from localcast.control.prober import probe_client, probe_round
from localcast.control.service import ControlPlane
from localcast.control.steering_stats import HEALTH_MISS
from localcast.control.steering_stats import outcome as steering_outcome
from localcast.control.topology import parse_topology
from localcast.core.fleet import SERVING, FleetSnapshot, Health, SiteKind, SteeringState
from localcast.core.maintenance import begin
from localcast.core.steering import rerank, steer

ALL = ("a1", "a2", "b1", "ix1", "o1")
PLAY = {"title_id": "t1", "profile_id": "p1", "device": {"codecs": ["avc1", "mp4a"]}}
ADMIN = "health-admin-token-0123"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@dataclass
class Env:
    plane: ControlPlane
    clock: FakeClock
    title: SyntheticTitle
    creds: dict[str, str]
    root: Path
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, ip: str = "10.1.2.3") -> Any:
        if ip not in self.clients:
            self.clients[ip] = client_for(self.plane, ip)
            self.clients[ip].headers.update(AUTH)  # an operator's tools read with the token
        return self.clients[ip]

    def up(self, *aids: str, interval_s: float = 5.0) -> None:
        bring_up(self.client(), self.creds, {a: [self.title] for a in aids}, interval_s)

    def beat(self, aid: str, **body: Any) -> dict[str, Any]:
        r = self.client().post(
            f"/v1/appliances/{aid}/heartbeat",
            json=body,
            headers={"Authorization": f"Bearer {self.creds[aid]}"},
        )
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def appliance(self, aid: str) -> dict[str, Any]:
        r = self.client().get(f"/v1/appliances/{aid}", headers=AUTH)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def play(self, ip: str = "10.1.2.3") -> dict[str, Any]:
        r = self.client(ip).post("/v1/playback", json=PLAY)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def excluded(self, ip: str = "10.1.2.3") -> dict[str, str]:
        d = self.client(ip).get("/v1/steering/explain", params={"title_id": "t1"}).json()
        return {x["appliance_id"]: x["reason"] for x in d["excluded"]}


def make_env(root: Path, clock: FakeClock, **settings: Any) -> Env:
    plane = make_plane(root, clock, admin_token=ADMIN, **settings)
    title = synthetic_title("t1")
    creds = provision(plane, title)
    return Env(plane, clock, title, creds, root)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = make_env(tmp_path, FakeClock())
    yield e
    e.plane.close()


def ids(body: dict[str, Any]) -> list[str]:
    return [p["appliance_id"] for p in body["pathways"]]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def priority(env: Env, session: dict[str, Any]) -> list[str]:
    out: list[str] = env.client().get(path_of(session["steering_url"])).json()["PATHWAY-PRIORITY"]
    return out


def components(a: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in a["components"]}


# --- the pure steering rules over a steering state ---------------------------------------------


def pure_fleet(**steering: SteeringState) -> FleetSnapshot:
    """ISP A's site (a1, a2), an IX (ix1), the origin (o1); ``steering`` per appliance."""
    sites = [
        site("a", SiteKind.EMBEDDED, ("10.1.0.0/16",), "isp-a"),
        site("ix", SiteKind.IX),
        site("origin", SiteKind.ORIGIN),
    ]
    apps = [
        appliance("a1", "a"),
        appliance("a2", "a"),
        appliance("ix1", "ix"),
        appliance("o1", "origin"),
    ]
    return snapshot(sites, [replace(a, steering=steering.get(a.id, SERVING)) for a in apps])


DRAINED = SteeringState(False, True, "drained, 3h left")
DISABLED = SteeringState(False, False, "disabled, 3h left")
DEAD = SteeringState(False, False, "heartbeat error: dead", health=True)


def test_steering_states_refuse_new_sessions_with_their_reason() -> None:
    snap = pure_fleet(a1=DRAINED, a2=DEAD)
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert [p.appliance_id for p in d.pathways] == ["ix1", "o1"]
    why = {x.appliance_id: x.reason for x in d.excluded}
    assert why == {"a1": "drained, 3h left", "a2": "health miss: heartbeat error: dead"}
    assert steering_outcome(d).label == HEALTH_MISS  # a2 counts, the drain does not


def test_rerank_keeps_a_drained_pathway_last_and_drops_a_disabled_one() -> None:
    session = ["a1", "a2", "ix1", "o1"]
    again = rerank(pure_fleet(a1=DRAINED), "10.1.2.3", "t1", session, NOW)
    assert again.order == ("a2", "ix1", "o1", "a1") and again.dropped == ()
    again = rerank(pure_fleet(a1=DISABLED), "10.1.2.3", "t1", session, NOW)
    assert again.order == ("a2", "ix1", "o1")
    assert [(x.appliance_id, x.reason) for x in again.dropped] == [("a1", "disabled, 3h left")]
    # nowhere else to go: a dropped pathway stays, last
    everyone = {aid: DISABLED for aid in session}
    again = rerank(pure_fleet(**everyone), "10.1.2.3", "t1", session, NOW)
    assert again.order == tuple(session) and again.dropped == ()


def test_a_disabled_origin_is_no_last_resort() -> None:
    dead = Health(5.0, NOW - 60, NOW - 100, 10)
    snap = pure_fleet(a1=DISABLED, a2=DISABLED, ix1=DISABLED)
    snap = snapshot(
        list(snap.sites.values()),
        [
            replace(a, health=dead, steering=DEAD) if a.id == "o1" else a
            for a in snap.appliances.values()
        ],
    )
    assert [p.appliance_id for p in steer(snap, "10.1.2.3", "t1", NOW).pathways] == ["o1"]
    apps = [replace(a, steering=DISABLED) if a.id == "o1" else a for a in snap.appliances.values()]
    assert steer(snapshot(list(snap.sites.values()), apps), "10.1.2.3", "t1", NOW).pathways == ()


# --- status: heartbeats and time -------------------------------------------------------------


def test_a_silent_appliance_turns_error_by_time_alone_and_comes_back_after_hysteresis(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="localcast.control.health")
    env.up(*ALL)
    a1 = env.appliance("a1")
    assert a1["status"] == "ok" and a1["reasons"] == []
    assert components(a1)["heartbeat"]["level"] == "ok"
    assert a1["steering"] == {
        "new_sessions": True,
        "keep_in_flight": True,
        "reason": "serving: status ok",
    }
    for aid in ("a2", "b1", "ix1", "o1"):
        env.beat(aid)
    env.clock.advance(11)  # > 2 intervals: late
    for aid in ("a2", "b1", "ix1", "o1"):
        env.beat(aid)
    a1 = env.appliance("a1")
    assert a1["status"] == "warning" and a1["reason"].startswith("late: last heartbeat 11.0 s ago")
    assert a1["steering"]["new_sessions"]  # late is for people, steering still uses it
    env.clock.advance(5)  # 16 s: dead (3 x 5 s), with no event but the refresh tick
    for aid in ("a2", "b1", "ix1", "o1"):
        env.beat(aid)
    snap = env.plane.health.refresh()
    steer = snap.appliances["a1"].steering
    assert (steer.new_sessions, steer.keep_in_flight) == (False, False)
    assert steer.reason.startswith("heartbeat error: dead: no heartbeat for 16.0 s")
    a1 = env.appliance("a1")
    assert a1["status"] == "error" and not a1["alive"]
    assert a1["reason"] == "dead: no heartbeat for 16.0 s (window 3 x 5 s)"
    assert a1["reasons"] == ["heartbeat error: dead: no heartbeat for 16.0 s (window 3 x 5 s)"]
    assert a1["since"] == env.clock.t
    assert any(
        "appliance a1 status warning -> error: dead: no heartbeat" in r.getMessage()
        for r in caplog.records
    )
    assert "a1" not in ids(env.play())
    # it beats again (no new registration): alive after two beats, Error held for 2 x 5 s
    env.beat("a1")
    env.clock.advance(1)
    env.beat("a1")
    a1 = env.appliance("a1")
    assert a1["alive"] and a1["status"] == "error"
    hb = components(a1)["heartbeat"]
    assert hb["observed"] == "ok" and "better for 1.0 of 10 s" in hb["reason"]
    assert "a1" not in ids(env.play())
    env.clock.advance(5)
    env.beat("a1")
    assert env.appliance("a1")["status"] == "error"  # better for 5 of 10 s
    env.clock.advance(5)
    env.beat("a1")
    a1 = env.appliance("a1")
    assert a1["status"] == "ok" and a1["steering"]["new_sessions"]
    assert "a1" in ids(env.play())
    assert any("appliance a1 status error -> ok" in r.getMessage() for r in caplog.records)


def test_a_registration_starts_afresh_and_waits_for_the_first_heartbeat(env: Env) -> None:
    c = env.client()
    auth = {"Authorization": f"Bearer {env.creds['a1']}"}
    assert c.post("/v1/appliances/a1/register", headers=auth).status_code == 200
    env.clock.advance(1)
    a1 = env.appliance("a1")  # the tick does not call the registration "recovering"
    assert a1["status"] == "unknown" and a1["reason"] == "registered: its first heartbeat is due"
    assert a1["steering"]["reason"] == "status unknown: never heard from"
    env.beat("a1")
    assert env.appliance("a1")["status"] == "ok"
    env.clock.advance(20)  # dead, then it restarts: registering drops the held Error
    assert env.appliance("a1")["status"] == "error"
    assert c.post("/v1/appliances/a1/register", headers=auth).status_code == 200
    assert env.beat("a1")["status"] == "ok"
    assert env.appliance("a1")["steering"]["new_sessions"]
    # registered and never heard from again: dead once the window has passed
    assert c.post("/v1/appliances/a1/register", headers=auth).status_code == 200
    env.clock.advance(16)
    a1 = env.appliance("a1")
    assert a1["status"] == "error" and a1["reason"].startswith("dead: no heartbeat for 16.0 s")


def test_components_from_the_heartbeat_disk_serving_and_load(env: Env) -> None:
    env.up(*ALL)
    gib = 1 << 30
    out = env.beat("a1", disk={"used_bytes": 95 * gib, "free_bytes": 5 * gib})
    assert out["status"] == "warning" and out["reason"].startswith("95.0 % used")
    a1 = env.appliance("a1")
    assert components(a1)["disk"]["level"] == "warning"
    assert a1["steering"]["new_sessions"]  # a full disk is for people, not for clients
    # serving errors: 5 % of 5xx or more is Error, and the appliance leaves steering
    serving = {"requests": 200, "errors_5xx": 20, "window_s": 60}
    out = env.beat("a2", serving=serving)
    assert out["status"] == "error"
    assert out["reason"] == "20 of 200 requests 5xx (10.0 %) in the last 60 s"
    assert env.excluded()["a2"].startswith("health miss: serving error: 20 of 200 requests 5xx")
    bad = env.client().post(
        "/v1/appliances/a2/heartbeat",
        json={"serving": {"requests": 1, "errors_5xx": 2, "window_s": 60}},
        headers={"Authorization": f"Bearer {env.creds['a2']}"},
    )
    assert bad.status_code == 422 and "errors_5xx must not exceed requests" in bad.text
    # load against capacity (10 Gbit/s): above 85 % a warning, above 100 % no new sessions
    out = env.beat("b1", load={"egress_bps": 9e9})
    assert out["status"] == "warning" and "above 85.0 %" in out["reason"]
    out = env.beat("b1", load={"egress_bps": 12e9})
    assert out["status"] == "error" and out["reason"].startswith("over capacity: 12.00 of 10")
    b1 = env.appliance("b1")
    assert b1["steering"]["new_sessions"] is False and b1["steering"]["keep_in_flight"] is True
    assert env.excluded("10.2.3.4")["b1"].startswith("health miss: load error: over capacity")


def test_hysteresis_through_the_api_holds_a_flapping_component(env: Env) -> None:
    env.up(*ALL)
    bad = {"requests": 100, "errors_5xx": 10, "window_s": 5}
    good = {"requests": 100, "errors_5xx": 0, "window_s": 5}
    levels = []
    for body in (bad, good, bad, good, good):
        env.clock.advance(4)
        for aid in ALL:
            env.beat(aid, **({"serving": body} if aid == "a1" else {}))
        levels.append(env.appliance("a1")["status"])
    # worse at once, better only after 2 x 5 s of better observations, counted afresh
    assert levels == ["error", "error", "error", "error", "error"]
    serving = components(env.appliance("a1"))["serving"]
    assert serving["level"] == "error" and serving["observed"] == "ok"
    assert "better for 4.0 of 10 s" in serving["reason"]  # good since t+16, now t+20
    for want in ("error", "ok"):  # good for 8 s, then 12 s
        env.clock.advance(4)
        for aid in ALL:
            env.beat(aid, **({"serving": good} if aid == "a1" else {}))
        a1 = env.appliance("a1")
        assert a1["status"] == want, a1
    assert a1["since"] == env.clock.t


# --- turn-up ---------------------------------------------------------------------------------


def probe(plane: ControlPlane) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with probe_client(plane) as http:
            return await probe_round(plane, http)

    return asyncio.run(go())


def checks(a: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["check"]: (c["outcome"], c["reason"]) for c in a["turnup"]["checks"]}


def test_turnup_gates_steering_until_probes_pass_then_sticks_across_a_restart(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    root = tmp_path / "cp"
    plane = make_plane(root, clock, admin_token=ADMIN, turnup_required=True)
    title = synthetic_title("t1")
    keys = load_config(root / "home").paths.keys
    stores = {aid: tmp_path / f"store-{aid}" for aid in ("a1", "a2", "b1")}
    for store in stores.values():
        store.mkdir()
    title.write(stores["a1"], with_manifest=False)
    servers = {
        aid: serve_in_thread(ApplianceSettings(store=store, keys=keys, port=0, workers=1))
        for aid, store in stores.items()
    }
    try:
        topology = json.loads(json.dumps(TOPOLOGY))
        for a in topology["appliances"]:
            if a["id"] in servers:
                a["url"] = servers[a["id"]].url
        creds = plane.apply_topology(parse_topology(topology)).credentials
        plane.import_manifests([title.manifest])
        c = client_for(plane, "10.1.2.3")
        c.headers.update(AUTH)  # an operator's tool: reads the fleet with the admin token
        # a1 holds t1, a2 says it does but its store is empty, b1 holds nothing, ix1 and o1
        # have no data plane behind their URLs
        bring_up(c, creds, {"a1": [title], "a2": [title], "b1": [], "ix1": [title], "o1": [title]})
        plane.plan_fills()
        a1 = c.get("/v1/appliances/a1").json()
        assert a1["turnup"]["required"] and not a1["turnup"]["turned_up"]
        assert checks(a1)["reachable"] == ("pending", "not probed yet")
        assert a1["steering"]["reason"] == "not turned up"
        r = c.post("/v1/playback", json=PLAY)
        assert r.status_code == 503  # nobody is turned up
        explain = c.get("/v1/steering/explain", params={"title_id": "t1"}).json()
        assert {x["appliance_id"]: x["reason"] for x in explain["excluded"]}["a1"] == (
            "not turned up"
        )

        results = probe(plane)
        assert sorted(results) == list(ALL)
        a1 = c.get("/v1/appliances/a1").json()
        assert a1["turnup"]["turned_up"] and a1["turnup"]["turned_up_at"] == clock.t
        assert checks(a1)["reachable"][0] == "pass" and "HTTP 404" in checks(a1)["reachable"][1]
        assert checks(a1)["content"][0] == "pass" and "HTTP 200" in checks(a1)["content"][1]
        assert checks(a1)["bgp"] == ("pass", "not required: the site does not speak BGP")
        assert checks(a1)["fill"][0] == "pass"
        a2 = c.get("/v1/appliances/a2").json()
        assert not a2["turnup"]["turned_up"]
        outcome, reason = checks(a2)["content"]
        assert outcome == "fail" and reason.endswith("HTTP 404")
        b1 = c.get("/v1/appliances/b1").json()
        assert checks(b1)["reachable"][0] == "pass"
        assert checks(b1)["content"] == (
            "pending",
            "holds no title complete yet: passes once it holds one",
        )
        ix1 = c.get("/v1/appliances/ix1").json()
        outcome, reason = checks(ix1)["reachable"]
        assert outcome == "fail" and "ConnectError" in reason
        assert ids(c.post("/v1/playback", json=PLAY).json()) == ["a1"]

        # b1 gets the title: the next round probes its content and turns it up
        title.write(stores["b1"], with_manifest=False)
        r = c.post(
            "/v1/appliances/b1/heartbeat",
            json={"inventory": {"kind": "full", "seq": 2, "titles": {"t1": sorted(title.files)}}},
            headers={"Authorization": f"Bearer {creds['b1']}"},
        )
        assert r.status_code == 200
        clock.advance(1)
        assert "b1" in probe(plane) and "a1" not in probe(plane)  # turned up: not probed again
        b1 = c.get("/v1/appliances/b1").json()
        assert b1["turnup"]["turned_up"] and checks(b1)["content"][0] == "pass"
        assert ids(client_for(plane, "10.2.3.4").post("/v1/playback", json=PLAY).json()) == ["b1"]
        with plane.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, turned_up_at FROM appliances")).all()
        stored: dict[str, Any] = {aid: at for aid, at in rows}
        assert stored["a1"] is not None and stored["b1"] is not None and stored["a2"] is None
    finally:
        for srv in servers.values():
            srv.stop()
        plane.close()

    # the data planes are gone and the control plane restarts: turn-up is sticky, nothing
    # is probed again for a1 (its heartbeats resume; the probes would fail now)
    clock.advance(2)
    restarted = make_plane(root, clock, admin_token=ADMIN, turnup_required=True)
    try:
        c = client_for(restarted, "10.1.2.3")
        c.headers.update(AUTH)
        for aid in ("a1", "a2"):
            beat(c, creds, aid)
        a1 = c.get("/v1/appliances/a1").json()
        assert a1["turnup"]["turned_up"] and a1["status"] == "ok"
        assert not c.get("/v1/appliances/a2").json()["turnup"]["turned_up"]
        assert [a.id for a in restarted.health.probe_targets(restarted.snapshot)] == [
            "a2",
            "ix1",
            "o1",
        ]
        assert ids(c.post("/v1/playback", json=PLAY).json()) == ["a1"]
    finally:
        restarted.close()


def test_turnup_off_lets_an_unprobed_appliance_serve(env: Env) -> None:
    env.up("a1")
    a1 = env.appliance("a1")
    assert not a1["turnup"]["required"] and not a1["turnup"]["turned_up"]
    assert ids(env.play()) == ["a1"]


# --- drain, disable, enable ------------------------------------------------------------------


def test_drain_keeps_in_flight_pathways_last_and_gives_no_new_sessions(env: Env) -> None:
    env.up(*ALL)
    session = env.play()
    order = ids(session)
    best = order[0]
    assert priority(env, session) == order
    r = env.client().post(
        f"/v1/appliances/{best}/maintenance",
        json={"mode": "drain", "duration": "3h", "reason": "disk swap"},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["maintenance"]["mode"] == "drain" and body["maintenance"]["active"]
    assert body["maintenance"]["until"] == env.clock.t + 3 * 3600
    assert body["maintenance"]["description"] == "drained, 3h left: disk swap"
    assert body["steering"] == {
        "new_sessions": False,
        "keep_in_flight": True,
        "reason": "drained, 3h left: disk swap",
    }
    # in flight: its pathway stays, ranked last; new sessions: not offered
    assert priority(env, session) == [*order[1:], best]
    assert best not in ids(env.play())
    assert env.excluded()[best] == "drained, 3h left: disk swap"
    a = env.appliance(best)
    assert a["maintenance"]["active"] and a["steering"]["keep_in_flight"]
    assert a["drained"] is False  # the topology's flag is another thing (drained for good)


def test_disable_drops_the_pathway_and_enable_restores_it(env: Env) -> None:
    env.up(*ALL)
    session = env.play()
    order = ids(session)
    best = order[0]
    r = env.client().post(
        f"/v1/appliances/{best}/maintenance",
        json={"mode": "disable", "duration": "2d", "reason": "rma"},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    assert r.json()["steering"]["keep_in_flight"] is False
    assert priority(env, session) == order[1:]  # dropped: players move now
    info = env.client().get(path_of(session["steering_url"]).rsplit("/", 1)[0]).json()
    assert [d["appliance_id"] for d in info["dropped"]] == [best]
    assert info["dropped"][0]["reason"] == "disabled, 2d left: rma"
    assert best not in ids(env.play())
    # enable: back at once, in its place
    r = env.client().delete(f"/v1/appliances/{best}/maintenance", headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["maintenance"]["active"] is False
    assert body["maintenance"]["until"] == env.clock.t
    assert body["steering"]["new_sessions"] is True
    assert priority(env, session) == order
    assert ids(env.play()) == order
    r = env.client().delete(f"/v1/appliances/{best}/maintenance", headers=AUTH)
    assert r.status_code == 200 and r.json()["maintenance"] is None  # nothing to end


def test_maintenance_ends_by_itself_and_survives_a_restart(env: Env) -> None:
    env.up(*ALL, interval_s=3600)  # hourly heartbeats: the test moves 3 hours on
    r = env.client().post(
        "/v1/appliances/a1/maintenance",
        json={"mode": "disable", "duration": "3h"},
        headers=AUTH,
    )
    assert r.status_code == 200
    restarted = make_plane(env.root, env.clock, admin_token=ADMIN)
    try:
        c = client_for(restarted)
        assert c.get("/v1/appliances/a1", headers=AUTH).json()["maintenance"]["mode"] == "disable"
        assert restarted.snapshot.appliances["a1"].steering.reason == "disabled, 3h left"
    finally:
        restarted.close()
    for _ in range(3):  # heartbeats go on for 3 hours
        env.clock.advance(3600)
        for aid in ALL:
            beat(env.client(), env.creds, aid)
    snap = env.plane.health.refresh()
    assert snap.appliances["a1"].steering.new_sessions
    a1 = env.appliance("a1")
    assert a1["maintenance"]["active"] is False and a1["maintenance"]["description"] == (
        "disable ended"
    )


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"mode": "drain", "duration": "2h"},
            "duration: duration 2h is too short: drain and disable last from 3h to 30d",
        ),
        (
            {"mode": "drain", "duration": "31d"},
            "duration: duration 31d is too long: drain and disable last from 3h to 30d",
        ),
        ({"mode": "disable", "duration": "soon"}, "duration: invalid duration 'soon'"),
    ],
)
def test_durations_outside_3h_to_30d_are_refused_with_a_clear_422(
    env: Env, body: dict[str, str], detail: str
) -> None:
    r = env.client().post("/v1/appliances/a1/maintenance", json=body, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["detail"].startswith(detail) and r.json()["field"] == "duration"
    assert env.appliance("a1")["maintenance"] is None


def test_maintenance_needs_the_admin_token_a_known_appliance_and_a_mode(env: Env) -> None:
    c = client_for(env.plane)  # no token
    body = {"mode": "drain", "duration": "6h"}
    assert c.post("/v1/appliances/a1/maintenance", json=body).status_code == 401
    assert c.delete("/v1/appliances/a1/maintenance").status_code == 401
    r = c.post("/v1/appliances/zz/maintenance", json=body, headers=AUTH)
    assert r.status_code == 404 and r.json()["detail"] == "unknown appliance 'zz'"
    assert c.delete("/v1/appliances/zz/maintenance", headers=AUTH).status_code == 404
    r = c.post("/v1/appliances/a1/maintenance", json={**body, "mode": "reboot"}, headers=AUTH)
    assert r.status_code == 422


def test_cli_drain_disable_enable(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.up(*ALL)
    seen: list[str] = []

    def client(**_kw: Any) -> Any:
        seen.append("client")
        return env.client()

    monkeypatch.setattr(httpx, "Client", client)
    home = ["--home", str(env.root / "cli-home")]
    url = ["--control-url", "http://control.test", "--admin-token", ADMIN]

    class Runner:  # the CLI points logging at the runner's stream, closed afterwards
        def invoke(self, app: Any, args: list[str]) -> Any:
            root = logging.getLogger()
            handlers, level = root.handlers[:], root.level
            try:
                return CliRunner().invoke(app, args)
            finally:
                root.handlers[:], root.level = handlers, level

    runner = Runner()
    out = runner.invoke(
        cli_app, [*home, "appliance", "drain", "a1", "--for", "1d", "--reason", "swap", *url]
    )
    assert out.exit_code == 0, out.output
    assert "a1: drained, 1d left: swap" in out.output
    assert "a1: takes no new sessions, in-flight sessions kept" in out.output
    assert env.plane.snapshot.appliances["a1"].steering.keep_in_flight
    out = runner.invoke(cli_app, [*home, "appliance", "disable", "a1", *url])
    assert out.exit_code == 0, out.output
    assert "a1: disabled, 6h left" in out.output and "in-flight sessions moved" in out.output
    out = runner.invoke(cli_app, [*home, "appliance", "drain", "a1", "--for", "1h", *url])
    assert out.exit_code == 2
    assert "HTTP 422: duration: duration 1h is too short" in out.output
    out = runner.invoke(cli_app, [*home, "appliance", "enable", "a1", *url])
    assert out.exit_code == 0, out.output
    assert "a1: takes new sessions, in-flight sessions kept" in out.output
    assert env.plane.snapshot.appliances["a1"].steering.new_sessions
    bad = ["--control-url", "http://control.test", "--admin-token", "wrong-token-000000"]
    out = runner.invoke(cli_app, [*home, "appliance", "drain", "a1", *bad])
    assert out.exit_code == 1 and "HTTP 401" in out.output
    assert len(seen) == 5


# --- a saturated site spills over: a health miss ----------------------------------------------


@pytest.mark.parametrize(
    ("egress_bps", "reason"),
    [
        (9.6e9, "health miss: saturated (9.60 of 10 Gbit/s)"),
        (12e9, "health miss: load error: over capacity: 12.00 of 10 Gbit/s (120.0 %)"),
    ],
)
def test_a_saturated_site_spills_to_the_next_site_and_counts_a_health_miss(
    env: Env, egress_bps: float, reason: str
) -> None:
    env.up(*ALL)
    for aid in ("a1", "a2"):
        env.beat(aid, load={"egress_bps": egress_bps})
    body = env.play()
    assert ids(body) == ["ix1", "o1"]  # the embedded site is full: the IX, then the origin
    excluded = env.excluded()
    assert excluded["a1"] == excluded["a2"] == reason
    stats = env.client().get("/v1/steering/stats").json()
    assert stats["outcomes"] == {"health_miss": 1} and stats["by_kind"] == {"ix": 1}
    assert ids(env.play("10.2.3.4"))[0] == "b1"  # another ISP's clients are not affected
    stats = env.client().get("/v1/steering/stats").json()
    assert stats["outcomes"] == {"health_miss": 1, "pni": 1}


# --- alerts ----------------------------------------------------------------------------------

PEER = "127.0.0.2"


def routes_report(seq: int, *prefixes: str, state: str = "established") -> dict[str, Any]:
    up = state == "established"
    groups = [
        {
            "prefixes": list(prefixes),
            "next_hop": "192.0.2.1",
            "as_path": [64501],
            "origin": "igp",
        }
    ]
    return {
        "kind": "full",
        "seq": seq,
        "base_seq": None,
        "session": {
            "neighbor": PEER,
            "local_as": 65001,
            "ebgp": True,
            "remote_as": 64501,
            "state": state,
            "peer_router_id": "10.0.0.1" if up else None,
        },
        "announce": groups if up and prefixes else [],
        "withdraw": [],
    }


def test_alerts_per_partner(env: Env) -> None:
    env.up(*ALL)
    c = env.client()

    def post_routes(aid: str, body: dict[str, Any]) -> None:
        auth = {"Authorization": f"Bearer {env.creds[aid]}"}
        r = c.post(f"/v1/appliances/{aid}/routes", json=body, headers=auth)
        assert r.status_code == 200, r.text

    # a-par's appliances hear different advertisements; b1's only session goes down
    post_routes("a1", routes_report(1, "10.1.0.0/16", "198.51.100.0/24"))
    post_routes("a2", routes_report(1, "10.1.0.0/16"))
    post_routes("b1", routes_report(1, state="idle"))
    # a2's fill agent reports an alarm; b1's disk fills up
    r = c.post(
        "/v1/appliances/a2/fill/report",
        json={"state": "alarm", "alarm": "disk full: 0 bytes left"},
        headers={"Authorization": f"Bearer {env.creds['a2']}"},
    )
    assert r.status_code == 200, r.text
    env.plane.plan_fills()
    env.clock.advance(121)  # b1's session has been down longer than the 120 s grace
    gib = 1 << 30
    for aid in ("a2", "ix1", "o1"):
        env.beat(aid)
    env.beat("b1", disk={"used_bytes": 99 * gib, "free_bytes": gib})
    # a1 went silent 121 s ago

    alerts = c.get("/v1/partners/isp-a/alerts").json()
    kinds = [(x["severity"], x["kind"], x["appliance_id"] or x["site_id"]) for x in alerts]
    assert kinds == [
        ("error", "appliance-down", "a1"),
        ("warning", "route-inconsistency", "a-par"),  # the site's, before its appliances'
        ("warning", "fill-behind", "a2"),
    ], alerts
    down = alerts[0]
    assert down["site_id"] == "a-par"
    assert down["message"].startswith("a1 is down: dead: no heartbeat for 121.0 s")
    assert down["since"] == env.clock.t
    assert "198.51.100.0/24 heard by a1, not by a2" in alerts[1]["message"]
    assert alerts[1]["appliance_id"] is None
    assert "fill alarm: disk full: 0 bytes left" in alerts[2]["message"]

    alerts = c.get("/v1/partners/isp-b/alerts").json()
    kinds = [(x["severity"], x["kind"], x["appliance_id"]) for x in alerts]
    assert kinds == [("error", "bgp-down", "b1"), ("error", "disk-near-full", "b1")], alerts
    assert alerts[0]["message"].startswith("b1 BGP session(s) down: all sessions down: 127.0.0.2")
    assert "99.0 % used" in alerts[1]["message"]

    r = c.get("/v1/partners/isp-z/alerts")
    assert r.status_code == 404 and r.json()["detail"] == "unknown partner 'isp-z'"


# --- the migration -----------------------------------------------------------------------------


def database_url(tmp_path: Path) -> str:
    """A fresh PostgreSQL database when ``LOCALCAST_TEST_POSTGRES`` is set, else SQLite."""
    server = os.environ.get("LOCALCAST_TEST_POSTGRES")
    if not server:
        return f"sqlite:///{tmp_path / 'health.db'}"
    name = f"lc_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def test_migration_0003_backfills_turnup_builds_the_models_and_goes_down_and_up(
    tmp_path: Path,
) -> None:
    engine = make_engine(database_url(tmp_path))
    cfg = alembic_config(engine)

    def alembic(step: Any, revision: str) -> None:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, revision)

    registered = dt.datetime(2027, 1, 15, 8, 0, tzinfo=dt.UTC)
    appliances = sa.table(
        "appliances",
        *(sa.column(c) for c in ("id", "site_id", "base_url", "disk_bytes", "gbps", "drained")),
        *(sa.column(c) for c in ("state", "heartbeat_interval_s", "beats_in_run")),
        *(sa.column(c) for c in ("active_connections", "egress_bps", "disk_used_bytes")),
        *(sa.column(c) for c in ("disk_free_bytes", "inventory_seq")),
        sa.column("registered_at", UTCDateTime()),
    )
    try:
        migrate(engine, "0002_fill")
        with engine.begin() as conn:  # a fleet from before turn-up existed
            conn.execute(
                text(
                    "INSERT INTO sites (id, kind, lat, lon, tz) VALUES "
                    "('s', 'embedded', 0, 0, 'UTC')"
                )
            )
            row = {
                "site_id": "s",
                "base_url": "http://127.0.0.1:1",
                "disk_bytes": 1,
                "gbps": 1,
                "drained": False,
                "heartbeat_interval_s": 5,
                "beats_in_run": 0,
                "active_connections": 0,
                "egress_bps": 0,
                "disk_used_bytes": 0,
                "disk_free_bytes": 0,
                "inventory_seq": 0,
            }
            conn.execute(
                appliances.insert(),
                [
                    {**row, "id": "old", "state": "registered", "registered_at": registered},
                    {**row, "id": "new", "state": "provisioned", "registered_at": None},
                ],
            )
        migrate(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
        with session_factory(engine)() as s:
            assert repo.turned_up(s) == {"old": registered.timestamp()}  # serving already
        with session_factory(engine).begin() as s:
            m = begin("drain", "6h", registered.timestamp(), "swap")
            repo.put_maintenance(s, "old", m)
        with session_factory(engine)() as s:
            assert repo.all_maintenance(s) == {"old": m}
        alembic(command.downgrade, "0002_fill")
        with engine.connect() as conn:
            names = {c["name"] for c in sa.inspect(conn).get_columns("appliances")}
            assert "turned_up_at" not in names
            assert not sa.inspect(conn).has_table("appliance_maintenance")
            assert conn.execute(text("SELECT count(*) FROM appliances")).scalar() == 2
        alembic(command.upgrade, "head")
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        engine.dispose()
