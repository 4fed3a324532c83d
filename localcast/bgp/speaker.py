"""The appliance's BGP speaker: every configured neighbor, in one asyncio loop.

:class:`Speaker` listens on the configured addresses and port, hands each
inbound connection to the session of the neighbor it comes from (refusing
any other address with a Cease "connection rejected"), starts the sessions
(active ones dial out), and fans their events out to subscribers
(:meth:`Speaker.events`, an async iterator; or ``on_event`` callbacks).
It exposes the per-neighbor :class:`~localcast.bgp.events.NeighborStatus`
and Adj-RIB-In, and route refresh.

Use it inside a running node as a task with a clean stop::

    speaker = Speaker(bgp_config)
    await speaker.start()          # binds, starts sessions; returns at once
    async for event in speaker.events(): ...
    await speaker.stop()           # Cease to every peer, listeners closed

or ``await speaker.run(stop_event)``. Nothing here decodes bytes, decides
protocol state or filters routes; it only wires sessions to sockets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from localcast.bgp.adjrib import AdjRibIn
from localcast.bgp.config import BgpConfig, import_policy
from localcast.bgp.errors import CeaseSubcode
from localcast.bgp.events import NeighborStatus, SpeakerEvent
from localcast.bgp.rpki import VrpTable
from localcast.bgp.session import Connection, Session, normalize_address, refuse

log = logging.getLogger(__name__)


class Subscription:
    """An async iterator over speaker events; ends when the speaker stops or on close()."""

    def __init__(self, registry: list[asyncio.Queue[SpeakerEvent | None]]) -> None:
        self.queue: asyncio.Queue[SpeakerEvent | None] = asyncio.Queue()
        self._registry = registry
        self.closed = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> SpeakerEvent:
        if self.closed:
            raise StopAsyncIteration
        event = await self.queue.get()
        if event is None:
            self.close()
            raise StopAsyncIteration
        return event

    def pending(self) -> list[SpeakerEvent]:
        """Events already queued, without waiting."""
        out = []
        while not self.closed and not self.queue.empty():
            event = self.queue.get_nowait()
            if event is None:
                self.close()
            else:
                out.append(event)
        return out

    def close(self) -> None:
        self.closed = True
        if self.queue in self._registry:
            self._registry.remove(self.queue)


class Speaker:
    def __init__(
        self,
        config: BgpConfig,
        on_event: Callable[[SpeakerEvent], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        rpki_cache: dict[Path, VrpTable] = {}
        self.sessions: dict[str, Session] = {
            n.address: Session(config, n, import_policy(config, n, rpki_cache), self._emit, wall)
            for n in config.neighbors
        }
        self.refused: Counter[str] = Counter()  # unknown peers, by source address
        self._callbacks: list[Callable[[SpeakerEvent], None]] = [on_event] if on_event else []
        self._queues: list[asyncio.Queue[SpeakerEvent | None]] = []
        self._servers: list[asyncio.Server] = []
        self.bound: list[tuple[str, int]] = []
        self.started = False

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for address in self.config.listen:
            server = await loop.create_server(
                lambda: Connection(self._accepted), address, self.config.port, reuse_address=True
            )
            self._servers.append(server)
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                self.bound.append((host, port))
        self.started = True
        for session in self.sessions.values():
            session.start()
        log.info(
            "BGP speaker AS%d (%s) listening on %s with %d neighbor(s)",
            self.config.local_as,
            self.config.router_id,
            ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.bound),
            len(self.sessions),
        )

    async def stop(self) -> None:
        """Cease every session, close the listeners, end the event iterators."""
        for session in self.sessions.values():
            session.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, "appliance shutting down")
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        for q in self._queues:
            q.put_nowait(None)
        self.started = False
        await asyncio.sleep(0)  # let transports flush their Cease

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Start, run until ``stop`` is set (or the task is cancelled), then stop."""
        await self.start()
        try:
            await (stop or asyncio.Event()).wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Speaker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- inbound connections ----------------------------------------------------------------

    def _accepted(self, conn: Connection) -> None:
        session = self.sessions.get(conn.peer)
        if session is None:
            self.refused[conn.peer] += 1
            refuse(conn, CeaseSubcode.CONNECTION_REJECTED, "not a configured neighbor")
            return
        session.offer(conn)

    # --- events -----------------------------------------------------------------------------

    def _emit(self, event: SpeakerEvent) -> None:
        for q in self._queues:
            q.put_nowait(event)
        for cb in self._callbacks:
            try:
                cb(event)
            except Exception:  # a listener's bug must not take the sessions down
                log.exception("BGP event callback failed")

    def add_listener(self, callback: Callable[[SpeakerEvent], None]) -> None:
        self._callbacks.append(callback)

    def events(self) -> Subscription:
        """Every event from now on (subscribed at once), until the speaker stops."""
        sub = Subscription(self._queues)
        self._queues.append(sub.queue)
        return sub

    # --- reading ----------------------------------------------------------------------------

    def status(self) -> list[NeighborStatus]:
        return [s.status() for s in self.sessions.values()]

    def rib(self, neighbor: str) -> AdjRibIn:
        return self.sessions[normalize_address(neighbor)].rib

    def refresh(self, neighbor: str | None = None) -> None:
        """Route refresh from one neighbor, or all."""
        targets = (
            [self.sessions[normalize_address(neighbor)]] if neighbor else self.sessions.values()
        )
        for session in targets:
            session.refresh()
