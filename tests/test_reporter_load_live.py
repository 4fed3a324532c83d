"""The reporter's load end to end, real processes: the control plane sees what is served.

A local stack (control plane; one appliance ``e1``, 2 workers, capacity
10 Mbit/s, beside it ``localcast control reporter`` as devstack runs it,
heartbeating every second) serves real requests. The reporter reads the
node's metrics directory (the workers' snapshot files) and the control
plane's view of the appliance (``GET /v1/appliances/e1``) shows:

- the client connections held open (``load.active_connections``);
- while a client downloads a 2 MiB file over and over: egress bits/s > 0,
  the serving window with those requests (each window's bytes are its
  requests' bodies), and the load component over capacity (steering takes
  no new sessions there); after the client stops, a quiet window (no request;
  a few hundred bit/s: the control plane's turn-up prober asking ``/healthz``);
- 500s from the data plane (store files that changed in place under the
  workers' index, so a worker that still holds their old size answers 500:
  "still there, but unreadable"), among 200s: the serving component at
  Error with the 5xx share, the status Error and the appliance out of
  steering.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from appliance_support import add_file

from localcast.control.topology import PartnerSpec, SiteSpec
from localcast.core.fleet import SiteKind
from localcast.core.tokens import signed_path
from localcast.devstack import LocalStack, NodeSpec, StackSpec
from localcast.devstack.procs import wait_until
from localcast.keyfile import load_keyring

SPEC = StackSpec(
    partners=(PartnerSpec(name="isp", asns=[64500]),),
    sites=(
        SiteSpec(
            id="emb",
            kind=SiteKind.EMBEDDED,
            partner="isp",
            lat=1.0,
            lon=2.0,
            tz="UTC",
            prefixes=["127.0.1.0/24"],
        ),
    ),
    appliances=(NodeSpec("e1", "emb", gbps=0.01),),  # 10 Mbit/s: a few MB/s saturate it
)
TITLE = "t1"
BIG = 2 * 1024 * 1024
VICTIMS = 20  # small files changed in place: each one 500 per worker that still indexes it
GOOD_PER_VICTIM = 10
WINDOW_RE = re.compile(
    r"(?:(\d+) of (\d+) requests 5xx \([^)]*\)|(\d+) request\(s\)) in the last ([0-9.e+-]+) s"
)


def serving_window(view: dict[str, Any]) -> tuple[int, int, float] | None:
    """(requests, 5xx, window_s) of the last heartbeat's serving window, from the serving
    component's reason (the observed part, when a level is held)."""
    comp = component(view, "serving")
    if comp is None:
        return None
    found = WINDOW_RE.findall(comp["reason"])
    if not found:
        return None
    errors, total, few, window = found[-1]
    if few:
        return int(few), 0, float(window)
    return int(total), int(errors), float(window)


def component(view: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in view["components"] if c["name"] == name), None)


@pytest.mark.slow
def test_the_control_plane_sees_the_appliances_load_and_errors(tmp_path: Path) -> None:
    root = tmp_path / "s"
    title_dir = root / "appliances" / "e1" / "store" / TITLE  # indexed when the workers start
    title_dir.mkdir(parents=True)
    big = add_file(title_dir, os.urandom(BIG), "m4s")
    good = [add_file(title_dir, os.urandom(1000 + i), "m4s") for i in range(5)]
    victims = [add_file(title_dir, os.urandom(2000 + i), "m4s") for i in range(VICTIMS)]

    with LocalStack(root, SPEC, workers=2, reporter_interval_s=1.0) as stack:
        e1 = stack.appliances["e1"].url
        prefix = e1 + signed_path(load_keyring(stack.keys), f"/{TITLE}", int(time.time()) + 3600)
        api = httpx.Client(base_url=stack.control_url, trust_env=False, timeout=10.0)

        def view() -> dict[str, Any]:
            return api.get("/v1/appliances/e1").json()

        # Connections held open: three idle keep-alive clients.
        idle = [httpx.Client(trust_env=False, timeout=10.0) for _ in range(3)]
        for c in idle:
            assert c.get(f"{e1}/healthz").status_code == 200
        wait_until(lambda: view()["load"]["active_connections"] >= 3, "3 open connections", 15)
        print("connections:", view()["load"]["active_connections"])

        # A client downloads the 2 MiB file again and again (about 20 a second).
        served = {"requests": 0, "bytes": 0}
        stop = threading.Event()

        def download() -> None:
            with httpx.Client(trust_env=False, timeout=10.0) as c:
                while not stop.is_set():
                    r = c.get(f"{prefix}/{big}")
                    assert r.status_code == 200 and len(r.content) == BIG
                    served["requests"] += 1
                    served["bytes"] += len(r.content)
                    stop.wait(0.05)

        loader = threading.Thread(target=download, daemon=True)
        started = time.monotonic()
        loader.start()
        seen: list[dict[str, Any]] = []

        def loaded() -> bool:
            v = view()
            window = serving_window(v)
            load = component(v, "load")
            if v["load"]["egress_bps"] > 0 and window is not None and window[0] > 0:
                seen.append(v)
            return bool(seen) and load is not None and load["observed"] == "error"

        try:
            wait_until(loaded, "egress, a serving window and the load over capacity", 20)
        finally:
            stop.set()
            loader.join(15)
        elapsed = time.monotonic() - started
        client_bps = served["bytes"] * 8 / elapsed
        v = seen[-1]
        egress = v["load"]["egress_bps"]
        window = serving_window(v)
        assert window is not None
        requests, errors, window_s = window
        print(
            f"client: {served['requests']} x 2 MiB in {elapsed:.2f} s ({client_bps / 1e6:.1f}"
            f" Mbit/s); control plane: egress {egress / 1e6:.1f} Mbit/s, window {requests}"
            f" requests, {errors} 5xx over {window_s:.3f} s; load: {component(v, 'load')};"
            f" steering: {v['steering']}"
        )
        assert errors == 0 and 0 < requests <= served["requests"]
        assert "load error: over capacity" in v["steering"]["reason"]  # no new sessions
        # the window's bytes are its requests' bodies: 2 MiB each
        assert round(egress * window_s / 8 / BIG) == requests
        assert egress <= 8 * served["bytes"] / 0.5  # never more than was served

        # The client stopped: a quiet window follows.
        def quiet() -> bool:
            v = view()
            w = serving_window(v)
            quiet_views.append(v)
            return v["load"]["egress_bps"] < 10_000 and w is not None and w[0] == 0

        quiet_views: list[dict[str, Any]] = []
        wait_until(quiet, "egress back to (nearly) 0", 15)
        print(f"quiet: {quiet_views[-1]['load']}, {component(quiet_views[-1], 'serving')}")

        # 500s among 200s: each round changes every victim in place (one byte more), then
        # asks for them among the good files on one connection (one worker, which still
        # holds the old sizes: 500 for each).
        got: dict[int, int] = {}
        with httpx.Client(trust_env=False, timeout=10.0) as c:

            def burst() -> None:
                for name in victims:
                    with (title_dir / name).open("ab") as f:
                        f.write(b"x")
                for name in victims:
                    for i in range(GOOD_PER_VICTIM):
                        r = c.get(f"{prefix}/{good[i % len(good)]}")
                        got[r.status_code] = got.get(r.status_code, 0) + 1
                    r = c.get(f"{prefix}/{name}")
                    got[r.status_code] = got.get(r.status_code, 0) + 1

            def failing() -> bool:
                v = view()
                serving = component(v, "serving")
                if serving is not None and serving["observed"] == "error":
                    return True
                burst()
                return False

            wait_until(failing, "the serving component at Error", 30)
        v = view()
        serving = component(v, "serving")
        assert serving is not None
        window = serving_window(v)
        assert window is not None
        requests, errors, window_s = window
        print(
            f"client got {got}; control plane: {errors} of {requests} requests 5xx over"
            f" {window_s:.3f} s; status {v['status']}: {v['reason']}; steering: {v['steering']}"
        )
        assert set(got) == {200, 500} and got[500] >= VICTIMS
        assert requests >= 50 and errors / requests >= 0.05 and errors <= got[500]
        assert serving["level"] == "error" and v["status"] == "error"
        assert "serving error" in v["steering"]["reason"]  # failing: out of steering
        assert v["steering"]["new_sessions"] is False and v["steering"]["keep_in_flight"] is False

        for c in idle:
            c.close()
        api.close()
