"""BGP end to end: BIRD 2 -> our speakers -> relays -> a real control plane -> steering.

A real ``python -m localcast control serve`` (topology: two embedded sites
of one ISP, an IX, the origin), two appliances' BGP speakers in process
(:class:`bgp_support.SpeakerThread`), each with the real
:class:`~localcast.bgp.relay.Relay` posting to the control plane, and one
BIRD 2 (its own config, control socket and pid file; loopback with
``multihop``) playing the ISP's router, peering with both. Reconfiguring
BIRD (``birdc configure``) prepends, sets MED and withdraws as an ISP would;
stopping it ends the sessions. Every wait polls with a deadline; nothing
asserts on elapsed time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
from bgp_support import Bird, SpeakerThread, bird_bgp, bird_header, bird_static, free_port
from control_fixtures import synthetic_title, topology_toml
from test_control_e2e import Server, cli

from localcast.bgp.relay import Relay

pytestmark = pytest.mark.slow

ISP_AS, OUR_AS = 65002, 65001
BIRD_ADDR = "127.0.0.2"
ONLY_E1 = "11.1.0.0/16"  # announced to e1 only
BOTH = "11.2.0.0/24"  # announced to both; prepending or MED decides
HOLD_S = 6  # both sides' hold time
TITLE = synthetic_title("t1", segments=2, segment_s=4.0)
TOPOLOGY: dict[str, Any] = {
    "partners": [{"name": "isp", "asns": [ISP_AS]}],
    "sites": [
        {
            "id": "e-one",
            "kind": "embedded",
            "partner": "isp",
            "lat": 48.85,
            "lon": 2.35,
            "tz": "Europe/Paris",
            "prefixes": ["10.1.0.0/16"],  # the topology wants some; BGP replaces them
        },
        {
            "id": "e-two",
            "kind": "embedded",
            "partner": "isp",
            "lat": 48.86,
            "lon": 2.36,
            "tz": "Europe/Paris",
            "prefixes": ["10.2.0.0/16"],
        },
        {"id": "ix-fra", "kind": "ix", "lat": 50.11, "lon": 8.68, "tz": "Europe/Berlin"},
        {"id": "origin", "kind": "origin", "lat": 37.4, "lon": -122.1, "tz": "America/Los_Angeles"},
    ],
    "appliances": [
        {"id": "e1", "site": "e-one", "url": "http://127.0.0.1:18101", "disk_gb": 10, "gbps": 10},
        {"id": "e2", "site": "e-two", "url": "http://127.0.0.1:18102", "disk_gb": 10, "gbps": 10},
        {"id": "ix1", "site": "ix-fra", "url": "http://127.0.0.1:18301", "disk_gb": 10, "gbps": 40},
        {"id": "o1", "site": "origin", "url": "http://127.0.0.1:18001", "disk_gb": 99, "gbps": 10},
    ],
}
SITE_OF = {"e1": "e-one", "e2": "e-two"}


def poll(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    """``check()`` once truthy; fails only when the deadline passes."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def speaker_config(port: int, router_id: str) -> dict[str, Any]:
    return {
        "local_as": OUR_AS,
        "router_id": router_id,
        "listen": ["127.0.0.1"],
        "port": port,
        "neighbors": [
            {
                "address": BIRD_ADDR,
                "remote_as": ISP_AS,
                "passive": True,
                "hold_time": HOLD_S,
                "families": ["ipv4"],
            }
        ],
    }


def bird_config(
    workdir: Path,
    ports: dict[str, int],
    routes: list[str],
    prepend_to: str | None,
    med: dict[str, int] | None = None,
) -> str:
    """BIRD announcing ``routes``; ``ONLY_E1`` to e1 only; ``BOTH`` prepended towards one
    (``prepend_to``) and with the MED ``med[appliance]`` towards each (``med``)."""
    conf = bird_header(log=workdir / "bird.log") + bird_static("s4", "ipv4", routes)
    for aid, port in ports.items():
        rules = ['if proto != "s4" then reject;']
        if aid != "e1":
            rules.append(f"if net = {ONLY_E1} then reject;")
        if aid == prepend_to:
            rules.append(f"if net = {BOTH} then {{ bgp_path.prepend({ISP_AS}); }}")
        if med is not None:
            rules.append(f"if net = {BOTH} then {{ bgp_med = {med[aid]}; }}")
        conf += bird_bgp(
            f"to_{aid}",
            local=BIRD_ADDR,
            local_as=ISP_AS,
            neighbor="127.0.0.1",
            neighbor_port=port,
            neighbor_as=OUR_AS,
            family="ipv4",
            export_from="s4",
            export="filter { " + " ".join(rules) + " accept; }",
            next_hop="192.0.2.1",
            hold=HOLD_S,
        )
    return conf


class Appliance:
    """One appliance's BGP side: a speaker in its thread and its relay to the control plane."""

    def __init__(self, aid: str, port: int, router_id: str, url: str, credential: str) -> None:
        self.aid = aid
        self.speaker = SpeakerThread(speaker_config(port, router_id)).__enter__()
        self.task: Future[None] = asyncio.run_coroutine_threadsafe(
            self._relay(url, credential), self.speaker.loop
        )

    async def _relay(self, url: str, credential: str) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            relay = Relay(self.speaker.speaker, client, url, self.aid, credential, batch_s=0.05)
            await relay.run()

    def close(self) -> None:
        self.task.cancel()
        self.speaker.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    (home / "config.toml").write_text(
        f'[control]\nport = {port}\ntrusted_proxies = ["127.0.0.1"]\nrefresh_interval_s = 0.2\n'
        "turnup_required = false\n"  # these appliances are BGP speakers with no data plane
    )
    srv = Server(home, port, tmp_path / "control.log")
    yield srv
    srv.stop()


def provision(server: Server, tmp_path: Path) -> dict[str, str]:
    topo = tmp_path / "topology.toml"
    topo.write_text(topology_toml(TOPOLOGY))
    r = cli(server.home, "control", "apply", str(topo))
    assert r.returncode == 0, r.stderr
    creds = {
        line.split()[1].rstrip(":"): line.split()[2]
        for line in r.stdout.splitlines()
        if line.startswith("credential ")
    }
    TITLE.write(server.home / "origin")
    r = cli(server.home, "control", "import-titles")
    assert r.returncode == 0, r.stderr
    return creds


def bring_up(http: httpx.Client, creds: dict[str, str]) -> None:
    """Every appliance registered, holding the title (heartbeats outlast the test)."""
    inv = {TITLE.title_id: sorted(TITLE.files)}
    for aid, secret in creds.items():
        auth = {"Authorization": f"Bearer {secret}"}
        r = http.post(
            f"/v1/appliances/{aid}/register", json={"heartbeat_interval_s": 600}, headers=auth
        )
        assert r.status_code == 200, r.text
        r = http.post(
            f"/v1/appliances/{aid}/heartbeat",
            json={"inventory": {"kind": "full", "seq": 1, "titles": inv}},
            headers=auth,
        )
        assert r.status_code == 200, r.text


def routes(http: httpx.Client, **params: str) -> dict[str, str]:
    """``prefix@appliance`` -> AS path text, of what the control plane holds now."""
    r = http.get("/v1/routes", params={"limit": "1000", **params})
    assert r.status_code == 200, r.text
    return {
        f"{x['prefix']}@{x['appliance_id']}": " ".join(map(str, x["as_path"]))
        for x in r.json()["routes"]
    }


def first_site(http: httpx.Client, ip: str) -> str:
    r = http.get("/v1/steering/explain", params={"ip": ip, "title": TITLE.title_id})
    assert r.status_code == 200, r.text
    return str(r.json()["sites"][0]["site_id"])


def test_bird_routes_steer_clients_through_the_control_plane(
    server: Server, tmp_path: Path
) -> None:
    creds = provision(server, tmp_path)
    server.start()
    http = httpx.Client(base_url=server.url, timeout=10)
    bring_up(http, creds)
    assert first_site(http, "11.1.2.3") == "ix-fra"  # no route heard yet: peering

    ports = {"e1": free_port(), "e2": free_port()}
    appliances = [
        Appliance(aid, ports[aid], rid, server.url, creds[aid])
        for aid, rid in (("e1", "10.0.0.1"), ("e2", "10.0.0.2"))
    ]
    all_routes = [f"{ONLY_E1} blackhole", f"{BOTH} blackhole"]
    bird = Bird(tmp_path, bird_config(tmp_path, ports, all_routes, prepend_to="e2"))
    try:
        bird.start()
        # --- what BIRD announces reaches the control plane, with its attributes ---------
        want = {
            f"{ONLY_E1}@e1": "65002",
            f"{BOTH}@e1": "65002",
            f"{BOTH}@e2": "65002 65002",
        }
        poll(lambda: routes(http) == want, "BIRD's routes at the control plane")
        page = http.get("/v1/routes", params={"prefix": ONLY_E1}).json()
        (row,) = page["routes"]
        assert row["peer"] == BIRD_ADDR and row["peer_as"] == ISP_AS
        assert row["peer_router_id"] == "192.0.2.254" and row["next_hop"] == "192.0.2.1"
        assert row["site_id"] == "e-one" and row["ebgp"] is True
        (e1,) = page["appliances"]
        (session,) = e1["sessions"]
        assert session["neighbor"] == BIRD_ADDR and session["state"] == "established"

        # --- steering: the site whose appliance heard the client ------------------------
        assert first_site(http, "11.1.2.3") == "e-one"
        r = http.post(
            "/v1/playback",
            json={"title_id": TITLE.title_id, "profile_id": "p1"},
            headers={"X-Forwarded-For": "11.1.2.3"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["pathways"][0]["appliance_id"] == "e1"
        # both hear BOTH; e2's path is prepended: e1 wins
        assert first_site(http, "11.2.0.9") == "e-one"

        # --- prepending towards e1 instead moves the client to e2 -----------------------
        bird.reconfigure(bird_config(tmp_path, ports, all_routes, prepend_to="e1"))
        poll(lambda: first_site(http, "11.2.0.9") == "e-two", "prepending to move the client")
        assert routes(http)[f"{BOTH}@e1"] == "65002 65002"

        # --- withdrawing a prefix removes it at the control plane -----------------------
        bird.reconfigure(bird_config(tmp_path, ports, [f"{BOTH} blackhole"], prepend_to="e1"))
        poll(lambda: f"{ONLY_E1}@e1" not in routes(http), "the withdrawal")
        assert first_site(http, "11.1.2.3") == "ix-fra"
        assert set(routes(http)) == {f"{BOTH}@e1", f"{BOTH}@e2"}

        # --- equal AS paths from the same neighbor AS: the lower MED wins ---------------
        def med_of() -> dict[str, int]:
            page = http.get("/v1/routes", params={"prefix": BOTH}).json()
            return {x["appliance_id"]: x["med"] for x in page["routes"]}

        only_both = [f"{BOTH} blackhole"]
        bird.reconfigure(bird_config(tmp_path, ports, only_both, None, med={"e1": 10, "e2": 20}))
        poll(lambda: med_of() == {"e1": 10, "e2": 20}, "the MEDs at the control plane")
        assert routes(http) == {f"{BOTH}@e1": "65002", f"{BOTH}@e2": "65002"}
        assert first_site(http, "11.2.0.9") == "e-one"
        bird.reconfigure(bird_config(tmp_path, ports, only_both, None, med={"e1": 30, "e2": 20}))
        poll(lambda: med_of() == {"e1": 30, "e2": 20}, "the new MEDs at the control plane")
        assert first_site(http, "11.2.0.9") == "e-two"

        # --- stopping BIRD removes its routes within the hold time ----------------------
        bird.stop()
        poll(lambda: routes(http) == {}, "the routes to go with BIRD", timeout_s=HOLD_S + 1)
        assert first_site(http, "11.2.0.9") == "ix-fra"
    finally:
        bird.stop()
        for a in appliances:
            a.close()
        http.close()
