"""Faults the control plane must notice: an appliance hung, and one cut off from the network.

A real stack: the ISP has two embedded sites, ``emb-lo`` (clients
127.0.1.0/24) with appliance e1 on loopback, and ``emb-ns`` whose appliance
n1 runs (serve + reporter) inside a network namespace made here, reached over
a veth pair (``10.200.N.2`` inside, ``10.200.N.1`` on our side; its clients are
10.200.N.0/24, i.e. our side of the pair). n1's reporter reaches the control
plane through a forwarder of ours on ``10.200.N.1``. An IX appliance and the
origin are every client's next pathways.

- **hung**: e1's process group is SIGSTOPped while a session plays from it;
- **cut off**: our end of n1's veth pair goes down while a session plays from it.

Each time the control plane must mark the appliance dead (``alive`` false,
status ``error`` with a reason naming the heartbeat; its heartbeat component
in error and no new sessions, per the health model), steer away from it (a
new playback request and the live steering manifest of a session started
before no longer rank it first), the session must finish with every segment
(failed requests retried on the next pathway, at most one rebuffer), and
after SIGCONT / link up the appliance must be alive and OK again and ranked
first again. Every store's files still match their names.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fault_support import (
    NetNs,
    PlayerThread,
    ThrottleProxy,
    check_session,
    check_store,
    fleet,
    hosts_of,
    playback,
    poll,
    served_by,
    steering_priority,
)

from localcast.config import Config
from localcast.control.topology import PartnerSpec, SiteSpec
from localcast.core.fleet import SiteKind
from localcast.devstack import LocalStack, NodeSpec, StackSpec
from localcast.media.manifest import TitleManifest
from localcast.player import PlayerTuning

pytestmark = pytest.mark.slow

LOOPBACK_CLIENT = "127.0.1.10"
SPEED = 2.0
TUNING = PlayerTuning(max_buffer_s=12.0, timeout_segments=1.0, platform="fault-test")


@dataclass
class Env:
    stack: LocalStack
    ns: NetNs
    manifest: TitleManifest

    @property
    def ns_client(self) -> str:
        return self.ns.host_ip  # our end of the veth pair: inside emb-ns's prefix


def spec(ns: NetNs, control_forward_url: str) -> StackSpec:
    return StackSpec(
        partners=(PartnerSpec(name="isp", asns=[64500]),),
        sites=(
            SiteSpec(
                id="emb-lo",
                kind=SiteKind.EMBEDDED,
                partner="isp",
                lat=48.85,
                lon=2.35,
                tz="Europe/Paris",
                prefixes=["127.0.1.0/24"],
            ),
            SiteSpec(
                id="emb-ns",
                kind=SiteKind.EMBEDDED,
                partner="isp",
                lat=48.86,
                lon=2.36,
                tz="Europe/Paris",
                prefixes=[ns.prefix],
            ),
            SiteSpec(id="ix-ams", kind=SiteKind.IX, lat=52.37, lon=4.9, tz="Europe/Amsterdam"),
            SiteSpec(id="origin", kind=SiteKind.ORIGIN, lat=37.4, lon=-122.1, tz="UTC"),
        ),
        appliances=(
            NodeSpec("e1", "emb-lo"),
            NodeSpec(
                "n1", "emb-ns", listen=ns.inner_ip, netns=ns.name, control_url=control_forward_url
            ),
            NodeSpec("ix1", "ix-ams", disk_gb=100.0),
            NodeSpec("o1", "origin", serves_origin=True),
        ),
    )


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, ingested_title: tuple[Config, TitleManifest]
) -> Iterator[Env]:
    if shutil.which("ip") is None:
        pytest.fail("iproute2 (ip) is not installed: run `make deps`")
    config, manifest = ingested_title
    root = tmp_path_factory.mktemp("fault-health")
    with contextlib.ExitStack() as cleanup:
        ns = cleanup.enter_context(NetNs("health"))
        holder: list[LocalStack] = []

        def control_address() -> tuple[str, int]:
            host, port = holder[0].control_url.removeprefix("http://").rsplit(":", 1)
            return host, int(port)

        forward = cleanup.enter_context(ThrottleProxy(control_address, (ns.host_ip, 0)))
        stack = LocalStack(root / "stack", spec(ns, forward.url))
        holder.append(stack)
        cleanup.enter_context(stack)  # stopped first: its processes, then forwarder, then ns
        shutil.copytree(config.paths.origin / manifest.title_id, stack.origin / manifest.title_id)
        stack.publish(manifest.title_id)
        yield Env(stack, ns, manifest)


def marked_dead(stack: LocalStack, aid: str) -> dict[str, Any]:
    """Wait until the control plane shows ``aid`` dead with status error and a reason."""

    def dead() -> dict[str, Any] | None:
        row = fleet(stack)[aid]
        return row if not row["alive"] and row["status"] == "error" else None

    row: dict[str, Any] = poll(dead, f"{aid} to be marked dead", 30)
    assert "heartbeat" in row["reason"].lower(), row
    check_components(row, "error")
    return row


def marked_ok(stack: LocalStack, aid: str) -> dict[str, Any]:
    def ok() -> dict[str, Any] | None:
        row = fleet(stack)[aid]
        return row if row["alive"] and row["status"] == "ok" else None

    row: dict[str, Any] = poll(ok, f"{aid} to be alive and OK again", 30)
    check_components(row, "ok")
    return row


def check_components(row: dict[str, Any], level: str) -> None:
    """The health model's per-component status and steering state (issue 6): the heartbeat
    component is held at ``level`` (with its reason among the appliance's ``reasons`` when
    not OK), and only an OK appliance takes new sessions."""
    beat = {c["name"]: c for c in row["components"]}.get("heartbeat")
    assert beat is not None, f"no heartbeat component: {row['components']}"
    assert beat["level"] == level, row["components"]
    if level != "ok":
        assert beat["reason"], row["components"]
        assert any(r.startswith("heartbeat") for r in row["reasons"]), row
    assert row["steering"]["new_sessions"] is (level == "ok"), row["steering"]


def first_ranked(env: Env, client: str, profile: str) -> tuple[str, dict[str, Any]]:
    session = playback(env.stack, env.manifest.title_id, profile, client)
    return session["pathways"][0]["appliance_id"], session


def run_fault(
    env: Env,
    aid: str,
    client: str,
    profile: str,
    harm: Callable[[], None],
    heal: Callable[[], None],
) -> None:
    stack, manifest = env.stack, env.manifest
    marked_ok(stack, aid)
    first, earlier = first_ranked(env, client, f"{profile}-before")
    assert first == aid, earlier["pathways"]
    assert steering_priority(earlier)[0] == aid

    player = PlayerThread(
        manifest.title_id,
        profile,
        control_url=stack.control_url,
        source_address=client,
        speed=SPEED,
        tuning=TUNING,
    )
    player.start()
    try:
        player.wait_segments(2)
        harm()
        row = marked_dead(stack, aid)
        now_first, later = first_ranked(env, client, f"{profile}-during")
        assert now_first != aid, later["pathways"]
        assert steering_priority(earlier)[0] != aid
        report = player.result(120)
    finally:
        heal()
    order = served_by(report, hosts_of(stack))
    assert order[0] == aid and order[-1] != aid, order
    problems = check_session(stack, report, manifest, max_rebuffers=1)
    assert problems == [], problems

    back = marked_ok(stack, aid)
    first, _ = first_ranked(env, client, f"{profile}-after")
    assert first == aid
    assert steering_priority(earlier)[0] == aid
    for node in stack.appliances.values():
        assert check_store(node.store, (manifest.title_id,)) == []
    print(
        f"\n{aid}: marked {row['status']} ({row['reason']}); session served by "
        f"{' '.join(dict.fromkeys(order))}, {report.request_errors} failed request(s) retried, "
        f"{report.rebuffer_count} rebuffer(s); back: {back['status']} ({back['reason']})"
    )


def test_hung_appliance_is_marked_dead_steered_away_and_recovers(env: Env) -> None:
    run_fault(
        env,
        "e1",
        LOOPBACK_CLIENT,
        "hung",
        harm=lambda: env.stack.pause("e1"),
        heal=lambda: env.stack.resume("e1"),
    )


def test_cut_off_appliance_is_marked_dead_steered_away_and_recovers(env: Env) -> None:
    run_fault(
        env,
        "n1",
        env.ns_client,
        "cutoff",
        harm=env.ns.link_down,
        heal=env.ns.link_up,
    )
