"""The appliance's fill agent against real data planes, a fake control plane and faulty sources.

Everything is on 127.0.0.1: sources are real appliance data planes
(``serve_in_thread``) serving store directories, with fill URLs signed by the
fill keyring; the control plane's two fill endpoints are a small Starlette
app under uvicorn in a thread (:class:`FakeControl`); :class:`FaultSource` is
a tiny asyncio HTTP server that dies mid-body, sends corrupted bytes or
ignores ranges.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from localcast.appliance.fill import AgentSettings, FillAgent, FillState, PassResult
from localcast.appliance.fill.plan import eviction_order, to_evict
from localcast.appliance.fill.ratelimit import RateLimiter
from localcast.appliance.fill.schema import ManifestError, parse_manifest
from localcast.appliance.fill.store import FILL_DIR, FillStore, PartFile
from localcast.appliance.launch import ThreadedAppliance, serve_in_thread
from localcast.appliance.settings import ApplianceSettings
from localcast.cli import app as cli_app
from localcast.core.tokens import Keyring, fill_keyring, signed_path
from localcast.keyfile import create_keyring

APPLIANCE = "isp-a1"
CREDENTIAL = "lca_test-secret"

# --- catalog and stores -------------------------------------------------------------------


@dataclass
class Title:
    title_id: str
    files: dict[str, bytes]  # name -> content, manifest order

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.files.values())

    def write(self, store: Path) -> None:
        d = store / self.title_id
        d.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (d / name).write_bytes(data)

    def entry(self, sources: list[dict[str, Any]], urgent: bool = False) -> dict[str, Any]:
        return {
            "title_id": self.title_id,
            "urgent": urgent,
            "files": [{"name": n, "size": len(b)} for n, b in self.files.items()],
            "sources": sources,
        }


def make_title(title_id: str, sizes: list[int], ext: str = "m4s") -> Title:
    files = {}
    for size in sizes:
        data = os.urandom(size)
        files[f"{hashlib.sha256(data).hexdigest()}.{ext}"] = data
    return Title(title_id, files)


def manifest(
    titles: list[dict[str, Any]],
    *,
    version: int = 1,
    rate_bps: float = 1e9,
    capacity_bytes: int = 0,
    window_open: bool = True,
    wait_s: float = 600.0,
    appliance_id: str = APPLIANCE,
    closes_at: float | None = None,
) -> dict[str, Any]:
    return {
        "appliance_id": appliance_id,
        "version": version,
        "day": int(time.time() // 86400),
        "generated_at": time.time(),
        "window": {
            "spec": "02:00-14:00",
            "tz": "Europe/Paris",
            "open": window_open,
            "next_open_at": None if window_open else time.time() + 3600,
            "closes_at": closes_at,
        },
        "rate_bps": rate_bps,
        "cap_bps": 1e9,
        "capacity_bytes": capacity_bytes,
        "escalation": {"wait_s": wait_s, "max_tier_sites": 2},
        "titles": titles,
    }


# --- a source: a real appliance data plane --------------------------------------------------


@dataclass
class Source:
    appliance_id: str
    store: Path
    keyring: Keyring
    server: ThreadedAppliance
    access_log: Path

    def url(self, title_id: str) -> str:
        path = signed_path(fill_keyring(self.keyring), f"/{title_id}", int(time.time()) + 3600)
        return self.server.url + path + "/"

    def source(
        self, title_id: str, kind: str = "peer", holding: str = "complete", hop: int = 0
    ) -> dict[str, Any]:
        return {
            "appliance_id": self.appliance_id,
            "site_id": "site-" + self.appliance_id,
            "kind": kind,
            "holding": holding,
            "hop": hop,
            "base_url": self.url(title_id),
        }

    def log_lines(self) -> list[list[str]]:
        """Access log lines, split: ts client method path status bytes ms (after stop)."""
        return [line.split() for line in self.access_log.read_text().splitlines()]


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return create_keyring(tmp_path / "keys.json")


@pytest.fixture
def make_source(tmp_path: Path, keyring: Keyring) -> Iterator[Callable[[str, list[Title]], Source]]:
    started: list[Source] = []

    def start(appliance_id: str, titles: list[Title]) -> Source:
        store = tmp_path / f"store-{appliance_id}"
        store.mkdir()
        for t in titles:
            t.write(store)
        log = tmp_path / f"access-{appliance_id}.log"
        settings = ApplianceSettings(
            store=store, keys=tmp_path / "keys.json", port=0, workers=1, access_log=str(log)
        )
        src = Source(appliance_id, store, keyring, serve_in_thread(settings, keyring), log)
        started.append(src)
        return src

    yield start
    for src in started:
        src.server.stop()


# --- a faulty source -------------------------------------------------------------------------


@dataclass
class FaultSource:
    """HTTP/1.1 over asyncio in a thread. Per file name a mode: ``ok``, ``die:N`` (send the
    head with the full length, N body bytes, then close), ``corrupt`` (one byte flipped),
    ``whole`` (ignore Range: always 200 with the whole file)."""

    appliance_id: str
    files: dict[str, bytes]
    modes: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (name, Range)
    sent: dict[str, int] = field(default_factory=dict)  # name -> body bytes sent

    def __post_init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()
        self._thread.start()
        assert self._started.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = await asyncio.start_server(self._handle, sock=self._sock)
            self._started.set()
            await self._server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(main())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
            }
            name = target.rsplit("/", 1)[-1]
            rng = headers.get("range")
            self.requests.append((name, rng))
            data = self.files.get(name)
            if data is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                return
            mode = self.modes.get(name, "ok")
            if mode == "corrupt":
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            start = 0
            if rng and mode != "whole":
                start = int(rng.removeprefix("bytes=").split("-")[0])
            body = data[start:]
            status = "206 Partial Content" if start else "200 OK"
            extra = f"Content-Range: bytes {start}-{len(data) - 1}/{len(data)}\r\n" if start else ""
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}"
                "Connection: close\r\n\r\n".encode()
            )
            if mode.startswith("die:"):
                body = body[: int(mode[4:])]
            writer.write(body)
            await writer.drain()
            self.sent[name] = self.sent.get(name, 0) + len(body)
        finally:
            writer.close()

    def source(
        self, title_id: str, kind: str = "peer", holding: str = "complete", hop: int = 0
    ) -> dict[str, Any]:
        return {
            "appliance_id": self.appliance_id,
            "site_id": "site-" + self.appliance_id,
            "kind": kind,
            "holding": holding,
            "hop": hop,
            "base_url": f"{self.url}/token/{title_id}/",
        }

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        for task in asyncio.all_tasks(self._loop):
            self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(5)


@pytest.fixture
def make_fault() -> Iterator[Callable[..., FaultSource]]:
    started: list[FaultSource] = []

    def start(appliance_id: str, titles: list[Title], modes: dict[str, str]) -> FaultSource:
        files = {n: b for t in titles for n, b in t.files.items()}
        src = FaultSource(appliance_id, files, modes)
        started.append(src)
        return src

    yield start
    for src in started:
        src.stop()


# --- the control plane's two endpoints -------------------------------------------------------


class FakeControl:
    """``GET /v1/appliances/{id}/fill`` answers ``self.body``; reports are recorded."""

    def __init__(self) -> None:
        self.body: bytes = b"{}"
        self.reports: list[dict[str, Any]] = []
        self.report_failures = 0  # answer this many reports with 503 first
        self.gets = 0

        async def get_fill(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {CREDENTIAL}":
                return JSONResponse({"detail": "bad credential"}, status_code=401)
            self.gets += 1
            return Response(self.body, media_type="application/json")

        async def post_report(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {CREDENTIAL}":
                return JSONResponse({"detail": "bad credential"}, status_code=401)
            if self.report_failures > 0:
                self.report_failures -= 1
                return JSONResponse({"detail": "try later"}, status_code=503)
            self.reports.append(await request.json())
            return JSONResponse({"ok": True})

        app = Starlette(
            routes=[
                Route("/v1/appliances/{aid}/fill", get_fill, methods=["GET"]),
                Route("/v1/appliances/{aid}/fill/report", post_report, methods=["POST"]),
            ]
        )
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._sock])), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "fake control plane did not start"
            time.sleep(0.01)

    def set(self, doc: dict[str, Any] | bytes) -> None:
        self.body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()

    def transfers(self) -> list[dict[str, Any]]:
        return [t for r in self.reports for t in r["transfers"]]

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


@pytest.fixture
def control() -> Iterator[FakeControl]:
    c = FakeControl()
    yield c
    c.stop()


# --- running the agent -------------------------------------------------------------------------


@dataclass
class Run:
    result: PassResult | None
    requests: list[tuple[str, str | None]]  # (url, Range) to sources, in order
    seconds: float


FAST = AgentSettings(
    refresh_s=5.0, retry_s=0.1, concurrency=2, reserve_bytes=0, backoff_base_s=0.05
)


class Harness:
    """One agent (one "process") on its own event loop, kept across steps."""

    def __init__(self, store: Path, control: FakeControl, settings: AgentSettings) -> None:
        self.runner = asyncio.Runner()
        self.on_request: Callable[[httpx.Request], None] | None = None
        self._requests: list[tuple[str, str | None]] = []

        async def hook(request: httpx.Request) -> None:
            if "/v1/appliances/" not in request.url.path:
                self._requests.append((str(request.url), request.headers.get("range")))
                if self.on_request is not None:
                    self.on_request(request)

        async def client() -> httpx.AsyncClient:
            return httpx.AsyncClient(timeout=5, event_hooks={"request": [hook]})

        self.http = self.runner.run(client())
        self.agent = FillAgent(self.http, control.url, APPLIANCE, CREDENTIAL, store, settings)

    def step(self) -> Run:
        """One ``FillAgent.step``: manifest, pass, report."""
        self._requests = []
        started = time.monotonic()
        result, _ = self.runner.run(self.agent.step())
        return Run(result, self._requests, time.monotonic() - started)

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def close(self) -> None:
        self.runner.run(self.http.aclose())
        self.runner.close()


@pytest.fixture
def agent(tmp_path: Path, control: FakeControl) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(settings: AgentSettings = FAST, store: Path | None = None) -> Harness:
        h = Harness(store or tmp_path / "agent", control, settings)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def held(store: Path, title: Title) -> dict[str, bytes]:
    d = store / title.title_id
    return {n: (d / n).read_bytes() for n in title.files if (d / n).exists()}


def no_parts(store: Path) -> bool:
    fill = store / FILL_DIR
    return not fill.exists() or not any(p.is_file() for p in fill.rglob("*"))


# --- tests -----------------------------------------------------------------------------------

Sources = Callable[[str, list[Title]], Source]
Faults = Callable[..., FaultSource]
Agents = Callable[..., Harness]


def test_fills_a_title_from_a_real_appliance_and_reports_it(
    tmp_path: Path, control: FakeControl, make_source: Sources, agent: Agents
) -> None:
    title = make_title("film-1", [300_000, 70_000, 1_000])
    peer = make_source("isp-a2", [title])
    control.set(manifest([title.entry([peer.source(title.title_id)])]))
    store = tmp_path / "agent"
    fill = agent()

    run = fill.step()

    assert run.result is not None and run.result.state is FillState.IDLE
    assert held(store, title) == title.files
    assert run.result.files == 3 and run.result.bytes == title.size
    assert no_parts(store)
    assert len(run.requests) == 3 and all(rng is None for _, rng in run.requests)
    assert all("/lc1~fill-k1~" in url for url, _ in run.requests)  # the fill credential
    # the report: one transfer per file, from the peer, and the state
    transfers = control.transfers()
    assert sorted((t["name"], t["source_id"], t["bytes"]) for t in transfers) == sorted(
        (n, "isp-a2", len(b)) for n, b in title.files.items()
    )
    assert control.reports[-1]["state"] == "idle" and control.reports[-1]["alarm"] is None

    # the next pass has nothing to do and fetches nothing
    again = fill.step()
    assert again.result is not None and again.result.files == 0 and again.requests == []


def test_source_killed_mid_file_resumes_elsewhere_without_refetching(
    tmp_path: Path, control: FakeControl, make_source: Sources, make_fault: Faults, agent: Agents
) -> None:
    big, cut = 2_000_000, 700_000
    title = make_title("film-1", [big])
    (name,) = title.files
    dying = make_fault("isp-a2", [title], {name: f"die:{cut}"})
    tier = make_source("ix-1", [title])
    sources = [dying.source("film-1"), tier.source("film-1", kind="tier", hop=1)]
    control.set(manifest([title.entry(sources)]))
    store = tmp_path / "agent"

    run = agent().step()

    assert run.result is not None and run.result.state is FillState.IDLE
    assert held(store, title) == title.files
    # first the peer from byte 0, then the tier for exactly the rest
    assert [(url.split("/")[2], rng) for url, rng in run.requests] == [
        (dying.url.removeprefix("http://"), None),
        (tier.server.url.removeprefix("http://"), f"bytes={cut}-"),
    ]
    assert dying.sent[name] == cut
    assert run.result.bytes == big  # every byte received once
    tier.server.stop()  # flushes its access log
    (line,) = [ln for ln in tier.log_lines() if ln[3].endswith(name)]
    assert line[4] == "206" and int(line[5]) == big - cut
    by_source = {t["source_id"]: t["bytes"] for t in control.transfers()}
    assert by_source == {"isp-a2": cut, "ix-1": big - cut}
    assert no_parts(store)


def test_a_part_survives_a_restart_and_a_200_to_a_range_restarts_it(
    tmp_path: Path, control: FakeControl, make_fault: Faults, agent: Agents
) -> None:
    title = make_title("film-1", [500_000])
    (name,) = title.files
    dying = make_fault("isp-a2", [title], {name: "die:200000"})
    control.set(manifest([title.entry([dying.source("film-1")])]))
    store = tmp_path / "agent"
    first = agent(AgentSettings(refresh_s=0.3, backoff_base_s=5, reserve_bytes=0)).step()
    assert first.result is not None and first.result.state is FillState.WAITING
    part = store / FILL_DIR / "film-1" / (name + ".part")
    assert part.stat().st_size == 200_000 and held(store, title) == {}

    # a new agent process resumes from the part's bytes; this source ignores the range and
    # answers the whole file (200), so the part starts again from zero
    whole = make_fault("isp-a3", [title], {name: "whole"})
    control.set(manifest([title.entry([whole.source("film-1")])]))
    second = agent().step()
    assert second.requests[0][1] == "bytes=200000-"
    assert second.result is not None and second.result.state is FillState.IDLE
    assert held(store, title) == title.files
    assert [(t["source_id"], t["bytes"]) for t in control.transfers()] == [("isp-a3", 500_000)]


def test_corrupt_bytes_are_rejected_refetched_elsewhere_and_never_served(
    tmp_path: Path,
    control: FakeControl,
    keyring: Keyring,
    make_source: Sources,
    make_fault: Faults,
    agent: Agents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    title = make_title("film-1", [400_000, 5_000])
    bad_name, good_name = title.files
    liar = make_fault("isp-a2", [title], {bad_name: "corrupt"})
    store = tmp_path / "agent"
    store.mkdir()
    published: list[tuple[str, str]] = []  # (name, sha256 of the bytes renamed in)
    real_publish = FillStore.publish

    def spy(self: FillStore, part: Path, title_id: str, name: str) -> None:
        published.append((name, hashlib.sha256(part.read_bytes()).hexdigest()))
        real_publish(self, part, title_id, name)

    monkeypatch.setattr(FillStore, "publish", spy)
    fill = agent(AgentSettings(refresh_s=0.5, backoff_base_s=30, reserve_bytes=0))
    own = serve_in_thread(  # the agent's own data plane, serving its store as it fills
        ApplianceSettings(store=store, keys=tmp_path / "keys.json", port=0, workers=1), keyring
    )
    try:
        path = signed_path(keyring, "/film-1", int(time.time()) + 600)
        # only the liar: the file is refused, nothing of it in the store, a failure counted
        control.set(manifest([title.entry([liar.source("film-1")])]))
        run = fill.step()
        assert run.result is not None and run.result.state is FillState.WAITING
        assert held(store, title) == {good_name: title.files[good_name]}
        assert no_parts(store)
        assert httpx.get(f"{own.url}{path}/{bad_name}").status_code == 404
        assert fill.agent.failures[("film-1", bad_name)]["isp-a2"].count == 1

        # with a good tier source as well: the liar rests (backoff), the tier serves it
        tier = make_source("ix-1", [title])
        sources = [liar.source("film-1"), tier.source("film-1", kind="tier", hop=1)]
        control.set(manifest([title.entry(sources)]))
        run = fill.step()
        assert run.result is not None and run.result.state is FillState.IDLE
        assert held(store, title) == title.files
        assert [u.split("/")[2] for u, _ in run.requests] == [tier.server.url[7:]]
        r = httpx.get(f"{own.url}{path}/{bad_name}")
        assert r.status_code == 200 and r.content == title.files[bad_name]
    finally:
        own.stop()
    assert all(name.startswith(digest) for name, digest in published)
    assert sorted(n for n, _ in published) == sorted(title.files)


def test_corrupt_then_the_next_source_in_the_same_pass(
    tmp_path: Path, control: FakeControl, make_source: Sources, make_fault: Faults, agent: Agents
) -> None:
    title = make_title("film-1", [300_000])
    (name,) = title.files
    liar = make_fault("isp-a2", [title], {name: "corrupt"})
    origin = make_source("origin-1", [title])
    sources = [liar.source("film-1"), origin.source("film-1", kind="origin", hop=1)]
    control.set(manifest([title.entry(sources)]))
    run = agent().step()
    assert run.result is not None and run.result.state is FillState.IDLE
    assert held(tmp_path / "agent", title) == title.files
    assert run.result.bytes == 2 * 300_000  # the corrupt copy, then the good one
    assert [t["source_id"] for t in control.transfers()] == ["origin-1"]


def test_disk_capacity_stops_filling_with_an_alarm_and_serving_goes_on(
    tmp_path: Path, control: FakeControl, keyring: Keyring, make_source: Sources, agent: Agents
) -> None:
    first = make_title("film-1", [200_000, 100_000])
    second = make_title("film-2", [200_000, 100_000])
    origin = make_source("origin-1", [first, second])
    entries = [t.entry([origin.source(t.title_id, kind="origin")]) for t in (first, second)]
    control.set(manifest(entries, capacity_bytes=first.size + second.size // 2))
    store = tmp_path / "agent"
    fill = agent()

    run = fill.step()

    assert run.result is not None and run.result.state is FillState.ALARM
    assert run.result.alarm is not None and run.result.alarm.startswith("disk full: film-2")
    assert held(store, first) == first.files
    assert not (store / "film-2").exists() and no_parts(store)
    assert all("film-2" not in url for url, _ in run.requests)  # never started
    assert control.reports[-1]["state"] == "alarm"
    assert control.reports[-1]["alarm"].startswith("disk full")
    with serve_in_thread(
        ApplianceSettings(store=store, keys=tmp_path / "keys.json", port=0, workers=1), keyring
    ) as own:
        path = signed_path(keyring, "/film-1", int(time.time()) + 600)
        for n, data in first.files.items():
            assert httpx.get(f"{own.url}{path}/{n}").content == data

    # more capacity: the next refresh fills the rest and clears the alarm
    control.set(manifest(entries, capacity_bytes=first.size + second.size))
    again = fill.step()
    assert again.result is not None and again.result.state is FillState.IDLE
    assert held(store, second) == second.files
    assert control.reports[-1]["state"] == "idle" and control.reports[-1]["alarm"] is None


def test_enospc_mid_file_stops_filling_and_deletes_the_part(
    tmp_path: Path,
    control: FakeControl,
    make_source: Sources,
    agent: Agents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    title = make_title("film-1", [1_500_000])
    origin = make_source("origin-1", [title])
    control.set(manifest([title.entry([origin.source("film-1", kind="origin")])]))
    real_write = PartFile.write

    def write(self: PartFile, data: bytes) -> None:
        if self.have + len(data) > 600_000:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        real_write(self, data)

    monkeypatch.setattr(PartFile, "write", write)
    store = tmp_path / "agent"
    run = agent().step()
    assert run.result is not None and run.result.state is FillState.ALARM
    assert run.result.alarm is not None and run.result.alarm.startswith("disk full: No space")
    assert held(store, title) == {} and no_parts(store)
    assert control.reports[-1]["state"] == "alarm"


def test_free_space_reserve_raises_the_alarm_before_any_transfer(
    tmp_path: Path, control: FakeControl, make_source: Sources, agent: Agents
) -> None:
    title = make_title("film-1", [10_000])
    origin = make_source("origin-1", [title])
    control.set(manifest([title.entry([origin.source("film-1", kind="origin")])]))
    store = tmp_path / "agent"
    store.mkdir()
    free = FillStore(store).free_bytes()
    run = agent(AgentSettings(reserve_bytes=free + (1 << 30))).step()
    assert run.result is not None and run.result.state is FillState.ALARM
    assert "filesystem" in (run.result.alarm or "") and run.requests == []


def test_unlisted_titles_are_deleted_only_after_the_new_set_is_in_place(
    tmp_path: Path, control: FakeControl, make_source: Sources, agent: Agents
) -> None:
    old = make_title("old-film", [50_000, 20_000])
    new = make_title("new-film", [80_000, 80_000, 80_000])
    origin = make_source("origin-1", [new])
    store = tmp_path / "agent"
    old.write(store)
    (store / "old-film" / "manifest.json").write_text("{}")
    make_title("new-film", [1_000]).write(store)  # a file of new-film its entry does not list
    control.set(manifest([new.entry([origin.source("new-film", kind="origin")])], version=2))
    fill = agent()
    old_there_during_fill: list[bool] = []
    fill.on_request = lambda _: old_there_during_fill.append(held(store, old) == old.files)

    run = fill.step()

    assert old_there_during_fill == [True, True, True]
    assert run.result is not None and run.result.state is FillState.IDLE
    assert run.result.deleted == ["old-film"] and not (store / "old-film").exists()
    assert sorted(p.name for p in (store / "new-film").iterdir()) == sorted(new.files)


def test_a_new_version_that_does_not_fit_evicts_the_coldest_unlisted_first(
    tmp_path: Path, control: FakeControl, make_source: Sources, agent: Agents
) -> None:
    hot, cold = make_title("hot", [100_000]), make_title("cold", [100_000])
    new = make_title("new", [90_000])
    unknown = make_title("unknown", [10_000])  # never in a manifest: the coldest of all
    origin = make_source("origin-1", [hot, cold, new])
    store = tmp_path / "agent"
    for t in (hot, cold, unknown):
        t.write(store)
    cap = hot.size + cold.size + unknown.size
    entries = [t.entry([origin.source(t.title_id, kind="origin")]) for t in (hot, cold)]
    control.set(manifest(entries, capacity_bytes=cap))
    fill = agent()
    first = fill.step()  # v1 is in place: the unlisted title goes
    assert first.result is not None and first.result.deleted == ["unknown"]

    # v2 lists only "new", which does not fit beside hot + cold: the colder goes now,
    # the other once "new" is in place
    new_entry = new.entry([origin.source("new", kind="origin")])
    control.set(manifest([new_entry], version=2, capacity_bytes=cap))
    seen: list[tuple[bool, bool]] = []
    fill.on_request = lambda _: seen.append(((store / "hot").exists(), (store / "cold").exists()))
    run = fill.step()
    assert seen == [(True, False)]
    assert run.result is not None and run.result.deleted == ["cold", "hot"]
    assert held(store, new) == new.files


def test_the_rate_cap_is_enforced(
    tmp_path: Path, control: FakeControl, make_source: Sources, agent: Agents
) -> None:
    title = make_title("film-1", [400_000] * 4)
    origin = make_source("origin-1", [title])
    rate = 8e6  # 1 MB/s: 1.6 MB take 1.6 s
    control.set(manifest([title.entry([origin.source("film-1", kind="origin")])], rate_bps=rate))
    run = agent().step()
    assert held(tmp_path / "agent", title) == title.files
    achieved = title.size * 8 / run.seconds
    print(
        f"cap {rate / 1e6:.0f} Mbit/s: achieved {achieved / 1e6:.2f} Mbit/s ({run.seconds:.2f} s)"
    )
    assert 0.5 * rate < achieved <= 1.05 * rate


def test_token_bucket_limiter_paces_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        now[0] += s
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)

    async def go() -> None:
        limiter = RateLimiter(8e6, clock=lambda: now[0])  # 1 MB/s, 64 KiB burst
        for _ in range(20):
            await limiter.take(100_000)

    asyncio.run(go())
    # 2,000,000 bytes at 1 MB/s, less the burst
    assert sum(slept) == pytest.approx((2_000_000 - 65_536) / 1e6, rel=1e-6)


def test_bad_manifests_are_logged_and_retried_never_fatal(
    tmp_path: Path,
    control: FakeControl,
    make_source: Sources,
    agent: Agents,
    caplog: pytest.LogCaptureFixture,
) -> None:
    title = make_title("film-1", [10_000])
    origin = make_source("origin-1", [title])
    good = manifest([title.entry([origin.source("film-1", kind="origin")])])
    evil = json.loads(json.dumps(good))
    evil["titles"][0]["files"][0]["name"] = "../../escape.m4s"
    bads: list[dict[str, Any] | bytes] = [
        b"{not json",
        b"[]",
        {**good, "rate_bps": -1},
        evil,
        {**good, "appliance_id": "someone-else"},
    ]
    caplog.set_level(logging.ERROR, logger="localcast.appliance.fill")
    fill = agent()
    for bad in bads:
        control.set(bad)
        caplog.clear()
        result, wait = fill.run(fill.agent.step())
        assert result is None and wait == FAST.retry_s
        assert fill.agent.trouble is not None
        assert [r.levelname for r in caplog.records] == ["ERROR"], fill.agent.trouble
    control.set(good)
    run = fill.step()
    assert run.result is not None and run.result.state is FillState.IDLE
    assert fill.agent.trouble is None
    assert held(tmp_path / "agent", title) == title.files
    assert not (tmp_path / "escape.m4s").exists()


def test_parse_manifest_checks_the_wire_format() -> None:
    doc = manifest([make_title("t", [1]).entry([])])
    m = parse_manifest(json.dumps(doc).encode(), APPLIANCE)
    assert m.version == 1 and m.titles[0].title_id == "t"
    doc["titles"][0]["sources"] = [
        {"appliance_id": "b", "kind": "peer", "holding": "lost", "hop": 0, "base_url": "http://x/"}
    ]
    with pytest.raises(ManifestError, match="holding"):
        parse_manifest(json.dumps(doc).encode(), APPLIANCE)
    doc["titles"][0]["sources"] = []
    doc["titles"][0]["title_id"] = ".fill"
    with pytest.raises(ManifestError, match="title_id"):
        parse_manifest(json.dumps(doc).encode(), APPLIANCE)


def test_outside_the_window_only_urgent_titles_are_fetched(
    tmp_path: Path, control: FakeControl, make_source: Sources, agent: Agents
) -> None:
    urgent = make_title("premiere", [20_000])
    normal = make_title("catalog", [20_000])
    origin = make_source("origin-1", [urgent, normal])
    entries = [
        normal.entry([origin.source("catalog", kind="origin")]),
        urgent.entry([origin.source("premiere", kind="origin")], urgent=True),
    ]
    store = tmp_path / "agent"
    fill = agent()
    # closed, no urgent rate: nothing moves
    control.set(manifest(entries, rate_bps=0, window_open=False))
    closed = fill.step()
    assert closed.result is not None and closed.result.state is FillState.CLOSED
    assert closed.requests == [] and control.reports[-1]["state"] == "closed"
    # closed, the urgent rate: the premiere only
    control.set(manifest(entries, rate_bps=1e8, window_open=False))
    urgent_run = fill.step()
    assert held(store, urgent) == urgent.files and held(store, normal) == {}
    assert urgent_run.requests and all("premiere" in url for url, _ in urgent_run.requests)
    assert fill.step().result is not None and held(store, normal) == {}
    # the window opens: the rest
    control.set(manifest(entries, rate_bps=1e9))
    assert fill.step().result is not None and held(store, normal) == normal.files


def test_waits_for_a_planned_leader_then_escalates(
    control: FakeControl, make_source: Sources, agent: Agents
) -> None:
    title = make_title("film-1", [30_000])
    leader = make_source("isp-a2", [])  # will hold it, later
    origin = make_source("origin-1", [title])
    sources = [
        leader.source("film-1", holding="planned"),
        origin.source("film-1", kind="origin", hop=1),
    ]
    control.set(manifest([title.entry(sources)], wait_s=1.0))
    fill = agent(AgentSettings(refresh_s=0.3, reserve_bytes=0))
    waiting = fill.step()
    assert waiting.result is not None and waiting.result.state is FillState.WAITING
    assert waiting.requests == [] and "isp-a2" in next(iter(waiting.result.waits.values()))
    time.sleep(0.8)  # the next passes reach first wanted + wait_s: escalate to the origin
    results = [fill.step() for _ in range(4)]
    assert any(r.result is not None and r.result.files == 1 for r in results)
    assert [t["source_id"] for t in control.transfers()] == ["origin-1"]


def test_a_leader_that_gets_it_in_time_is_used(
    control: FakeControl, make_source: Sources, agent: Agents
) -> None:
    title = make_title("film-1", [30_000])
    leader = make_source("isp-a2", [title])
    origin = make_source("origin-1", [title])
    fill = agent(AgentSettings(refresh_s=0.2, reserve_bytes=0))
    upstream = origin.source("film-1", kind="origin", hop=1)
    control.set(manifest([title.entry([leader.source("film-1", holding="planned"), upstream])]))
    first = fill.step()
    assert first.result is not None and first.result.state is FillState.WAITING
    assert first.requests == []
    control.set(manifest([title.entry([leader.source("film-1"), upstream])]))
    second = fill.step()
    assert [u.split("/")[2] for u, _ in second.requests] == [leader.server.url[7:]]
    assert [t["source_id"] for t in control.transfers()] == ["isp-a2"]


def test_reports_are_batched_and_retried(
    control: FakeControl, make_source: Sources, agent: Agents
) -> None:
    title = make_title("film-1", [5_000] * 6)
    origin = make_source("origin-1", [title])
    control.set(manifest([title.entry([origin.source("film-1", kind="origin")])]))
    control.report_failures = 1
    fill = agent()
    fill.step()  # the report is refused: the transfers stay queued
    assert len(fill.agent.reports.pending) == 6 and control.reports == []
    fill.step()  # nothing new to fetch; the queued batch goes out
    assert fill.agent.reports.pending == []
    assert len(control.reports) == 1
    assert sorted(t["name"] for t in control.reports[0]["transfers"]) == sorted(title.files)


def test_run_reports_while_filling_and_stops_on_cancel(
    tmp_path: Path, control: FakeControl, make_source: Sources, agent: Agents
) -> None:
    title = make_title("film-1", [200_000] * 5)
    origin = make_source("origin-1", [title])
    rate = 4e6  # 0.5 MB/s: 1 MB in 2 s, reports go out file by file meanwhile
    entry = title.entry([origin.source("film-1", kind="origin")])
    control.set(manifest([entry], rate_bps=rate))
    fill = agent(AgentSettings(refresh_s=0.5, concurrency=1, reserve_bytes=0))

    async def go() -> None:
        task = asyncio.create_task(fill.agent.run())
        deadline = time.monotonic() + 15
        while len(control.transfers()) < 5:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    fill.run(go())
    assert held(tmp_path / "agent", title) == title.files
    assert sum(1 for r in control.reports if r["transfers"]) >= 3  # not one batch at the end
    assert control.reports[0]["state"] == "filling"


def test_the_window_closing_cuts_transfers_and_keeps_the_part(
    tmp_path: Path, control: FakeControl, make_source: Sources, agent: Agents
) -> None:
    title = make_title("film-1", [3_000_000])
    origin = make_source("origin-1", [title])
    entry = title.entry([origin.source("film-1", kind="origin")])
    control.set(manifest([entry], rate_bps=8e6, closes_at=time.time() + 1.5))
    store = tmp_path / "agent"
    fill = agent()
    cut = fill.step()  # 1 MB/s for 3 MB: cut after about 1.5 s
    assert cut.result is not None and 0 < cut.result.bytes < title.size
    assert held(store, title) == {} and not no_parts(store)
    control.set(manifest([entry], rate_bps=1e9))
    resumed = fill.step()
    assert resumed.requests[0][1] == f"bytes={cut.result.bytes}-"
    assert held(store, title) == title.files


def test_eviction_order_is_coldest_first() -> None:
    rank = {"hot": 0, "warm": 1, "cold": 2}
    assert eviction_order(["hot", "cold", "warm", "zz", "aa"], rank) == [
        "aa",
        "zz",
        "cold",
        "warm",
        "hot",
    ]
    sizes = {"aa": 5, "zz": 5, "cold": 10}
    assert to_evict(["aa", "zz", "cold"], sizes, 8) == ["aa", "zz"]
    assert to_evict(["aa", "zz", "cold"], sizes, 0) == []
    assert to_evict(["aa"], sizes, 100) == ["aa"]


def test_cli_fill_once(tmp_path: Path, control: FakeControl, make_source: Sources) -> None:
    title = make_title("film-1", [10_000, 20_000])
    origin = make_source("origin-1", [title])
    control.set(manifest([title.entry([origin.source("film-1", kind="origin")])]))
    cred = tmp_path / "a.secret"
    cred.write_text(CREDENTIAL + "\n")
    store = tmp_path / "agent"
    args = ["--home", str(tmp_path / "home"), "appliance", "fill", "--appliance", APPLIANCE]
    args += ["--control-url", control.url, "--store", str(store), "--reserve-mb", "0"]
    result = CliRunner().invoke(cli_app, [*args, "--credential-file", str(cred), "--once"])
    assert result.exit_code == 0, result.output
    assert "fill idle: 2 files stored (30000 bytes), 0 missing" in result.output
    assert held(store, title) == title.files

    # a wrong credential (from the environment): no manifest, exit 1
    result = CliRunner().invoke(cli_app, [*args, "--once"], env={"LOCALCAST_CREDENTIAL": "x"})
    assert result.exit_code == 1 and "no usable fill manifest" in result.output


def test_against_the_real_control_plane(tmp_path: Path) -> None:
    """The control plane's own fill endpoints (in process) and a real origin data plane:
    the manifest parses, the agent fills from the origin, the report is accepted and
    shows on the plane's per-link accounting."""
    from control_fixtures import TOPOLOGY, FakeClock, bring_up, client_for, make_plane
    from control_fixtures import synthetic_title as control_title

    from localcast.config import load_config
    from localcast.control.app import create_app
    from localcast.control.topology import parse_topology

    clock = FakeClock(time.time())
    plane = make_plane(tmp_path, clock, fill_floor_sessions=1.0, fill_wait_s=1.0)
    try:
        t1 = control_title("t1")
        origin_store = tmp_path / "origin-store"
        t1.write(origin_store, with_manifest=False)
        keys = load_config(tmp_path / "home").paths.keys
        with serve_in_thread(
            ApplianceSettings(store=origin_store, keys=keys, port=0, workers=1)
        ) as origin:
            topology = json.loads(json.dumps(TOPOLOGY))
            for s in topology["sites"]:
                s["fill_window"] = "00:00-24:00"
            for a in topology["appliances"]:
                if a["id"] == "o1":
                    a["url"] = origin.url
            creds = plane.apply_topology(parse_topology(topology)).credentials
            plane.import_manifests([t1.manifest])
            bring_up(client_for(plane), creds, {"a1": [], "o1": [t1]})
            plane.plan_fills()

            store = tmp_path / "a1-store"
            app = create_app(plane, background_refresh=False)

            async def go() -> PassResult | None:
                mounts = {"http://control": httpx.ASGITransport(app=app)}
                async with httpx.AsyncClient(mounts=mounts, timeout=5) as http:
                    agent = FillAgent(http, "http://control", "a1", creds["a1"], store, FAST)
                    result, _ = await agent.step()
                    return result

            result = asyncio.run(go())
        assert result is not None and result.state is FillState.IDLE, result
        required = plane.snapshot.catalog["t1"].required_files
        assert {p.name for p in (store / "t1").iterdir()} == required
        assert all((store / "t1" / n).read_bytes() == t1.files[n] for n in required)
        links = client_for(plane).get("/v1/fill/links").json()
        [link] = [ln for ln in links if ln["to_site"] == "a-par"]
        assert link["from_site"] == "origin" and link["files"] == len(required)
        assert link["bytes"] == sum(len(t1.files[n]) for n in required)
    finally:
        plane.close()
