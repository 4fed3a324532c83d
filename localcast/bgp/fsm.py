"""The RFC 4271 §8 finite state machine of one BGP session, as a transition table.

Everything that decides a session's state lives in this file: the states,
the events (numbered as in RFC 4271 §8.1), :data:`TRANSITIONS` (state ->
event -> next state and the steps to take), the few special cases written
next to it, and the session's timers (deadlines, with ``now`` always passed
in). It does not know sockets, bytes or routes: events come in as method
calls (:meth:`Fsm.start`, :meth:`Fsm.connected`, :meth:`Fsm.receive`,
:meth:`Fsm.tick`, ...) and actions come out as small immutable objects
(:class:`Send`, :class:`Connect`, :class:`Drop`, :class:`Deliver`,
:class:`Negotiated`, :class:`Flush`, :class:`StateChanged`) for the shell
(:mod:`localcast.bgp.session`) to carry out, in order.

Theory of operation: a table entry lists symbolic :class:`Step` values;
:meth:`Fsm._run` turns each into timer bookkeeping or an action. The
defaults for events a state does not list are the RFC's "any other event":
ignored in Idle, back to Idle in Connect/Active, an FSM-error NOTIFICATION
(RFC 6608 subcode) from OpenSent on. Simplifications: no DelayOpen, no
peer-oscillation damping beyond a fixed idle hold, and connection collisions
are resolved by the shell refusing a second connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType

from localcast.bgp.errors import (
    CeaseSubcode,
    ErrorCode,
    FsmSubcode,
    OpenMessageError,
    OpenSubcode,
    RemoteProtocolError,
    describe,
)
from localcast.bgp.messages import (
    AS_TRANS,
    Capability,
    FourOctetAs,
    GracefulRestart,
    Keepalive,
    Message,
    Multiprotocol,
    Notification,
    Open,
    RouteRefresh,
    RouteRefreshCapability,
    Update,
)

LARGE_HOLD_S = 240.0  # RFC 4271 §8.2.2: hold timer while waiting for the peer's OPEN


class State(enum.StrEnum):
    IDLE = "idle"
    CONNECT = "connect"
    ACTIVE = "active"
    OPEN_SENT = "open_sent"
    OPEN_CONFIRM = "open_confirm"
    ESTABLISHED = "established"


class Event(enum.IntEnum):
    """RFC 4271 §8.1 event numbers; the last three are RFC 2918 and local additions."""

    MANUAL_START = 1
    MANUAL_STOP = 2
    AUTOMATIC_START = 3
    MANUAL_START_PASSIVE = 4
    AUTOMATIC_START_PASSIVE = 5
    CONNECT_RETRY_TIMER_EXPIRES = 9
    HOLD_TIMER_EXPIRES = 10
    KEEPALIVE_TIMER_EXPIRES = 11
    IDLE_HOLD_TIMER_EXPIRES = 13
    TCP_CONNECTED = 17  # 16 and 17: our connect succeeded, or we accepted theirs
    TCP_CONNECTION_FAILS = 18
    BGP_OPEN = 19
    BGP_HEADER_ERR = 21
    BGP_OPEN_MSG_ERR = 22
    NOTIF_MSG_VER_ERR = 24
    NOTIF_MSG = 25
    KEEPALIVE_MSG = 26
    UPDATE_MSG = 27
    UPDATE_MSG_ERR = 28
    ROUTE_REFRESH_MSG = 101  # RFC 2918
    REFRESH_REQUEST = 102  # local: ask the peer to send its routes again


class Timer(enum.StrEnum):
    CONNECT_RETRY = "connect_retry"
    HOLD = "hold"
    KEEPALIVE = "keepalive"
    IDLE_HOLD = "idle_hold"


_TIMER_EVENT = {
    Timer.CONNECT_RETRY: Event.CONNECT_RETRY_TIMER_EXPIRES,
    Timer.HOLD: Event.HOLD_TIMER_EXPIRES,
    Timer.KEEPALIVE: Event.KEEPALIVE_TIMER_EXPIRES,
    Timer.IDLE_HOLD: Event.IDLE_HOLD_TIMER_EXPIRES,
}


class Step(enum.Enum):
    CONNECT = "initiate a TCP connection"
    DROP = "close the TCP connection"
    SEND_OPEN = "send our OPEN"
    SEND_KEEPALIVE = "send a KEEPALIVE"
    SEND_NOTIFICATION = "send the NOTIFICATION the event carries"
    SEND_FSM_ERROR = "send an FSM-error NOTIFICATION for this state"
    SEND_ROUTE_REFRESH = "ask the peer to resend every negotiated family"
    START_CONNECT_RETRY = "(re)start the ConnectRetry timer"
    STOP_CONNECT_RETRY = "stop the ConnectRetry timer"
    START_LARGE_HOLD = "start the hold timer at 4 minutes"
    START_HOLD = "start the hold timer at the negotiated time"
    START_KEEPALIVE = "start the keepalive timer"
    NEGOTIATE = "take hold time, families and AS size from the peer's OPEN"
    DELIVER = "hand the UPDATE to the Adj-RIB-In"
    RELEASE = "stop timers, flush routes, restart after the idle hold"
    STOPPED = "stop timers, flush routes, stay idle"


S, E, P = State, Event, Step
_TO_IDLE = (P.DROP, P.RELEASE)
_NOTIFY_TO_IDLE = (P.SEND_NOTIFICATION, P.DROP, P.RELEASE)
_STOP = (P.SEND_NOTIFICATION, P.DROP, P.STOPPED)
_CONNECTED = (P.STOP_CONNECT_RETRY, P.SEND_OPEN, P.START_LARGE_HOLD)
_KEEPALIVE = (P.SEND_KEEPALIVE, P.START_KEEPALIVE)

Transition = tuple[State, tuple[Step, ...]]

#: state -> event -> (next state, steps). Events not listed: see :func:`_default`.
TRANSITIONS: MappingProxyType[State, MappingProxyType[Event, Transition]] = MappingProxyType(
    {
        state: MappingProxyType(table)
        for state, table in {
            S.IDLE: {
                E.MANUAL_START: (S.CONNECT, (P.START_CONNECT_RETRY, P.CONNECT)),
                E.AUTOMATIC_START: (S.CONNECT, (P.START_CONNECT_RETRY, P.CONNECT)),
                E.MANUAL_START_PASSIVE: (S.ACTIVE, ()),
                E.AUTOMATIC_START_PASSIVE: (S.ACTIVE, ()),
                E.MANUAL_STOP: (S.IDLE, (P.STOPPED,)),  # cancels a pending automatic restart
            },
            S.CONNECT: {
                E.MANUAL_STOP: (S.IDLE, (P.DROP, P.STOPPED)),
                E.CONNECT_RETRY_TIMER_EXPIRES: (
                    S.CONNECT,
                    (P.DROP, P.START_CONNECT_RETRY, P.CONNECT),
                ),
                E.TCP_CONNECTED: (S.OPEN_SENT, _CONNECTED),
                E.TCP_CONNECTION_FAILS: (S.ACTIVE, (P.DROP, P.START_CONNECT_RETRY)),
            },
            S.ACTIVE: {
                E.MANUAL_STOP: (S.IDLE, (P.DROP, P.STOPPED)),
                E.CONNECT_RETRY_TIMER_EXPIRES: (S.CONNECT, (P.START_CONNECT_RETRY, P.CONNECT)),
                E.TCP_CONNECTED: (S.OPEN_SENT, _CONNECTED),
                E.TCP_CONNECTION_FAILS: (S.ACTIVE, (P.DROP,)),
            },
            S.OPEN_SENT: {
                E.MANUAL_STOP: (S.IDLE, _STOP),
                E.HOLD_TIMER_EXPIRES: (S.IDLE, _NOTIFY_TO_IDLE),
                E.TCP_CONNECTION_FAILS: (S.ACTIVE, (P.DROP, P.START_CONNECT_RETRY)),
                E.BGP_OPEN: (
                    S.OPEN_CONFIRM,
                    (P.NEGOTIATE, P.SEND_KEEPALIVE, P.START_KEEPALIVE, P.START_HOLD),
                ),
                E.BGP_HEADER_ERR: (S.IDLE, _NOTIFY_TO_IDLE),
                E.BGP_OPEN_MSG_ERR: (S.IDLE, _NOTIFY_TO_IDLE),
                E.NOTIF_MSG_VER_ERR: (S.IDLE, _TO_IDLE),
                E.NOTIF_MSG: (S.IDLE, _TO_IDLE),
            },
            S.OPEN_CONFIRM: {
                E.MANUAL_STOP: (S.IDLE, _STOP),
                E.HOLD_TIMER_EXPIRES: (S.IDLE, _NOTIFY_TO_IDLE),
                E.KEEPALIVE_TIMER_EXPIRES: (S.OPEN_CONFIRM, _KEEPALIVE),
                E.TCP_CONNECTION_FAILS: (S.IDLE, _TO_IDLE),
                E.BGP_HEADER_ERR: (S.IDLE, _NOTIFY_TO_IDLE),
                E.BGP_OPEN_MSG_ERR: (S.IDLE, _NOTIFY_TO_IDLE),
                E.NOTIF_MSG_VER_ERR: (S.IDLE, _TO_IDLE),
                E.NOTIF_MSG: (S.IDLE, _TO_IDLE),
                E.KEEPALIVE_MSG: (S.ESTABLISHED, (P.START_HOLD,)),
            },
            S.ESTABLISHED: {
                E.MANUAL_STOP: (S.IDLE, _STOP),
                E.HOLD_TIMER_EXPIRES: (S.IDLE, _NOTIFY_TO_IDLE),
                E.KEEPALIVE_TIMER_EXPIRES: (S.ESTABLISHED, _KEEPALIVE),
                E.TCP_CONNECTION_FAILS: (S.IDLE, _TO_IDLE),
                E.KEEPALIVE_MSG: (S.ESTABLISHED, (P.START_HOLD,)),
                E.UPDATE_MSG: (S.ESTABLISHED, (P.START_HOLD, P.DELIVER)),
                E.ROUTE_REFRESH_MSG: (S.ESTABLISHED, (P.START_HOLD,)),  # no Adj-RIB-Out
                E.REFRESH_REQUEST: (S.ESTABLISHED, (P.SEND_ROUTE_REFRESH,)),
                E.BGP_HEADER_ERR: (S.IDLE, _NOTIFY_TO_IDLE),
                E.UPDATE_MSG_ERR: (S.IDLE, _NOTIFY_TO_IDLE),
                E.NOTIF_MSG_VER_ERR: (S.IDLE, _TO_IDLE),
                E.NOTIF_MSG: (S.IDLE, _TO_IDLE),
            },
        }.items()
    }
)

_ERROR_EVENT: dict[int, Event] = {
    ErrorCode.MESSAGE_HEADER: E.BGP_HEADER_ERR,
    ErrorCode.OPEN_MESSAGE: E.BGP_OPEN_MSG_ERR,
}
_EVENT_NAMES = {e: e.name.lower() for e in Event}
_STARTS = frozenset(
    {E.MANUAL_START, E.AUTOMATIC_START, E.MANUAL_START_PASSIVE, E.AUTOMATIC_START_PASSIVE}
)
_FSM_SUBCODE = {
    S.OPEN_SENT: FsmSubcode.UNEXPECTED_IN_OPEN_SENT,
    S.OPEN_CONFIRM: FsmSubcode.UNEXPECTED_IN_OPEN_CONFIRM,
    S.ESTABLISHED: FsmSubcode.UNEXPECTED_IN_ESTABLISHED,
}


def _default(state: State, event: Event) -> Transition:
    """The RFC's "in response to any other event" for ``state``."""
    if state == S.IDLE or event in _STARTS or event == E.REFRESH_REQUEST:
        return (state, ())  # ignored
    if state in (S.CONNECT, S.ACTIVE):
        return (S.IDLE, _TO_IDLE)
    return (S.IDLE, (P.SEND_FSM_ERROR, P.DROP, P.RELEASE))


def transition(state: State, event: Event) -> Transition:
    return TRANSITIONS[state].get(event) or _default(state, event)


# --- actions (what the shell must do) -------------------------------------------------------


@dataclass(frozen=True)
class Connect:
    pass


@dataclass(frozen=True)
class Send:
    message: Message


@dataclass(frozen=True)
class Drop:
    reason: str


@dataclass(frozen=True)
class Deliver:
    update: Update


@dataclass(frozen=True)
class Flush:
    """Every route learned on this session is gone."""

    reason: str


@dataclass(frozen=True)
class Negotiated:
    """The peer's OPEN was accepted: decode what follows with these parameters."""

    peer: Open
    hold_time_s: int
    four_octet_as: bool
    families: frozenset[tuple[int, int]]
    route_refresh: bool


@dataclass(frozen=True)
class StateChanged:
    old: State
    new: State
    reason: str


Action = Connect | Send | Drop | Deliver | Flush | Negotiated | StateChanged


@dataclass(frozen=True)
class FsmConfig:
    local_as: int
    router_id: str
    remote_as: int
    hold_time_s: int = 90
    passive: bool = False
    families: frozenset[tuple[int, int]] = frozenset({(1, 1), (2, 1)})
    connect_retry_s: float = 5.0
    idle_hold_s: float = 1.0


def our_open(cfg: FsmConfig) -> Open:
    caps: list[Capability] = [Multiprotocol(afi, safi) for afi, safi in sorted(cfg.families)]
    caps += [RouteRefreshCapability(), FourOctetAs(cfg.local_as), GracefulRestart()]
    my_as = cfg.local_as if cfg.local_as <= 0xFFFF else AS_TRANS
    return Open(my_as, cfg.hold_time_s, cfg.router_id, tuple(caps))


def check_open(cfg: FsmConfig, peer: Open) -> OpenMessageError | None:
    """Special case of (OpenSent, BGP_OPEN): is this the peer we expect? (RFC 4271 §6.2)."""
    if peer.asn != cfg.remote_as:
        return OpenMessageError(
            OpenSubcode.BAD_PEER_AS,
            f"peer AS {peer.asn}, expected {cfg.remote_as}",
            (peer.my_as).to_bytes(2, "big"),
        )
    if peer.bgp_id == cfg.router_id:
        return OpenMessageError(OpenSubcode.BAD_BGP_IDENTIFIER, "peer uses our router id")
    return None


class Fsm:
    """One session's state, timers and negotiated parameters."""

    def __init__(self, config: FsmConfig) -> None:
        self.config = config
        self.state = State.IDLE
        self.deadlines: dict[Timer, float] = {}
        self.negotiated: Negotiated | None = None
        self.last_error: str | None = None
        self._pending: Notification | None = None
        self._update: Update | None = None
        self._peer_open: Open | None = None

    # --- inputs ---------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        passive = self.config.passive
        return self._dispatch(E.MANUAL_START_PASSIVE if passive else E.MANUAL_START, now)

    def stop(
        self, now: float, subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, why: str = "stopped"
    ) -> list[Action]:
        self._pending = Notification(ErrorCode.CEASE, subcode)
        return self._dispatch(E.MANUAL_STOP, now, why)

    def connected(self, now: float) -> list[Action]:
        return self._dispatch(E.TCP_CONNECTED, now)

    def connection_failed(self, now: float, why: str = "connection lost") -> list[Action]:
        return self._dispatch(E.TCP_CONNECTION_FAILS, now, why)

    def request_refresh(self, now: float) -> list[Action]:
        return self._dispatch(E.REFRESH_REQUEST, now)

    def protocol_error(self, err: RemoteProtocolError, now: float) -> list[Action]:
        """The codec refused what the peer sent."""
        self._pending = err.notification()
        event = _ERROR_EVENT.get(err.code, E.UPDATE_MSG_ERR)
        return self._dispatch(event, now, f"we sent {describe(err.code, err.subcode)}: {err}")

    def receive(self, msg: Message, now: float) -> list[Action]:
        if isinstance(msg, Update):
            self._update = msg
            return self._dispatch(E.UPDATE_MSG, now)
        if isinstance(msg, Keepalive):
            return self._dispatch(E.KEEPALIVE_MSG, now)
        if isinstance(msg, RouteRefresh):
            return self._dispatch(E.ROUTE_REFRESH_MSG, now)
        if isinstance(msg, Notification):
            event = E.NOTIF_MSG_VER_ERR if (msg.code, msg.subcode) == (2, 1) else E.NOTIF_MSG
            text = msg.data.decode("utf-8", "replace") if msg.code == ErrorCode.CEASE else ""
            why = f"peer sent {describe(msg.code, msg.subcode)}" + (f": {text}" if text else "")
            return self._dispatch(event, now, why)
        # Special case: an OPEN is only a BGP_OPEN event if it is the peer we expect.
        error = check_open(self.config, msg) if self.state == S.OPEN_SENT else None
        if error is not None:
            return self.protocol_error(error, now)
        self._peer_open = msg
        return self._dispatch(E.BGP_OPEN, now)

    def tick(self, now: float) -> list[Action]:
        """Fire every timer due at ``now``, earliest first."""
        actions: list[Action] = []
        while True:
            due = [(t, d) for t, d in self.deadlines.items() if d <= now]
            if not due:
                return actions
            timer = min(due, key=lambda td: td[1])[0]
            del self.deadlines[timer]
            if timer == Timer.IDLE_HOLD:  # special case: restart the way we were configured
                event = E.AUTOMATIC_START_PASSIVE if self.config.passive else E.AUTOMATIC_START
                actions += self._dispatch(event, now)
            else:
                if timer == Timer.HOLD:
                    self._pending = Notification(ErrorCode.HOLD_TIMER_EXPIRED, 0)
                actions += self._dispatch(_TIMER_EVENT[timer], now, f"{timer} timer expired")

    def next_deadline(self) -> float | None:
        return min(self.deadlines.values(), default=None)

    def accepts_connection(self) -> bool:
        """Whether an inbound connection may be handed to this session now."""
        return self.state in (S.CONNECT, S.ACTIVE)

    # --- the machine ----------------------------------------------------------------------

    def _dispatch(self, event: Event, now: float, why: str = "") -> list[Action]:
        old = self.state
        new, steps = TRANSITIONS[old].get(event) or _default(old, event)
        if P.SEND_FSM_ERROR in steps:
            why = f"unexpected {event.name} in {old}"
        why = why or _EVENT_NAMES[event]
        actions = self._run(steps, old, now, why)
        self.state = new
        if new != old:
            actions.append(StateChanged(old, new, why))
            if new == S.ESTABLISHED:
                self.last_error = None
        self._pending = self._update = None
        return actions

    def _run(self, steps: tuple[Step, ...], state: State, now: float, why: str) -> list[Action]:
        cfg = self.config
        out: list[Action] = []
        for step in steps:
            if step is P.START_HOLD:  # the two steps of every UPDATE come first
                self._start_hold(now)
            elif step is P.DELIVER:
                if self._update is not None:
                    out.append(Deliver(self._update))
            elif step == P.CONNECT:
                out.append(Connect())
            elif step == P.DROP:
                out.append(Drop(why))
            elif step == P.SEND_OPEN:
                out.append(Send(our_open(cfg)))
            elif step == P.SEND_KEEPALIVE:
                out.append(Send(Keepalive()))
            elif step == P.SEND_NOTIFICATION:
                if self._pending is not None:
                    out.append(Send(self._pending))
            elif step == P.SEND_FSM_ERROR:
                out.append(Send(Notification(ErrorCode.FSM, _FSM_SUBCODE.get(state, 0))))
            elif step == P.SEND_ROUTE_REFRESH:
                if self.negotiated is not None and self.negotiated.route_refresh:
                    for afi, safi in sorted(self.negotiated.families):
                        out.append(Send(RouteRefresh(afi, safi)))
            elif step == P.START_CONNECT_RETRY:
                self.deadlines[Timer.CONNECT_RETRY] = now + cfg.connect_retry_s
            elif step == P.STOP_CONNECT_RETRY:
                self.deadlines.pop(Timer.CONNECT_RETRY, None)
            elif step == P.START_LARGE_HOLD:
                self.deadlines[Timer.HOLD] = now + LARGE_HOLD_S
            elif step == P.START_KEEPALIVE:
                hold = self.negotiated.hold_time_s if self.negotiated else 0
                if hold:
                    self.deadlines[Timer.KEEPALIVE] = now + max(hold / 3, 1.0)
            elif step == P.NEGOTIATE:
                out.append(self._negotiate())
            elif step in (P.RELEASE, P.STOPPED):
                self.deadlines.clear()
                self.negotiated = None
                self.last_error = why
                out.append(Flush(why))
                if step == P.RELEASE:
                    self.deadlines[Timer.IDLE_HOLD] = now + cfg.idle_hold_s
        return out

    def _start_hold(self, now: float) -> None:
        hold = self.negotiated.hold_time_s if self.negotiated else 0
        if hold:
            self.deadlines[Timer.HOLD] = now + hold
        else:
            self.deadlines.pop(Timer.HOLD, None)

    def _negotiate(self) -> Negotiated:
        peer = self._peer_open
        assert peer is not None
        ours = our_open(self.config)
        self.deadlines.pop(Timer.CONNECT_RETRY, None)
        self.negotiated = Negotiated(
            peer=peer,
            hold_time_s=min(self.config.hold_time_s, peer.hold_time),
            four_octet_as=peer.four_octet_as and ours.four_octet_as,
            families=ours.families & peer.families,
            route_refresh=peer.route_refresh,
        )
        return self.negotiated
