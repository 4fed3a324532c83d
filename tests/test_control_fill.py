"""The control plane side of proactive fill, in process (FastAPI TestClient, hand-moved clock).

Topology fields (region, fill window, appliance class, fill rate), releases,
demand counted per playback and flushed, planning into versioned manifests,
the agent's manifest (window, rates, sources, fill-signed URLs) and reports,
the progress / links / live views, steering outcome counters, the CLI, and
the migration agreeing with the models.

With ``LOCALCAST_TEST_POSTGRES`` set to a PostgreSQL server URL (e.g.
``postgresql://lc@127.0.0.1:5432/postgres``), each control plane here gets a
fresh database on that server instead of SQLite.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
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
    site,
    snapshot,
    synthetic_title,
    topology_toml,
)
from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from localcast.cli import app as cli_app
from localcast.control.db import alembic_config, make_engine, migrate
from localcast.control.demand import utc_day
from localcast.control.models import Base, DemandDaily, FillTransfer
from localcast.control.service import ControlPlane
from localcast.control.steering_stats import CONTENT_MISS, HEALTH_MISS, Outcome, outcome
from localcast.control.topology import TopologyError, load_topology, parse_topology
from localcast.core.fillplan import DEFAULT_REGION, demand_region
from localcast.core.fillsources import FillNode, site_leader
from localcast.core.fleet import Load, SiteKind
from localcast.core.steering import steer
from localcast.core.tokens import verify, with_fill_keys

PLAY = {"title_id": "t1", "profile_id": "p1", "device": {"codecs": ["avc1", "mp4a"]}}
DAY = 86400.0
# NOW is 2027-01-15 08:00 UTC: 09:00 in Paris, inside the default 02:00-14:00 window.
PARIS_15H = NOW + 6 * 3600.0  # 15:00 in Paris: the window is closed until 02:00


@dataclass
class Env:
    plane: ControlPlane
    clock: FakeClock
    titles: list[SyntheticTitle]
    creds: dict[str, str]
    root: Path
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, ip: str = "10.1.2.3") -> Any:
        if ip not in self.clients:
            self.clients[ip] = client_for(self.plane, ip)
        return self.clients[ip]

    def auth(self, aid: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds[aid]}"}

    def play(self, ip: str = "10.1.2.3", title: str = "t1") -> dict[str, Any]:
        r = self.client(ip).post("/v1/playback", json={**PLAY, "title_id": title})
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def manifest(self, aid: str) -> dict[str, Any]:
        r = self.client().get(f"/v1/appliances/{aid}/fill", headers=self.auth(aid))
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


POSTGRES = os.environ.get("LOCALCAST_TEST_POSTGRES")


def database(tmp_path: Path) -> dict[str, str]:
    """``database_url`` of a fresh PostgreSQL database when asked for, else SQLite (``{}``)."""
    if not POSTGRES:
        return {}
    name = f"lc_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    (tmp_path / "home").mkdir(parents=True, exist_ok=True)
    (tmp_path / "home" / "config.toml").write_text(f"[control]\ndatabase_url = {url!r}\n")
    return {"database_url": url}


def start(
    tmp_path: Path,
    topology: dict[str, Any] | None = None,
    n_titles: int = 1,
    **settings: Any,
) -> Env:
    clock = FakeClock()
    plane = make_plane(tmp_path, clock, fill_wait_s=5.0, **database(tmp_path), **settings)
    titles = [synthetic_title(f"t{i + 1}") for i in range(n_titles)]
    creds = plane.apply_topology(parse_topology(topology or TOPOLOGY)).credentials
    plane.import_manifests([t.manifest for t in titles])
    return Env(plane, clock, titles, creds, tmp_path)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = start(tmp_path, fill_floor_sessions=1.0)
    yield e
    e.plane.close()


def up(env: Env, holdings: dict[str, list[SyntheticTitle]]) -> None:
    bring_up(env.client(), env.creds, holdings)


# --- topology ------------------------------------------------------------------------------------


def fill_topology() -> dict[str, Any]:
    doc = copy.deepcopy(TOPOLOGY)
    doc["sites"][0].update(region="fr", fill_window="22:00-06:00")
    doc["sites"][1].update(region="fr")
    doc["appliances"][0]["class"] = "flash"
    doc["appliances"][1]["fill_mbps"] = 500
    return doc


def test_topology_fill_fields_are_stored_and_applying_twice_changes_nothing(
    tmp_path: Path,
) -> None:
    plane = make_plane(tmp_path, FakeClock(), **database(tmp_path))
    try:
        c = client_for(plane)
        assert c.post("/v1/topology", json=fill_topology()).json()["changed"]
        snap = plane.snapshot
        assert snap.sites["a-par"].region_id == "fr" and snap.sites["b-lys"].region_id == "fr"
        assert snap.sites["ix-fra"].region is None and snap.sites["ix-fra"].region_id == "ix-fra"
        assert snap.sites["a-par"].fill_window == "22:00-06:00"
        assert snap.sites["b-lys"].fill_window == "02:00-14:00"  # the default
        assert snap.appliances["a1"].appliance_class == "flash"
        assert snap.appliances["a2"].fill_bps == 500e6
        assert snap.appliances["b1"].appliance_class == "storage"
        assert snap.appliances["b1"].fill_bps is None
        assert not c.post("/v1/topology", json=fill_topology()).json()["changed"]
        doc = fill_topology()
        doc["sites"][0]["fill_window"] = "23:00-07:00"
        doc["appliances"][0]["class"] = "small"
        changes = c.post("/v1/topology", json=doc).json()["changes"]
        assert changes["sites"]["updated"] == ["a-par"]
        assert changes["appliances"]["updated"] == ["a1"]
        assert plane.snapshot.appliances["a1"].appliance_class == "small"
    finally:
        plane.close()


def test_the_topology_file_spells_the_appliance_class_class(tmp_path: Path) -> None:
    path = tmp_path / "topology.toml"
    path.write_text(topology_toml(fill_topology()))
    assert 'class = "flash"' in path.read_text()
    spec = load_topology(path)
    assert spec.appliances[0].appliance_class == "flash"
    assert spec.appliances[1].fill_mbps == 500


@pytest.mark.parametrize(
    ("where", "change", "message"),
    [
        ("sites", {"fill_window": "25:00-03:00"}, "sites[0].fill_window: bad fill window"),
        ("sites", {"fill_window": "night"}, "sites[0].fill_window: bad fill window 'night'"),
        ("sites", {"fill_window": "02:00-02:00"}, "sites[0].fill_window: bad fill window"),
        ("sites", {"region": "two words"}, "sites[0].region: String should match pattern"),
        ("appliances", {"class": "tape"}, "appliances[0].class: unknown appliance class 'tape'"),
        ("appliances", {"fill_mbps": 0}, "appliances[0].fill_mbps: Input should be greater"),
        ("appliances", {"fill_mbps": "fast"}, "appliances[0].fill_mbps: Input should be a valid"),
    ],
)
def test_bad_fill_fields_are_rejected_naming_the_field(
    env: Env, where: str, change: dict[str, Any], message: str
) -> None:
    doc = copy.deepcopy(TOPOLOGY)
    doc[where][0].update(change)
    r = env.client().post("/v1/topology", json=doc)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(message), r.json()["detail"]
    with pytest.raises(TopologyError, match=r"\[0\]"):
        parse_topology(doc)


# --- schema --------------------------------------------------------------------------------------


def test_the_migrations_build_exactly_the_models_and_keep_data_down_and_up(
    tmp_path: Path,
) -> None:
    url = database(tmp_path).get("database_url", f"sqlite:///{tmp_path / 'm.db'}")
    engine = make_engine(url)
    cfg = alembic_config(engine)

    def alembic(step: Any, revision: str) -> None:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, revision)

    def same_as_models() -> None:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []

    try:
        migrate(engine, "0001_initial")
        with engine.begin() as conn:  # a fleet stored before the fill existed
            conn.execute(text("INSERT INTO sites VALUES ('s', 'embedded', NULL, 0, 0, 'UTC')"))
            conn.execute(
                text(
                    "INSERT INTO appliances (id, site_id, base_url, disk_bytes, gbps, drained, "
                    "state, heartbeat_interval_s, beats_in_run, active_connections, egress_bps, "
                    "disk_used_bytes, disk_free_bytes, inventory_seq) VALUES ('a', 's', "
                    "'http://127.0.0.1:1', 1, 1, :no, 'provisioned', 5, 0, 0, 0, 0, 0, 0)"
                ),
                {"no": False},
            )
            conn.execute(text("INSERT INTO appliance_inventory VALUES ('a', 't', '[]')"))
        migrate(engine)
        same_as_models()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT region, fill_window FROM sites")).one() == (
                None,
                "02:00-14:00",
            )
            assert conn.execute(text("SELECT appliance_class, fill_bps FROM appliances")).one() == (
                "storage",
                None,
            )
        alembic(command.downgrade, "0001_initial")
        with engine.connect() as conn:  # nothing cascaded away
            assert conn.execute(text("SELECT count(*) FROM appliance_inventory")).scalar() == 1
        alembic(command.upgrade, "head")
        same_as_models()
    finally:
        engine.dispose()


# --- releases ------------------------------------------------------------------------------------


def test_a_release_is_stored_shown_replaced_and_cleared(env: Env) -> None:
    c = env.client()
    assert c.get("/v1/titles/t1").json()["release"] is None
    body = {"release_at": NOW + 3 * DAY, "expected_sessions": 500, "regions": ["a-par"]}
    r = c.put("/v1/titles/t1/release", json=body)
    assert r.status_code == 200, r.text
    want = {"title_id": "t1", "release_at": NOW + 3 * DAY, "expected_sessions": 500.0}
    assert c.get("/v1/titles/t1").json()["release"] == {**want, "regions": ["a-par"]}
    r = c.put("/v1/titles/t1/release", json={"release_at": NOW, "expected_sessions": 9})
    assert r.json()["regions"] is None
    assert c.get("/v1/titles").json()[0]["release"]["expected_sessions"] == 9.0
    assert c.delete("/v1/titles/t1/release").status_code == 204
    assert c.get("/v1/titles/t1").json()["release"] is None
    assert c.delete("/v1/titles/t1/release").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "field_"),
    [
        ({"release_at": NOW, "expected_sessions": -1}, 422, "expected_sessions"),
        ({"release_at": NOW}, 422, "expected_sessions"),
        ({"release_at": "soon", "expected_sessions": 1}, 422, "release_at"),
        ({"release_at": NOW, "expected_sessions": 1, "regions": []}, 422, "regions"),
        ({"release_at": NOW, "expected_sessions": 1, "regions": ["mars"]}, 422, "regions[0]"),
        ({"release_at": NOW, "expected_sessions": 1, "boost": 2}, 422, "boost"),
    ],
)
def test_a_bad_release_is_a_422_naming_the_field(
    env: Env, body: dict[str, Any], status: int, field_: str
) -> None:
    r = env.client().put("/v1/titles/t1/release", json=body)
    assert r.status_code == status, r.text
    assert field_ in json.dumps(r.json())


def test_releases_need_a_known_title_and_the_admin_token(tmp_path: Path) -> None:
    e = start(tmp_path, admin_token="a" * 16)
    try:
        body = {"release_at": NOW, "expected_sessions": 1}
        assert e.client().put("/v1/titles/t1/release", json=body).status_code == 401
        admin = {"Authorization": "Bearer " + "a" * 16}
        r = e.client().put("/v1/titles/zz/release", json=body, headers=admin)
        assert r.status_code == 404
        assert e.client().put("/v1/titles/t1/release", json=body, headers=admin).status_code == 200
        assert e.client().post("/v1/fill/plan").status_code == 401
        assert e.client().post("/v1/fill/plan", headers=admin).status_code == 200
    finally:
        e.plane.close()


# --- demand --------------------------------------------------------------------------------------


def demand_rows(plane: ControlPlane) -> dict[tuple[int, str, str], int]:
    with plane.sessions() as s:
        return {(r.day, r.region, r.title_id): r.sessions for r in s.scalars(select(DemandDaily))}


def test_playback_counts_demand_in_memory_and_the_flush_writes_it(env: Env) -> None:
    up(env, {a: [env.titles[0]] for a in ("a1", "a2", "b1", "ix1", "o1")})
    statements: list[str] = []

    def record(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(env.plane.engine, "before_cursor_execute", record)
    try:
        for _ in range(3):
            env.play("10.1.2.3")
        env.play("10.2.3.4")
        env.play("192.0.2.1")  # no ISP site: its best non-origin site is the IX
    finally:
        event.remove(env.plane.engine, "before_cursor_execute", record)
    assert not [s for s in statements if "demand" in s.lower()]  # memory only
    assert not [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert env.plane.fills.demand.pending() == 5 and demand_rows(env.plane) == {}
    assert env.plane.fills.flush_demand() == 5
    day = utc_day(NOW)
    assert demand_rows(env.plane) == {
        (day, "a-par", "t1"): 3,
        (day, "b-lys", "t1"): 1,
        (day, "ix-fra", "t1"): 1,
    }
    env.play("10.1.2.3")
    env.plane.fills.flush_demand()
    assert demand_rows(env.plane)[(day, "a-par", "t1")] == 4  # added to, not replaced


def test_demand_goes_to_the_sites_region_or_default() -> None:
    sites = [site("isp", SiteKind.EMBEDDED, ("10.0.0.0/8",)), site("o", SiteKind.ORIGIN)]
    snap = snapshot(sites, [appliance("a", "isp"), appliance("b", "o")])
    decision = steer(snap, "10.1.1.1", "t1", NOW)
    assert demand_region(decision, snap.sites) == "isp"
    grouped = {"isp": replace(snap.sites["isp"], region="north")}
    assert demand_region(decision, grouped) == "north"
    only_origin = steer(snap, "192.0.2.1", "t1", NOW)
    assert demand_region(only_origin, snap.sites) == DEFAULT_REGION


def test_a_failed_flush_keeps_the_counts_for_the_next_one(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    up(env, {"a1": [env.titles[0]]})
    env.play()
    from localcast.control import repository

    def broken(*_a: Any) -> None:
        raise RuntimeError("database down")

    monkeypatch.setattr(repository, "add_demand", broken)
    with pytest.raises(RuntimeError):
        env.plane.fills.flush_demand()
    assert env.plane.fills.demand.pending() == 1
    monkeypatch.undo()
    assert env.plane.fills.flush_demand() == 1


# --- planning ------------------------------------------------------------------------------------


def versions(plane: ControlPlane) -> dict[str, int]:
    return {a: s.manifest.version for a, s in plane.fills.view.manifests.items()}


def test_plan_gives_every_non_origin_appliance_a_stable_versioned_manifest(env: Env) -> None:
    out = env.plane.plan_fills()
    assert out.day == utc_day(NOW) and out.appliances == 4
    assert sorted(out.changed) == ["a1", "a2", "b1", "ix1"]  # not the origin's o1
    assert versions(env.plane) == {"a1": 1, "a2": 1, "b1": 1, "ix1": 1}
    assert all(s.manifest.titles == {"t1"} for s in env.plane.fills.view.manifests.values())
    again = env.plane.plan_fills()
    assert again.changed == () and again.churn == 0
    assert versions(env.plane) == {"a1": 1, "a2": 1, "b1": 1, "ix1": 1}
    other = synthetic_title("t2")
    env.plane.import_manifests([other.manifest])
    out = env.plane.plan_fills()
    assert versions(env.plane) == {"a1": 2, "a2": 2, "b1": 2, "ix1": 2}
    assert out.churn == 4  # t2 once on each appliance
    # a restarted control plane reads the stored manifests back
    env.plane.reload()
    assert versions(env.plane) == {"a1": 2, "a2": 2, "b1": 2, "ix1": 2}


def test_the_refresh_tick_plans_after_changes_and_on_a_new_day(env: Env) -> None:
    assert env.plane.fills.tick() is not None  # dirty since start
    assert env.plane.fills.tick() is None  # nothing changed
    env.plane.import_manifests([synthetic_title("t2").manifest])
    assert env.plane.fills.tick() is not None  # a title import marks the plan dirty
    assert env.plane.fills.tick() is None
    body = {"release_at": NOW + DAY, "expected_sessions": 5}
    assert env.client().put("/v1/titles/t2/release", json=body).status_code == 200
    assert env.plane.fills.tick() is not None  # so does a release
    env.clock.advance(DAY)
    out = env.plane.fills.tick()
    assert out is not None and out.day == utc_day(NOW) + 1


def small_disks(n_titles_room: float) -> dict[str, Any]:
    """TOPOLOGY with appliances holding about ``n_titles_room`` 1000-byte titles each."""
    doc = copy.deepcopy(TOPOLOGY)
    for a in doc["appliances"]:
        a["disk_gb"] = n_titles_room * 1000 / 0.9 / 1e9 + 1e-9
    return doc


def test_the_next_days_manifests_follow_a_popularity_change(tmp_path: Path) -> None:
    e = start(tmp_path, small_disks(3), n_titles=8)
    try:
        up(e, {a: e.titles for a in ("a1", "a2", "b1", "ix1", "o1")})
        first = e.plane.plan_fills()
        before = {a: s.manifest.titles for a, s in e.plane.fills.view.manifests.items()}
        assert all(len(t) == 3 for t in before.values())
        hot = sorted({f"t{i}" for i in range(1, 9)} - before["a1"] - before["a2"])[:2]
        for title in hot:  # titles a-par does not hold become popular there
            for _ in range(20):
                e.play("10.1.2.3", title)
        e.clock.advance(DAY)
        out = e.plane.fills.tick()
        assert out is not None and out.day == first.day + 1
        after = {a: s.manifest.titles for a, s in e.plane.fills.view.manifests.items()}
        for title in hot:
            assert title in after["a1"] and title in after["a2"], (title, after)
        assert versions(e.plane)["a1"] == 2 and versions(e.plane)["a2"] == 2
        assert versions(e.plane)["b1"] == 1  # its region saw no change
        copies = sum(len(after[a] - before[a]) for a in ("a1", "a2"))
        print(f"popularity change at a-par: churn {out.churn} copies, minimum {len(hot) * 2}")
        assert copies <= len(hot) * 2 + 1
        # the IX behind a-par (its clients' fallback) follows: it takes what would spill
        assert set(hot) <= after["ix1"]
        assert out.churn == copies + len(after["ix1"] - before["ix1"])
    finally:
        e.plane.close()


# --- the agent's manifest ------------------------------------------------------------------------


def test_the_fill_manifest_needs_the_appliance_credential_and_a_plan(env: Env) -> None:
    c = env.client()
    assert c.get("/v1/appliances/a1/fill").status_code == 401
    assert c.get("/v1/appliances/a1/fill", headers=env.auth("a2")).status_code == 401
    r = c.get("/v1/appliances/a1/fill", headers=env.auth("a1"))
    assert r.status_code == 503 and "no fill manifest" in r.json()["detail"]
    env.plane.plan_fills()
    assert c.get("/v1/appliances/a1/fill", headers=env.auth("a1")).status_code == 200
    r = c.get("/v1/appliances/o1/fill", headers=env.auth("o1"))
    assert r.status_code == 409 and "origin" in r.json()["detail"]


def node(env: Env, aid: str) -> FillNode:
    a = env.plane.snapshot.appliances[aid]
    s = env.plane.snapshot.sites[a.site_id]
    return FillNode(aid, s.id, s.kind, s.lat, s.lon)


def test_the_fill_manifest_lists_files_and_ranked_sources_with_fill_urls(env: Env) -> None:
    t1 = env.titles[0]
    up(env, {"a1": [], "a2": [], "ix1": [], "o1": [t1]})  # b1 never registers
    env.plane.plan_fills()
    m = env.manifest("a1")
    assert m["appliance_id"] == "a1" and m["version"] == 1 and m["day"] == utc_day(NOW)
    assert m["window"] == {
        "spec": "02:00-14:00",
        "tz": "Europe/Paris",
        "open": True,
        "always_open": False,
        "next_open_at": NOW,
        "closes_at": NOW + 5 * 3600,
    }
    assert m["rate_bps"] == m["cap_bps"] == 1e9 and m["capacity_bytes"] == 10 * 10**9
    assert m["escalation"] == {"wait_s": 5.0, "max_tier_sites": 2}
    [title] = m["titles"]
    assert title["title_id"] == "t1" and not title["urgent"] and not title["complete"]
    required = env.plane.snapshot.catalog["t1"].required_files
    assert {f["name"] for f in title["files"]} == required
    assert all(f["size"] == len(t1.files[f["name"]]) for f in title["files"])
    leader = site_leader("t1", [node(env, "a1"), node(env, "a2")])
    expect = [] if leader == "a1" else [("a2", "peer", "planned", 0)]
    expect += [("ix1", "tier", "planned", 1), ("o1", "origin", "complete", 2)]
    got = [(s["appliance_id"], s["kind"], s["holding"], s["hop"]) for s in title["sources"]]
    assert got == expect  # b1 is not alive: never a source
    fill_keys = with_fill_keys(env.plane.keyring)
    for s in title["sources"]:
        url = urlsplit(s["base_url"])
        appliance_url = env.plane.snapshot.appliances[s["appliance_id"]].base_url
        assert s["base_url"].startswith(appliance_url + "/lc1~fill-")
        token, title_id, rest = url.path.lstrip("/").split("/")
        assert title_id == "t1" and rest == ""
        name = title["files"][0]["name"]
        assert verify(fill_keys, token, ["t1", name], NOW + 3600).ok
        assert not verify(env.plane.keyring, token, ["t1", name], NOW).ok  # not a viewer token
        assert not verify(fill_keys, token, ["t1", name], NOW + 2 * DAY).ok  # expires in a day


def test_peers_holding_a_title_come_first(env: Env) -> None:
    t1 = env.titles[0]
    up(env, {"a1": [], "a2": [t1], "ix1": [t1], "o1": [t1]})
    env.plane.plan_fills()
    sources = env.manifest("a1")["titles"][0]["sources"]
    assert [(s["appliance_id"], s["holding"]) for s in sources][:2] == [
        ("a2", "complete"),
        ("ix1", "complete"),
    ]
    assert env.manifest("a2")["titles"][0]["complete"]


def test_outside_the_window_only_urgent_releases_fill_at_the_urgent_rate(env: Env) -> None:
    up(env, {"a1": [], "o1": [env.titles[0]]})
    env.plane.plan_fills()
    env.clock.t = PARIS_15H
    beat(env.client(), env.creds, "a1", "o1")
    m = env.manifest("a1")
    assert not m["window"]["open"] and m["window"]["closes_at"] is None
    assert m["window"]["next_open_at"] == NOW + 17 * 3600  # 02:00 Paris the next day
    assert m["rate_bps"] == 0 and not m["titles"][0]["urgent"]
    body = {"release_at": PARIS_15H + 3600, "expected_sessions": 50}
    assert env.client().put("/v1/titles/t1/release", json=body).status_code == 200
    m = env.manifest("a1")
    assert m["titles"][0]["urgent"] and m["titles"][0]["release_at"] == PARIS_15H + 3600
    assert m["rate_bps"] == pytest.approx(1e8)  # 10% of the storage class's 1 Gbit/s


def test_the_class_and_the_override_set_the_rate_cap(tmp_path: Path) -> None:
    e = start(tmp_path, fill_topology())
    try:
        e.plane.plan_fills()
        assert e.manifest("a1")["cap_bps"] == 4e9  # flash
        assert e.manifest("a2")["cap_bps"] == 500e6  # fill_mbps
        m = e.manifest("a1")  # a-par fills 22:00-06:00 Paris: closed at 09:00
        assert not m["window"]["open"] and m["rate_bps"] == 0
        assert m["window"]["spec"] == "22:00-06:00"
    finally:
        e.plane.close()


# --- agent reports, progress, links --------------------------------------------------------------


def transfer(title: SyntheticTitle, i: int, source: str, at: float = NOW) -> dict[str, Any]:
    name = sorted(title.files)[i]
    return {
        "title_id": title.title_id,
        "name": name,
        "source_id": source,
        "bytes": len(title.files[name]),
        "completed_at": at,
    }


def test_reports_are_stored_once_and_feed_progress_and_links(env: Env) -> None:
    t1 = env.titles[0]
    up(env, {"a1": [t1], "a2": [], "ix1": [t1], "o1": [t1]})
    env.plane.plan_fills()
    c = env.client()
    n = len(t1.files)
    from_ix = [transfer(t1, i, "o1") for i in range(n)]
    r = c.post(
        "/v1/appliances/ix1/fill/report",
        json={"state": "idle", "transfers": from_ix},
        headers=env.auth("ix1"),
    )
    assert r.json() == {"ok": True, "stored": n, "duplicates": 0}
    to_a1 = [transfer(t1, i, "ix1") for i in range(n)]
    body = {"state": "filling", "transfers": to_a1}
    assert c.post("/v1/appliances/a1/fill/report", json=body).status_code == 401
    r = c.post("/v1/appliances/a1/fill/report", json=body, headers=env.auth("a1"))
    assert r.status_code == 200 and r.json()["stored"] == n
    r = c.post("/v1/appliances/a1/fill/report", json=body, headers=env.auth("a1"))
    assert r.json() == {"ok": True, "stored": 0, "duplicates": n}  # a retried report
    half = [transfer(t1, i, "a1") for i in range(n // 2)]
    alarm = {"state": "alarm", "alarm": "disk full: 10 GB used", "transfers": half}
    r = c.post("/v1/appliances/a2/fill/report", json=alarm, headers=env.auth("a2"))
    assert r.status_code == 200

    links = {(x["from_site"], x["to_site"]): x for x in c.get("/v1/fill/links").json()}
    assert set(links) == {("origin", "ix-fra"), ("ix-fra", "a-par"), ("a-par", "a-par")}
    assert links[("origin", "ix-fra")]["from_kind"] == "origin"
    assert links[("ix-fra", "a-par")]["from_kind"] == "tier"
    assert links[("a-par", "a-par")]["from_kind"] == "peer"
    assert links[("ix-fra", "a-par")]["files"] == n and links[("ix-fra", "a-par")]["bytes"] == sum(
        len(b) for b in t1.files.values()
    )
    assert set(links[("origin", "ix-fra")]["crossings"].values()) == {1}
    assert "crossings" not in c.get("/v1/fill/links?detail=false").json()[0]

    progress = c.get("/v1/fill/progress").json()
    assert progress["planned"] and progress["day"] == utc_day(NOW)
    sites = {s["site_id"]: s for s in progress["sites"]}
    assert set(sites) == {"a-par", "b-lys", "ix-fra"}  # origin is not filled
    rows = {a["appliance_id"]: a for a in sites["a-par"]["appliances"]}
    assert rows["a1"]["titles_held"] == 1 and rows["a1"]["complete"]
    assert rows["a1"]["bytes_held"] == rows["a1"]["bytes_wanted"] > 0
    assert rows["a1"]["state"] == "filling" and rows["a1"]["alarm"] is None
    assert rows["a1"]["fill_bytes"]["tier"] == links[("ix-fra", "a-par")]["bytes"]
    assert rows["a2"]["state"] == "alarm" and rows["a2"]["alarm"] == "disk full: 10 GB used"
    assert rows["a2"]["titles_missing"] == ["t1"] and rows["a2"]["bytes_held"] == 0
    assert rows["a2"]["fill_bytes"]["peer"] > 0
    assert sites["a-par"]["alarms"] == 1 and not sites["a-par"]["complete"]


@pytest.mark.parametrize(
    ("body", "field_"),
    [
        ({"state": "alarm"}, "alarm"),
        ({"state": "idle", "alarm": "disk full"}, "alarm"),
        ({"state": "sleeping"}, "state"),
        ({"state": "idle", "extra": 1}, "extra"),
        ({"state": "idle", "transfers": [{"title_id": "t1"}]}, "name"),
    ],
)
def test_a_bad_report_is_a_422(env: Env, body: dict[str, Any], field_: str) -> None:
    r = env.client().post("/v1/appliances/a1/fill/report", json=body, headers=env.auth("a1"))
    assert r.status_code == 422, r.text
    assert field_ in json.dumps(r.json())


def test_a_report_naming_an_unknown_or_self_source_is_a_422(env: Env) -> None:
    t1 = env.titles[0]
    for source, why in (("zz", "not an appliance"), ("a1", "the reporting appliance")):
        body = {"state": "filling", "transfers": [transfer(t1, 0, "o1"), transfer(t1, 1, source)]}
        r = env.client().post("/v1/appliances/a1/fill/report", json=body, headers=env.auth("a1"))
        assert r.status_code == 422 and r.json()["field"] == "transfers[1].source_id"
        assert why in r.json()["detail"]
    r = env.client().post(
        "/v1/appliances/a1/fill/report",
        json={"state": "filling", "transfers": [transfer(t1, 0, "o1") | {"name": "../x.m4s"}]},
        headers=env.auth("a1"),
    )
    assert r.status_code == 422 and "is not a <sha256>.<ext> file name" in r.text
    with env.plane.sessions() as s:
        assert s.scalars(select(FillTransfer)).all() == []  # nothing half-stored


# --- live regions and steering outcomes ----------------------------------------------------------


def test_a_title_is_live_where_enough_sites_hold_enough_copies(tmp_path: Path) -> None:
    e = start(tmp_path, fill_topology(), live_min_copies=2)
    try:
        t1 = e.titles[0]
        up(e, {"a1": [t1], "b1": [t1], "ix1": [t1]})
        assert e.client().get("/v1/titles/t1").json()["live_regions"] == []
        up(e, {"a2": [t1]})
        assert e.client().get("/v1/titles/t1").json()["live_regions"] == ["fr"]
    finally:
        e.plane.close()
    e = start(tmp_path / "2", fill_topology())
    try:
        up(e, {"a1": [e.titles[0]], "ix1": [e.titles[0]], "o1": [e.titles[0]]})
        assert e.client().get("/v1/titles/t1").json()["live_regions"] == ["fr", "ix-fra"]
    finally:
        e.plane.close()


def test_steering_outcomes_are_counted_with_content_misses(env: Env) -> None:
    t1 = env.titles[0]
    up(env, {"a1": [], "a2": [], "b1": [t1], "ix1": [t1], "o1": [t1]})
    env.play("10.1.2.3")  # a-par lacks t1: falls through to the IX
    env.play("10.2.3.4")  # b-lys holds it
    env.play("192.0.2.1")  # the IX is this client's best
    up(env, {"a1": [t1]})
    env.play("10.1.2.3")
    stats = env.client().get("/v1/steering/stats").json()
    assert stats["decisions"] == 4
    assert stats["outcomes"] == {"content_miss": 1, "embedded": 1, "ix": 1, "pni": 1}
    assert stats["by_kind"] == {"embedded": 1, "ix": 2, "pni": 1}
    assert stats["content_miss_sites"] == {"a-par": 1}


def test_outcomes_name_content_and_health_misses_of_better_sites_only() -> None:
    sites = [
        site("isp", SiteKind.EMBEDDED, ("10.0.0.0/8",)),
        site("ix", SiteKind.IX),
        site("o", SiteKind.ORIGIN),
    ]
    hot = Load(egress_bps=10e9)

    def outcome_of(*apps: Any) -> Outcome:
        return outcome(steer(snapshot(sites, list(apps)), "10.1.1.1", "t1", NOW))

    ix, origin = appliance("x", "ix"), appliance("o1", "o")
    assert outcome_of(appliance("a", "isp"), ix, origin) == Outcome("embedded", "embedded", ())
    missing = appliance("a", "isp", titles=())
    assert outcome_of(missing, ix, origin) == Outcome(CONTENT_MISS, "ix", ("isp",))
    busy = appliance("c", "isp", load=hot)
    assert outcome_of(busy, ix, origin) == Outcome(HEALTH_MISS, "ix", ())
    assert outcome_of(missing, busy, ix, origin).label == CONTENT_MISS  # content first
    # a peer's miss at the site that serves is no fall-through
    b = appliance("b", "isp")
    assert outcome_of(missing, b, ix, origin) == Outcome("embedded", "embedded", ())


# --- the CLI -------------------------------------------------------------------------------------


def cli(env: Env, *args: str, code: int = 0) -> str:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:  # the CLI points logging at the runner's stream, closed afterwards
        result = CliRunner().invoke(cli_app, ["--home", str(env.root / "home"), *args])
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == code, result.output
    return result.stdout


def test_cli_release_plan_status_and_links(env: Env) -> None:
    config = env.root / "home" / "config.toml"
    previous = config.read_text() if config.exists() else "[control]\n"
    config.write_text(previous + "fill_floor_sessions = 1.0\n")
    at = "2027-01-20T20:00:00+01:00"
    out = cli(env, "control", "release", "t1", "--at", at, "--expected", "40")
    assert "release of t1 at 2027-01-20T19:00:00+00:00: 40 sessions/day in every region" in out
    env.plane.reload()
    assert env.plane.fills.release("t1") is not None
    cli(env, "control", "release", "t1", "--at", "soon", "--expected", "1", code=2)
    cli(env, "control", "release", "t1", code=2)
    out = cli(env, "control", "fill", "plan")  # the CLI runs on the real clock
    assert ": 4 manifest(s), changed: a1, a2, b1, ix1; churn 4 title copies" in out
    plan = json.loads(cli(env, "control", "fill", "plan", "--json"))
    assert plan["changed"] == [] and plan["appliances"] == 4
    t1 = env.titles[0]
    up(env, {"a1": [t1], "ix1": [t1]})
    env.client().post(
        "/v1/appliances/a1/fill/report",
        json={"state": "alarm", "alarm": "disk full", "transfers": [transfer(t1, 0, "ix1")]},
        headers=env.auth("a1"),
    )
    status = cli(env, "control", "fill", "status")
    assert "site a-par (embedded, region a-par): window 02:00-14:00 Europe/Paris" in status
    assert "  a1 v1: 1/1 titles" in status and "ALARM: disk full" in status
    links = cli(env, "control", "fill", "links", "--detail")
    assert "ix-fra -> a-par (tier): 1 file(s)" in links and "at most 1 per file" in links
    assert json.loads(cli(env, "control", "fill", "links", "--json"))[0]["to_site"] == "a-par"
    assert "cleared" in cli(env, "control", "release", "t1", "--clear")
