"""Traffic accounting arithmetic (core.traffic) and the data plane's counter files, by hand."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from control_fixtures import NOW, appliance, site, snapshot

from localcast.appliance.traffic import (
    LOCK_NAME,
    STALE_S,
    TrafficBatch,
    TrafficCounter,
    TrafficUplink,
    report_bodies,
    take,
)
from localcast.control.traffic import decision_events
from localcast.core.fleet import SiteKind
from localcast.core.steering import steer
from localcast.core.traffic import (
    PASSED_CONTENT,
    SteeringRecord,
    TrafficRecord,
    caching_efficiency,
    client_net,
    day_date,
    decision_partner,
    offload_ratio,
    partner_of,
    partner_traffic,
    utc_day,
)

DAY = utc_day(NOW)  # 2027-01-15

# --- attribution ---------------------------------------------------------------------------------


def test_client_net_is_the_24_or_the_48() -> None:
    assert client_net("203.0.113.77") == "203.0.113.0/24"
    assert client_net("2001:db8:a:1::5") == "2001:db8:a::/48"
    assert client_net("::ffff:10.1.2.3") == "10.1.2.0/24"  # IPv4-mapped counts as IPv4
    assert client_net("-") is None and client_net("") is None


def test_day_numbers() -> None:
    assert utc_day(0) == 0 and utc_day(86399.9) == 0 and utc_day(86400) == 1
    assert day_date(DAY) == "2027-01-15" and day_date(0) == "1970-01-01"


def _fleet() -> Any:
    sites = [
        site("a-par", SiteKind.EMBEDDED, ("10.1.0.0/16",), partner="isp-a"),
        site("b-lys", SiteKind.PNI, ("10.2.0.0/16",), partner="isp-b"),
        # an IX site with a more specific prefix inside ISP A's and no partner
        site("ix-fra", SiteKind.IX, ("10.1.9.0/24",)),
        site("origin", SiteKind.ORIGIN),
    ]
    apps = [
        appliance("a1", "a-par"),
        appliance("a2", "a-par", titles=()),
        appliance("b1", "b-lys"),
        appliance("ix1", "ix-fra"),
        appliance("o1", "origin"),
    ]
    return snapshot(sites, apps)


def test_partner_of_a_network_is_the_most_specific_partnered_route() -> None:
    snap = _fleet()
    assert partner_of(snap, "10.1.2.0/24") == "isp-a"
    assert partner_of(snap, "10.2.200.0/24") == "isp-b"
    assert partner_of(snap, "10.1.9.0/24") == "isp-a"  # the IX's /24 has no partner: next route
    assert partner_of(snap, "192.0.2.0/24") is None  # only the origin serves it


def test_decision_partner_and_events_of_a_content_miss() -> None:
    sites = [
        site("a-par", SiteKind.EMBEDDED, ("10.1.0.0/16",), partner="isp-a"),
        site("ix-fra", SiteKind.IX),
        site("origin", SiteKind.ORIGIN),
    ]
    apps = [
        appliance("a1", "a-par", titles=()),  # lacks t1: a content miss at a-par
        appliance("ix1", "ix-fra"),
        appliance("o1", "origin"),
    ]
    snap = snapshot(sites, apps)
    d = steer(snap, "10.1.2.3", "t1", NOW)
    assert d.pathways[0].site_id == "ix-fra"
    assert decision_partner(d, snap.sites) == "isp-a"
    assert decision_events(d) == [("ix-fra", "content_miss"), ("a-par", PASSED_CONTENT)]
    plain = steer(snap, "192.0.2.1", "t1", NOW)  # no partner covers it: the IX serves
    assert decision_partner(plain, snap.sites) is None
    assert decision_events(plain) == [("ix-fra", "ix")]


# --- figures -------------------------------------------------------------------------------------


def test_ratios() -> None:
    assert offload_ratio({"embedded": 750, "pni": 0, "ix": 200, "origin": 50}) == 0.75
    assert offload_ratio({"ix": 10}) == 0.0
    assert offload_ratio({}) is None and offload_ratio({"embedded": 0}) is None
    assert caching_efficiency(8, 2) == 0.8
    assert caching_efficiency(0, 3) == 0.0 and caching_efficiency(0, 0) is None


def test_partner_traffic_per_day_and_over_the_window() -> None:
    d0, d1 = DAY - 1, DAY
    traffic = [
        TrafficRecord(d0, "isp-a", "viewer", "embedded", "a-par", 10, 600, 1),
        TrafficRecord(d0, "isp-a", "viewer", "ix", "ix-fra", 5, 200, 0),
        TrafficRecord(d0, "isp-a", "viewer", "origin", "origin", 1, 200, 0),
        TrafficRecord(d1, "isp-a", "viewer", "embedded", "a-par", 20, 900, 0),
        TrafficRecord(d1, "isp-a", "viewer", "ix", "ix-fra", 2, 100, 2),
        TrafficRecord(d1, "isp-a", "fill", "ix", "ix-fra", 3, 5000, 0),  # not viewer bytes
        TrafficRecord(d1, "isp-b", "viewer", "pni", "b-lys", 7, 7777, 0),  # another partner
        TrafficRecord(d0 - 5, "isp-a", "viewer", "embedded", "a-par", 1, 99, 0),  # before
    ]
    steering = [
        SteeringRecord(d0, "isp-a", "a-par", "embedded", 8),
        SteeringRecord(d0, "isp-a", "ix-fra", "content_miss", 2),
        SteeringRecord(d0, "isp-a", "a-par", PASSED_CONTENT, 2),
        SteeringRecord(d1, "isp-a", "a-par", "embedded", 9),
        SteeringRecord(d1, "isp-a", "ix-fra", "health_miss", 1),
        SteeringRecord(d1, "isp-a", "a-par", "passed_health", 1),
        SteeringRecord(d1, "isp-b", "b-lys", "pni", 4),
    ]
    kinds = {"a-par": "embedded", "ix-fra": "ix", "origin": "origin", "b-lys": "pni"}
    t = partner_traffic("isp-a", d0, d1, traffic, steering, kinds)
    assert [f.day for f in t.days] == [d0, d1]
    first, second = t.days
    # day 0: 600 embedded of 1000
    assert first.viewer.bytes == 1000 and first.viewer.requests == 16
    assert first.viewer.errors_5xx == 1
    assert first.bytes_by_source == {"embedded": 600, "pni": 0, "ix": 200, "origin": 200}
    assert first.offload_ratio == 0.6
    assert first.decisions == 10 and first.misses == {"content_miss": 2, "health_miss": 0}
    a_par = first.sites["a-par"]
    assert (a_par.served, a_par.content_misses, a_par.bytes) == (8, 2, 600)
    assert a_par.caching_efficiency == 0.8 and a_par.byte_share == 0.6
    assert first.sites["ix-fra"].caching_efficiency == 1.0  # served 2, passed over never
    # day 1: 900 embedded of 1000; the fill is counted apart
    assert second.bytes_by_source == {"embedded": 900, "pni": 0, "ix": 100, "origin": 0}
    assert second.offload_ratio == 0.9
    assert second.fill.bytes == 5000 and second.fill_bytes_by_source["ix"] == 5000
    assert second.misses == {"content_miss": 0, "health_miss": 1}
    assert second.sites["a-par"].health_misses == 1
    assert second.sites["a-par"].caching_efficiency == 1.0  # health misses are not cache misses
    # the window: 1500 embedded of 2000
    total = t.total
    assert total.viewer.bytes == 2000 and total.offload_ratio == 0.75
    assert total.by_outcome == {
        "embedded": 17,
        "pni": 0,
        "ix": 0,
        "origin": 0,
        "content_miss": 2,
        "health_miss": 1,
    }
    assert total.sites["a-par"].caching_efficiency == 17 / 19
    assert total.sites["ix-fra"].byte_share == 300 / 2000
    assert list(total.sites) == ["a-par", "ix-fra", "origin"]


def test_a_day_without_traffic_has_no_ratio() -> None:
    t = partner_traffic("isp-a", DAY - 2, DAY, [], [], {})
    assert len(t.days) == 3
    assert all(f.offload_ratio is None and f.viewer.bytes == 0 for f in t.days)
    assert t.total.sites == {}


# --- the data plane's counter and its files ------------------------------------------------------

VIEW = b"/lc1~k1~1900000000~1~-~sig/t1/aa.m4s"
FILLT = b"/lc1~fill-k1~1900000000~1~-~sig/t1/aa.m4s"


def test_counter_counts_tokened_requests_by_network_kind_and_5xx(tmp_path: Path) -> None:
    c = TrafficCounter(tmp_path)
    c.add("203.0.113.5", VIEW, 200, 1000, NOW)
    c.add("203.0.113.77", VIEW, 206, 500, NOW + 1)  # same /24
    c.add("203.0.113.5", VIEW, 503, 10, NOW + 2)
    c.add("198.51.100.1", FILLT, 200, 7000, NOW + 2)
    c.add("2001:db8:a:1::5", VIEW, 200, 42, NOW + 2)
    c.add("203.0.113.5", b"/healthz", 200, 99, NOW + 3)  # no token: not client traffic
    c.add("203.0.113.5", b"/metrics", 200, 99, NOW + 3)
    assert c.write(NOW + 4)
    doc = json.loads((tmp_path / f"{os.getpid()}.json").read_text())
    assert doc["period_start"] == NOW and doc["period_end"] == NOW + 4
    assert doc["rows"] == [
        {"net": "198.51.100.0/24", "kind": "fill", "requests": 1, "bytes": 7000, "errors_5xx": 0},
        {"net": "2001:db8:a::/48", "kind": "viewer", "requests": 1, "bytes": 42, "errors_5xx": 0},
        {"net": "203.0.113.0/24", "kind": "viewer", "requests": 3, "bytes": 1510, "errors_5xx": 1},
    ]
    assert not c.write(NOW + 5)  # nothing new


def test_counts_accumulate_in_the_file_until_taken(tmp_path: Path) -> None:
    c = TrafficCounter(tmp_path)
    c.add("203.0.113.5", VIEW, 200, 100, NOW)
    c.write(NOW + 1)
    c.add("203.0.113.5", VIEW, 200, 50, NOW + 2)
    c.write(NOW + 3)
    batch = take(tmp_path)
    assert batch == TrafficBatch(NOW, NOW + 3, {("203.0.113.0/24", "viewer"): [2, 150, 0]})
    assert take(tmp_path) is None  # taken: the file is gone
    c.add("203.0.113.5", VIEW, 200, 7, NOW + 4)
    c.write(NOW + 5)  # a fresh file: only what came after the take
    assert take(tmp_path) == TrafficBatch(
        NOW + 4, NOW + 5, {("203.0.113.0/24", "viewer"): [1, 7, 0]}
    )


def test_take_merges_every_worker_file(tmp_path: Path) -> None:
    for pid, (start, nbytes) in {"11": (NOW, 10), "12": (NOW - 3, 20)}.items():
        doc = {
            "pid": int(pid),
            "period_start": start,
            "period_end": start + 2,
            "rows": [{"net": "10.1.2.0/24", "kind": "viewer", "requests": 1, "bytes": nbytes}],
        }
        (tmp_path / f"{pid}.json").write_text(json.dumps(doc))
    (tmp_path / "13.json").write_text("{not json")  # dropped, with a warning
    batch = take(tmp_path)
    assert batch == TrafficBatch(NOW - 3, NOW + 2, {("10.1.2.0/24", "viewer"): [2, 30, 0]})
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]


def test_a_new_process_adopts_the_file_of_a_dead_one_with_its_pid(tmp_path: Path) -> None:
    old = {
        "pid": os.getpid(),
        "period_start": NOW - 10,
        "period_end": NOW - 9,
        "rows": [{"net": "10.1.2.0/24", "kind": "viewer", "requests": 4, "bytes": 40}],
    }
    (tmp_path / f"{os.getpid()}.json").write_text(json.dumps(old))
    c = TrafficCounter(tmp_path)
    c.add("10.1.2.9", VIEW, 200, 2, NOW)
    c.write(NOW + 1)
    assert take(tmp_path) == TrafficBatch(
        NOW - 10, NOW + 1, {("10.1.2.0/24", "viewer"): [5, 42, 0]}
    )


def test_a_worker_never_waits_for_the_lock(tmp_path: Path) -> None:
    c = TrafficCounter(tmp_path)
    c.add("10.1.2.9", VIEW, 200, 2, NOW)
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the reporter is reading
        assert not c.write(NOW + 1)  # counts kept for the next tick
    finally:
        os.close(fd)
    assert c.write(NOW + 2)
    assert take(tmp_path) == TrafficBatch(NOW, NOW + 2, {("10.1.2.0/24", "viewer"): [1, 2, 0]})


def test_disabled_counter_counts_nothing(tmp_path: Path) -> None:
    c = TrafficCounter(None)
    c.add("10.1.2.9", VIEW, 200, 2, NOW)
    assert c.counts == {} and not c.write(NOW)


def test_report_bodies_split_big_batches_with_distinct_ids() -> None:
    rows = {(f"10.0.{i}.0/24", "viewer"): [1, i, 0] for i in range(5)}
    bodies = report_bodies(TrafficBatch(NOW, NOW + 1, rows), max_rows=2)
    assert [len(b["rows"]) for b in bodies] == [2, 2, 1]
    assert len({b["report_id"] for b in bodies}) == 3
    assert all(b["period_start"] == NOW and b["period_end"] == NOW + 1 for b in bodies)
    assert bodies[0]["rows"][0] == {
        "net": "10.0.0.0/24",
        "kind": "viewer",
        "requests": 1,
        "bytes": 0,
        "errors_5xx": 0,
    }


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def test_uplink_keeps_a_report_until_acknowledged(tmp_path: Path) -> None:
    directory = tmp_path / "traffic"
    c = TrafficCounter(directory)
    c.add("10.1.2.9", VIEW, 200, 2, NOW)
    assert not c.write(NOW + 1) and c.counts == {}  # no reporter made the directory: dropped
    up = TrafficUplink(directory)  # the reporter creates it
    c.add("10.1.2.9", VIEW, 200, 2, NOW + 1)
    assert c.write(NOW + 2)
    sent: list[dict[str, Any]] = []
    answers: list[int] = [503, 200]

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert path == "/traffic"
        status = answers.pop(0)
        sent.append(body)
        if status != 200:
            raise _Refused(status)
        return {"ok": True}

    async def step() -> int:
        await up.collect()  # every interval, whatever the control plane says
        return await up.send(post)

    with pytest.raises(_Refused):
        asyncio.run(step())
    assert len(up.unsent) == 1 and up.pending is None
    c.add("10.1.2.9", VIEW, 200, 5, NOW + 3)  # counted meanwhile: taken, waits behind
    c.write(NOW + 4)
    assert asyncio.run(step()) == 1
    assert sent[0] == sent[1]  # the same body, the same report id
    assert up.unsent == [] and up.pending is not None
    assert up.pending.rows == {("10.1.2.0/24", "viewer"): [1, 5, 0]}
    answers.append(422)  # a report the control plane refuses for good is dropped
    assert asyncio.run(up.send(post)) == 1 and up.unsent == [] and up.pending is None
    assert sent[2]["rows"][0]["bytes"] == 5
    assert not list(directory.glob("*.json"))


def test_uplink_merges_what_it_takes_while_the_plane_is_away(tmp_path: Path) -> None:
    up = TrafficUplink(tmp_path)
    c = TrafficCounter(tmp_path)
    for i in range(3):
        c.add("10.1.2.9", VIEW, 200, 10, NOW + 10 * i)
        c.add("10.1.3.9", FILLT, 503, 1, NOW + 10 * i)
        c.write(NOW + 10 * i + 1)
        asyncio.run(up.collect())
    assert up.pending == TrafficBatch(
        NOW,
        NOW + 21,
        {("10.1.2.0/24", "viewer"): [3, 30, 0], ("10.1.3.0/24", "fill"): [3, 3, 3]},
    )


def test_a_file_nobody_takes_is_dropped_after_a_while(tmp_path: Path) -> None:
    c = TrafficCounter(tmp_path)
    c.add("10.1.2.9", VIEW, 200, 10, NOW)
    c.write(NOW + 1)
    c._file_start = time.time() - STALE_S - 1  # as if written a quarter of an hour ago
    c.add("10.1.2.9", VIEW, 200, 7, NOW + 2)
    c.write(NOW + 3)
    batch = take(tmp_path)
    assert batch is not None and batch.rows == {("10.1.2.0/24", "viewer"): [1, 7, 0]}
