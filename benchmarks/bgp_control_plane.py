"""BGP to the control plane, end to end: BIRD's full table -> one appliance -> steering.

BIRD (Debian ``bird2``) announces the generated full table of
:mod:`_bgp_table` (900,000 IPv4 + 200,000 IPv6 prefixes, fixed seeds; both
families over one eBGP session on loopback) to one embedded appliance's
speaker (a child process, so its memory is its own) whose
:class:`~localcast.bgp.relay.Relay` posts to a real control plane
(``python -m localcast control serve``, one uvicorn worker, topology: that
appliance's embedded site and the origin). Prints:

* seconds from BIRD's start until the control plane holds every route
  (``GET /v1/routes?appliance=e1`` reports the appliance's route count);
* the appliance's (speaker + relay process) and the control plane's RSS;
* playback steering decisions per second over HTTP: ``wrk`` (``-c`` open
  connections, a Lua script) POSTs ``/v1/playback`` for random client
  addresses inside the table, sent as ``X-Forwarded-For`` from a trusted
  proxy (``[control] trusted_proxies = ["127.0.0.1/32"]``).

Each figure is printed next to its target; nothing is enforced (the exit
status is non-zero only if something failed). wrk and the control plane
share the machine's cores.

    .venv/bin/python benchmarks/bgp_control_plane.py [--v4 900000] [--v6 200000]
        [--connections 32] [--duration 10]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the synthetic title and topology writer of the tests
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from _bgp_table import generate, generate_v6, static_routes  # noqa: E402
from bgp_ingest import BirdProcess, free_port, rss_mib  # noqa: E402
from control_fixtures import synthetic_title, topology_toml  # noqa: E402

from localcast.bgp.prefix import Afi  # noqa: E402

LOCAL_AS, ISP_AS = 65001, 65002
BIRD_ADDR = "127.0.0.2"
APPLIANCE = "e1"
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
            "prefixes": ["10.1.0.0/16"],  # the topology wants some; BGP brings the table
        },
        {"id": "origin", "kind": "origin", "lat": 37.4, "lon": -122.1, "tz": "America/Los_Angeles"},
    ],
    "appliances": [
        {
            "id": APPLIANCE,
            "site": "e-one",
            "url": "http://127.0.0.1:18101",
            "disk_gb": 10,
            "gbps": 10,
        },
        {"id": "o1", "site": "origin", "url": "http://127.0.0.1:18001", "disk_gb": 99, "gbps": 10},
    ],
}
TARGET_FULL_S = 15.0
TARGET_PLAYBACK_PER_CORE = 2000.0

WRK_LUA = """
local ips = {%s}
local body = '{"title_id": "%s", "profile_id": "p1"}'
local hdrs = {["Content-Type"] = "application/json"}
math.randomseed(7)
request = function()
  hdrs["X-Forwarded-For"] = ips[math.random(#ips)]
  return wrk.format("POST", "/v1/playback", hdrs, body)
end
"""


# --- the appliance: speaker + relay, in a child process ---------------------------------------


def child(port: int, control_url: str, credential: str) -> None:
    import asyncio
    import logging

    logging.basicConfig(level=logging.ERROR)

    from localcast.bgp.config import parse_bgp_config
    from localcast.bgp.relay import Relay
    from localcast.bgp.speaker import Speaker

    cfg = parse_bgp_config(
        {
            "local_as": LOCAL_AS,
            "router_id": "10.0.0.1",
            "listen": ["127.0.0.1"],
            "port": port,
            "neighbors": [{"address": BIRD_ADDR, "remote_as": ISP_AS, "passive": True}],
        }
    )

    async def main() -> None:
        speaker = Speaker(cfg)
        await speaker.start()
        async with httpx.AsyncClient(timeout=120) as client:
            relay = Relay(speaker, client, control_url, APPLIANCE, credential)
            task = asyncio.create_task(relay.run())
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until told
            task.cancel()
        await speaker.stop()

    asyncio.run(main())


# --- the control plane ------------------------------------------------------------------------


def cli(home: Path, *args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "localcast", "--home", str(home), "--log-level", "warning", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if r.returncode:
        raise RuntimeError(f"localcast {' '.join(args)}: {r.stderr}")
    return r.stdout


def start_control(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "localcast", "--home", str(home), "control", "serve"],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"control plane exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"control plane did not come up:\n{log.read_text()}")


def provision(home: Path) -> dict[str, str]:
    topo = home / "topology.toml"
    topo.write_text(topology_toml(TOPOLOGY))
    out = cli(home, "control", "apply", str(topo))
    creds = {
        line.split()[1].rstrip(":"): line.split()[2]
        for line in out.splitlines()
        if line.startswith("credential ")
    }
    TITLE.write(home / "origin")
    cli(home, "control", "import-titles")
    return creds


def bring_up(http: httpx.Client, creds: dict[str, str]) -> None:
    inv = {TITLE.title_id: sorted(TITLE.files)}
    for aid, secret in creds.items():
        auth = {"Authorization": f"Bearer {secret}"}
        r = http.post(
            f"/v1/appliances/{aid}/register", json={"heartbeat_interval_s": 3600}, headers=auth
        )
        r.raise_for_status()
        r = http.post(
            f"/v1/appliances/{aid}/heartbeat",
            json={"inventory": {"kind": "full", "seq": 1, "titles": inv}},
            headers=auth,
        )
        r.raise_for_status()


def held(http: httpx.Client) -> int:
    r = http.get("/v1/routes", params={"appliance": APPLIANCE, "limit": "1"})
    r.raise_for_status()
    return int(r.json()["total"])


def rss_tree_mib(pid: int) -> float:
    """RSS of ``pid`` and its children (uvicorn runs in the ``serve`` process itself)."""
    kids = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout.split()
    return rss_mib(pid) + sum(rss_mib(k) for k in kids)


# --- BIRD -------------------------------------------------------------------------------------


def bird_config(v4: list[tuple[int, int]], v6: list[tuple[int, int]], port: int) -> str:
    def static(name: str, family: str, lines: list[str]) -> str:
        body = "".join(f"  route {r};\n" for r in lines)
        return f"protocol static {name} {{\n  {family};\n{body}}}\n"

    conf = "router id 192.0.2.254;\nprotocol device {}\n"
    conf += static("s4", "ipv4", static_routes(Afi.IPV4, v4))
    channels = "  ipv4 { import none; export all; next hop address 192.0.2.1; };\n"
    if v6:
        conf += static("s6", "ipv6", static_routes(Afi.IPV6, v6))
        channels += "  ipv6 { import none; export all; next hop address 2001:db8::1; };\n"
    return conf + (
        "protocol bgp feed {\n"
        f"  local {BIRD_ADDR} port {free_port()} as {ISP_AS};\n"
        f"  neighbor 127.0.0.1 port {port} as {LOCAL_AS};\n"
        "  multihop;\n  connect delay time 1;\n  connect retry time 1;\n" + channels + "}\n"
    )


# --- load -------------------------------------------------------------------------------------


def client_ips(v4: list[tuple[int, int]], v6: list[tuple[int, int]], n: int) -> list[str]:
    """``n`` random addresses inside random prefixes of the table (families in proportion)."""
    rng = random.Random(11)
    out = []
    for _ in range(n):
        if rng.random() * (len(v4) + len(v6)) < len(v6):
            net, length = rng.choice(v6)
            out.append(str(ipaddress.IPv6Address(net | rng.getrandbits(128 - length))))
        else:
            net, length = rng.choice(v4)
            out.append(str(ipaddress.IPv4Address(net | rng.getrandbits(32 - length))))
    return out


def run_wrk(url: str, lua: Path, connections: int, duration: int) -> tuple[float, str]:
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", str(lua), url],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    ).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk said:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    notes = []
    if bad:
        notes.append(f"{bad.group(1)} non-2xx")
    if errors:
        notes.append(errors.group(0))
    return float(m.group(1)), "; ".join(notes)


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--v4", type=int, default=900_000)
    ap.add_argument("--v6", type=int, default=200_000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=180.0, help="give up on the table after")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1], args.child[2])
        return 0
    for tool in ("bird", "wrk"):
        if not (shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}")):
            print(f"{tool} is not installed (make deps)", file=sys.stderr)
            return 1

    work = Path(tempfile.mkdtemp(prefix="bgp-cp-bench-"))
    home = work / "home"
    home.mkdir()
    cport = free_port()
    (home / "config.toml").write_text(
        f'[control]\nport = {cport}\ntrusted_proxies = ["127.0.0.1/32"]\n'
        "turnup_required = false\n"  # the appliance is a BGP speaker with no data plane
    )
    url = f"http://127.0.0.1:{cport}"
    control: subprocess.Popen[bytes] | None = None
    appliance: subprocess.Popen[str] | None = None
    bird: BirdProcess | None = None
    http = httpx.Client(base_url=url, timeout=60)
    try:
        v4, v6 = generate(args.v4), generate_v6(args.v6)
        expect = len(v4) + len(v6)
        what = f"{len(v4):,} IPv4 + {len(v6):,} IPv6" if v6 else f"{len(v4):,} IPv4 only"
        print(f"table: {what} prefixes, one eBGP session (BIRD -> appliance {APPLIANCE})")
        creds = provision(home)
        control = start_control(home, cport, work / "control.log")
        bring_up(http, creds)
        bport = free_port()
        appliance = subprocess.Popen(
            [sys.executable, __file__, "--child", str(bport), url, creds[APPLIANCE]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert appliance.stdout is not None
        if appliance.stdout.readline().strip() != "ready":
            raise RuntimeError("the appliance's speaker did not start")
        rss_control_idle = rss_tree_mib(control.pid)
        conf = bird_config(v4, v6, bport)

        started = time.monotonic()
        bird = BirdProcess(work, conf)
        count, full_s = 0, None
        half_s = None
        while time.monotonic() - started < args.timeout:
            count = held(http)
            if half_s is None and count >= expect // 2:
                half_s = time.monotonic() - started
            if count >= expect:
                full_s = time.monotonic() - started
                break
            time.sleep(0.1)
        if full_s is None:
            print(
                f"full table at the control plane: NOT reached in {args.timeout:.0f} s"
                f" ({count:,} of {expect:,} routes held)"
            )
            return 1
        rss_appliance = rss_tree_mib(appliance.pid)
        rss_control = rss_tree_mib(control.pid)
        print(
            f"full table at the control plane: {full_s:6.2f} s from BIRD's start"
            f" (half: {half_s:.2f} s; {count:,} routes)   target <= {TARGET_FULL_S:.0f} s"
        )
        print(f"appliance RSS (speaker + relay process): {rss_appliance:6.0f} MiB")
        print(
            f"control plane RSS:                       {rss_control:6.0f} MiB"
            f" ({rss_control_idle:.0f} MiB before the table)"
        )

        # --- playback over HTTP ------------------------------------------------------------
        ips = client_ips(v4, v6, 20_000)
        for ip in ips[:20]:  # sanity: every client is steered to the appliance that heard it
            r = http.post(
                "/v1/playback",
                json={"title_id": TITLE.title_id, "profile_id": "p1"},
                headers={"X-Forwarded-For": ip},
            )
            r.raise_for_status()
            body = r.json()
            if body["client_ip"] != ip or body["pathways"][0]["appliance_id"] != APPLIANCE:
                raise RuntimeError(f"client {ip} was not steered to {APPLIANCE}: {body}")
        lua = work / "playback.lua"
        lua.write_text(WRK_LUA % (", ".join(json.dumps(ip) for ip in ips), TITLE.title_id))
        # Warm-up, not reported: the route index's last rebuild after the table arrived runs in a
        # background thread for a few seconds; steady state is what a serving plane sees.
        warm, _ = run_wrk(url, lua, args.connections, 5)
        rps, notes = run_wrk(url, lua, args.connections, args.duration)
        print(f"(warm-up run, 5 s, while the index settles: {warm:,.0f} /s)")
        print(
            f"playback decisions over HTTP:            {rps:8,.0f} /s   target >= "
            f"{TARGET_PLAYBACK_PER_CORE:,.0f}/s per core (the control plane runs ONE uvicorn"
            f" worker: one core; wrk -t{min(2, args.connections)} -c{args.connections}"
            f" -d{args.duration}s shares the {os.cpu_count()} cores)"
            + (f"  [{notes}]" if notes else "")
        )
    finally:
        http.close()
        if bird is not None:
            bird.stop()
        if appliance is not None:
            if appliance.stdin is not None:
                appliance.stdin.close()
            try:
                appliance.wait(15)
            except subprocess.TimeoutExpired:
                appliance.kill()
                appliance.wait()
        if control is not None and control.poll() is None:
            control.send_signal(signal.SIGTERM)
            try:
                control.wait(15)
            except subprocess.TimeoutExpired:
                control.kill()
                control.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
