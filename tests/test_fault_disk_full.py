"""Fault: an appliance's disk fills up while it fills, and it goes on serving what it holds.

A real stack with fill agents (``LocalStack(fill=True)``): one embedded
appliance (a1, clients 127.0.1.0/24) whose store is a 2 MiB tmpfs mounted by
this test, and the origin appliance. The fill plan places two titles of
~1.1 MB each on a1 (the planner believes its 10 GB disk); the filesystem takes
one. Asserted:

- filling stops with an alarm: ``GET /v1/fill/progress`` shows a1 in state
  ``alarm`` with a "disk full" reason, one title held and one missing, and the
  store stops growing; the appliance stays alive, its status carries the disk
  (error: under the free-space floor) and the fill alarm (warning), and it
  still takes new sessions;
- serving goes on: a session of the title it holds is served by a1 from start
  to end with no rebuffer; a session of the title it lacks is served by the
  origin;
- no data lost: every file in a1's store matches its name, nothing half
  written is left in a title directory, and the stored views are the players'.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_support import (
    PlayableTitle,
    PlayerThread,
    check_session,
    check_store,
    fleet,
    hosts_of,
    mounted,
    one_isp_spec,
    playable_title,
    poll,
    served_by,
    tmpfs,
)

from localcast.devstack import LocalStack, NodeSpec
from localcast.player import PlayerTuning

pytestmark = pytest.mark.slow

CLIENT = "127.0.1.10"
STORE_SIZE = "2m"  # the tmpfs: room for one title, not two
RESERVE_MB = 0.1  # the fill agent's free-space reserve on that filesystem
LADDER = ((240, 200_000), (360, 300_000))  # small rungs: ~1.1 MB per 20 s title
TITLES = ("df-a", "df-b")
SPEC = one_isp_spec(
    (
        NodeSpec("a1", "isp-par", fill_reserve_mb=RESERVE_MB),
        NodeSpec("o1", "origin", serves_origin=True, disk_gb=1000.0),
    ),
    ix=False,
    fill_window="00:00-24:00",
    control={"fill_floor_sessions": 1},  # no demand history: place the catalog anyway
)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (these tests run as root in CI)")
    root = tmp_path / "stack"
    store = root / "appliances" / "a1" / "store"
    with tmpfs(store, STORE_SIZE), LocalStack(root, SPEC, fill=True, fill_refresh_s=0.5) as s:
        assert mounted(store) and s.appliances["a1"].store == store
        yield s
    assert not mounted(store)


def a1_progress(stack: LocalStack) -> dict[str, Any]:
    rows = [a for site in stack.fill_progress()["sites"] for a in site["appliances"]]
    (row,) = [a for a in rows if a["appliance_id"] == "a1"]
    return row


def used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_disk_full_stops_fill_with_an_alarm_and_serving_goes_on(stack: LocalStack) -> None:
    titles: dict[str, PlayableTitle] = {
        t: playable_title(t, 20.0, 4.0, video=LADDER, audio_bps=64_000) for t in TITLES
    }
    held, missing = TITLES
    for t in titles.values():
        assert 1_000_000 < t.total_bytes < 1_300_000, t.total_bytes
        t.write(stack.origin)

    # in service: a1 filled with the first title (and turned up, where turn-up gates it)
    stack.fill_titles([held])
    poll(lambda: fleet(stack)["a1"]["alive"], "a1 alive")
    if "steering" in fleet(stack)["a1"]:
        poll(lambda: fleet(stack)["a1"]["steering"]["new_sessions"], "a1 turned up", 30)

    # a second title is placed on it too: the filesystem has no room for it
    stack.import_title(missing)
    stack.plan_fills()

    def alarmed() -> dict[str, Any] | None:
        row = a1_progress(stack)
        return row if row["alarm"] and row["titles_wanted"] == 2 else None

    row = poll(alarmed, "a1's fill to stop with an alarm", 60)
    assert row["titles_held"] == 1 and row["titles_missing"] == [missing], row
    assert not row["complete"], row
    store = stack.appliances["a1"].store
    time.sleep(1.0)  # the pass that raised the alarm lets its running transfers finish
    settled = used_bytes(store)
    time.sleep(2.0)  # four more manifest refreshes: no more bytes written, still alarmed
    assert used_bytes(store) == settled
    row = a1_progress(stack)
    assert row["state"] == "alarm", row
    assert row["alarm"].startswith(f"disk full: {missing} needs"), row
    assert check_store(store) == []
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) == [held]

    assert fleet(stack)["a1"]["alive"]

    def fill_component() -> dict[str, Any]:  # the health model's (issue 6)
        comps = {c["name"]: c for c in fleet(stack)["a1"]["components"]}
        return comps.get("fill", {})

    poll(lambda: fill_component().get("level") == "warning", "a1's fill component to warn")
    assert "disk full" in fill_component()["reason"]
    appliance = fleet(stack)["a1"]
    # the disk component is an error too (free space under the fill reserve's floor): a
    # full disk is for people; the appliance still takes sessions for what it holds
    assert appliance["status"] == "error", appliance
    reasons = appliance["reasons"]
    assert any(r.startswith("disk error") for r in reasons), reasons
    assert any(r.startswith("fill warning") and "disk full" in r for r in reasons), reasons
    assert appliance["steering"]["new_sessions"] is True, appliance["steering"]

    hosts = hosts_of(stack)
    results = {}
    for title_id in (held, missing):
        player = PlayerThread(
            title_id,
            f"viewer-{title_id}",
            control_url=stack.control_url,
            source_address=CLIENT,
            speed=4.0,
            tuning=PlayerTuning(max_buffer_s=12.0, platform="fault-test"),
        )
        player.start()
        report = player.result(60)
        manifest = titles[title_id].manifest
        assert check_session(stack, report, manifest) == []
        assert report.request_errors == 0
        results[title_id] = set(served_by(report, hosts))
    assert results == {held: {"a1"}, missing: {"o1"}}
    assert check_store(store) == []
    print(
        f"\na1 ({STORE_SIZE} tmpfs): holds {held}, fill alarm: {row['alarm']}; "
        f"{held} served by a1, {missing} by the origin; store used {settled} bytes; "
        f"a1 status {appliance['status']}: {'; '.join(reasons)}"
    )
