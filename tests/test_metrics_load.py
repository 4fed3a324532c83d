"""The reporter's load from the data plane's metric snapshots: per-process deltas -> a sample.

Pure: :func:`load_between` over hand-made readings (first reading, two
workers, a restarted worker, a counter reset, a worker gone); :func:`totals_of`
over a real worker's snapshot (``DataPlaneMetrics`` over its ``Counters``), so
the family names are the data plane's. Then :class:`NodeLoad` over a metrics
directory: files of live and dead processes, read without retiring any, and
a scrape retiring a dead worker's file in between does not make a burst.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcast.appliance.accesslog import Counters
from localcast.appliance.metrics import COMPONENT, DataPlaneMetrics
from localcast.metrics import MetricsWriter, Snapshot, merge, read_directory
from localcast.metrics.collect import RETIRED_NAME
from localcast.metrics.load import (
    LoadSample,
    NodeLoad,
    NodeReading,
    ServingSample,
    Totals,
    load_between,
    read_node,
    reading_of,
    totals_of,
)
from localcast.metrics.snapshot import process_identity

VIEWER = b"/lc1~k1~99~sig/t1/" + b"a" * 64 + b".m4s"
FILL = b"/lc1~fill-k1~99~sig/t1/" + b"a" * 64 + b".m4s"


def reading(at: float, connections: int = 0, **processes: Totals) -> NodeReading:
    return NodeReading(at, connections, processes)


# --- pure ---------------------------------------------------------------------------------------


def test_the_first_reading_has_connections_but_no_rate() -> None:
    cur = reading(10.0, 4, a=Totals(100, 3, 10**9))
    assert load_between(None, cur) == LoadSample(active_connections=4)
    assert load_between(cur, cur) == LoadSample(active_connections=4)  # no time: no rate


def test_two_workers_add_up_over_the_elapsed_time() -> None:
    prev = reading(10.0, 2, a=Totals(100, 1, 1_000_000), b=Totals(50, 0, 500_000))
    cur = reading(12.5, 3, a=Totals(160, 4, 3_000_000), b=Totals(90, 0, 1_500_000))
    sample = load_between(prev, cur)
    assert sample.active_connections == 3
    assert sample.egress_bps == (2_000_000 + 1_000_000) * 8 / 2.5
    assert sample.serving == ServingSample(requests=100, errors_5xx=3, window_s=2.5)


def test_a_restarted_worker_counts_what_the_new_process_counted() -> None:
    # worker b was killed and replaced by c: b's totals vanish (not a negative delta), c counts
    # everything it holds (all of it since it started, inside the window)
    prev = reading(0.0, 0, a=Totals(100, 0, 8_000), b=Totals(900, 9, 9_000_000))
    cur = reading(1.0, 0, a=Totals(110, 0, 9_000), c=Totals(5, 1, 500))
    sample = load_between(prev, cur)
    assert sample.egress_bps == (1_000 + 500) * 8
    assert sample.serving == ServingSample(15, 1, 1.0)


def test_a_counter_that_went_down_counts_from_zero() -> None:
    # one process's totals never fall; if they do (a reset), they count from zero, as
    # rate() does: never a negative rate, never the node's whole total
    prev = reading(0.0, 0, a=Totals(1_000, 10, 10**9), b=Totals(10, 0, 1_000))
    cur = reading(2.0, 0, a=Totals(30, 1, 4_000), b=Totals(20, 0, 2_000))
    sample = load_between(prev, cur)
    assert sample.egress_bps == (4_000 + 1_000) * 8 / 2
    assert sample.serving == ServingSample(40, 1, 2.0)
    # only bytes fell: still a reset of the whole process
    prev = reading(0.0, 0, a=Totals(10, 0, 5_000))
    cur = reading(1.0, 0, a=Totals(12, 0, 100))
    assert load_between(prev, cur).serving == ServingSample(12, 0, 1.0)
    assert load_between(prev, cur).egress_bps == 800


def test_every_worker_gone_is_a_quiet_window() -> None:
    prev = reading(0.0, 5, a=Totals(10, 1, 1_000))
    cur = reading(1.0, 0)
    assert load_between(prev, cur) == LoadSample(0, 0.0, ServingSample(0, 0, 1.0))


def test_a_window_longer_than_the_heartbeat_allows_is_left_out() -> None:
    prev = reading(0.0, 0, a=Totals(10, 1, 1_000))
    cur = reading(90_000.0, 0, a=Totals(20, 1, 91_000))
    sample = load_between(prev, cur)
    assert sample.serving is None and sample.egress_bps == 90_000 * 8 / 90_000


def test_totals_of_a_data_plane_worker() -> None:
    counters = Counters()
    for _ in range(3):
        counters.add(200, 1_000, VIEWER)
    counters.add(206, 100, VIEWER)
    counters.add(500, 50, VIEWER)  # a fault
    for _ in range(2):  # new sessions shed while the control plane is lost: by design
        counters.add(503, 60, VIEWER)
        counters.refused("no_new_sessions", "viewer")
    counters.add(403, 40, VIEWER)
    counters.refused("expired", "viewer")
    counters.add(200, 2_000, FILL)
    counters.add(503, 10, FILL)  # a fill request's 503: no shedding refusal, a fault
    counters.add(200, 300, b"/healthz")  # not traffic: bytes yes, requests no
    counters.add(500, 30, b"/metrics")
    metrics = DataPlaneMetrics(None, counters, lambda: 7, lambda: (0, 0, 0), "/")
    metrics.update()
    snap = metrics.writer.snapshot()
    assert totals_of(snap) == Totals(
        requests=10, errors_5xx=2, bytes_sent=3_000 + 100 + 50 + 120 + 40 + 2_000 + 10 + 330
    )
    got = reading_of([snap], 3.0)
    assert got.connections == 7 and list(got.processes.values()) == [totals_of(snap)]
    # a process of the node that serves nothing (the supervisor, the BGP speaker): no totals
    other = MetricsWriter("supervisor", None)
    other.gauge("localcast_appliance_workers", None, 2)
    assert totals_of(other.snapshot()) is None
    assert reading_of([other.snapshot()], 0.0).processes == {}


# --- a metrics directory -------------------------------------------------------------------------


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes that stand for data-plane workers (alive until killed)."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def worker_file(
    directory: Path, proc: subprocess.Popen[bytes], requests: int, errors: int, nbytes: int
) -> Path:
    """The snapshot file a data-plane worker ``proc`` would write: ``requests`` viewer
    requests (``errors`` of them 500), ``nbytes`` sent, one open connection."""
    w = MetricsWriter(COMPONENT, directory)
    ok = {"status": "200", "kind": "viewer"}
    bad = {"status": "500", "kind": "viewer"}
    w.counter("localcast_appliance_requests", ok, requests - errors)
    w.counter("localcast_appliance_requests", bad, errors)
    w.counter("localcast_appliance_response_bytes", ok, nbytes)
    w.counter("localcast_appliance_response_bytes", bad, 0)
    w.gauge("localcast_appliance_connections", None, 1)
    snap = w.snapshot()
    snap.pid = proc.pid
    snap.identity = process_identity(proc.pid) or ""
    path = directory / f"{COMPONENT}-{proc.pid}.json"
    path.write_text(json.dumps(snap.to_json()))
    return path


def start_sleeper(procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(["sleep", "600"])
    procs.append(p)
    return p


def test_node_load_reads_without_retiring_and_a_retirement_is_no_burst(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    clock = [100.0]
    load = NodeLoad(directory, clock=lambda: clock[0])
    a, b = start_sleeper(sleepers), start_sleeper(sleepers)
    a_file = worker_file(directory, a, 10, 0, 1_000)
    worker_file(directory, b, 20, 0, 2_000)
    assert load() == LoadSample(active_connections=2)  # first reading: no rate

    worker_file(directory, a, 15, 1, 1_500)
    worker_file(directory, b, 30, 0, 3_000)
    clock[0] = 102.0
    assert load() == LoadSample(2, (500 + 1_000) * 8 / 2, ServingSample(15, 1, 2.0))

    # a dies (its file stays: nobody scraped), c replaces it, b serves on
    a.kill()
    a.wait()
    c = start_sleeper(sleepers)
    worker_file(directory, c, 2, 0, 100)
    worker_file(directory, b, 32, 0, 3_200)
    clock[0] = 104.0
    assert load() == LoadSample(2, (200 + 100) * 8 / 2, ServingSample(4, 0, 2.0))
    assert a_file.exists() and not (directory / RETIRED_NAME).exists()  # read-only

    # a scrape of /metrics retires a's file: the node's summed counters jump back up by a's
    # totals (what a node-sum delta would report as a burst); per process, nothing happened
    before = merge(read_directory(directory, retire=False).live)
    view = read_directory(directory)  # retire=True, as the data plane's scrape does
    after = merge(view.live, view.retired)
    requests = "localcast_appliance_requests"
    assert sum(after[requests].samples.values()) - sum(before[requests].samples.values()) == 15
    assert not a_file.exists()
    clock[0] = 106.0
    assert load() == LoadSample(2, 0.0, ServingSample(0, 0, 2.0))


def test_node_load_of_a_missing_directory_is_zero(tmp_path: Path) -> None:
    load = NodeLoad(tmp_path / "nothing", clock=iter([1.0, 2.0]).__next__)
    assert load() == LoadSample()
    assert load() == LoadSample(0, 0.0, ServingSample(0, 0, 1.0))
    assert not (tmp_path / "nothing").exists()


def test_snapshot_round_trip_keeps_the_writer(tmp_path: Path) -> None:
    # the writer id a reading keys on survives the file (pid and identity)
    w = MetricsWriter(COMPONENT, tmp_path)
    w.counter("localcast_appliance_requests", {"status": "200", "kind": "viewer"}, 3)
    assert w.flush()
    snap = Snapshot.from_json(json.loads(next(tmp_path.glob("*.json")).read_text()))
    got = read_node(tmp_path, 0.0)
    assert list(got.processes) == [f"{snap.pid}@{snap.identity}"]
    assert got.processes[f"{snap.pid}@{snap.identity}"] == Totals(3, 0, 0)
