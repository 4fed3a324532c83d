"""Fault: one of an appliance's two BGP sessions flaps while it serves.

A real stack (embedded appliance e1 of an ISP, an IX appliance, the origin)
where e1 also runs its BGP speaker (``localcast bgp run`` in its home and
process group, relaying routes to the control plane) with two passive
sessions to two BIRD 2 daemons playing the ISP's two routers: ``r1``
(127.0.0.2) announces the subscribers' prefix and 11.1.0.0/16, ``r2``
(127.0.0.3) the subscribers' prefix only. The subscribers' prefix is a /24 on
a veth pair made by the test (BIRD will not announce loopback space, and the
speaker's import policy refuses private space): the player binds our end's
address, and talks only to 127.0.0.1 (no packet leaves the host). A session
plays from there while ``birdc disable r1`` / ``birdc enable r1`` runs three
times. Each time:

- the control plane loses 11.1.0.0/16 (steering sends its clients to the IX)
  and gets it back (steering sends them to e1 again);
- r2's session stays established throughout (never re-established) and the
  subscribers' prefix never leaves e1 (held from r2);
- the session plays on from e1: no failed request, no failover, no rebuffer,
  every segment, the last view stored; e1's status is never an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from bgp_support import Bird, free_port, isp_router, require_bird, speaker_toml
from fault_support import (
    NetNs,
    PlayableTitle,
    PlayerThread,
    check_session,
    check_store,
    fleet,
    hosts_of,
    playable_title,
    poll,
    served_by,
)

from localcast.control.topology import PartnerSpec, SiteSpec
from localcast.core.fleet import SiteKind
from localcast.devstack import LocalStack, NodeSpec, StackSpec
from localcast.player import PlayerTuning

pytestmark = pytest.mark.slow

ISP_AS, OUR_AS = 65002, 65001
ROUTERS = {"r1": "127.0.0.2", "r2": "127.0.0.3"}
ONLY_R1 = "11.1.0.0/16"  # from r1 only
SUBSCRIBER_BASE = "11.200"  # the subscribers' /24: <base>.N.0/24 on the test's veth pair
FLAPS = 3
HOLD_S = 6


def spec(subscribers: str) -> StackSpec:
    return StackSpec(
        partners=(PartnerSpec(name="isp", asns=[ISP_AS]),),
        sites=(
            SiteSpec(
                id="isp-par",
                kind=SiteKind.EMBEDDED,
                partner="isp",
                lat=48.85,
                lon=2.35,
                tz="Europe/Paris",
                prefixes=[subscribers],  # counts until e1 speaks BGP; then its routes do
            ),
            SiteSpec(id="ix-ams", kind=SiteKind.IX, lat=52.37, lon=4.9, tz="Europe/Amsterdam"),
            SiteSpec(id="origin", kind=SiteKind.ORIGIN, lat=37.4, lon=-122.1, tz="UTC"),
        ),
        appliances=(
            NodeSpec("e1", "isp-par"),
            NodeSpec("ix1", "ix-ams", disk_gb=100.0),
            NodeSpec("o1", "origin", serves_origin=True),
        ),
    )


def router_config(workdir: Path, name: str, port: int, subscribers: str) -> str:
    """One ISP router (its own BIRD): the subscribers' prefix, and ONLY_R1 from r1."""
    routes = [subscribers] + ([ONLY_R1] if name == "r1" else [])
    return isp_router(
        workdir,
        name,
        address=ROUTERS[name],
        router_id=f"192.0.2.{250 + int(name[1])}",
        isp_as=ISP_AS,
        speaker_port=port,
        speaker_as=OUR_AS,
        routes=routes,
        hold=HOLD_S,
    )


@dataclass
class Env:
    stack: LocalStack
    subscribers: str  # prefix
    client: str  # a subscriber's address


@pytest.fixture
def title() -> PlayableTitle:
    return playable_title("flap", 60.0, 4.0, video=((240, 400_000), (360, 800_000)))


@pytest.fixture
def env(tmp_path: Path, title: PlayableTitle) -> Iterator[Env]:
    require_bird()
    with (
        NetNs("bgp", base=SUBSCRIBER_BASE) as ns,
        LocalStack(tmp_path / "stack", spec(ns.prefix)) as s,
    ):
        title.write(s.origin)
        s.publish(title.title_id)
        yield Env(s, ns.prefix, ns.host_ip)


def routes(stack: LocalStack) -> dict[str, Any]:
    r = httpx.get(f"{stack.control_url}/v1/routes", params={"limit": "100"}, trust_env=False)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


def held(page: dict[str, Any]) -> dict[str, str]:
    """e1's routes: prefix -> the router of the best of its sessions' routes for it."""
    names = {addr: name for name, addr in ROUTERS.items()}
    return {x["prefix"]: names[x["peer"]] for x in page["routes"] if x["appliance_id"] == "e1"}


def sessions(page: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """By router name: e1's sessions as last reported."""
    names = {addr: name for name, addr in ROUTERS.items()}
    (e1,) = [a for a in page["appliances"] if a["appliance_id"] == "e1"]
    return {names[s["neighbor"]]: s for s in e1["sessions"]}


def first_site(stack: LocalStack, ip: str, title_id: str) -> str:
    r = httpx.get(
        f"{stack.control_url}/v1/steering/explain",
        params={"ip": ip, "title": title_id},
        trust_env=False,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["sites"][0]["site_id"])


def test_bgp_session_flapping(env: Env, title: PlayableTitle, tmp_path: Path) -> None:
    stack, client = env.stack, env.client
    e1 = stack.appliances["e1"]
    port = free_port()
    (e1.home / "config.toml").write_text(speaker_toml(port, OUR_AS, ROUTERS, ISP_AS, HOLD_S))
    speaker = stack.spawn_beside(
        "e1",
        "bgp",
        *("bgp", "run", "--control-url", stack.control_url, "--appliance", "e1"),
        "--status-every=0",
    )
    birds = {}
    for name in ROUTERS:
        (tmp_path / name).mkdir()
        birds[name] = Bird(
            tmp_path / name, router_config(tmp_path / name, name, port, env.subscribers)
        )
    everything = {env.subscribers, ONLY_R1}
    without_r1 = {env.subscribers: "r2"}
    statuses: list[str] = []
    try:
        for bird in birds.values():
            bird.start()
        poll(lambda: set(held(routes(stack))) == everything, "BIRD's routes at the control plane")
        assert first_site(stack, "11.1.2.3", title.title_id) == "isp-par"
        r2_since = sessions(routes(stack))["r2"]["state_since"]

        player = PlayerThread(
            title.title_id,
            "flap-viewer",
            control_url=stack.control_url,
            source_address=client,
            speed=3.0,
            tuning=PlayerTuning(max_buffer_s=12.0, platform="fault-test"),
        )
        player.start()
        player.wait_segments(1)
        r1 = birds["r1"]
        for flap in range(1, FLAPS + 1):
            assert "disabled" in r1.birdc("disable", "r1").lower()
            poll(lambda: held(routes(stack)) == without_r1, f"flap {flap}: r1's routes gone")
            assert first_site(stack, "11.1.2.3", title.title_id) == "ix-ams"
            assert first_site(stack, client, title.title_id) == "isp-par"
            statuses.append(fleet(stack)["e1"]["status"])
            assert "enabled" in r1.birdc("enable", "r1").lower()
            poll(lambda: set(held(routes(stack))) == everything, f"flap {flap}: r1's back")
            assert first_site(stack, "11.1.2.3", title.title_id) == "isp-par"
            now = sessions(routes(stack))
            assert now["r1"]["state"] == "established"
            assert now["r1"].get("established_count", flap + 1) == flap + 1, now["r1"]
            assert now["r2"]["state"] == "established"
            assert now["r2"]["state_since"] == r2_since, "r2's session went down"
            assert now["r2"].get("established_count", 1) == 1, now["r2"]
            statuses.append(fleet(stack)["e1"]["status"])
        flapped_at = len(player.segments())
        report = player.result(120)
    finally:
        for bird in birds.values():
            bird.stop()
    assert speaker.running(), speaker.log_tail()
    assert flapped_at < len(report.segments), "the session ended before the flaps did"
    assert report.request_errors == 0 and report.failovers == 0, report.to_dict(False)
    assert set(served_by(report, hosts_of(stack))) == {"e1"}
    assert check_session(stack, report, title.manifest) == []
    assert "error" not in statuses, statuses
    assert check_store(e1.store) == []
    print(
        f"\n{FLAPS} flaps of r1: {ONLY_R1} withdrawn and restored each time, r2 up throughout; "
        f"the session played {len(report.segments)} segments from e1 "
        f"({flapped_at} by the end of the flaps) with {report.request_errors} failed requests; "
        f"e1 status during: {json.dumps(statuses)}"
    )
