"""The local stack harness: its pure parts, and that it leaves nothing running.

A small real stack (control plane + one appliance with its reporter): a
killed appliance takes its whole process group (workers, reporter) with it
and the control plane notices; leaving the ``with`` block by an exception
stops every process the stack started.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import httpx
import pytest

from localcast.control.topology import PartnerSpec, SiteSpec, parse_topology
from localcast.core.fleet import SiteKind
from localcast.devstack import LocalStack, NodeSpec, StackSpec, topology_document
from localcast.devstack.procs import group_members, wait_until
from localcast.devstack.spec import control_config_toml

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
    appliances=(NodeSpec("e1", "emb", gbps=5.0), NodeSpec("o1", "origin", serves_origin=True)),
)


def test_topology_document_is_a_valid_topology() -> None:
    doc = topology_document(SPEC, {"e1": "http://127.0.0.1:1001", "o1": "http://127.0.0.1:1002"})
    spec = parse_topology(doc)
    assert [a.url for a in spec.appliances] == ["http://127.0.0.1:1001", "http://127.0.0.1:1002"]
    assert doc["sites"][0]["kind"] == "embedded"
    assert doc["appliances"][0]["gbps"] == 5.0
    assert SPEC.site_of("o1").kind is SiteKind.ORIGIN


def test_control_config_toml_round_trips() -> None:
    settings = {"port": 0, "listen": '127.0.0.1"x', "refresh_interval_s": 0.2, "flag": True}
    assert tomllib.loads(control_config_toml(settings)) == {"control": settings}
    with pytest.raises(TypeError):
        control_config_toml({"bad": [1]})


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_kill_takes_the_group_and_an_exception_stops_everything(tmp_path: Path) -> None:
    pids: set[int] = set()
    with pytest.raises(RuntimeError, match="boom"), LocalStack(tmp_path / "s", SPEC) as stack:
        assert stack.control is not None
        pids |= set(group_members(stack.control.pgid))
        groups = {aid: set(group_members(n.procs[0].pgid)) for aid, n in stack.appliances.items()}
        assert all(len(g) >= 3 for g in groups.values())  # supervisor, worker, reporter
        pids |= set().union(*groups.values())
        assert stack.appliances["o1"].store == stack.origin

        e1 = stack.appliances["e1"]
        assert httpx.get(f"{e1.url}/healthz", trust_env=False).status_code == 200
        stack.kill("e1")
        assert not any(_alive(pid) for pid in groups["e1"])
        assert not e1.running()

        def e1_dead() -> bool:
            fleet = httpx.get(f"{stack.control_url}/v1/appliances", trust_env=False).json()
            return {a["id"]: a["alive"] for a in fleet} == {"e1": False, "o1": True}

        wait_until(e1_dead, "the control plane to see e1 dead", 20)
        raise RuntimeError("boom")
    assert pids and os.getpid() not in pids
    assert [pid for pid in pids if _alive(pid)] == []
