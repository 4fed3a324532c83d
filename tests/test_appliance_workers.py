"""The supervisor: several workers share the port, a dead worker is replaced, signals stop all."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
from appliance_support import RawClient, make_store

from localcast.appliance.launch import ApplianceProcess, start_appliance
from localcast.devstack.procs import child_pids


def worker_pids(url: str, tries: int = 60) -> set[int]:
    """PIDs answering /healthz over fresh connections (SO_REUSEPORT spreads them)."""
    pids: set[int] = set()
    for _ in range(tries):
        with RawClient(url, timeout=5) as c:
            pids.add(int(json.loads(c.request("GET", "/healthz").body)["pid"]))
    return pids


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start(tmp_path: Path, workers: int, *extra: str) -> tuple[ApplianceProcess, str]:
    store = make_store(tmp_path)
    proc = start_appliance(
        tmp_path / "home",
        store=store.root,
        keys=store.keys,
        workers=workers,
        extra_args=["--access-log", "off", *extra],
    )
    return proc, store.path("small")


def test_two_workers_serve_and_a_killed_one_is_replaced(tmp_path: Path) -> None:
    proc, path = start(tmp_path, 2)
    with proc:
        kids = child_pids(proc.pid)
        assert len(kids) == 2
        assert worker_pids(proc.url) == kids
        victim = min(kids)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        now_kids = child_pids(proc.pid)
        while time.monotonic() < deadline and (victim in now_kids or len(now_kids) != 2):
            time.sleep(0.1)
            now_kids = {k for k in child_pids(proc.pid) if alive(k)}
        assert victim not in now_kids and len(now_kids) == 2
        # every request is answered while and after the replacement starts
        deadline = time.monotonic() + 15
        while worker_pids(proc.url, tries=20) != now_kids and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker_pids(proc.url) == now_kids
        assert httpx.get(proc.url + path, timeout=5).status_code == 200
        assert proc.stop() == 0
        assert not any(alive(k) for k in now_kids)


def test_sigint_stops_parent_and_workers(tmp_path: Path) -> None:
    proc, _ = start(tmp_path, 2)
    kids = child_pids(proc.pid)
    proc.process.send_signal(signal.SIGINT)
    assert proc.process.wait(15) == 0
    assert not any(alive(k) for k in kids)
    proc.stop()


def test_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    proc, path = start(tmp_path, 1, "--idle-timeout", "0.5")
    with proc, RawClient(proc.url) as c:
        assert c.request("GET", path).status == 200
        assert c.is_closed(wait=10)


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    proc, _ = start(tmp_path, 2)
    kids = child_pids(proc.pid)
    proc.process.kill()
    proc.process.wait(5)
    deadline = time.monotonic() + 15
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(k) for k in kids)
    proc.stop()
