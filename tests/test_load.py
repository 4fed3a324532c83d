"""Load: 200 concurrent players for 60 s across three appliances, on a real stack.

Three embedded sites of one ISP (clients 127.0.1.0/24, 127.0.2.0/24,
127.0.3.0/24), one appliance each (a real ``appliance serve`` with its
worker and reporter), and the control plane (steering manifests every 10 s).
200 CLI player sessions (``localcast.player.play``, real time) run in one
event loop, each from its own loopback address (so a third of them steer to
each appliance) behind an emulated 2 Mbit/s access link, started over 10 s,
each playing a 60 s title (240p-720p, 4 s segments) to its end.

The loop runs in a fresh Python process of its own (``fault_support.py
players``), so what earlier tests left in the pytest process (threads,
garbage) cannot slow it. One loop keeps up on this 2-core machine: measured,
about half a core for the 200 sessions, the rest for the appliances and the
control plane; its lag is measured and printed, so a starved loop shows.

Asserted: every session finished, with zero failed requests, no failover and
no rebuffer at the offered bandwidth; every stored view is the session's
last; each appliance served its third; each appliance's process group
resident memory after the load is within 20% of before it (memory flat), and
its peak during the load too. Printed: per appliance the sessions, segments,
bytes, requests by status (from the appliance's ``/metrics`` when it has
them) and RSS at start, peak and end; the loop's lag and CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_support import PlayableTitle, group_cpu_s, group_rss_bytes, playable_title

from localcast.control.topology import PartnerSpec, SiteSpec
from localcast.core.fleet import SiteKind
from localcast.devstack import LocalStack, NodeSpec, StackSpec

pytestmark = pytest.mark.slow

SUPPORT = Path(__file__).resolve().parent / "fault_support.py"  # runs the players
PLAYERS = 200
TITLE_S = 60.0  # each session plays this long (real time)
SEGMENT_S = 4.0
OFFERED = "2M"  # each player's access link
STAGGER_S = 20.0  # sessions start spread over this long (all 200 overlap for 40 s)
RSS_GROWTH = 0.20  # at most this much more resident memory than before the load
SITES = {"e1": "127.0.1", "e2": "127.0.2", "e3": "127.0.3"}
SPEC = StackSpec(
    partners=(PartnerSpec(name="isp", asns=[64500]),),
    sites=tuple(
        SiteSpec(
            id=f"site-{aid}",
            kind=SiteKind.EMBEDDED,
            partner="isp",
            lat=48.0 + i,
            lon=2.0,
            tz="Europe/Paris",
            prefixes=[f"{net}.0/24"],
        )
        for i, (aid, net) in enumerate(SITES.items())
    ),
    appliances=tuple(NodeSpec(aid, f"site-{aid}") for aid in SITES),
    control={"steering_ttl_s": 10},
)


@pytest.fixture(scope="module")
def title() -> PlayableTitle:
    return playable_title("load", TITLE_S, SEGMENT_S)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, title: PlayableTitle) -> Iterator[LocalStack]:
    root: Path = tmp_path_factory.mktemp("load")
    with LocalStack(root / "stack", SPEC) as s:
        title.write(s.origin)
        s.publish(title.title_id)
        yield s


def client_of(i: int) -> tuple[str, str]:
    """Player ``i``'s source address and the appliance its site's prefix steers it to."""
    aid = list(SITES)[i % len(SITES)]
    return f"{SITES[aid]}.{i // len(SITES) + 1}", aid


def appliance_requests(url: str) -> dict[str, int] | None:
    """Viewer requests by status from the appliance's ``/metrics``, if it exposes them."""
    try:
        r = httpx.get(f"{url}/metrics", trust_env=False, timeout=5)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    out: Counter[str] = Counter()
    for line in r.text.splitlines():
        if line.startswith("localcast_appliance_requests_total{") and 'kind="viewer"' in line:
            labels, value = line.rsplit(" ", 1)
            status = labels.split('status="', 1)[1].split('"', 1)[0]
            out[status] += int(float(value))
    return dict(out) if out else None


def test_200_players_for_60s_across_three_appliances(
    stack: LocalStack, title: PlayableTitle, tmp_path: Path
) -> None:
    pgids = {aid: node.procs[0].pgid for aid, node in stack.appliances.items()}
    config = {
        "control_url": stack.control_url,
        "title_id": title.title_id,
        "bandwidth": OFFERED,
        "stagger_s": STAGGER_S,
        "max_buffer_s": 12.0,
        "players": [{"profile": f"load-{i}", "ip": client_of(i)[0]} for i in range(PLAYERS)],
    }
    (tmp_path / "players.json").write_text(json.dumps(config))
    out = tmp_path / "reports.json"
    argv = [sys.executable, str(SUPPORT), "players", str(tmp_path / "players.json"), str(out)]
    assert stack.control is not None
    pgids_cpu = {**pgids, "control": stack.control.pgid}
    cpu_start = {name: group_cpu_s(pg) for name, pg in pgids_cpu.items()}
    rss_start = {aid: group_rss_bytes(pg) for aid, pg in pgids.items()}
    rss_peak = dict(rss_start)
    with (tmp_path / "players.log").open("wb") as log:
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + TITLE_S + STAGGER_S + 90
            while child.poll() is None:
                assert time.monotonic() < deadline, "the players did not finish in time"
                for aid, pg in pgids.items():
                    rss_peak[aid] = max(rss_peak[aid], group_rss_bytes(pg))
                time.sleep(1.0)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    rss_end = {aid: group_rss_bytes(pg) for aid, pg in pgids.items()}
    cpu_used = {name: group_cpu_s(pg) - cpu_start[name] for name, pg in pgids_cpu.items()}
    assert child.returncode == 0, (tmp_path / "players.log").read_text()[-3000:]
    outcome = json.loads(out.read_text())

    failures = [f"load-{i}: {e}" for i, e in enumerate(outcome["errors"]) if e is not None]
    assert failures == [], failures[:5]
    reports: list[dict[str, Any]] = outcome["reports"]
    hosts = {node.host: aid for aid, node in stack.appliances.items()}
    sessions: Counter[str] = Counter()
    segments: Counter[str] = Counter()
    served: Counter[str] = Counter()
    for i, r in enumerate(reports):
        _, expected = client_of(i)
        used = {hosts.get(s["host"], s["host"]) for s in r["segments"]}
        assert used == {expected}, f"load-{i} served by {used}, not {expected}"
        sessions[expected] += 1
        segments[expected] += len(r["segments"])
        for host, nbytes in r["bytes_by_host"].items():
            served[hosts.get(host, host)] += nbytes
    lags, wall, cpu = outcome["lags_s"], outcome["wall_s"], outcome["cpu_s"]
    print(
        f"\n{PLAYERS} players x {TITLE_S:g} s at {OFFERED}b/s in one event loop (a process of "
        f"their own): wall {wall:.1f} s, CPU {cpu:.1f} s ({cpu / wall:.0%} of a core), loop lag "
        f"p50 {lags[len(lags) // 2] * 1000:.0f} ms p99 {lags[int(len(lags) * 0.99)] * 1000:.0f} ms "
        f"max {lags[-1] * 1000:.0f} ms"
    )
    for aid, node in stack.appliances.items():
        print(
            f"  {aid}: {sessions[aid]} sessions, {segments[aid]} segments (+audio), "
            f"{served[aid] / 1e6:.0f} MB, requests {appliance_requests(node.url) or 'n/a'}; "
            f"RSS start {rss_start[aid] / 2**20:.1f} MiB, peak {rss_peak[aid] / 2**20:.1f} MiB, "
            f"end {rss_end[aid] / 2**20:.1f} MiB; CPU {cpu_used[aid]:.1f} s"
        )
    print(
        f"  totals: {sum(r['request_errors'] for r in reports)} failed requests, "
        f"{sum(r['rebuffer_count'] for r in reports)} rebuffers, "
        f"{sum(r['failovers'] for r in reports)} failovers, average bitrate "
        f"{sum(r['avg_bitrate_bps'] for r in reports) / len(reports) / 1e6:.2f} Mbit/s; "
        f"control plane CPU {cpu_used['control']:.1f} s"
    )

    assert len(reports) == PLAYERS
    incomplete = [r["profile_id"] for r in reports if not r["completed"] or r["error"]]
    assert incomplete == [], incomplete[:5]
    assert sum(r["request_errors"] for r in reports) == 0
    assert sum(r["failovers"] for r in reports) == 0
    stalled = [(r["profile_id"], r["rebuffer_count"]) for r in reports if r["rebuffer_count"]]
    assert stalled == [], stalled[:5]
    full = round(TITLE_S / SEGMENT_S)
    assert all(len(r["segments"]) == full for r in reports)
    assert set(sessions.values()) <= {PLAYERS // 3, PLAYERS // 3 + 1}
    for aid in SITES:
        assert rss_end[aid] <= rss_start[aid] * (1 + RSS_GROWTH), (aid, rss_start, rss_end)
        assert rss_peak[aid] <= rss_start[aid] * (1 + RSS_GROWTH), (aid, rss_start, rss_peak)
        requests = appliance_requests(stack.appliances[aid].url)
        if requests is not None:  # the appliance's own count, where it has /metrics
            assert set(requests) <= {"200", "206"}, (aid, requests)
    with httpx.Client(base_url=stack.control_url, trust_env=False, timeout=10) as http:
        for r in reports:
            view = http.get(f"/v1/views/{r['profile_id']}/{title.title_id}").json()
            assert view["offset_s"] == pytest.approx(r["views_reported"][-1], abs=0.1), view
