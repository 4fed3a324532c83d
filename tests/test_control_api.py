"""The control plane HTTP API in process (FastAPI TestClient), with a hand-moved clock."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import m3u8
import pytest
from control_fixtures import (
    TOPOLOGY,
    FakeClock,
    SyntheticTitle,
    beat,
    bring_up,
    client_for,
    make_plane,
    provision,
    synthetic_title,
)

from localcast.control.service import ControlPlane
from localcast.control.topology import parse_topology
from localcast.core.tokens import verify

ALL = ("a1", "a2", "b1", "ix1", "o1")
PLAY = {"title_id": "t1", "profile_id": "p1", "device": {"codecs": ["avc1", "mp4a"]}}


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
        return self.clients[ip]

    def up(self, *aids: str, interval_s: float = 5.0) -> None:
        bring_up(self.client(), self.creds, {a: [self.title] for a in aids}, interval_s)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock = FakeClock()
    plane = make_plane(tmp_path, clock, trusted_proxies=("127.0.0.1",))
    title = synthetic_title("t1")
    creds = provision(plane, title)
    yield Env(plane, clock, title, creds, tmp_path)
    plane.close()


def play(env: Env, ip: str = "10.1.2.3", headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = env.client(ip).post("/v1/playback", json=PLAY, headers=headers or {})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def first_ids(body: dict[str, Any]) -> list[str]:
    return [p["appliance_id"] for p in body["pathways"]]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- topology and catalog ------------------------------------------------------------------------


def test_topology_api_apply_is_idempotent_and_issues_credentials_once(tmp_path: Path) -> None:
    plane = make_plane(tmp_path, FakeClock())
    try:
        c = client_for(plane)
        first = c.post("/v1/topology", json=TOPOLOGY).json()
        assert first["changed"] and sorted(first["credentials"]) == list(ALL)
        assert first["changes"]["sites"]["created"] == ["a-par", "b-lys", "ix-fra", "origin"]
        again = c.post("/v1/topology", json=TOPOLOGY).json()
        assert not again["changed"] and again["credentials"] == {}
        assert plane.credential_store.read("a1") == first["credentials"]["a1"]
        dry = c.post("/v1/topology?dry_run=true", json={**TOPOLOGY, "appliances": []}).json()
        assert dry["changes"]["appliances"]["removed"] == list(ALL)
        assert len(c.get("/v1/appliances").json()) == 5  # dry run changed nothing
    finally:
        plane.close()


def test_topology_api_rejects_a_bad_document_naming_the_field(env: Env) -> None:
    doc = {**TOPOLOGY, "sites": [dict(TOPOLOGY["sites"][0], tz="Mars/Olympus")]}
    r = env.client().post("/v1/topology", json=doc)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("sites[0].tz: unknown IANA time zone 'Mars/Olympus'")


def test_title_import_api_and_catalog_reads(env: Env) -> None:
    c = env.client()
    other = synthetic_title("t2", segments=3)
    r = c.post("/v1/titles", json=other.manifest.to_json())
    assert r.status_code == 201 and r.json()["created"]
    assert c.post("/v1/titles", json=other.manifest.to_json()).status_code == 200
    titles = c.get("/v1/titles").json()
    assert [t["id"] for t in titles] == ["t1", "t2"]
    t2 = c.get("/v1/titles/t2").json()
    assert t2["duration_s"] == 12.0 and len(t2["renditions"]) == 3
    assert c.get("/v1/titles/nope").status_code == 404
    bad = other.manifest.to_json()
    del bad["renditions"][0]["codec"]
    r = c.post("/v1/titles", json=bad)
    assert r.status_code == 422
    assert r.json()["field"] == "manifest.renditions[0].codec"


def test_catalog_lists_the_appliances_holding_a_title(env: Env) -> None:
    env.up("a1", "ix1")
    assert env.client().get("/v1/titles/t1").json()["appliances_holding"] == ["a1", "ix1"]


# --- appliances ----------------------------------------------------------------------------------


def test_register_needs_the_appliance_credential(env: Env) -> None:
    c = env.client()
    assert c.post("/v1/appliances/a1/register").status_code == 401
    r = c.post("/v1/appliances/a1/register", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "bad credential" in r.json()["detail"]
    other = {"Authorization": f"Bearer {env.creds['a2']}"}
    assert c.post("/v1/appliances/a1/register", headers=other).status_code == 401
    r = c.post("/v1/appliances/zz/register", headers=other)
    assert r.status_code == 404
    own = {"Authorization": f"Bearer {env.creds['a1']}"}
    r = c.post("/v1/appliances/a1/heartbeat", json={}, headers=own)
    assert r.status_code == 409 and "register" in r.json()["detail"]
    r = c.post("/v1/appliances/a1/register", headers=own)
    assert r.status_code == 200 and r.json()["heartbeat_interval_s"] == 5.0


def test_rotated_credential_replaces_the_old_one(env: Env) -> None:
    c = env.client()
    new = env.plane.rotate_credential("a1")
    old = {"Authorization": f"Bearer {env.creds['a1']}"}
    assert c.post("/v1/appliances/a1/register", headers=old).status_code == 401
    fresh = {"Authorization": f"Bearer {new}"}
    assert c.post("/v1/appliances/a1/register", headers=fresh).status_code == 200


def test_inventory_full_then_deltas_then_resync(env: Env) -> None:
    c = env.client()
    auth = {"Authorization": f"Bearer {env.creds['a1']}"}
    c.post("/v1/appliances/a1/register", headers=auth)
    files = sorted(env.title.files)

    def hb(inventory: dict[str, Any] | None) -> dict[str, Any]:
        body = {"inventory": inventory} if inventory else {}
        r = c.post("/v1/appliances/a1/heartbeat", json=body, headers=auth)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    out = hb({"kind": "full", "seq": 1, "titles": {"t1": files}})
    assert out["titles_complete"] == 1 and out["inventory_seq"] == 1 and out["alive"]
    segment = env.title.manifest.renditions[0].segments[0].file.name
    out = hb({"kind": "delta", "seq": 2, "base_seq": 1, "removed": {"t1": [segment]}})
    assert out["titles_complete"] == 0 and out["inventory_seq"] == 2
    out = hb({"kind": "delta", "seq": 3, "base_seq": 1, "added": {"t1": [segment]}})
    assert out["resync"] and out["inventory_seq"] == 2 and out["titles_complete"] == 0
    out = hb({"kind": "full", "seq": 3, "titles": {"t1": files}})
    assert not out["resync"] and out["titles_complete"] == 1
    a1 = c.get("/v1/appliances/a1").json()
    assert a1["inventory_titles"] == 1 and a1["inventory_files"] == len(files)


def test_heartbeat_with_a_bad_file_name_is_422_naming_it(env: Env) -> None:
    c = env.client()
    auth = {"Authorization": f"Bearer {env.creds['a1']}"}
    c.post("/v1/appliances/a1/register", headers=auth)
    body = {"inventory": {"kind": "full", "seq": 1, "titles": {"t1": ["../etc/passwd"]}}}
    r = c.post("/v1/appliances/a1/heartbeat", json=body, headers=auth)
    assert r.status_code == 422
    err = r.json()["detail"][0]
    assert err["loc"][:4] == ["body", "inventory", "full", "titles"]
    assert "is not a <sha256>.<ext> file name" in err["msg"]


def test_appliance_listing_has_status_age_and_inventory(env: Env) -> None:
    env.up("a1", "ix1")
    env.clock.advance(2.5)
    listing = {a["id"]: a for a in env.client().get("/v1/appliances").json()}
    assert listing["a1"]["alive"] and listing["a1"]["status"] == "ok"
    assert listing["a1"]["last_heartbeat_age_s"] == 2.5
    assert listing["a1"]["inventory_titles"] == 1 and listing["a1"]["kind"] == "embedded"
    assert listing["b1"]["status"] == "unknown"
    assert listing["b1"]["reason"] == "provisioned: never registered"
    assert listing["b1"]["last_heartbeat_age_s"] is None
    env.clock.advance(20)
    a1 = env.client().get("/v1/appliances/a1").json()
    assert not a1["alive"] and a1["status"] == "error" and a1["reason"].startswith("dead")
    assert env.client().get("/v1/appliances/zz").status_code == 404


# --- playback ------------------------------------------------------------------------------------


def test_each_client_gets_its_own_isp_first(env: Env) -> None:
    env.up(*ALL)
    a = play(env, "10.1.2.3")
    assert set(first_ids(a)[:2]) == {"a1", "a2"} and first_ids(a)[2:] == ["ix1", "o1"]
    assert [p["rank"] for p in a["pathways"]] == [1, 2, 3, 4]
    assert a["pathways"][0]["kind"] == "embedded" and a["pathways"][0]["rule"] == "prefix-match"
    assert first_ids(play(env, "10.2.3.4")) == ["b1", "ix1", "o1"]
    assert first_ids(play(env, "192.0.2.1")) == ["ix1", "o1"]


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(env: Env) -> None:
    env.up(*ALL)
    proxied = play(env, "127.0.0.1", {"X-Forwarded-For": "10.2.3.4"})
    assert proxied["client_ip"] == "10.2.3.4" and first_ids(proxied)[0] == "b1"
    spoofed = play(env, "192.0.2.50", {"X-Forwarded-For": "10.2.3.4"})
    assert spoofed["client_ip"] == "192.0.2.50"
    assert "X-Forwarded-For ignored" in spoofed["client_ip_reason"]
    assert first_ids(spoofed)[0] == "ix1"


def test_pathway_base_urls_are_signed_for_the_title(env: Env) -> None:
    env.up(*ALL)
    body = play(env)
    for p in body["pathways"]:
        assert p["base_url"].startswith(p["appliance_url"] + "/lc1~")
        token, title = urlsplit(p["base_url"]).path.strip("/").split("/")
        assert title == "t1"
        check = verify(env.plane.keyring, token, ["t1", "x.m4s"], env.clock())
        assert check.ok, check.reason
    assert body["expires_at"] == int(env.clock()) + 6 * 3600


def test_multivariant_playlist_steers_between_signed_pathways(env: Env) -> None:
    env.up(*ALL)
    body = play(env)
    c = env.client()
    r = c.get(path_of(body["multivariant_url"]))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    playlist = m3u8.loads(r.text)
    assert playlist.content_steering.uri == body["steering_url"]
    assert playlist.content_steering.pathway_id == body["pathways"][0]["id"]
    by_pathway: dict[str, list[str]] = {}
    for v in playlist.playlists:
        by_pathway.setdefault(v.stream_info.pathway_id, []).append(v.uri)
    assert list(by_pathway) == first_ids(body)
    bases = {p["id"]: p["base_url"] for p in body["pathways"]}
    video_playlists = {r.playlist.name for r in env.title.manifest.video}
    for pid, uris in by_pathway.items():
        assert {u[len(bases[pid]) :] for u in uris} == video_playlists
        assert all(u.startswith("http://127.0.0.1:18") for u in uris)
    assert "#EXT-X-START" not in r.text  # nothing to resume


def test_device_limits_reach_the_playlist(env: Env) -> None:
    env.up(*ALL)
    ask = {**PLAY, "device": {"codecs": ["avc1", "mp4a"], "max_height": 400}}
    body = env.client().post("/v1/playback", json=ask).json()
    playlist = m3u8.loads(env.client().get(path_of(body["multivariant_url"])).text)
    assert {v.stream_info.resolution[1] for v in playlist.playlists} == {360}


def test_dash_mpd_has_service_locations_and_content_steering(env: Env) -> None:
    env.up(*ALL)
    body = play(env)
    r = env.client().get(path_of(body["mpd_url"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/dash+xml")
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    root = ET.fromstring(r.text)
    locations = [b.get("serviceLocation") for b in root.findall("d:BaseURL", ns)]
    assert locations == first_ids(body)
    steering = root.find("d:ContentSteering", ns)
    assert steering is not None and steering.text == body["steering_url"] + "?format=dash"
    dash = env.client().get(path_of(steering.text)).json()
    assert dash["SERVICE-LOCATION-PRIORITY"] == first_ids(body)
    assert dash["RELOAD-URI"] == steering.text


def test_steering_manifest_reranks_when_an_appliance_stops_heartbeating(env: Env) -> None:
    env.up(*ALL)
    body = play(env)
    session_order = first_ids(body)
    c = env.client()
    steering = c.get(path_of(body["steering_url"]), params={"_HLS_pathway": session_order[0]})
    manifest = steering.json()
    assert manifest["VERSION"] == 1 and manifest["TTL"] == 10
    assert manifest["RELOAD-URI"] == body["steering_url"]
    assert manifest["PATHWAY-PRIORITY"] == session_order
    best = session_order[0]
    env.clock.advance(10)
    beat(c, env.creds, *(a for a in ALL if a != best))
    env.clock.advance(6)  # best: 16 s without a heartbeat (> 3 x 5 s); the others: 6 s
    again = c.get(path_of(body["steering_url"])).json()["PATHWAY-PRIORITY"]
    assert again[-1] == best and again[:-1] == session_order[1:]
    info = c.get(path_of(body["steering_url"]).rsplit("/", 1)[0]).json()
    assert info["demoted"][0]["appliance_id"] == best
    assert info["demoted"][0]["reason"].startswith("dead")
    # and a new multivariant playlist makes the best live pathway the default
    playlist = m3u8.loads(c.get(path_of(body["multivariant_url"])).text)
    assert playlist.content_steering.pathway_id == again[0]


def test_playback_errors_say_what_is_wrong(env: Env) -> None:
    c = env.client()
    r = c.post("/v1/playback", json={**PLAY, "title_id": "nope"})
    assert r.status_code == 404 and r.json()["detail"] == "unknown title 'nope'"
    r = c.post("/v1/playback", json={"profile_id": "p1"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "title_id"]
    r = c.post("/v1/playback", json={**PLAY, "device": {"max_height": -1}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "device", "max_height"]
    r = c.post("/v1/playback", json={**PLAY, "device": {"codecs": ["hvc1"]}})
    assert r.status_code == 422 and r.json()["field"] == "device.codecs"
    r = c.post("/v1/playback", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = c.post("/v1/playback", json=PLAY)  # nothing registered yet
    assert r.status_code == 503 and "no live appliance holds t1" in r.json()["detail"]
    r = c.post("/v1/playback", content=b" " * (64 * 1024 + 1))
    assert r.status_code == 413 and "65536 bytes" in r.json()["detail"]
    r = c.post("/v1/playback", content=b"")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body"
    assert c.get("/v1/playback").status_code == 405  # other methods reach the framework


def test_forged_and_expired_sessions_are_refused(env: Env) -> None:
    env.up(*ALL)
    body = play(env)
    c = env.client()
    sid = body["session_id"]
    forged = sid[:-3] + ("AAA" if not sid.endswith("AAA") else "BBB")
    assert c.get(f"/v1/sessions/{forged}/master.m3u8").status_code == 404
    env.clock.advance(6 * 3600 + 1)
    r = c.get(f"/v1/sessions/{sid}/steering")
    assert r.status_code == 410 and "expired" in r.json()["detail"]


def test_a_session_outlives_a_control_plane_restart(env: Env) -> None:
    env.up(*ALL)
    body = play(env)
    env.plane.close()
    restarted = make_plane(env.root, env.clock, trusted_proxies=("127.0.0.1",))
    try:
        c = client_for(restarted)
        r = c.get(path_of(body["multivariant_url"]))
        assert r.status_code == 200
        assert m3u8.loads(r.text).content_steering.uri == body["steering_url"]
        prio = c.get(path_of(body["steering_url"])).json()["PATHWAY-PRIORITY"]
        assert prio == first_ids(body)  # heartbeat state came back from the database
    finally:
        restarted.close()


def test_explain_lists_every_reason(env: Env) -> None:
    env.up("a1", "ix1", "o1")
    d = env.client().get("/v1/steering/explain", params={"title_id": "t1"}).json()
    assert d["client_ip"] == "10.1.2.3"
    assert [p["appliance_id"] for p in d["pathways"]] == ["a1", "ix1", "o1"]
    reasons = {x["appliance_id"]: x["reason"] for x in d["excluded"]}
    assert reasons["a2"] == "provisioned: never registered"
    r = env.client().get("/v1/steering/explain", params={"title_id": "t1", "client_ip": "x"})
    assert r.status_code == 422 and r.json()["field"] == "client_ip"


def test_admin_token_guards_topology_and_catalog_writes(tmp_path: Path) -> None:
    token = "s3cret-admin-token"
    plane = make_plane(tmp_path, FakeClock(), admin_token=token)
    try:
        c = client_for(plane)
        assert c.post("/v1/topology", json=TOPOLOGY).status_code == 401
        ok = c.post("/v1/topology", json=TOPOLOGY, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert c.post("/v1/titles", json=synthetic_title().manifest.to_json()).status_code == 401
    finally:
        plane.close()


def test_healthz_reports_the_snapshot(env: Env) -> None:
    h = env.client().get("/healthz").json()
    assert h["ok"] and h["appliances"] == 5 and h["titles"] == 1 and h["snapshot_version"] >= 2


def test_cli_apply_elsewhere_reaches_a_running_plane_via_refresh(env: Env) -> None:
    other = make_plane(env.root, env.clock)  # another process on the same database
    try:
        other.apply_topology(parse_topology({**TOPOLOGY, "appliances": TOPOLOGY["appliances"][:2]}))
    finally:
        other.close()
    assert len(env.plane.snapshot.appliances) == 5
    assert env.plane.refresh() is True
    assert sorted(env.plane.snapshot.appliances) == ["a1", "a2"]
    assert env.plane.refresh() is False
