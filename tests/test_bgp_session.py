"""Hostile peers over real sockets: each gets the right NOTIFICATION, nobody else notices.

One speaker, shared by the module, holds a session with a real BIRD (routes
flowing) and accepts raw-socket peers: 127.0.0.3 (RFC 7606 error handling,
the default) and 127.0.0.5 (strict RFC 4271). Each case opens a session,
sends bytes, and reads the answer. The property test generates hostile
messages with hypothesis and uses the codec (itself checked against the
RFC in test_bgp_codec.py) plus the Established-state FSM rules as oracle.
Throughout, the BIRD session must stay up with all its routes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from bgp_support import (
    Bird,
    RawPeer,
    SpeakerThread,
    bird_bgp,
    bird_header,
    bird_static,
    established_peer,
    free_port,
    wait_for,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcast.bgp.codec import MARKER, DecodeContext, Decoder
from localcast.bgp.errors import RemoteProtocolError
from localcast.bgp.messages import Keepalive, Notification, Open

pytestmark = pytest.mark.slow

BIRD_PEER, REVISED_PEER, STRICT_PEER, RAW_AS = "127.0.0.2", "127.0.0.3", "127.0.0.5", 65003
BIRD_ROUTES = [f"11.{i}.0.0/16 blackhole" for i in range(1, 21)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpeakerThread]:
    tmp = tmp_path_factory.mktemp("bgp-session")
    port = free_port()
    raw = {"remote_as": RAW_AS, "passive": True, "idle_hold_time": 0}
    config = {
        "local_as": 65001,
        "router_id": "10.0.0.1",
        "listen": "127.0.0.1",
        "port": port,
        "neighbors": [
            {"address": BIRD_PEER, "remote_as": 65002, "passive": True, "hold_time": 6},
            {"address": REVISED_PEER, **raw},
            {"address": STRICT_PEER, "error_handling": "strict", **raw},
        ],
    }
    with SpeakerThread(config) as st_:
        bird = Bird(
            tmp,
            bird_header(log=tmp / "bird.log")
            + bird_static("s4", "ipv4", BIRD_ROUTES)
            + bird_bgp(
                "isp",
                local=BIRD_PEER,
                local_as=65002,
                neighbor="127.0.0.1",
                neighbor_port=port,
                neighbor_as=65001,
                family="ipv4",
                export_from="s4",
                next_hop="192.0.2.1",
                local_port=free_port(),
            ),
        ).start()
        try:
            wait_for(lambda: len(st_.routes(BIRD_PEER)) == len(BIRD_ROUTES), what="BIRD's routes")
            yield st_
            bird_status = st_.status(BIRD_PEER)  # after every test of the module
            assert bird_status.state == "established" and bird_status.established_count == 1
            assert bird_status.accepted == len(BIRD_ROUTES)
        finally:
            bird.stop()


def bird_untouched(world: SpeakerThread) -> None:
    s = world.status(BIRD_PEER)
    assert s.state == "established" and s.established_count == 1
    assert s.accepted == len(BIRD_ROUTES)


def attr(flags: int, atype: int, value: bytes, declared: int | None = None) -> bytes:
    length = len(value) if declared is None else declared
    if flags & 0x10:
        return struct.pack("!BBH", flags, atype, length & 0xFFFF) + value
    return struct.pack("!BBB", flags, atype, length & 0xFF) + value


def update(attrs: bytes, nlri: bytes = bytes([24, 45, 0, 1])) -> bytes:
    body = b"\x00\x00" + struct.pack("!H", len(attrs)) + attrs + nlri
    return MARKER + struct.pack("!HB", 19 + len(body), 2) + body


ORIGIN = attr(0x40, 1, b"\x00")
PATH = attr(0x40, 2, struct.pack("!BBI", 2, 1, RAW_AS))
NH = attr(0x40, 3, bytes([192, 0, 2, 1]))


def send_and_read(world: SpeakerThread, source: str, payload: bytes) -> tuple[list[object], bool]:
    peer = established_peer(source, world.port, RAW_AS)
    try:
        peer.send(payload)
        got = peer.receive_until(lambda ms: any(isinstance(m, Notification) for m in ms))
        if not peer.closed:
            peer.receive_until(lambda ms: False, timeout=2.0)  # the speaker closes after it
        return list(got), peer.closed
    finally:
        peer.close()


@pytest.mark.parametrize(
    ("name", "payload", "note"),
    [
        ("bad marker", b"\x00" * 16 + b"\x00\x13\x04", Notification(1, 1)),
        ("length 5000", MARKER + b"\x13\x88\x04", Notification(1, 2, b"\x13\x88")),
        ("type 9", MARKER + b"\x00\x13\x09", Notification(1, 3, b"\x09")),
        ("OPEN when established", MARKER + b"\x00\x1d\x01\x04" + bytes(9) + b"\x00", None),
        ("attribute overruns", update(ORIGIN + PATH + bytes([0x40, 3, 9, 1, 2, 3, 4])), None),
        ("prefix length 33", update(ORIGIN + PATH + NH, bytes([33, 1, 2, 3, 4, 5])), None),
        ("MP_REACH flags", update(ORIGIN + PATH + attr(0xC0, 14, bytes(5))), None),
    ],
)
def test_hostile_message_gets_its_notification(
    world: SpeakerThread, name: str, payload: bytes, note: Notification | None
) -> None:
    expected = {
        "OPEN when established": (5, 3),
        "attribute overruns": (3, 1),
        "prefix length 33": (3, 10),
        "MP_REACH flags": (3, 4),
    }
    for source in (REVISED_PEER, STRICT_PEER):
        got, closed = send_and_read(world, source, payload)
        notes = [m for m in got if isinstance(m, Notification)]
        assert closed and len(notes) == 1, (name, got)
        if note is not None:
            assert notes[0] == note
        else:
            assert (notes[0].code, notes[0].subcode) == expected[name]
    bird_untouched(world)


@pytest.mark.parametrize(
    ("name", "attrs", "subcode"),
    [
        ("AS_PATH overrun", ORIGIN + attr(0x40, 2, b"\x02\x09\x00\x00\xfd\xeb") + NH, 11),
        (
            "AS_PATH not led by the peer",
            ORIGIN + attr(0x40, 2, b"\x02\x01\x00\x00\xfd\xe9") + NH,
            11,
        ),
        ("ORIGIN flagged optional", attr(0xC0, 1, b"\x00") + PATH + NH, 4),
        ("ORIGIN 7", attr(0x40, 1, b"\x07") + PATH + NH, 6),
        ("missing NEXT_HOP", ORIGIN + PATH, 3),
        ("NEXT_HOP 0.0.0.0", ORIGIN + PATH + attr(0x40, 3, bytes(4)), 8),
    ],
)
def test_malformed_attributes_strict_resets_revised_withdraws(
    world: SpeakerThread, name: str, attrs: bytes, subcode: int
) -> None:
    got, closed = send_and_read(world, STRICT_PEER, update(attrs))
    notes = [m for m in got if isinstance(m, Notification)]
    assert closed and len(notes) == 1 and (notes[0].code, notes[0].subcode) == (3, subcode)

    peer = established_peer(REVISED_PEER, world.port, RAW_AS)
    try:
        good = update(ORIGIN + PATH + NH)
        peer.send(good)  # 45.0.1.0/24, accepted
        wait_for(lambda: "45.0.1.0/24" in world.routes(REVISED_PEER), what="the good route")
        before = world.status(REVISED_PEER).treat_as_withdraw
        peer.send(update(attrs))  # the same prefix, malformed: treat-as-withdraw (RFC 7606)
        wait_for(lambda: "45.0.1.0/24" not in world.routes(REVISED_PEER), what="withdrawal")
        status = world.status(REVISED_PEER)
        assert status.state == "established" and status.treat_as_withdraw == before + 1
        peer.send(Keepalive())
        assert peer.receive(timeout=0.3) == [] and not peer.closed  # the session lives on
    finally:
        peer.close()
    bird_untouched(world)


def test_unknown_source_address_is_refused(world: SpeakerThread) -> None:
    peer = RawPeer("127.0.0.77", world.port)
    try:
        got = peer.receive_until(lambda ms: bool(ms))
        assert got == [Notification(6, 5, b"not a configured neighbor")]
        peer.receive_until(lambda ms: False, timeout=2.0)
        assert peer.closed
    finally:
        peer.close()
    assert world.call(lambda: world.speaker.refused["127.0.0.77"]) >= 1


def test_wrong_as_in_open_is_bad_peer_as(world: SpeakerThread) -> None:
    peer = RawPeer(STRICT_PEER, world.port)
    try:
        got = peer.establish(65099)
        notes = [m for m in got if isinstance(m, Notification)]
        assert [(n.code, n.subcode) for n in notes] == [(2, 2)]
    finally:
        peer.close()


# --- property-based, over the socket ----------------------------------------------------------

ORACLE_CONTEXT = {
    REVISED_PEER: DecodeContext(revised=True, peer_as=RAW_AS),
    STRICT_PEER: DecodeContext(revised=False, peer_as=RAW_AS),
}
PADDING = b"\x00" * (4096 + 19)  # completes any pending message, then a bad marker


def expected_answer(stream: bytes, ctx: DecodeContext) -> Notification | None:
    """What an Established speaker answers ``stream`` with: the codec's first error, or an
    FSM error for any OPEN; None when the stream holds a NOTIFICATION (close, no answer)."""
    dec = Decoder(ctx)
    dec.feed(stream)
    try:
        while (msg := dec.next_message()) is not None:
            if isinstance(msg, Open):
                return Notification(5, 3)
            if isinstance(msg, Notification):
                return None
    except RemoteProtocolError as err:
        if err.code == 2:  # a broken OPEN once established is an FSM error (RFC 4271 §8.2.2)
            return Notification(5, 3)
        return err.notification()
    raise AssertionError("the padding always ends in an error")


attr_types = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16, 17, 18, 32]) | st.integers(0, 255)
attributes = st.lists(
    st.tuples(st.integers(0, 255), attr_types, st.binary(max_size=40), st.integers(-3, 3)),
    max_size=6,
)
huge_path = st.lists(st.integers(1, 2**32 - 1), min_size=1, max_size=900).map(
    lambda asns: attr(
        0x50,
        2,
        b"".join(
            struct.pack(
                f"!BB{len(asns[i : i + 255])}I", 2, len(asns[i : i + 255]), *asns[i : i + 255]
            )
            for i in range(0, len(asns), 255)
        ),
    )
)


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["header", "attributes", "huge_path", "random"]))
    if kind == "header":
        marker = draw(st.binary(min_size=16, max_size=16) | st.just(MARKER))
        length = draw(st.integers(0, 65535))
        return marker + struct.pack("!HB", length, draw(st.integers(0, 255)))
    if kind == "attributes":
        parts = []
        for flags, atype, value, skew in draw(attributes):
            declared = max(len(value) + skew, 0) if draw(st.booleans()) else None
            parts.append(attr(flags, atype, value, declared))
        return update(b"".join(parts), draw(st.binary(max_size=12)))
    if kind == "huge_path":
        return update(ORIGIN + draw(huge_path) + NH)
    body = draw(st.binary(max_size=120))
    return MARKER + struct.pack("!HB", 19 + len(body), draw(st.integers(1, 5))) + body


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=hostile(), strict=st.booleans())
def test_hostile_streams_end_with_the_codecs_notification(
    world: SpeakerThread, payload: bytes, strict: bool
) -> None:
    source = STRICT_PEER if strict else REVISED_PEER
    stream = payload + PADDING
    want = expected_answer(stream, ORACLE_CONTEXT[source])
    got, closed = send_and_read(world, source, stream)
    notes = [m for m in got if isinstance(m, Notification)]
    assert closed
    assert notes == ([want] if want is not None else [])
    bird_untouched(world)


def test_bird_kept_its_session_through_all_of_it(world: SpeakerThread, tmp_path: Path) -> None:
    bird_untouched(world)
