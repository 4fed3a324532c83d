"""Traffic accounting end to end, real processes: data plane workers count, reporters post.

A local stack (control plane; an embedded appliance of partner ``isp`` whose
site covers 127.0.1.0/24; an origin appliance) serves real requests: viewers
bound to 127.0.1.7 (the partner's network) fetch files from both appliances,
a fill-credential request fetches one more, a viewer from 127.0.0.1 (no
partner) fetches from the origin. Each worker counts per client network and
writes ``<home>/run/traffic/<pid>.json``; the reporter beside it takes the
files and posts them; the control plane's figures match the body bytes the
clients received, byte for byte.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from control_fixtures import synthetic_title
from prometheus_client.parser import text_string_to_metric_families

from localcast.control.topology import PartnerSpec, SiteSpec
from localcast.core.fleet import SiteKind
from localcast.core.tokens import fill_keyring, signed_path
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
        SiteSpec(id="origin", kind=SiteKind.ORIGIN, lat=0.0, lon=0.0, tz="UTC"),
    ),
    appliances=(NodeSpec("e1", "emb"), NodeSpec("o1", "origin", serves_origin=True)),
)
ISP_CLIENT = "127.0.1.7"


def _client(source: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(transport=transport, trust_env=False, timeout=10.0)


@pytest.mark.slow
def test_bytes_served_by_real_appliances_reach_the_partner_figures(tmp_path: Path) -> None:
    title = synthetic_title("t1")
    with LocalStack(tmp_path / "s", SPEC, workers=2, reporter_interval_s=0.3) as stack:
        title.write(stack.origin)
        stack.place("t1", ["e1"])
        keyring = load_keyring(stack.keys)
        expires = int(time.time()) + 3600
        viewer_prefix = signed_path(keyring, "/t1", expires)
        fill_prefix = signed_path(fill_keyring(keyring), "/t1", expires)
        names = sorted(title.files)
        e1, o1 = stack.appliances["e1"].url, stack.appliances["o1"].url
        got: dict[str, int] = {"e1": 0, "o1": 0, "fill": 0, "none": 0}
        requests = {"e1": 0, "o1": 0}
        with _client(ISP_CLIENT) as isp, _client("127.0.0.1") as other:
            for name in names[:6]:  # viewers of the partner, from its embedded site
                r = isp.get(f"{e1}{viewer_prefix}/{name}")
                assert r.status_code == 200 and r.content == title.files[name]
                got["e1"] += len(r.content)
                requests["e1"] += 1
            missing = isp.get(f"{e1}{viewer_prefix}/{'0' * 64}.m4s")  # counted, with its body
            assert missing.status_code == 404
            got["e1"] += len(missing.content)
            requests["e1"] += 1
            for name in names[6:8]:  # ... and from the origin
                r = isp.get(f"{o1}{viewer_prefix}/{name}")
                assert r.status_code == 200
                got["o1"] += len(r.content)
                requests["o1"] += 1
            r = isp.get(f"{e1}{fill_prefix}/{names[0]}")  # a fill request: counted apart
            assert r.status_code == 200
            got["fill"] += len(r.content)
            r = other.get(f"{o1}{viewer_prefix}/{names[0]}")  # no partner covers 127.0.0.0/24
            assert r.status_code == 200
            got["none"] += len(r.content)
            assert isp.get(f"{e1}/healthz").status_code == 200  # no token: not traffic

        api = httpx.Client(base_url=stack.control_url, trust_env=False, timeout=10.0)
        want = {"embedded": got["e1"], "pni": 0, "ix": 0, "origin": got["o1"]}
        last: dict[str, Any] = {}

        def arrived() -> bool:
            nonlocal last
            last = api.get("/v1/partners/isp/traffic", params={"days": 1}).json()
            return bool(last["daily"][0]["bytes_by_source"] == want)

        wait_until(arrived, f"the partner's bytes {want} (last: {last})", 20.0)
        day = last["daily"][0]
        assert day["viewer"] == {
            "requests": requests["e1"] + requests["o1"],
            "bytes": got["e1"] + got["o1"],
            "errors_5xx": 0,
        }
        assert day["requests_by_source"]["embedded"] == requests["e1"]
        assert day["offload_ratio"] == got["e1"] / (got["e1"] + got["o1"])
        assert day["fill"]["bytes"] == got["fill"] and day["fill"]["requests"] == 1
        sites = {s["site_id"]: s["bytes"] for s in day["sites"]}
        assert sites == {"emb": got["e1"], "origin": got["o1"]}

        def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            text = api.get("/metrics").text
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(text)
                for s in fam.samples
            }

        unattributed = (
            "localcast_control_traffic_bytes_total",
            (
                ("kind", "viewer"),
                ("partner", ""),
                ("source_kind", "origin"),
            ),
        )
        wait_until(
            lambda: scraped().get(unattributed) == got["none"], "the unattributed bytes", 20.0
        )
        metrics = scraped()
        ratio = ("localcast_control_partner_offload_ratio", (("partner", "isp"),))
        assert metrics[ratio] == got["e1"] / (got["e1"] + got["o1"])
        # every worker file was taken: nothing is left to count twice
        traffic_dir = stack.appliances["e1"].home / "run" / "traffic"
        wait_until(lambda: not list(traffic_dir.glob("*.json")), "the worker files taken", 10.0)
        api.close()
