"""The RFC 4271 FSM: events in, actions out, time passed as a number."""

from __future__ import annotations

import pytest

from localcast.bgp.errors import MessageHeaderError, UpdateMessageError
from localcast.bgp.fsm import (
    LARGE_HOLD_S,
    TRANSITIONS,
    Connect,
    Deliver,
    Drop,
    Event,
    Flush,
    Fsm,
    FsmConfig,
    Negotiated,
    Send,
    State,
    StateChanged,
    Step,
    Timer,
    transition,
)
from localcast.bgp.messages import (
    FourOctetAs,
    Keepalive,
    Multiprotocol,
    Notification,
    Open,
    RouteRefresh,
    RouteRefreshCapability,
    Update,
)

CFG = FsmConfig(local_as=65001, router_id="10.0.0.1", remote_as=65002, hold_time_s=9)
PEER_OPEN = Open(
    65002,
    30,
    "10.0.0.2",
    (Multiprotocol(1, 1), RouteRefreshCapability(), FourOctetAs(65002)),
)


def sent(actions: list[object]) -> list[object]:
    return [a.message for a in actions if isinstance(a, Send)]


def established(cfg: FsmConfig = CFG, now: float = 0.0) -> Fsm:
    fsm = Fsm(cfg)
    fsm.start(now)
    fsm.connected(now)
    fsm.receive(PEER_OPEN, now)
    fsm.receive(Keepalive(), now)
    assert fsm.state == State.ESTABLISHED
    return fsm


def test_table_covers_every_state_and_uses_rfc_event_numbers() -> None:
    assert set(TRANSITIONS) == set(State)
    assert Event.HOLD_TIMER_EXPIRES == 10 and Event.UPDATE_MSG_ERR == 28
    assert transition(State.OPEN_SENT, Event.BGP_OPEN)[0] == State.OPEN_CONFIRM
    assert transition(State.IDLE, Event.UPDATE_MSG) == (State.IDLE, ())  # ignored in Idle
    nxt, steps = transition(State.ESTABLISHED, Event.BGP_OPEN)  # any other event
    assert nxt == State.IDLE and Step.SEND_FSM_ERROR in steps


def test_active_start_connects_and_arms_connect_retry() -> None:
    fsm = Fsm(CFG)
    actions = fsm.start(100.0)
    assert actions[0] == Connect() and fsm.state == State.CONNECT
    assert fsm.deadlines == {Timer.CONNECT_RETRY: 100.0 + CFG.connect_retry_s}
    again = fsm.tick(100.0 + CFG.connect_retry_s)  # no answer: try again
    assert Connect() in again and fsm.state == State.CONNECT


def test_passive_start_waits_without_connecting() -> None:
    fsm = Fsm(FsmConfig(**{**CFG.__dict__, "passive": True}))
    assert fsm.start(0.0) == [StateChanged(State.IDLE, State.ACTIVE, "manual_start_passive")]
    assert fsm.next_deadline() is None and fsm.accepts_connection()


def test_open_exchange_negotiates_and_establishes() -> None:
    fsm = Fsm(CFG)
    fsm.start(0.0)
    actions = fsm.connected(1.0)
    (our_open,) = sent(actions)
    assert isinstance(our_open, Open) and our_open.asn == 65001 and our_open.hold_time == 9
    assert fsm.state == State.OPEN_SENT and fsm.deadlines[Timer.HOLD] == 1.0 + LARGE_HOLD_S
    actions = fsm.receive(PEER_OPEN, 2.0)
    negotiated = next(a for a in actions if isinstance(a, Negotiated))
    assert negotiated.hold_time_s == 9 and negotiated.four_octet_as
    assert negotiated.families == {(1, 1)} and negotiated.route_refresh
    assert sent(actions) == [Keepalive()] and fsm.state == State.OPEN_CONFIRM
    assert fsm.deadlines == {Timer.KEEPALIVE: 5.0, Timer.HOLD: 11.0}
    actions = fsm.receive(Keepalive(), 3.0)
    assert actions == [StateChanged(State.OPEN_CONFIRM, State.ESTABLISHED, "keepalive_msg")]


def test_wrong_peer_as_gets_bad_peer_as() -> None:
    fsm = Fsm(CFG)
    fsm.start(0.0)
    fsm.connected(0.0)
    actions = fsm.receive(Open(65099, 9, "10.0.0.2", (FourOctetAs(65099),)), 1.0)
    (note,) = sent(actions)
    assert isinstance(note, Notification) and (note.code, note.subcode) == (2, 2)
    assert any(isinstance(a, Drop) for a in actions) and fsm.state == State.IDLE


def test_our_own_router_id_is_refused() -> None:
    fsm = Fsm(CFG)
    fsm.start(0.0)
    fsm.connected(0.0)
    (note,) = sent(fsm.receive(Open(65002, 9, "10.0.0.1"), 1.0))
    assert isinstance(note, Notification) and (note.code, note.subcode) == (2, 3)


def test_updates_are_delivered_and_restart_the_hold_timer() -> None:
    fsm = established()
    update = Update(withdrawn=(1,))
    actions = fsm.receive(update, 5.0)
    assert actions == [Deliver(update)] and fsm.deadlines[Timer.HOLD] == 14.0


def test_hold_timer_expiry_sends_notification_and_flushes() -> None:
    fsm = established(now=0.0)
    assert fsm.tick(8.9) == [Send(Keepalive())]  # ours are due; the peer's never came
    actions = fsm.tick(9.0)
    assert sent(actions) == [Notification(4, 0)]
    assert any(isinstance(a, Flush) for a in actions) and fsm.state == State.IDLE
    assert fsm.deadlines == {Timer.IDLE_HOLD: 9.0 + CFG.idle_hold_s}
    restart = fsm.tick(9.0 + CFG.idle_hold_s)  # automatic restart
    assert Connect() in restart and fsm.state == State.CONNECT


def test_keepalives_keep_the_session_up() -> None:
    fsm = established(now=0.0)
    for t in range(1, 60):
        fsm.receive(Keepalive(), float(t))
        fsm.tick(float(t))
    assert fsm.state == State.ESTABLISHED


def test_zero_hold_time_means_no_keepalives() -> None:
    fsm = Fsm(CFG)
    fsm.start(0.0)
    fsm.connected(0.0)
    fsm.receive(Open(65002, 0, "10.0.0.2", (FourOctetAs(65002),)), 0.0)
    fsm.receive(Keepalive(), 0.0)
    assert fsm.state == State.ESTABLISHED and fsm.next_deadline() is None


def test_notification_from_peer_ends_the_session_without_answer() -> None:
    fsm = established()
    actions = fsm.receive(Notification(6, 2, b"maintenance"), 1.0)
    assert sent(actions) == [] and fsm.state == State.IDLE
    assert fsm.last_error == "peer sent CEASE/ADMINISTRATIVE_SHUTDOWN: maintenance"


@pytest.mark.parametrize(
    ("error", "state_code"),
    [
        (MessageHeaderError(1, "bad marker"), (1, 1)),
        (UpdateMessageError(11, "bad path"), (3, 11)),
    ],
)
def test_protocol_errors_send_their_notification(
    error: MessageHeaderError | UpdateMessageError, state_code: tuple[int, int]
) -> None:
    fsm = established()
    actions = fsm.protocol_error(error, 1.0)
    (note,) = sent(actions)
    assert isinstance(note, Notification) and (note.code, note.subcode) == state_code
    kinds = [type(a) for a in actions]
    assert kinds.index(Send) < kinds.index(Drop) < kinds.index(Flush)


def test_unexpected_message_is_an_fsm_error_with_the_state_subcode() -> None:
    fsm = Fsm(CFG)
    fsm.start(0.0)
    fsm.connected(0.0)
    (note,) = sent(fsm.receive(Update(), 0.0))  # UPDATE before OPEN
    assert note == Notification(5, 1)
    fsm = established()
    (note,) = sent(fsm.receive(PEER_OPEN, 0.0))  # OPEN once established
    assert note == Notification(5, 3)


def test_manual_stop_sends_cease_and_stays_idle() -> None:
    fsm = established()
    actions = fsm.stop(1.0)
    assert sent(actions) == [Notification(6, 2)] and fsm.state == State.IDLE
    assert fsm.deadlines == {}


def test_route_refresh_request_only_when_established_and_negotiated() -> None:
    fsm = Fsm(CFG)
    assert fsm.request_refresh(0.0) == []
    fsm = established()
    assert sent(fsm.request_refresh(1.0)) == [RouteRefresh(1, 1)]
    assert fsm.receive(RouteRefresh(1, 1), 1.0) == []  # nothing of ours to resend


def test_connection_loss_in_established_flushes() -> None:
    fsm = established()
    actions = fsm.connection_failed(2.0, "reset by peer")
    assert Flush("reset by peer") in actions and fsm.state == State.IDLE
