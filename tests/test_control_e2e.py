"""The real thing: `python -m localcast control ...` processes on loopback.

One scenario, in order: apply a topology and import a title with the CLI
(and see a bad topology refused), start ``control serve``, run reporters
for five appliances, play from several client addresses (a trusted proxy's
X-Forwarded-For, distinct 127.x source addresses, an untrusted peer's
forged header), check the content-steering playlist, stop one appliance's
heartbeats and watch the steering manifest drop it, record a view,
restart the control plane on the same SQLite file and resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import m3u8
import pytest
from control_fixtures import ALL_APPLIANCES, TOPOLOGY, synthetic_title, topology_toml

from localcast.control.reporter import run_reporter

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
TITLE = synthetic_title("t1", segments=5, segment_s=4.0)
INTERVAL_S = 0.3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localcast", "--home", str(home), "--log-level", "warning", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Server:
    home: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "localcast", "--home", str(self.home), "control", "serve"],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"control plane did not come up:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    (home / "config.toml").write_text(  # no data plane behind these appliances: no turn-up
        f'[control]\nport = {port}\ntrusted_proxies = ["127.0.0.1"]\nrefresh_interval_s = 0.2\n'
        "turnup_required = false\n"
    )
    srv = Server(home, port, tmp_path / "control.log")
    yield srv
    srv.stop()


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 15) -> None:
    """Poll ``check`` until it holds (never asserts on elapsed time, only gives up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_control_plane_end_to_end(server: Server, tmp_path: Path) -> None:
    home = server.home
    # --- the CLI: a bad topology is refused naming the field, the good one applied -------
    bad = tmp_path / "bad.toml"
    bad_doc = {**TOPOLOGY, "sites": [dict(TOPOLOGY["sites"][0], tz="Europe/Pariss")]}
    bad.write_text(topology_toml(bad_doc))
    r = cli(home, "control", "apply", str(bad))
    assert r.returncode == 2
    assert "sites[0].tz: unknown IANA time zone 'Europe/Pariss'" in r.stderr

    topo = tmp_path / "topology.toml"
    topo.write_text(topology_toml(TOPOLOGY))
    r = cli(home, "control", "apply", str(topo))
    assert r.returncode == 0, r.stderr
    creds = {
        line.split()[1].rstrip(":"): line.split()[2]
        for line in r.stdout.splitlines()
        if line.startswith("credential ")
    }
    assert sorted(creds) == sorted(ALL_APPLIANCES)
    again = cli(home, "control", "apply", str(topo))
    assert again.stdout.strip() == "topology unchanged"
    shown = cli(home, "control", "credential", "a1")
    assert shown.stdout.strip() == creds["a1"]

    TITLE.write(home / "origin")
    r = cli(home, "control", "import-titles")
    assert r.returncode == 0 and r.stdout.strip() == "imported t1", r.stderr

    # --- the server, and five appliances reporting ------------------------------------
    server.start()
    stores = {}
    for aid in ALL_APPLIANCES:
        stores[aid] = tmp_path / f"store-{aid}"
        TITLE.write(stores[aid], with_manifest=False)

    master_url = asyncio.run(scenario(server, creds, stores))

    # --- restart on the same database: the view is still there, playback resumes -----
    server.stop()
    server.start()
    asyncio.run(after_restart(server, creds, master_url))


async def playback(
    http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    ask = {"title_id": "t1", "profile_id": "p1", "device": {"codecs": ["avc1", "mp4a"]}}
    r = await http.post(f"{url}/v1/playback", json=ask, headers=headers or {})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [p["appliance_id"] for p in body["pathways"]]


async def scenario(server: Server, creds: dict[str, str], stores: dict[str, Path]) -> str:
    """Everything before the restart; returns a session's multivariant URL."""
    url = server.url
    reporters = {
        aid: asyncio.create_task(run_reporter(url, aid, creds[aid], stores[aid], INTERVAL_S))
        for aid in ALL_APPLIANCES
    }
    try:
        async with httpx.AsyncClient(timeout=10) as http:

            async def all_alive() -> bool:
                fleet = (await http.get(f"{url}/v1/appliances")).json()
                return all(a["alive"] and a["inventory_titles"] == 1 for a in fleet)

            await until(all_alive, "five live appliances holding t1")

            r = await http.post(
                f"{url}/v1/appliances/a1/heartbeat", json={}, headers={"Authorization": "Bearer x"}
            )
            assert r.status_code == 401

            # per client address, the right site ranks first
            isp_a = await playback(http, url, {"X-Forwarded-For": "10.1.2.3"})
            assert set(ids(isp_a)[:2]) == {"a1", "a2"} and ids(isp_a)[2:] == ["ix1", "o1"]
            isp_b = await playback(http, url, {"X-Forwarded-For": "10.2.3.4"})
            assert ids(isp_b) == ["b1", "ix1", "o1"]
            elsewhere = await playback(http, url, {"X-Forwarded-For": "192.0.2.1"})
            assert ids(elsewhere) == ["ix1", "o1"]

        # distinct loopback source addresses; 127.0.0.2 is no trusted proxy
        for source, expect_first, forged in (
            ("127.0.1.5", {"a1", "a2"}, None),
            ("127.0.2.5", {"b1"}, None),
            ("127.0.0.2", {"ix1"}, "10.1.2.3"),
        ):
            transport = httpx.AsyncHTTPTransport(local_address=source)
            async with httpx.AsyncClient(transport=transport, timeout=10) as http:
                headers = {"X-Forwarded-For": forged} if forged else None
                body = await playback(http, url, headers)
                assert body["client_ip"] == source
                assert ids(body)[0] in expect_first
                if forged:
                    assert "ignored" in body["client_ip_reason"]

        async with httpx.AsyncClient(timeout=10) as http:
            # the content-steering playlist: a PATHWAY-ID per appliance, signed absolute URIs
            text = (await http.get(isp_a["multivariant_url"])).text
            playlist = m3u8.loads(text)
            assert playlist.content_steering.uri == isp_a["steering_url"]
            pathways = [v.stream_info.pathway_id for v in playlist.playlists]
            assert list(dict.fromkeys(pathways)) == ids(isp_a)
            bases = {p["id"]: p["base_url"] for p in isp_a["pathways"]}
            for v in playlist.playlists:
                assert v.uri.startswith(bases[v.stream_info.pathway_id])
                assert "/lc1~" in v.uri and v.uri.startswith("http://127.0.0.1:18")

            # one appliance stops heartbeating: the steering manifest demotes it (ranked
            # last while only its heartbeats are late), then drops it once its status is
            # Error (dead: out of steering, in-flight players move)
            best = ids(isp_a)[0]
            steering = isp_a["steering_url"]
            first = (await http.get(steering)).json()["PATHWAY-PRIORITY"]
            assert first == ids(isp_a)
            reporters.pop(best).cancel()

            async def dropped() -> bool:
                prio = (await http.get(steering)).json()["PATHWAY-PRIORITY"]
                return best not in prio and prio == [p for p in ids(isp_a) if p != best]

            await until(dropped, f"{best} dropped from the steering manifest")
            dash = (await http.get(steering, params={"format": "dash"})).json()
            assert best not in dash["SERVICE-LOCATION-PRIORITY"]

            # a view to resume from
            r = await http.put(f"{url}/v1/views/p1/t1", json={"offset_s": 9.5, "platform": "web"})
            assert r.status_code == 200 and r.json()["applied"]
            return str(isp_a["multivariant_url"])
    finally:
        for task in reporters.values():
            task.cancel()
        await asyncio.gather(*reporters.values(), return_exceptions=True)


async def after_restart(server: Server, creds: dict[str, str], master_url: str) -> None:
    url = server.url
    async with httpx.AsyncClient(timeout=10) as http:
        view = (await http.get(f"{url}/v1/views/p1/t1")).json()
        assert view["offset_s"] == 9.5 and view["resume_offset_s"] == 8.0
        # the session issued before the restart still works (signed, nothing stored)
        old = await http.get(master_url)
        assert old.status_code == 200 and "PATHWAY-ID" in old.text
        # appliances come back after the restart; playback resumes at the segment start
        auth = {"Authorization": f"Bearer {creds['ix1']}"}
        r = await http.post(f"{url}/v1/appliances/ix1/register", headers=auth)
        assert r.status_code == 200
        r = await http.post(f"{url}/v1/appliances/ix1/heartbeat", json={}, headers=auth)
        assert r.json()["alive"]
        body = await playback(http, url, {"X-Forwarded-For": "192.0.2.1"})
        assert ids(body)[0] == "ix1" and body["resume_offset_s"] == 8.0
        text = (await http.get(body["multivariant_url"])).text
        assert "#EXT-X-START:TIME-OFFSET=8.000000" in text
    assert os.path.exists(server.home / "control.db")
