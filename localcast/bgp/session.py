"""One BGP neighbor over asyncio: sockets and timers around the sans-I/O core.

A :class:`Session` owns the neighbor's :class:`~localcast.bgp.fsm.Fsm`, its
:class:`~localcast.bgp.adjrib.AdjRibIn` and at most one TCP connection. It
feeds received bytes to the connection's decoder, the messages to the FSM,
and carries out the FSM's actions in order: write, close, connect, apply
UPDATEs to the Adj-RIB-In and report the resulting events through the
``emit`` callback it was given. Timers are one ``loop.call_at`` handle at
the FSM's next deadline. Everything runs in the event loop's thread and
nothing awaits between an event and its actions, so no locks are needed.

Connections arrive two ways: :meth:`Session.offer` (the speaker's listener
accepted one from this neighbor's address) and our own connect when the
neighbor is active. A second connection while one is in use is refused with
a Cease (connection collision, RFC 4486). A misbehaving peer costs only its
own session: every decode error becomes that session's NOTIFICATION.

What must not live here: protocol decisions (the FSM), parsing (the codec),
policy, and knowledge of other neighbors (the speaker).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from localcast.bgp.adjrib import AdjRibIn
from localcast.bgp.codec import DecodeContext, Decoder, encode
from localcast.bgp.config import BgpConfig, NeighborConfig
from localcast.bgp.errors import CeaseSubcode, ErrorCode, RemoteProtocolError
from localcast.bgp.events import (
    EndOfRib,
    MaxPrefixAlarm,
    NeighborStatus,
    RouteDelta,
    SessionChanged,
    SpeakerEvent,
)
from localcast.bgp.fsm import (
    Action,
    Connect,
    Deliver,
    Drop,
    Flush,
    Fsm,
    FsmConfig,
    Negotiated,
    Send,
    State,
    StateChanged,
)
from localcast.bgp.messages import Message, Notification, Open
from localcast.bgp.policy import ImportPolicy
from localcast.bgp.prefix import Afi

log = logging.getLogger(__name__)

_FAMILY_NAMES = {(1, 1): "ipv4", (2, 1): "ipv6"}


class Connection(asyncio.Protocol):
    """One TCP connection; bytes go to whichever session adopted it (buffered until then)."""

    def __init__(self, on_made: Callable[[Connection], None] | None = None) -> None:
        self.on_made = on_made
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.decoder = Decoder()
        self.peer: str = ""
        self._early = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = normalize_address(peername[0]) if peername else ""
        if self.on_made is not None:
            self.on_made(self)

    def data_received(self, data: bytes) -> None:
        if self.session is None:
            self._early += data
        else:
            self.session.data_received(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.session is not None:
            self.session.connection_lost(self, exc)

    def adopt(self, session: Session) -> None:
        self.session = session
        if self._early:
            data, self._early = bytes(self._early), bytearray()
            session.data_received(self, data)

    def send(self, msg: Message, four_octet_as: bool = True) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(msg, four_octet_as))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def normalize_address(text: str) -> str:
    """``::ffff:127.0.0.2`` -> ``127.0.0.2``; scope ids dropped."""
    import ipaddress

    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def refuse(conn: Connection, subcode: int, why: str) -> None:
    """Answer a connection we will not use with a Cease and close it."""
    log.info("refusing BGP connection from %s: %s", conn.peer, why)
    conn.send(Notification(ErrorCode.CEASE, subcode, why.encode()[:64]))
    conn.close()


class Session:
    def __init__(
        self,
        bgp: BgpConfig,
        neighbor: NeighborConfig,
        policy: ImportPolicy,
        emit: Callable[[SpeakerEvent], None],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.bgp = bgp
        self.neighbor = neighbor
        self.address = neighbor.address
        self.emit = emit
        self.wall = wall
        self.fsm = Fsm(
            FsmConfig(
                local_as=bgp.local_as,
                router_id=bgp.router_id,
                remote_as=neighbor.remote_as,
                hold_time_s=bgp.hold_time_of(neighbor),
                passive=neighbor.passive,
                families=neighbor.family_set,
                connect_retry_s=neighbor.connect_retry_time,
                idle_hold_s=neighbor.idle_hold_time,
            )
        )
        self.rib = AdjRibIn(policy)
        self.revised = bgp.revised_errors(neighbor)
        self.ebgp = neighbor.remote_as != bgp.local_as
        self.four_octet_as = True
        self.conn: Connection | None = None
        self.peer_open: Open | None = None
        self.end_of_rib: set[Afi] = set()
        self.state_since = wall()
        self.established_at: float | None = None
        self.established_count = 0
        self.messages_received = 0
        self.messages_sent = 0
        self.connections_refused = 0
        self._timer: asyncio.Handle | None = None
        self._timer_at: float | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._running = False
        self._alarmed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- control ----------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._execute(self.fsm.start(self._now()))

    def stop(
        self, subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, why: str = "stopped"
    ) -> None:
        self._running = False
        if self._loop is not None:
            self._execute(self.fsm.stop(self._now(), subcode, why))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None

    def refresh(self) -> None:
        """Ask the peer to send its routes again (RFC 2918), e.g. after a policy change."""
        if self._loop is not None:
            self._execute(self.fsm.request_refresh(self._now()))

    def offer(self, conn: Connection) -> None:
        """An inbound connection from this neighbor's address: adopt it or refuse it."""
        if not self._running or not self.fsm.accepts_connection() or self.conn is not None:
            self.connections_refused += 1
            refuse(conn, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION, f"session {self.fsm.state}")
            return
        if self._connecting is not None:  # theirs arrived first: stop dialling
            self._connecting.cancel()
            self._connecting = None
        self._attach(conn)

    # --- I/O callbacks ----------------------------------------------------------------------

    def data_received(self, conn: Connection, data: bytes) -> None:
        if conn is not self.conn:
            return
        now = self._now()
        conn.decoder.feed(data)
        while self.conn is conn:
            try:
                msg = conn.decoder.next_message()
            except RemoteProtocolError as err:
                log.warning("BGP %s sent a malformed message: %r", self.address, err)
                self._execute(self.fsm.protocol_error(err, now))
                break
            if msg is None:
                break
            self.messages_received += 1
            self._execute(self.fsm.receive(msg, now))
        self._reschedule()

    def connection_lost(self, conn: Connection, exc: Exception | None) -> None:
        if conn is not self.conn:
            return
        self.conn = None
        why = f"connection lost: {exc}" if exc else "connection closed by peer"
        self._execute(self.fsm.connection_failed(self._now(), why))

    # --- actions ----------------------------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Deliver):
                self._deliver(action)
            elif isinstance(action, Send):
                if self.conn is not None:
                    self.conn.send(action.message, self.four_octet_as)
                    self.messages_sent += 1
            elif isinstance(action, Drop):
                self._close()
            elif isinstance(action, Connect):
                self._connect()
            elif isinstance(action, Negotiated):
                self._negotiated(action)
            elif isinstance(action, Flush):
                delta = self.rib.clear()
                self.end_of_rib.clear()
                self._alarmed = False
                if not delta.empty:
                    self.emit(RouteDelta(self.address, delta))
            elif isinstance(action, StateChanged):
                self._state_changed(action)
        self._reschedule()

    def _deliver(self, action: Deliver) -> None:
        update = action.update
        delta = self.rib.apply(update)
        if update.attribute_error is not None:
            err = update.attribute_error
            log.warning(
                "BGP %s: malformed attributes (%d/%d), prefixes treated as withdrawn",
                self.address,
                err.code,
                err.subcode,
            )
        if not delta.empty:
            self.emit(RouteDelta(self.address, delta))
        if self.rib.max_prefix_alarm and not self._alarmed:
            self._alarmed = True
            limit = self.rib.policy.max_prefixes or 0
            log.warning("BGP %s: more than %d prefixes, refusing the rest", self.address, limit)
            self.emit(MaxPrefixAlarm(self.address, limit))
        eor = update.end_of_rib()
        if eor is not None and eor[0] in (Afi.IPV4, Afi.IPV6):
            self.end_of_rib.add(Afi(eor[0]))
            self.emit(EndOfRib(self.address, Afi(eor[0])))

    def _negotiated(self, n: Negotiated) -> None:
        self.peer_open = n.peer
        self.four_octet_as = n.four_octet_as
        if self.conn is not None:
            self.conn.decoder.context = DecodeContext(
                four_octet_as=n.four_octet_as,
                revised=self.revised,
                peer_as=self.neighbor.remote_as if self.ebgp else None,
                families=n.families,
            )

    def _state_changed(self, change: StateChanged) -> None:
        self.state_since = self.wall()
        if change.new == State.ESTABLISHED:
            self.established_at = self.state_since
            self.established_count += 1
            log.info("BGP %s (AS%d) established", self.address, self.neighbor.remote_as)
        elif change.old == State.ESTABLISHED:
            self.established_at = None
            log.warning("BGP %s down: %s", self.address, change.reason)
        self.emit(
            SessionChanged(self.address, change.old, change.new, change.reason, self.state_since)
        )

    def _attach(self, conn: Connection) -> None:
        self.conn = conn
        self.four_octet_as = True
        conn.decoder = Decoder(DecodeContext(revised=self.revised))
        self._execute(self.fsm.connected(self._now()))
        conn.adopt(self)  # replays bytes that arrived before we took it

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def _connect(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        self._connecting = asyncio.get_running_loop().create_task(self._dial())

    async def _dial(self) -> None:
        loop = asyncio.get_running_loop()
        n = self.neighbor
        local = (n.local_address, 0) if n.local_address else None
        me = asyncio.current_task()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(Connection, n.address, n.port, local_addr=local),
                timeout=n.connect_retry_time,
            )
        except asyncio.CancelledError:
            raise
        except (OSError, TimeoutError) as exc:
            if self._connecting is me:
                self._connecting = None
                if self.conn is None:
                    why = f"connect to {n.address}:{n.port} failed: {exc!s}"
                    self._execute(self.fsm.connection_failed(self._now(), why))
            return
        if self._connecting is not me or self.conn is not None or not self._running:
            conn.close()  # superseded while dialling
            return
        self._connecting = None
        self._attach(conn)

    # --- time -------------------------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _reschedule(self) -> None:
        """One timer handle, at the FSM's next deadline."""
        if self._loop is None:
            return
        deadline = self.fsm.next_deadline() if self._running else None
        if self._timer is not None:
            if deadline == self._timer_at:
                return
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is None:
            return
        if deadline <= self._loop.time():
            # Due now (an idle hold of 0): run before the loop polls sockets again, so a
            # peer reconnecting at once finds the session ready for it.
            self._timer = self._loop.call_soon(self._on_timer)
        else:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._execute(self.fsm.tick(self._now()))

    # --- status -----------------------------------------------------------------------------

    def status(self) -> NeighborStatus:
        n, rib, fsm = self.neighbor, self.rib, self.fsm
        negotiated = fsm.negotiated
        return NeighborStatus(
            address=self.address,
            remote_as=n.remote_as,
            description=n.description,
            state=fsm.state,
            state_since=self.state_since,
            uptime_s=(self.wall() - self.established_at) if self.established_at else None,
            last_error=fsm.last_error,
            peer_router_id=self.peer_open.bgp_id if self.peer_open else None,
            hold_time_s=negotiated.hold_time_s if negotiated else None,
            families=tuple(
                sorted(_FAMILY_NAMES.get(f, str(f)) for f in negotiated.families)
                if negotiated
                else ()
            ),
            received=rib.received,
            accepted=rib.accepted,
            filtered={r: c for r, c in rib.filtered_by_reason.items() if c},
            rejected_total=dict(rib.counters.rejected_total),
            treat_as_withdraw=rib.counters.treat_as_withdraw,
            max_prefix_alarm=rib.max_prefix_alarm,
            end_of_rib=tuple(sorted(_FAMILY_NAMES[(int(a), 1)] for a in self.end_of_rib)),
            updates_received=rib.counters.updates,
            messages_received=self.messages_received,
            messages_sent=self.messages_sent,
            established_count=self.established_count,
            connections_refused=self.connections_refused,
        )
