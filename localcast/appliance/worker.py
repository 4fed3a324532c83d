"""One worker: an event loop serving one listening socket until told to stop.

:func:`serve` is the coroutine (usable in any loop, e.g. a test's thread);
:func:`run_worker` is a worker process's body: uvloop, its own
``SO_REUSEPORT`` socket on the shared port, SIGTERM/SIGINT -> graceful stop
(stop accepting, let in-flight responses finish within the grace period);
it also stops by itself if the supervisor dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from localcast.appliance.accesslog import AccessLog
from localcast.appliance.http import HttpConnection
from localcast.appliance.settings import ACCESS_LOG_OFF, ACCESS_LOG_STDERR, ApplianceSettings
from localcast.appliance.state import ServerState
from localcast.core.tokens import Keyring

log = logging.getLogger("localcast.appliance")

BACKLOG = 2048


def listen_socket(
    host: str, port: int, reuse_port: bool = True, listen: bool = True
) -> socket.socket:
    """A TCP socket bound to ``host:port``; ``SO_REUSEPORT`` lets every worker bind the port."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
        if listen:
            sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def open_access_log(settings: ApplianceSettings) -> AccessLog | None:
    if settings.access_log == ACCESS_LOG_OFF:
        return None
    if settings.access_log == ACCESS_LOG_STDERR:
        return AccessLog(2, settings.log_json, settings.access_log_sample)
    return AccessLog.open(Path(settings.access_log), settings.log_json, settings.access_log_sample)


def tick_interval(settings: ApplianceSettings) -> float:
    shortest = min(settings.header_timeout_s, settings.idle_timeout_s, settings.send_timeout_s)
    return max(0.01, min(0.25, shortest / 4))


async def serve(
    settings: ApplianceSettings,
    keyring: Keyring,
    sock: socket.socket,
    stop: asyncio.Event,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve on the listening ``sock`` until ``stop`` is set, then drain within the grace period."""
    loop = asyncio.get_running_loop()
    state = ServerState(settings, keyring, open_access_log(settings))
    server = await loop.create_server(lambda: HttpConnection(state), sock=sock, backlog=BACKLOG)
    interval = tick_interval(settings)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                state.tick()
            except Exception:  # the tick drives every timeout: it must never stop
                log.exception("appliance tick failed")

    tick_task = asyncio.create_task(ticker())
    if on_ready is not None:
        on_ready()
    try:
        await stop.wait()
    finally:
        server.close()
        for conn in list(state.connections):
            conn.close_if_idle()
        deadline = loop.time() + settings.shutdown_grace_s
        while state.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(state.connections):
            conn.abort()
        tick_task.cancel()
        state.metrics.publish()  # the last counts, kept once this process is gone
        state.traffic.close()  # the last traffic counts, for the reporter
        state.fds.close_all()
        if state.access_log is not None:
            state.access_log.close()


def run_worker(settings: ApplianceSettings, keyring: Keyring, ready_fd: int | None) -> int:
    """A worker process's body; returns its exit status."""
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        sock = listen_socket(settings.listen, settings.port)
    except OSError as exc:
        log.error(
            "worker %d cannot listen on %s:%d: %s", os.getpid(), settings.listen, settings.port, exc
        )
        return 1

    def ready() -> None:
        if ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(ready_fd, b"r")

    parent = os.getppid()

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def orphan_check() -> None:  # the supervisor was killed hard: do not linger
            if os.getppid() != parent:
                log.warning("worker %d: supervisor gone, stopping", os.getpid())
                stop.set()
            else:
                loop.call_later(1.0, orphan_check)

        loop.call_later(1.0, orphan_check)
        await serve(settings, keyring, sock, stop, ready)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return 0
