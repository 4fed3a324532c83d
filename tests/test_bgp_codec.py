"""The BGP codec: round trips, and every malformed input gives the right NOTIFICATION.

Bytes in, messages or typed errors out; no sockets. The property tests feed
hostile input (random bytes, mutated real messages, bad markers, lengths,
types, attribute flags, truncated attributes, huge AS paths) and require
that the decoder either returns messages or raises a RemoteProtocolError,
never anything else, and never waits for bytes a bad header promised.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcast.bgp import prefix
from localcast.bgp.codec import (
    MARKER,
    DecodeContext,
    Decoder,
    encode,
    encode_attributes,
)
from localcast.bgp.errors import (
    ErrorCode,
    HeaderSubcode,
    LocalProtocolError,
    OpenSubcode,
    RemoteProtocolError,
    UpdateMessageError,
    UpdateSubcode,
)
from localcast.bgp.messages import (
    AsPathSegment,
    FourOctetAs,
    GracefulRestart,
    Keepalive,
    Message,
    MpReach,
    MpUnreach,
    Multiprotocol,
    Notification,
    Open,
    Origin,
    PathAttributes,
    RawAttribute,
    RouteRefresh,
    RouteRefreshCapability,
    SegmentType,
    UnknownCapability,
    Update,
)
from localcast.bgp.prefix import Afi

STRICT = DecodeContext(revised=False)
REVISED = DecodeContext(revised=True)
TWO_OCTET = DecodeContext(four_octet_as=False)


def decode_all(data: bytes, ctx: DecodeContext = STRICT) -> list[Message]:
    dec = Decoder(ctx)
    dec.feed(data)
    return dec.messages()


def decode_one(data: bytes, ctx: DecodeContext = STRICT) -> Message:
    msgs = decode_all(data, ctx)
    assert len(msgs) == 1
    return msgs[0]


def raises(
    data: bytes, code: int, subcode: int, ctx: DecodeContext = STRICT
) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        decode_all(data, ctx)
    err = info.value
    assert (err.code, err.subcode) == (code, subcode), err
    assert err.notification() == Notification(code, subcode, err.data)
    return err


def p4(text: str) -> int:
    return prefix.parse(text)[1]


def raw_message(mtype: int, body: bytes, length: int | None = None) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body) if length is None else length, mtype) + body


def attr(flags: int, atype: int, value: bytes) -> bytes:
    if flags & 0x10:
        return struct.pack("!BBH", flags, atype, len(value)) + value
    return struct.pack("!BBB", flags, atype, len(value)) + value


def update_bytes(attrs: bytes, nlri: bytes = b"", withdrawn: bytes = b"") -> bytes:
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs
    return raw_message(2, body + nlri)


ORIGIN_IGP = attr(0x40, 1, b"\x00")
PATH_65002 = attr(0x40, 2, struct.pack("!BBI", 2, 1, 65002))
NH = attr(0x40, 3, bytes([192, 0, 2, 1]))
NLRI_1 = bytes([24, 11, 0, 1])


# --- round trips ----------------------------------------------------------------------------

ATTRS = PathAttributes(
    origin=Origin.IGP,
    as_path=(
        AsPathSegment(SegmentType.AS_SEQUENCE, (65002, 65002, 4200000000)),
        AsPathSegment(SegmentType.AS_SET, (65010, 65011)),
    ),
    next_hop="192.0.2.1",
    med=50,
    local_pref=200,
    atomic_aggregate=True,
    aggregator=(65002, "192.0.2.9"),
    communities=(65002 << 16 | 100, 0xFFFFFF01),
    large_communities=((4200000000, 1, 2),),
    other=(RawAttribute(0xC0, 16, bytes(8)), RawAttribute(0xE0, 99, b"xyz")),
)

ROUND_TRIPS: list[Message] = [
    Keepalive(),
    Notification(6, 2, b"shutting down"),
    Notification(4, 0),
    RouteRefresh(Afi.IPV6, 1),
    Open(
        my_as=23456,
        hold_time=9,
        bgp_id="192.0.2.254",
        capabilities=(
            Multiprotocol(1, 1),
            Multiprotocol(2, 1),
            RouteRefreshCapability(),
            FourOctetAs(4200000000),
            GracefulRestart(0, 120, ((1, 1, 0x80),)),
            UnknownCapability(70, b""),
        ),
    ),
    Open(my_as=65001, hold_time=0, bgp_id="10.0.0.1"),
    Update(),  # IPv4 End-of-RIB
    Update(withdrawn=(p4("11.0.0.0/8"), p4("11.2.3.0/24"), p4("0.0.0.0/0"))),
    Update(attributes=ATTRS, nlri=(p4("11.1.0.0/16"), p4("45.0.0.0/23"), p4("11.1.2.3/32"))),
    Update(
        attributes=PathAttributes(origin=Origin.INCOMPLETE, as_path=()),
        mp_reach=MpReach(
            2,
            1,
            "2001:db8::1",
            (prefix.parse("2a00:1::/32")[1], prefix.parse("2a00:2:3::/48")[1]),
            "fe80::1",
        ),
    ),
    Update(mp_unreach=MpUnreach(2, 1, (prefix.parse("2a00:1::/32")[1],))),
    Update(mp_unreach=MpUnreach(2, 1, ())),  # IPv6 End-of-RIB
]


@pytest.mark.parametrize("msg", ROUND_TRIPS, ids=lambda m: type(m).__name__)
def test_every_message_type_round_trips(msg: Message) -> None:
    assert decode_one(encode(msg), REVISED) == msg


def test_end_of_rib_markers() -> None:
    assert Update().end_of_rib() == (1, 1)
    assert Update(mp_unreach=MpUnreach(2, 1, ())).end_of_rib() == (2, 1)
    assert Update(withdrawn=(p4("11.0.0.0/8"),)).end_of_rib() is None


def test_two_octet_session_carries_big_asns_in_as4_path() -> None:
    msg = Update(attributes=ATTRS, nlri=(p4("11.1.0.0/16"),))
    wire = encode(msg, four_octet_as=False)
    assert struct.pack("!H", 23456) in wire  # AS_TRANS stands in for 4200000000 in AS_PATH
    assert decode_one(wire, TWO_OCTET) == msg


def test_decoder_is_incremental_byte_by_byte() -> None:
    wire = b"".join(encode(m) for m in ROUND_TRIPS)
    dec = Decoder(REVISED)
    out: list[Message] = []
    for i in range(len(wire)):
        dec.feed(wire[i : i + 1])
        while (m := dec.next_message()) is not None:
            out.append(m)
    assert out == ROUND_TRIPS and dec.buffered == 0


def test_host_bits_beyond_the_length_are_cleared() -> None:
    msg = decode_one(update_bytes(ORIGIN_IGP + PATH_65002 + NH, bytes([23, 11, 0, 3])))
    assert isinstance(msg, Update)
    assert [prefix.to_text(Afi.IPV4, p) for p in msg.nlri] == ["11.0.2.0/23"]


def test_encoding_too_much_is_a_local_error() -> None:
    many = tuple(p4(f"11.{i // 256}.{i % 256}.0/24") for i in range(2000))
    with pytest.raises(LocalProtocolError):
        encode(Update(attributes=ATTRS, nlri=many))


# --- header errors (RFC 4271 §6.1) ----------------------------------------------------------


def test_bad_marker_is_connection_not_synchronized() -> None:
    wire = b"\xfe" + encode(Keepalive())[1:]
    raises(wire, ErrorCode.MESSAGE_HEADER, HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED)


@pytest.mark.parametrize("length", [0, 18, 4097, 65535])
def test_bad_length_is_refused_from_the_header_alone(length: int) -> None:
    err = raises(
        raw_message(4, b"", length), ErrorCode.MESSAGE_HEADER, HeaderSubcode.BAD_MESSAGE_LENGTH
    )
    assert err.data == struct.pack("!H", length)


@pytest.mark.parametrize(("mtype", "length"), [(4, 20), (5, 22), (1, 28), (2, 22), (3, 20)])
def test_length_wrong_for_the_type(mtype: int, length: int) -> None:
    wire = raw_message(mtype, bytes(length - 19), length)
    raises(wire, ErrorCode.MESSAGE_HEADER, HeaderSubcode.BAD_MESSAGE_LENGTH)


@pytest.mark.parametrize("mtype", [0, 6, 255])
def test_bad_type(mtype: int) -> None:
    err = raises(raw_message(mtype, b""), ErrorCode.MESSAGE_HEADER, HeaderSubcode.BAD_MESSAGE_TYPE)
    assert err.data == bytes([mtype])


# --- OPEN errors (§6.2) ---------------------------------------------------------------------


def open_body(
    version: int = 4,
    asn: int = 65002,
    hold: int = 9,
    bgp_id: bytes = b"\xc0\x00\x02\xfe",
    params: bytes = b"",
) -> bytes:
    return raw_message(
        1, struct.pack("!BHH", version, asn, hold) + bgp_id + bytes([len(params)]) + params
    )


@pytest.mark.parametrize(
    ("kwargs", "subcode"),
    [
        ({"version": 3}, OpenSubcode.UNSUPPORTED_VERSION),
        ({"asn": 0}, OpenSubcode.BAD_PEER_AS),
        ({"hold": 1}, OpenSubcode.UNACCEPTABLE_HOLD_TIME),
        ({"hold": 2}, OpenSubcode.UNACCEPTABLE_HOLD_TIME),
        ({"bgp_id": b"\x00\x00\x00\x00"}, OpenSubcode.BAD_BGP_IDENTIFIER),
        ({"params": b"\x01\x02ab"}, OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER),
        ({"params": b"\x02\x04\x41\x04\x00"}, OpenSubcode.UNSPECIFIC),  # capability overruns
        ({"params": b"\x02\x06\x41\x04\x00\x00\x00\x00"}, OpenSubcode.BAD_PEER_AS),  # AS 0
        ({"params": b"\x02\x05\x01\x03\x00\x01\x00"}, OpenSubcode.UNSPECIFIC),  # MP length 3
    ],
)
def test_open_errors(kwargs: dict[str, object], subcode: int) -> None:
    raises(open_body(**kwargs), ErrorCode.OPEN_MESSAGE, subcode)  # type: ignore[arg-type]


def test_unsupported_version_tells_ours() -> None:
    assert raises(open_body(version=5), 2, 1).data == b"\x00\x04"


# --- UPDATE errors (§6.3) and RFC 7606 ------------------------------------------------------


def test_withdrawn_length_overrun_is_malformed_attribute_list() -> None:
    body = struct.pack("!H", 50) + b"\x00\x00"
    raises(raw_message(2, body), 3, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST)


def test_total_attribute_length_overrun_is_malformed_attribute_list() -> None:
    body = b"\x00\x00" + struct.pack("!H", 40) + ORIGIN_IGP
    raises(raw_message(2, body), 3, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, REVISED)


def test_truncated_attribute_is_malformed_attribute_list_even_when_revised() -> None:
    attrs = ORIGIN_IGP + PATH_65002 + bytes([0x40, 3, 9, 192, 0, 2, 1])  # says 9, has 4
    raises(update_bytes(attrs, NLRI_1), 3, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, REVISED)


def test_invalid_network_field() -> None:
    base = ORIGIN_IGP + PATH_65002 + NH
    raises(update_bytes(base, bytes([33, 1, 2, 3, 4, 5])), 3, UpdateSubcode.INVALID_NETWORK_FIELD)
    raises(update_bytes(base, bytes([24, 1, 2])), 3, UpdateSubcode.INVALID_NETWORK_FIELD, REVISED)


@pytest.mark.parametrize(
    ("attribute", "subcode"),
    [
        (attr(0xC0, 1, b"\x00"), UpdateSubcode.ATTRIBUTE_FLAGS_ERROR),  # ORIGIN marked optional
        (attr(0x60, 1, b"\x00"), UpdateSubcode.ATTRIBUTE_FLAGS_ERROR),  # partial well-known
        (attr(0x40, 1, b"\x00\x00"), UpdateSubcode.ATTRIBUTE_LENGTH_ERROR),
        (attr(0x40, 1, b"\x07"), UpdateSubcode.INVALID_ORIGIN),
    ],
)
def test_origin_errors(attribute: bytes, subcode: int) -> None:
    wire = update_bytes(attribute + PATH_65002 + NH, NLRI_1)
    raises(wire, 3, subcode)
    treated = decode_one(wire, REVISED)  # RFC 7606: treat-as-withdraw, session stays
    assert isinstance(treated, Update) and treated.attribute_error is not None
    assert (treated.attribute_error.code, treated.attribute_error.subcode) == (3, subcode)
    assert treated.nlri == (p4("11.0.1.0/24"),)


@pytest.mark.parametrize(
    "path",
    [
        b"\x02\x05\x00\x00\xfd\xea",  # says 5 ASes, has 1
        b"\x02\x00",  # empty segment
        b"\x07\x01\x00\x00\xfd\xea",  # segment type 7
        b"\x02",  # truncated segment header
        b"\x02\x02\x00\x00\xfd\xea\x00\x00\x00\x00",  # AS 0 (RFC 7607)
    ],
)
def test_malformed_as_path(path: bytes) -> None:
    raises(update_bytes(ORIGIN_IGP + attr(0x40, 2, path) + NH, NLRI_1), 3, 11)


def test_as_path_must_start_with_an_external_peers_as() -> None:
    ctx = DecodeContext(revised=False, peer_as=65099)
    raises(update_bytes(ORIGIN_IGP + PATH_65002 + NH, NLRI_1), 3, 11, ctx)


def test_huge_as_path_with_extended_length_decodes() -> None:
    asns = list(range(64512, 64512 + 255)) * 3
    segments = b"".join(struct.pack("!BB255I", 2, 255, *asns[i : i + 255]) for i in (0, 255, 510))
    wire = update_bytes(ORIGIN_IGP + attr(0x50, 2, segments) + NH, NLRI_1)
    msg = decode_one(wire)
    assert isinstance(msg, Update) and msg.attributes is not None
    assert msg.attributes.flat_as_path() == tuple(asns)


@pytest.mark.parametrize("missing", [1, 2, 3])
def test_missing_well_known_attribute(missing: int) -> None:
    parts = {1: ORIGIN_IGP, 2: PATH_65002, 3: NH}
    attrs = b"".join(v for k, v in parts.items() if k != missing)
    err = raises(update_bytes(attrs, NLRI_1), 3, UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE)
    assert err.data == bytes([missing])


def test_invalid_next_hop() -> None:
    for bad in (b"\x00\x00\x00\x00", b"\xe0\x00\x00\x01", b"\xff\xff\xff\xff"):
        wire = update_bytes(ORIGIN_IGP + PATH_65002 + attr(0x40, 3, bad), NLRI_1)
        raises(wire, 3, UpdateSubcode.INVALID_NEXT_HOP)
    wire = update_bytes(ORIGIN_IGP + PATH_65002 + attr(0x40, 3, b"\x01\x02"), NLRI_1)
    raises(wire, 3, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR)


def test_unrecognized_well_known_attribute() -> None:
    wire = update_bytes(ORIGIN_IGP + PATH_65002 + NH + attr(0x40, 99, b"x"), NLRI_1)
    raises(wire, 3, UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE)


def test_bad_aggregator_is_discarded_when_revised() -> None:
    wire = update_bytes(ORIGIN_IGP + PATH_65002 + NH + attr(0xC0, 7, b"\x01\x02\x03"), NLRI_1)
    raises(wire, 3, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR)
    msg = decode_one(wire, REVISED)
    assert isinstance(msg, Update) and msg.attribute_error is None
    assert msg.attributes is not None and msg.attributes.aggregator is None


def test_bad_communities_length() -> None:
    wire = update_bytes(ORIGIN_IGP + PATH_65002 + NH + attr(0xC0, 8, b"\x00\x01\x02"), NLRI_1)
    raises(wire, 3, UpdateSubcode.ATTRIBUTE_LENGTH_ERROR)


def test_repeated_attribute() -> None:
    wire = update_bytes(ORIGIN_IGP + ORIGIN_IGP + PATH_65002 + NH, NLRI_1)
    raises(wire, 3, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST)
    assert isinstance(decode_one(wire, REVISED), Update)  # the first one is kept


def test_mp_reach_errors_reset_even_when_revised() -> None:
    bad_nh_len = struct.pack("!HBB", 2, 1, 5) + bytes(5) + b"\x00"
    wire = update_bytes(ORIGIN_IGP + PATH_65002 + attr(0x80, 14, bad_nh_len))
    raises(wire, 3, UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, REVISED)
    bad_nlri = struct.pack("!HBB", 2, 1, 16) + bytes(16) + b"\x00" + bytes([129])
    wire = update_bytes(ORIGIN_IGP + PATH_65002 + attr(0x80, 14, bad_nlri))
    raises(wire, 3, UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, REVISED)
    wire = update_bytes(ORIGIN_IGP + PATH_65002 + attr(0xC0, 14, bad_nlri))  # flags
    raises(wire, 3, UpdateSubcode.ATTRIBUTE_FLAGS_ERROR, REVISED)


def test_unspecified_ipv6_next_hop_is_treat_as_withdraw() -> None:
    mp = struct.pack("!HBB", 2, 1, 16) + bytes(16) + b"\x00" + bytes([32, 0x2A, 0, 0, 1])
    wire = update_bytes(ORIGIN_IGP + PATH_65002 + attr(0x80, 14, mp))
    raises(wire, 3, UpdateSubcode.INVALID_NEXT_HOP)
    msg = decode_one(wire, REVISED)
    assert isinstance(msg, Update) and msg.attribute_error is not None
    assert msg.mp_reach is not None and len(msg.mp_reach.nlri) == 1


def test_local_pref_from_external_peer_is_ignored() -> None:
    lp = attr(0x40, 5, struct.pack("!I", 500))
    msg = decode_one(
        update_bytes(ORIGIN_IGP + PATH_65002 + NH + lp, NLRI_1), DecodeContext(peer_as=65002)
    )
    assert isinstance(msg, Update) and msg.attributes is not None
    assert msg.attributes.local_pref is None


def test_family_not_negotiated_is_kept_raw_not_parsed() -> None:
    ctx = DecodeContext(families=frozenset({(1, 1)}))
    mp = struct.pack("!HBB", 2, 1, 16) + bytes(15) + b"\x01\x00" + bytes([32, 0x2A, 0, 0, 1])
    msg = decode_one(update_bytes(ORIGIN_IGP + PATH_65002 + attr(0x80, 14, mp)), ctx)
    assert isinstance(msg, Update) and msg.mp_reach is None


# --- property-based: hostile input never escapes as anything but the typed error -----------


def check_total(data: bytes, ctx: DecodeContext) -> list[Message]:
    """Decode everything; only RemoteProtocolError may escape, and it must be coherent."""
    dec = Decoder(ctx)
    dec.feed(data)
    out: list[Message] = []
    try:
        while (m := dec.next_message()) is not None:
            out.append(m)
    except RemoteProtocolError as err:
        assert err.code in (1, 2, 3), err
        assert 0 <= err.subcode <= 11
        encode(err.notification())  # always expressible on the wire
    return out


contexts = st.sampled_from([STRICT, REVISED, TWO_OCTET, DecodeContext(peer_as=65002)])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), contexts)
def test_random_bytes(data: bytes, ctx: DecodeContext) -> None:
    check_total(data, ctx)


@settings(max_examples=400)
@given(st.binary(max_size=300), st.integers(0, 4200), st.integers(0, 255), contexts)
def test_random_bodies_behind_a_valid_marker(
    body: bytes, length: int, mtype: int, ctx: DecodeContext
) -> None:
    check_total(MARKER + struct.pack("!HB", length, mtype) + body, ctx)


VALID = [encode(m) for m in ROUND_TRIPS]


@settings(max_examples=600)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 4096),
    contexts,
)
def test_mutated_valid_messages(
    wire: bytes, flips: list[tuple[int, int]], cut: int, ctx: DecodeContext
) -> None:
    data = bytearray(wire)
    for pos, value in flips:
        data[pos % len(data)] = value
    check_total(bytes(data[: max(cut, 19)]), ctx)


@settings(max_examples=300)
@given(
    st.integers(0, 255),  # flags
    st.integers(1, 40),  # type code
    st.binary(max_size=40),
    st.booleans(),
)
def test_any_single_attribute(flags: int, atype: int, value: bytes, revised: bool) -> None:
    ctx = DecodeContext(revised=revised)
    one = attr(flags & ~0x10, atype, value) if len(value) < 256 else b""
    for attrs in (one, ORIGIN_IGP + PATH_65002 + NH + one):
        msgs = check_total(update_bytes(attrs, NLRI_1), ctx)
        for m in msgs:
            assert isinstance(m, Update)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=60), st.booleans())
def test_huge_or_broken_as_paths(segments: list[tuple[int, int]], four: bool) -> None:
    size = 4 if four else 2
    path = b"".join(bytes([t, n]) + bytes(size * (n % 5)) for t, n in segments)
    wire = update_bytes(ORIGIN_IGP + attr(0x50, 2, path) + NH, NLRI_1)
    ctx = DecodeContext(revised=False, four_octet_as=four)
    try:
        decode_all(wire, ctx)
    except UpdateMessageError as err:
        assert err.subcode == UpdateSubcode.MALFORMED_AS_PATH
    except RemoteProtocolError as err:
        assert err.code == ErrorCode.MESSAGE_HEADER  # too long for one message


# --- property-based round trips -------------------------------------------------------------


@st.composite
def v4_prefixes(draw: st.DrawFn) -> int:
    length = draw(st.integers(0, 32))
    net = draw(st.integers(0, 2**32 - 1)) & prefix.mask(Afi.IPV4, length)
    return prefix.make(net, length)


@st.composite
def v6_prefixes(draw: st.DrawFn) -> int:
    length = draw(st.integers(0, 128))
    net = draw(st.integers(0, 2**128 - 1)) & prefix.mask(Afi.IPV6, length)
    return prefix.make(net, length)


unicast_v4 = st.integers(0x01000000, 0xDFFFFFFF).map(lambda n: str(ipaddress.IPv4Address(n)))
asns = st.integers(1, 2**32 - 1)
segments = st.builds(
    AsPathSegment,
    st.sampled_from([SegmentType.AS_SEQUENCE, SegmentType.AS_SET]),
    st.lists(asns, min_size=1, max_size=8).map(tuple),
)
attributes = st.builds(
    PathAttributes,
    origin=st.sampled_from(list(Origin)),
    as_path=st.lists(segments, max_size=4).map(tuple),
    next_hop=unicast_v4,
    med=st.none() | st.integers(0, 2**32 - 1),
    local_pref=st.none() | st.integers(0, 2**32 - 1),
    atomic_aggregate=st.booleans(),
    aggregator=st.none() | st.tuples(asns, unicast_v4),
    communities=st.lists(st.integers(0, 2**32 - 1), max_size=6).map(tuple),
    large_communities=st.lists(
        st.tuples(asns, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=3
    ).map(tuple),
)


@settings(max_examples=300)
@given(
    attributes,
    st.lists(v4_prefixes(), max_size=40, unique=True).map(tuple),
    st.lists(v4_prefixes(), max_size=20, unique=True).map(tuple),
    st.none() | st.lists(v6_prefixes(), max_size=20, unique=True).map(tuple),
)
def test_updates_round_trip(
    attrs: PathAttributes,
    nlri: tuple[int, ...],
    withdrawn: tuple[int, ...],
    v6: tuple[int, ...] | None,
) -> None:
    mp = MpReach(2, 1, "2001:db8::1", v6) if v6 is not None else None
    msg = Update(withdrawn=withdrawn, attributes=attrs, nlri=nlri, mp_reach=mp)
    try:
        wire = encode(msg)
    except LocalProtocolError:
        return  # over 4096 bytes: not a message
    assert decode_one(wire, STRICT) == msg
    assert len(encode_attributes(attrs)) < len(wire)


def test_repeated_attribute_sets_are_parsed_once_and_shared() -> None:
    one = encode(Update(attributes=ATTRS, nlri=(p4("11.1.0.0/16"),)))
    two = encode(Update(attributes=ATTRS, nlri=(p4("11.2.0.0/16"),)))
    a, b = decode_all(one + two, REVISED)
    assert isinstance(a, Update) and isinstance(b, Update)
    assert a.attributes == ATTRS and a.attributes is b.attributes  # one object per set
    bad = update_bytes(attr(0x40, 1, b"\x07") + PATH_65002 + NH, NLRI_1)
    c, d = decode_all(bad + bad, REVISED)  # the error is remembered with the bytes
    assert isinstance(c, Update) and isinstance(d, Update)
    assert c.attribute_error == d.attribute_error == Notification(3, 6, c.attribute_error.data)  # type: ignore[union-attr]
    dec = Decoder(REVISED)
    dec.feed(one)
    first = dec.next_message()
    dec.context = DecodeContext(revised=True, peer_as=65099)  # renegotiated: parse again
    dec.feed(two)
    again = dec.next_message()
    assert isinstance(first, Update) and isinstance(again, Update)
    assert again.attribute_error is not None  # 65099 does not lead the path
