"""Test helpers for BGP: a real BIRD 2 daemon, our speaker in a thread, a raw BGP peer.

- :class:`Bird` starts ``bird -f`` with its own config, control socket and pid
  file under a temp directory, reconfigures it through ``birdc configure``,
  and stops, pauses or resumes it by pid.
- :class:`SpeakerThread` runs a :class:`~localcast.bgp.speaker.Speaker` in its
  own event loop thread, so tests (and hypothesis) stay synchronous and read
  its state with :meth:`SpeakerThread.call`.
- :class:`RawPeer` speaks BGP bytes over one socket from a chosen loopback
  source address, to send hostile input and see exactly what comes back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from localcast.bgp.codec import Decoder, encode
from localcast.bgp.config import BgpConfig, parse_bgp_config
from localcast.bgp.errors import RemoteProtocolError
from localcast.bgp.events import NeighborStatus, SpeakerEvent
from localcast.bgp.messages import (
    FourOctetAs,
    Keepalive,
    Message,
    Multiprotocol,
    Notification,
    Open,
    RouteRefreshCapability,
)
from localcast.bgp.speaker import Speaker

T = TypeVar("T")
BIRD = "/usr/sbin/bird"
BIRDC = "/usr/sbin/birdc"


def require_bird() -> None:
    if not (shutil.which("bird") or os.path.exists(BIRD)):
        pytest.fail("BIRD 2 is not installed: run `make deps` (Debian package bird2)")


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail (never assert on time) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Bird:
    """One BIRD 2 process with its own config, control socket and pid file."""

    def __init__(self, workdir: Path, config: str) -> None:
        require_bird()
        self.dir = Path(tempfile.mkdtemp(prefix="bird-", dir="/tmp"))  # short socket path
        self.workdir = workdir
        self.conf = workdir / "bird.conf"
        self.sock = self.dir / "ctl"
        self.pidfile = self.dir / "pid"
        self.log = workdir / "bird.log"
        self.conf.write_text(config)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Bird:
        check = subprocess.run([BIRD, "-p", "-c", str(self.conf)], capture_output=True, text=True)
        assert check.returncode == 0, f"bird config:\n{check.stderr}\n{self.conf.read_text()}"
        self.proc = subprocess.Popen(
            [BIRD, "-f", "-c", str(self.conf), "-s", str(self.sock), "-P", str(self.pidfile)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "bird.stderr", "wb"),  # noqa: SIM115
        )
        wait_for(self.sock.exists, 10, "BIRD's control socket")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def birdc(self, *args: str) -> str:
        out = subprocess.run(
            [BIRDC, "-s", str(self.sock), *args], capture_output=True, text=True, timeout=20
        )
        return out.stdout + out.stderr

    def reconfigure(self, config: str) -> None:
        self.conf.write_text(config)
        out = self.birdc("configure")
        assert "Reconfigured" in out or "Reconfiguration in progress" in out, out

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def bird_header(router_id: str = "192.0.2.254", log: Path | None = None) -> str:
    lines = [f"router id {router_id};"]
    if log is not None:
        lines.append(f'log "{log}" all;')
    lines.append("protocol device {}")
    return "\n".join(lines) + "\n"


def bird_static(name: str, family: str, routes: list[str]) -> str:
    body = "\n".join(f"  route {r};" for r in routes)
    return f"protocol static {name} {{\n  {family};\n{body}\n}}\n"


def bird_bgp(
    name: str,
    *,
    local: str,
    local_as: int,
    neighbor: str,
    neighbor_port: int,
    neighbor_as: int,
    family: str,
    export_from: str,
    next_hop: str,
    export: str | None = None,
    local_port: int | None = None,
    hold: int = 6,
    passive: bool = False,
) -> str:
    """One ``protocol bgp``: ``export`` is a filter, default everything of ``export_from``."""
    port = f" port {local_port}" if local_port else ""
    export = export or f'where proto = "{export_from}"'
    return (
        f"protocol bgp {name} {{\n"
        f"  local {local}{port} as {local_as};\n"
        f"  neighbor {neighbor} port {neighbor_port} as {neighbor_as};\n"
        f"  multihop;\n  hold time {hold};\n  keepalive time 1;\n"
        f"  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 2;\n"
        + ("  passive on;\n" if passive else "")
        + f"  {family} {{ import none; export {export};"
        f" next hop address {next_hop}; }};\n"
        "}\n"
    )


def speaker_toml(
    port: int, local_as: int, routers: dict[str, str], remote_as: int, hold: int
) -> str:
    """An appliance's ``[appliance.bgp]`` for ``localcast bgp run``: it listens on loopback
    ``port``, passive to each router (description -> address) of ``remote_as``, IPv4."""
    lines = [
        "[appliance.bgp]",
        f"local_as = {local_as}",
        'router_id = "192.0.2.10"',
        'listen = ["127.0.0.1"]',
        f"port = {port}",
        f"hold_time = {hold}",
    ]
    for name, addr in routers.items():
        lines += [
            "",
            "[[appliance.bgp.neighbors]]",
            f'address = "{addr}"',
            f"remote_as = {remote_as}",
            f'description = "{name}"',
            "passive = true",
            'families = ["ipv4"]',
            "idle_hold_time = 0.5",
        ]
    return "\n".join(lines) + "\n"


def isp_router(
    workdir: Path,
    name: str,
    *,
    address: str,
    router_id: str,
    isp_as: int,
    speaker_port: int,
    speaker_as: int,
    routes: list[str],
    hold: int,
) -> str:
    """A BIRD config for one ISP router at ``address`` announcing ``routes`` (blackholes)
    to the appliance's speaker at 127.0.0.1:``speaker_port``; it listens on a port of its own."""
    conf = bird_header(router_id=router_id, log=workdir / "bird.log")
    conf += bird_static("s4", "ipv4", [f"{r} blackhole" for r in routes])
    conf += bird_bgp(
        name,
        local=address,
        local_as=isp_as,
        neighbor="127.0.0.1",
        neighbor_port=speaker_port,
        neighbor_as=speaker_as,
        family="ipv4",
        export_from="s4",
        next_hop="192.0.2.1",
        hold=hold,
        local_port=free_port(address),
    )
    return conf


class SpeakerThread:
    """A Speaker in its own event loop thread; events are collected in ``self.events``."""

    def __init__(self, config: BgpConfig | dict[str, Any]) -> None:
        self.config = config if isinstance(config, BgpConfig) else parse_bgp_config(config)
        self.loop = asyncio.new_event_loop()
        self.events: list[SpeakerEvent] = []
        self.speaker = Speaker(self.config, on_event=self.events.append)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> SpeakerThread:
        self.thread.start()
        self.run(self.speaker.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.thread.is_alive():
            self.run(self.speaker.stop())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        self.loop.close()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 30) -> T:
        """Run ``fn`` in the speaker's loop thread and return its result."""
        fut: Future[T] = Future()

        def job() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(job)
        return fut.result(timeout)

    def status(self, neighbor: str) -> NeighborStatus:
        return self.call(lambda: self.speaker.sessions[neighbor].status())

    def routes(self, neighbor: str) -> dict[str, Any]:
        """Prefix text -> PathAttributes of the neighbor's Adj-RIB-In."""
        from localcast.bgp import prefix

        def read() -> dict[str, Any]:
            rib = self.speaker.rib(neighbor)
            return {prefix.to_text(afi, p): attrs for afi, p, attrs in rib.items()}

        return self.call(read)

    def wait_state(self, neighbor: str, state: str, timeout: float = 15.0) -> NeighborStatus:
        return wait_for(
            lambda: (s := self.status(neighbor)).state == state and s,
            timeout,
            f"{neighbor} to be {state}",
        )

    @property
    def port(self) -> int:
        return self.speaker.bound[0][1]


class RawPeer:
    """A BGP peer made of one socket and our codec, for hostile input."""

    def __init__(self, source: str, port: int, target: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((target, port), timeout=5, source_address=(source, 0))
        self.decoder = Decoder()
        self.closed = False

    def send(self, data: bytes | Message) -> None:
        self.sock.sendall(data if isinstance(data, bytes) else encode(data))

    def receive(self, timeout: float = 5.0, quiet: float = 0.3) -> list[Message]:
        """Messages until the peer closes (``closed``), or is silent for ``timeout`` at
        first and ``quiet`` once something came."""
        self.sock.settimeout(timeout)
        out: list[Message] = []
        while True:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                break
            self.decoder.feed(data)
            try:
                out.extend(self.decoder.messages())
            except RemoteProtocolError as err:  # pragma: no cover - the speaker sent garbage
                raise AssertionError(f"speaker sent a malformed message: {err!r}") from err
            self.sock.settimeout(quiet)
        return out

    def receive_until(
        self, done: Callable[[list[Message]], bool], timeout: float = 5.0
    ) -> list[Message]:
        """Messages until ``done(messages)`` or the peer closes or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        out: list[Message] = []
        while not done(out) and not self.closed:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                break
            self.decoder.feed(data)
            out.extend(self.decoder.messages())
        return out

    def establish(self, asn: int, hold: int = 0, bgp_id: str = "192.0.2.77") -> list[Message]:
        """OPEN, read theirs and their KEEPALIVE, KEEPALIVE back: Established."""
        caps = (
            Multiprotocol(1, 1),
            Multiprotocol(2, 1),
            RouteRefreshCapability(),
            FourOctetAs(asn),
        )
        self.send(Open(asn if asn < 65536 else 23456, hold, bgp_id, caps))
        got = self.receive_until(
            lambda ms: Keepalive() in ms or any(isinstance(m, Notification) for m in ms)
        )
        if any(isinstance(m, Open) for m in got) and Keepalive() in got:
            self.send(Keepalive())
        return got

    def close(self) -> None:
        self.sock.close()


def established_peer(source: str, port: int, asn: int, hold: int = 0) -> RawPeer:
    """A RawPeer in Established state. Retries while the speaker refuses it: a session
    that just ended may still be Idle for an instant, and a second connection is refused."""
    for _ in range(100):
        peer = RawPeer(source, port)
        got = peer.establish(asn, hold)
        if any(isinstance(m, Open) for m in got) and not peer.closed:
            return peer
        peer.close()
        time.sleep(0.05)
    raise AssertionError(f"could not establish a session from {source}")
