"""The appliance-side reporter against the control plane app (in process, no sockets)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
from control_fixtures import FakeClock, make_plane, provision, synthetic_title

from localcast.appliance.accesslog import Counters
from localcast.appliance.metrics import DataPlaneMetrics
from localcast.control.app import create_app
from localcast.control.reporter import LoadSample, Reporter, scan_store
from localcast.core.status import ComponentName, StatusLevel
from localcast.metrics.load import NodeLoad


def test_scan_store_sees_content_files_only(tmp_path: Path) -> None:
    title = synthetic_title("t1")
    title.write(tmp_path)  # with manifest.json, which is not inventory
    (tmp_path / "t1" / "partial.tmp").write_text("x")
    (tmp_path / "not a title!").mkdir()
    scan = scan_store(tmp_path)
    assert dict(scan.inventory) == {"t1": frozenset(title.files)}
    assert scan.used_bytes == sum(len(b) for b in title.files.values())
    assert scan_store(tmp_path / "missing").inventory == {}


def test_reporter_sends_full_then_deltas_and_resyncs(tmp_path: Path) -> None:
    clock = FakeClock()
    plane = make_plane(tmp_path, clock)
    title = synthetic_title("t1")
    creds = provision(plane, title)
    store = tmp_path / "store-a1"
    title.write(store, with_manifest=False)
    app = create_app(plane, background_refresh=False)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as http:
            contact = tmp_path / "run" / "control-contact"
            rep = Reporter(
                http,
                "http://control",
                "a1",
                creds["a1"],
                store,
                0.5,
                clock,
                LoadSample,
                contact_file=contact,
            )
            await rep.step()  # register, then the full inventory
            assert contact.exists()  # the data plane's mark of a reachable control plane
            a1 = plane.snapshot.appliances["a1"]
            assert a1.titles == {"t1"} and a1.file_count == len(title.files)
            assert a1.health.interval_s == 0.5 and rep.seq == 1 and rep.trouble is None

            segment = title.manifest.renditions[0].segments[1].file.name
            (store / "t1" / segment).unlink()
            await rep.step()  # a delta: one file removed
            a1 = plane.snapshot.appliances["a1"]
            assert a1.titles == frozenset() and a1.file_count == len(title.files) - 1
            assert rep.seq == 2

            (store / "t1" / segment).write_bytes(title.files[segment])
            rep.seq = 7  # as if an answer had been lost: the control plane holds seq 2
            await rep.step()  # out-of-sequence delta: refused, resync asked
            assert rep.acked is None and plane.snapshot.appliances["a1"].titles == frozenset()
            await rep.step()  # the full inventory again
            assert plane.snapshot.appliances["a1"].titles == {"t1"}

            plane.rotate_credential("a1")  # the reporter's secret no longer works
            contact.unlink()
            await rep.step()
            assert rep.trouble is not None and "401" in rep.trouble and not rep.registered
            assert not contact.exists()  # refused: no contact mark

    try:
        asyncio.run(scenario())
    finally:
        plane.close()


def test_reporter_survives_an_unreachable_control_plane(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=2) as http:
            rep = Reporter(
                http, f"http://127.0.0.1:{port}", "a1", "x", tmp_path, 1.0, FakeClock(), LoadSample
            )
            await rep.step()
            assert rep.trouble is not None and "unreachable" in rep.trouble

    asyncio.run(scenario())


def test_reporter_sends_the_data_planes_load_from_its_metrics(tmp_path: Path) -> None:
    """Connections, egress and the serving window, read from the node's metrics directory
    (a worker's snapshot file, written as the data plane writes it), reach the status."""
    clock = FakeClock()
    plane = make_plane(tmp_path, clock)
    title = synthetic_title("t1")
    creds = provision(plane, title)
    store = tmp_path / "store-a1"
    title.write(store, with_manifest=False)
    app = create_app(plane, background_refresh=False)
    metrics_dir = tmp_path / "run" / "metrics"
    counters = Counters()
    open_connections = [3]
    worker = DataPlaneMetrics(
        metrics_dir, counters, lambda: open_connections[0], lambda: (1, 1, 1), str(store)
    )
    target = b"/lc1~k1~99~sig/t1/" + b"a" * 64 + b".m4s"

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as http:
            load = NodeLoad(metrics_dir, clock=clock)
            rep = Reporter(http, "http://control", "a1", creds["a1"], store, 1.0, clock, load)
            worker.publish()
            await rep.step()  # the first reading: connections, no rate, no window
            a1 = plane.snapshot.appliances["a1"]
            assert a1.load.active_connections == 3 and a1.load.egress_bps == 0
            status = plane.health.statuses["a1"]
            assert status.component(ComponentName.SERVING) is None

            for _ in range(57):
                counters.add(200, 100_000, target)
            for _ in range(3):
                counters.add(500, 0, target)  # 5 % of 60: Error
            open_connections[0] = 5
            worker.publish()
            clock.advance(2.0)
            await rep.step()
            a1 = plane.snapshot.appliances["a1"]
            assert a1.load.active_connections == 5
            assert a1.load.egress_bps == 57 * 100_000 * 8 / 2.0
            serving = plane.health.statuses["a1"].component(ComponentName.SERVING)
            assert serving is not None and serving.level is StatusLevel.ERROR
            assert serving.observed.reason.startswith("3 of 60 requests 5xx (5")
            assert "in the last 2 s" in serving.observed.reason

            clock.advance(1.0)  # nothing served since: a quiet window
            await rep.step()
            assert plane.snapshot.appliances["a1"].load.egress_bps == 0
            serving = plane.health.statuses["a1"].component(ComponentName.SERVING)
            assert serving is not None and serving.observed.level is StatusLevel.OK
            assert serving.level is StatusLevel.ERROR  # held (hysteresis)

    try:
        asyncio.run(scenario())
    finally:
        plane.close()
