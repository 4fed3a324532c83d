"""Fault: the control plane crashes (SIGKILL) and restarts while sessions play.

A real stack: two embedded appliances of one ISP (clients 127.0.1.0/24) and
the origin appliance. Two CLI players stream a real title; the control plane
is killed once they are under way and started again (same port, home and
SQLite database) a little later. Meanwhile the players go on fetching from
the appliances: sessions are signed, not stored, and segments never touch
the control plane. Asserted:

- both sessions finish with every segment, no failed request, no failover,
  no rebuffer, and segments were fetched while the control plane was down;
- right after the restart, the catalog, the stored views and the inventory
  (``GET /v1/titles``, ``GET /v1/views/...``, ``GET /v1/appliances``) answer
  as they did before the crash; the sessions' steering manifests are served;
- the players' last viewing offsets are stored; the stores' files are intact.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fault_support import (
    PlayerThread,
    check_session,
    check_store,
    one_isp_spec,
    poll,
    steering_priority,
)

from localcast.config import Config
from localcast.devstack import LocalStack, NodeSpec
from localcast.media.manifest import TitleManifest
from localcast.player import PlayerEvent, PlayerTuning

pytestmark = pytest.mark.slow

SPEC = one_isp_spec(
    (
        NodeSpec("e1", "isp-par"),
        NodeSpec("e2", "isp-par"),
        NodeSpec("o1", "origin", serves_origin=True),
    ),
    ix=False,
)
CLIENTS = {"restart-a": "127.0.1.21", "restart-b": "127.0.1.22"}
STORED_VIEWS = {"viewer-1": 4.0, "viewer-2": 9.5, "viewer-3": 13.25}
DOWN_S = 6.0  # down this long (then its start-up): longer than a segment fetch interval
SPEED = 1.0  # real time: the sessions outlast the restart


@pytest.fixture
def stack(tmp_path: Any, ingested_title: tuple[Config, TitleManifest]) -> Iterator[LocalStack]:
    config, manifest = ingested_title
    with LocalStack(tmp_path / "stack", SPEC) as s:
        shutil.copytree(config.paths.origin / manifest.title_id, s.origin / manifest.title_id)
        s.publish(manifest.title_id)
        yield s


def answers(stack: LocalStack, title_id: str) -> dict[str, Any]:
    """What the control plane says about the catalog, the views and the inventory."""
    with httpx.Client(base_url=stack.control_url, trust_env=False, timeout=10) as http:
        views = {p: http.get(f"/v1/views/{p}/{title_id}").json() for p in sorted(STORED_VIEWS)}
        for v in views.values():
            v.pop("resume_reason", None)  # wording, not data
        inventory = {
            a["id"]: {
                k: a[k]
                for k in ("site_id", "base_url", "state", "inventory_titles", "inventory_files")
            }
            for a in http.get("/v1/appliances").json()
        }
        return {"titles": http.get("/v1/titles").json(), "views": views, "inventory": inventory}


def test_control_plane_restart_mid_session(
    stack: LocalStack, ingested_title: tuple[Config, TitleManifest]
) -> None:
    _, manifest = ingested_title
    title = manifest.title_id
    for profile, offset in STORED_VIEWS.items():
        r = httpx.put(
            f"{stack.control_url}/v1/views/{profile}/{title}",
            json={"offset_s": offset, "platform": "test"},
            trust_env=False,
        )
        assert r.status_code == 200, r.text
    before = answers(stack, title)
    assert before["titles"][0]["appliances_holding"] == ["e1", "e2", "o1"]

    fetched_at: dict[str, list[float]] = {p: [] for p in CLIENTS}

    def timing(profile: str) -> Any:
        def sink(event: PlayerEvent) -> None:
            if event.kind == "segment":
                fetched_at[profile].append(time.monotonic())

        return sink

    players = [
        PlayerThread(
            title,
            profile,
            control_url=stack.control_url,
            source_address=ip,
            speed=SPEED,
            tuning=PlayerTuning(max_buffer_s=12.0, platform="fault-test"),
            on_event=timing(profile),
        )
        for profile, ip in CLIENTS.items()
    ]
    sessions = []
    for p in players:
        p.start()
    for p in players:
        p.wait_segments(1)
    session = httpx.post(
        f"{stack.control_url}/v1/playback",
        json={"title_id": title, "profile_id": "probe"},
        trust_env=False,
    ).json()
    sessions.append(session)

    down_at = time.monotonic()
    stack.stop_control(kill=True)
    time.sleep(DOWN_S)
    stack.start_control()
    up_at = time.monotonic()
    playing_when_back = all(p.is_alive() for p in players)
    after = answers(stack, title)  # straight away: from the database, before any heartbeat
    assert after == before
    assert steering_priority(session)  # a session started before the crash is still served

    reports = [p.result(120) for p in players]
    for report in reports:
        assert report.request_errors == 0 and report.failovers == 0, report.to_dict(False)
        problems = check_session(stack, report, manifest, max_rebuffers=0)
        assert problems == [], problems
        during = [t for t in fetched_at[report.profile_id] if down_at <= t <= up_at]
        assert during, f"{report.profile_id} fetched nothing while the control plane was down"
    assert playing_when_back, "a session ended before the control plane was back"
    poll(
        lambda: all(a["alive"] for a in httpx.get(f"{stack.control_url}/v1/appliances").json()),
        "every appliance alive again",
    )
    assert answers(stack, title) == before
    for node in stack.appliances.values():
        assert check_store(node.store, (title,)) == []
    print(
        f"\ncontrol plane down {up_at - down_at:.1f} s (killed, restarted); "
        + "; ".join(
            f"{r.profile_id}: {sum(1 for t in fetched_at[r.profile_id] if down_at <= t <= up_at)}"
            f" segment(s) fetched while down, {r.request_errors} failed request(s)"
            for r in reports
        )
    )
