"""Fault: an appliance turns slow mid-stream (a congested link), and the player adapts.

A real stack: embedded appliance e1 (clients 127.0.1.0/24), an IX appliance
and the origin. e1 is published to the control plane behind a throttling TCP
proxy of ours (the kernel here has no netem), so every player byte from e1
crosses it. The session starts with the proxy wide open and climbs to the
top rendition; the proxy then drops to a rate below the top rendition's
bitrate (as the player's clock sees it). Asserted: the ABR steps down (and
may fail over to the next pathway), the session finishes with every segment
and at most one rebuffer, the last view is stored, and the stores are intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_support import (
    PlayableTitle,
    PlayerThread,
    ThrottleProxy,
    check_session,
    check_store,
    one_isp_spec,
    playable_title,
    playback,
    poll,
)

from localcast.devstack import LocalStack, NodeSpec, topology_document
from localcast.player import PlayerTuning

pytestmark = pytest.mark.slow

CLIENT = "127.0.1.10"
SPEED = 4.0  # the player's clock runs 4x real time: rates it sees are wall rates / 4
SLOW_BPS = 1_200_000  # what the player sees once e1 slows down: under 720p's 2.8 Mbit/s
SPEC = one_isp_spec(
    (
        NodeSpec("e1", "isp-par"),
        NodeSpec("ix1", "ix-ams", disk_gb=100.0),
        NodeSpec("o1", "origin", serves_origin=True),
    )
)


@pytest.fixture
def title() -> PlayableTitle:
    return playable_title("slow", 48.0, 2.0)  # 240p-720p, 2 s segments


@pytest.fixture
def slow_e1(tmp_path: Path, title: PlayableTitle) -> Iterator[tuple[LocalStack, ThrottleProxy]]:
    with LocalStack(tmp_path / "stack", SPEC) as stack:
        e1 = stack.appliances["e1"]
        host, port = e1.host.rsplit(":", 1)
        with ThrottleProxy((host, int(port))) as proxy:
            urls = {aid: node.url for aid, node in stack.appliances.items()}
            urls["e1"] = proxy.url  # clients reach e1 only through the proxy
            r = httpx.post(
                f"{stack.control_url}/v1/topology",
                json=topology_document(stack.spec, urls),
                trust_env=False,
            )
            assert r.status_code == 200, r.text
            title.write(stack.origin)
            stack.publish(title.title_id)

            def through_proxy() -> bool:
                grant = playback(stack, title.title_id, "probe", CLIENT)
                first = grant["pathways"][0]
                return bool(first["appliance_id"] == "e1" and proxy.url in first["base_url"])

            poll(through_proxy, "e1 steered through the proxy")
            yield stack, proxy


def test_slow_appliance_abr_steps_down(
    slow_e1: tuple[LocalStack, ThrottleProxy], title: PlayableTitle
) -> None:
    stack, proxy = slow_e1
    top = len(title.manifest.video) - 1
    slowed: list[int] = []  # the segment after which the proxy slowed down

    def slow_down_at_top(event: Any) -> None:
        seg = event.segment
        if not slowed and seg is not None and seg.rung == top and seg.buffer_s >= 8.0:
            proxy.set_rate(SLOW_BPS * SPEED)
            slowed.append(seg.index)

    player = PlayerThread(
        title.title_id,
        "slow-viewer",
        control_url=stack.control_url,
        source_address=CLIENT,
        speed=SPEED,
        tuning=PlayerTuning(max_buffer_s=20.0, platform="fault-test"),
        on_event=slow_down_at_top,
    )
    player.start()
    report = player.result(120)
    assert slowed, "the session never reached the top rendition before the slowdown"
    hosts = {node.host: aid for aid, node in stack.appliances.items()}
    hosts[proxy.url.removeprefix("http://")] = "e1"
    after = [s for s in report.segments if s.index > slowed[0]]
    rungs_after = [s.rung for s in after]
    stepped_down = min(rungs_after) < top
    failed_over = any(hosts.get(s.host) != "e1" for s in after)
    assert stepped_down or failed_over, rungs_after
    # once it has adapted (the last third of the title), it no longer asks for the top rung
    # from the slow appliance
    tail = [s for s in after[-len(after) // 3 :] if hosts.get(s.host) == "e1"]
    assert all(s.rung < top for s in tail), [(s.index, s.rung) for s in tail]
    assert check_session(stack, report, title.manifest, max_rebuffers=1) == []
    assert proxy.bytes_down > 0
    for node in stack.appliances.values():
        assert check_store(node.store, (title.title_id,)) == []
    labels = " ".join(f"{s.index}:{s.label}" for s in report.segments)
    print(
        f"\ne1 slowed to {SLOW_BPS / 1e6:g} Mbit/s (player clock) after segment {slowed[0]}: "
        f"{labels}; {report.rebuffer_count} rebuffer(s), {report.failovers} failover(s), "
        f"{proxy.bytes_down / 1e6:.1f} MB through the proxy"
    )
