"""Bytes <-> BGP messages: an incremental :class:`Decoder` and :func:`encode`.

The decoder takes whatever the socket delivered (:meth:`Decoder.feed`) and
hands out whole messages (:meth:`Decoder.next_message`). Anything malformed
raises a :class:`~localcast.bgp.errors.RemoteProtocolError` subclass carrying
the NOTIFICATION to send (RFC 4271 §6); nothing else ever escapes for any
input, and a bad header is refused as soon as its 19 bytes are in, so a
hostile length never makes us wait.

What a message means depends on the session (4-octet AS numbers negotiated,
eBGP or iBGP, families, strict or revised error handling); that lives in a
:class:`DecodeContext` that the session swaps in after the OPEN exchange.

Error handling (RFC 7606, ``revised=True``, the default): when the frame is
sound (lengths add up, NLRI can be located) but an attribute's value is bad,
the UPDATE is delivered with ``attribute_error`` set and its NLRI are to be
treated as withdrawn; ATOMIC_AGGREGATE, AGGREGATOR and the AS4_* attributes
are simply discarded. Broken framing, NLRI and MP_REACH/MP_UNREACH errors
always reset the session. ``revised=False`` is plain RFC 4271: every error
resets.

No I/O and no state beyond the receive buffer. Hot path: NLRI parsing, one
int per prefix (:mod:`localcast.bgp.prefix`).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
import weakref
from dataclasses import dataclass, field

from localcast.bgp.errors import (
    HeaderSubcode,
    LocalProtocolError,
    MessageHeaderError,
    OpenMessageError,
    OpenSubcode,
    UpdateMessageError,
    UpdateSubcode,
)
from localcast.bgp.messages import (
    AS_TRANS,
    AsPathSegment,
    AttrFlag,
    AttrType,
    Capability,
    CapabilityCode,
    FourOctetAs,
    GracefulRestart,
    Keepalive,
    Message,
    MessageType,
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
from localcast.bgp.prefix import Afi, Safi

MARKER = b"\xff" * 16
HEADER_SIZE = 19
MAX_MESSAGE_SIZE = 4096  # RFC 4271; 65535 only with RFC 8654, which we do not advertise

_MIN_LENGTH = {
    MessageType.OPEN: 29,
    MessageType.UPDATE: 23,
    MessageType.NOTIFICATION: 21,
}
_EXACT_LENGTH = {MessageType.KEEPALIVE: 19, MessageType.ROUTE_REFRESH: 23}

_WELL_KNOWN = 0x40
_OPTIONAL = 0x80
_OPTIONAL_TRANSITIVE = 0xC0
#: Expected (optional, transitive) flags of the attributes we model.
_FLAGS: dict[int, int] = {
    AttrType.ORIGIN: _WELL_KNOWN,
    AttrType.AS_PATH: _WELL_KNOWN,
    AttrType.NEXT_HOP: _WELL_KNOWN,
    AttrType.LOCAL_PREF: _WELL_KNOWN,
    AttrType.ATOMIC_AGGREGATE: _WELL_KNOWN,
    AttrType.MULTI_EXIT_DISC: _OPTIONAL,
    AttrType.MP_REACH_NLRI: _OPTIONAL,
    AttrType.MP_UNREACH_NLRI: _OPTIONAL,
    AttrType.AGGREGATOR: _OPTIONAL_TRANSITIVE,
    AttrType.COMMUNITIES: _OPTIONAL_TRANSITIVE,
    AttrType.AS4_PATH: _OPTIONAL_TRANSITIVE,
    AttrType.AS4_AGGREGATOR: _OPTIONAL_TRANSITIVE,
    AttrType.LARGE_COMMUNITIES: _OPTIONAL_TRANSITIVE,
}
#: RFC 7606 "attribute discard": dropping these changes no route's meaning.
_DISCARDABLE = frozenset(
    {AttrType.ATOMIC_AGGREGATE, AttrType.AGGREGATOR, AttrType.AS4_PATH, AttrType.AS4_AGGREGATOR}
)
_MP = frozenset({AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI})
_BITS = {Afi.IPV4: 32, Afi.IPV6: 128}
_EXTENDED = 0x10
_KEY_FLAGS = (b"\x00", b"\x01", b"\x02", b"\x03")
# Enum lookups by table: calling an enum class costs a microsecond, per attribute.
_MESSAGE_TYPES = {int(t): t for t in MessageType}
_ATTR_TYPES = {int(t): t for t in AttrType}
_ORIGINS = tuple(Origin)
_SEGMENT_TYPES = {int(t): t for t in SegmentType}


@dataclass(frozen=True)
class DecodeContext:
    """What the session has negotiated, and how strict to be.

    ``peer_as`` set means an eBGP peer: its AS must lead every AS_PATH, and
    LOCAL_PREF from it is ignored (RFC 4271 §5.1.5, §6.3).
    """

    four_octet_as: bool = True
    revised: bool = True
    peer_as: int | None = None
    families: frozenset[tuple[int, int]] = field(
        default_factory=lambda: frozenset({(Afi.IPV4, Safi.UNICAST), (Afi.IPV6, Safi.UNICAST)})
    )
    max_message_size: int = MAX_MESSAGE_SIZE


class Decoder:
    """Incremental: ``feed`` bytes, then call ``next_message`` until it returns None."""

    def __init__(self, context: DecodeContext | None = None) -> None:
        self._context = context or DecodeContext()
        self._cache = AttributeCache()
        self._buf = bytearray()
        self._off = 0

    @property
    def context(self) -> DecodeContext:
        return self._context

    @context.setter
    def context(self, value: DecodeContext) -> None:
        self._context = value
        self._cache = AttributeCache()  # parsed under the old context

    def feed(self, data: bytes) -> None:
        if self._off and self._off == len(self._buf):
            self._buf.clear()
            self._off = 0
        elif self._off > 65536:
            del self._buf[: self._off]
            self._off = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._off

    def next_message(self) -> Message | None:
        """The next whole message, None if more bytes are needed; raises on malformed input."""
        buf, off = self._buf, self._off
        if len(buf) - off < HEADER_SIZE:
            return None
        length, mtype = check_header(bytes(buf[off : off + HEADER_SIZE]), self._context)
        if len(buf) - off < length:
            return None
        body = bytes(buf[off + HEADER_SIZE : off + length])
        self._off = off + length
        return decode_body(mtype, body, self._context, self._cache)

    def messages(self) -> list[Message]:
        """Every whole message buffered (stops at, and raises, the first error)."""
        out = []
        while (msg := self.next_message()) is not None:
            out.append(msg)
        return out


def check_header(header: bytes, context: DecodeContext) -> tuple[int, MessageType]:
    """Marker, length and type of a 19-byte header (RFC 4271 §6.1)."""
    if header[:16] != MARKER:
        raise MessageHeaderError(HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, "bad marker")
    length = header[16] << 8 | header[17]
    raw_type = header[18]
    if not HEADER_SIZE <= length <= context.max_message_size:
        raise MessageHeaderError(
            HeaderSubcode.BAD_MESSAGE_LENGTH, f"message length {length}", header[16:18]
        )
    mtype = _MESSAGE_TYPES.get(raw_type)
    if mtype is None:
        raise MessageHeaderError(
            HeaderSubcode.BAD_MESSAGE_TYPE, f"message type {raw_type}", bytes([raw_type])
        )
    exact = _EXACT_LENGTH.get(mtype)
    if (exact is not None and length != exact) or length < _MIN_LENGTH.get(mtype, HEADER_SIZE):
        raise MessageHeaderError(
            HeaderSubcode.BAD_MESSAGE_LENGTH,
            f"length {length} for {mtype.name}",
            header[16:18],
        )
    return length, mtype


def decode_body(
    mtype: MessageType, body: bytes, context: DecodeContext, cache: AttributeCache | None = None
) -> Message:
    if mtype == MessageType.UPDATE:
        return decode_update(body, context, cache)
    if mtype == MessageType.KEEPALIVE:
        return Keepalive()
    if mtype == MessageType.OPEN:
        return decode_open(body)
    if mtype == MessageType.NOTIFICATION:
        return Notification(body[0], body[1], body[2:])
    afi, subtype, safi = struct.unpack("!HBB", body)
    return RouteRefresh(afi, safi, subtype)


# --- OPEN -----------------------------------------------------------------------------------


def decode_open(body: bytes) -> Open:
    version = body[0]
    if version != 4:
        raise OpenMessageError(
            OpenSubcode.UNSUPPORTED_VERSION, f"BGP version {version}", b"\x00\x04"
        )
    my_as, hold_time = struct.unpack_from("!HH", body, 1)
    bgp_id = body[5:9]
    if my_as == 0:
        raise OpenMessageError(OpenSubcode.BAD_PEER_AS, "AS 0")  # RFC 7607
    if hold_time in (1, 2):
        raise OpenMessageError(OpenSubcode.UNACCEPTABLE_HOLD_TIME, f"hold time {hold_time}")
    if bgp_id == b"\x00\x00\x00\x00":
        raise OpenMessageError(OpenSubcode.BAD_BGP_IDENTIFIER, "BGP identifier 0.0.0.0")
    caps = _optional_parameters(body, 9)
    return Open(my_as, hold_time, str(ipaddress.IPv4Address(bgp_id)), caps, version)


def _optional_parameters(body: bytes, at: int) -> tuple[Capability, ...]:
    opt_len = body[at]
    p, extended = at + 1, False
    if opt_len == 255 and len(body) > p and body[p] == 255:  # RFC 9072 extended parameters
        if len(body) < p + 3:
            raise OpenMessageError(OpenSubcode.UNSPECIFIC, "truncated extended parameters")
        opt_len = body[p + 1] << 8 | body[p + 2]
        p, extended = p + 3, True
    if p + opt_len != len(body):
        raise OpenMessageError(OpenSubcode.UNSPECIFIC, "optional parameters length mismatch")
    caps: list[Capability] = []
    end = p + opt_len
    while p < end:
        hdr = 3 if extended else 2
        if end - p < hdr:
            raise OpenMessageError(OpenSubcode.UNSPECIFIC, "truncated optional parameter")
        ptype = body[p]
        plen = (body[p + 1] << 8 | body[p + 2]) if extended else body[p + 1]
        value = body[p + hdr : p + hdr + plen]
        if len(value) != plen:
            raise OpenMessageError(OpenSubcode.UNSPECIFIC, "optional parameter overruns")
        if ptype != 2:
            raise OpenMessageError(
                OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER,
                f"optional parameter type {ptype}",
                bytes([ptype]),
            )
        caps.extend(_capabilities(value))
        p += hdr + plen
    return tuple(caps)


def _capabilities(data: bytes) -> list[Capability]:
    caps: list[Capability] = []
    p = 0
    while p < len(data):
        if len(data) - p < 2:
            raise OpenMessageError(OpenSubcode.UNSPECIFIC, "truncated capability")
        code, clen = data[p], data[p + 1]
        value = data[p + 2 : p + 2 + clen]
        if len(value) != clen:
            raise OpenMessageError(OpenSubcode.UNSPECIFIC, f"capability {code} overruns")
        caps.append(_capability(code, value))
        p += 2 + clen
    return caps


def _capability(code: int, value: bytes) -> Capability:
    bad = OpenMessageError(OpenSubcode.UNSPECIFIC, f"capability {code}: length {len(value)}")
    if code == CapabilityCode.MULTIPROTOCOL:
        if len(value) != 4:
            raise bad
        afi, _reserved, safi = struct.unpack("!HBB", value)
        return Multiprotocol(afi, safi)
    if code == CapabilityCode.ROUTE_REFRESH:
        return RouteRefreshCapability()
    if code == CapabilityCode.FOUR_OCTET_AS:
        if len(value) != 4:
            raise bad
        asn = int.from_bytes(value, "big")
        if asn == 0:
            raise OpenMessageError(OpenSubcode.BAD_PEER_AS, "AS 0 in 4-octet AS capability")
        return FourOctetAs(asn)
    if code == CapabilityCode.GRACEFUL_RESTART:
        if len(value) < 2 or (len(value) - 2) % 4:
            raise bad
        head = value[0] << 8 | value[1]
        fams = tuple(struct.unpack_from("!HBB", value, i) for i in range(2, len(value), 4))
        return GracefulRestart(head >> 12, head & 0x0FFF, fams)
    return UnknownCapability(code, value)


# --- UPDATE ---------------------------------------------------------------------------------


class _BadNlri(Exception):
    pass


def _prefixes(data: bytes, start: int, end: int, bits: int) -> tuple[int, ...]:
    """Packed prefixes of an NLRI field; host bits beyond the length are cleared."""
    if start == end:
        return ()
    out: list[int] = []
    append = out.append
    from_bytes = int.from_bytes
    i = start
    while i < end:
        plen = data[i]
        if plen > bits:
            raise _BadNlri(f"prefix length {plen}")
        nbytes = (plen + 7) >> 3
        j = i + 1 + nbytes
        if j > end:
            raise _BadNlri("prefix overruns the field")
        net = from_bytes(data[i + 1 : j], "big") << (bits - (nbytes << 3))
        if plen & 7:
            net &= ~((1 << (bits - plen)) - 1)
        append((net << 8) | plen)
        i = j
    return tuple(out)


CacheKey = bytes  # one byte (IPv4 NLRI follow: 1, MP NLRI follow: 2), then the attributes


class AttributeCache:
    """Parsed attribute sets by their wire bytes, per decoder (one session's context).

    A full table repeats the same attribute sets across many UPDATEs; a hit skips
    parsing and hands out the one object already held. Sets are held weakly, so
    one stays interned exactly as long as some route uses it: a table costs one
    object per distinct set, not one per UPDATE. Sets with an RFC 7606 error
    (rare) are kept in a small bounded dict instead.
    """

    ERRORS_MAX = 4096

    def __init__(self) -> None:
        self._sets: weakref.WeakValueDictionary[CacheKey, PathAttributes] = (
            weakref.WeakValueDictionary()
        )
        self._errors: dict[CacheKey, tuple[PathAttributes | None, UpdateMessageError]] = {}

    def __len__(self) -> int:
        return len(self._sets) + len(self._errors)

    def get(self, key: CacheKey) -> tuple[PathAttributes | None, UpdateMessageError | None] | None:
        attrs = self._sets.get(key)
        if attrs is not None:
            return attrs, None
        return self._errors.get(key) if self._errors else None

    def put(
        self, key: CacheKey, attrs: PathAttributes | None, error: UpdateMessageError | None
    ) -> None:
        if error is not None:
            if len(self._errors) >= self.ERRORS_MAX:
                self._errors.clear()
            self._errors[key] = (attrs, error)
        elif attrs is not None:
            self._sets[key] = attrs


def decode_update(
    body: bytes, context: DecodeContext, cache: AttributeCache | None = None
) -> Update:
    n = len(body)
    wlen = body[0] << 8 | body[1]
    if 4 + wlen > n:
        raise UpdateMessageError(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, "withdrawn routes length overruns"
        )
    try:
        withdrawn = _prefixes(body, 2, 2 + wlen, 32)
    except _BadNlri as exc:
        raise UpdateMessageError(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, f"withdrawn routes: {exc}"
        ) from None
    p = 2 + wlen
    alen = body[p] << 8 | body[p + 1]
    p += 2
    if p + alen > n:
        raise UpdateMessageError(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, "total path attribute length overruns"
        )
    try:
        nlri = _prefixes(body, p + alen, n, 32)
    except _BadNlri as exc:
        raise UpdateMessageError(UpdateSubcode.INVALID_NETWORK_FIELD, f"NLRI: {exc}") from None
    if alen == 0:
        if not nlri:
            return Update(withdrawn=withdrawn)
        missing = UpdateMessageError(
            UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE, "NLRI without attributes", b"\x01"
        )
        if not context.revised:
            raise missing
        return Update(withdrawn=withdrawn, nlri=nlri, attribute_error=missing.notification())
    parsed = _AttributeParser(context).parse(body, p, p + alen, bool(nlri), cache)
    return Update(
        withdrawn=withdrawn,
        attributes=parsed.attributes,
        nlri=nlri,
        mp_reach=parsed.mp_reach,
        mp_unreach=parsed.mp_unreach,
        attribute_error=parsed.error.notification() if parsed.error else None,
    )


@dataclass
class _Parsed:
    attributes: PathAttributes | None
    mp_reach: MpReach | None
    mp_unreach: MpUnreach | None
    error: UpdateMessageError | None


class _AttributeParser:
    """One UPDATE's path attributes; collects values, applies RFC 7606 when revised."""

    def __init__(self, context: DecodeContext) -> None:
        self.ctx = context
        self.values: dict[str, object] = {}
        self.other: list[RawAttribute] = []
        self.seen: set[int] = set()
        self.mp_reach: MpReach | None = None
        self.mp_unreach: MpUnreach | None = None
        self.error: UpdateMessageError | None = None
        self.as4_path: tuple[AsPathSegment, ...] | None = None
        self.as4_aggregator: tuple[int, str] | None = None

    def parse(
        self, body: bytes, p: int, end: int, has_nlri: bool, cache: AttributeCache | None
    ) -> _Parsed:
        frames: list[tuple[int, int, bytes, bytes]] = []
        mp: list[tuple[int, int, bytes, bytes]] = []
        seen = self.seen
        start, repeated = p, False
        while p < end:
            if end - p < 3:
                raise UpdateMessageError(
                    UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, "truncated attribute header"
                )
            flags, atype = body[p], body[p + 1]
            if flags & _EXTENDED:
                if end - p < 4:
                    raise UpdateMessageError(
                        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, "truncated attribute header"
                    )
                vlen, q = body[p + 2] << 8 | body[p + 3], p + 4
            else:
                vlen, q = body[p + 2], p + 3
            if q + vlen > end:
                raise UpdateMessageError(
                    UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
                    f"attribute {atype} overruns the attribute list",
                    body[p:end],
                )
            if atype in seen:
                if atype in _MP or not self.ctx.revised:
                    raise UpdateMessageError(
                        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, f"attribute {atype} repeated"
                    )
                repeated = True
            else:  # RFC 7606 §3.g: of repeated attributes, keep the first
                seen.add(atype)
                frame = (flags, atype, body[q : q + vlen], body[p : q + vlen])
                (mp if atype in _MP else frames).append(frame)
            p = q + vlen
        for frame in mp:  # they carry NLRI: never cached
            self._one(*frame)
        mp_error, self.error = self.error, None
        key: CacheKey | None = None
        if cache is not None:
            mp_nlri = self.mp_reach is not None and bool(self.mp_reach.nlri)
            flag = _KEY_FLAGS[has_nlri + 2 * mp_nlri]
            if not mp and not repeated:
                key = flag + body[start:end]
            else:
                key = flag + b"".join(f[3] for f in frames)
            hit = cache.get(key)
            if hit is not None:
                return _Parsed(hit[0], self.mp_reach, self.mp_unreach, mp_error or hit[1])
        for frame in frames:
            self._one(*frame)
        self._finish(has_nlri)
        attributes = self._attributes()
        if key is not None and cache is not None:
            cache.put(key, attributes, self.error)
        return _Parsed(attributes, self.mp_reach, self.mp_unreach, mp_error or self.error)

    def _one(self, flags: int, atype: int, value: bytes, whole: bytes) -> None:
        try:
            expected = _FLAGS.get(atype)
            if expected is not None:
                mask = 0xE0 if expected != _OPTIONAL_TRANSITIVE else 0xC0
                if flags & mask != expected:
                    raise UpdateMessageError(
                        UpdateSubcode.ATTRIBUTE_FLAGS_ERROR, f"flags {flags:#x} of {atype}", whole
                    )
                self._known(_ATTR_TYPES[atype], value, whole)
            elif not flags & _OPTIONAL:
                raise UpdateMessageError(
                    UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    f"unknown well-known attribute {atype}",
                    whole,
                )
            else:
                self.other.append(RawAttribute(flags & ~_EXTENDED, atype, value))
        except UpdateMessageError as exc:
            fatal = atype in _MP and exc.subcode != UpdateSubcode.INVALID_NEXT_HOP
            if not self.ctx.revised or fatal:
                raise
            if atype in _DISCARDABLE:
                return
            if self.error is None:
                self.error = exc

    def _known(self, atype: AttrType, v: bytes, whole: bytes) -> None:
        ctx = self.ctx

        def length_error() -> UpdateMessageError:
            return UpdateMessageError(
                UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, f"{atype.name} length {len(v)}", whole
            )

        if atype == AttrType.ORIGIN:
            if len(v) != 1:
                raise length_error()
            if v[0] > 2:
                raise UpdateMessageError(UpdateSubcode.INVALID_ORIGIN, f"origin {v[0]}", whole)
            self.values["origin"] = _ORIGINS[v[0]]
        elif atype == AttrType.AS_PATH:
            path = _as_path(v, 4 if ctx.four_octet_as else 2, whole)
            if ctx.peer_as is not None and not _leads_with(path, ctx.peer_as):
                raise UpdateMessageError(
                    UpdateSubcode.MALFORMED_AS_PATH, "AS_PATH does not start with the peer's AS"
                )
            self.values["as_path"] = path
        elif atype == AttrType.NEXT_HOP:
            if len(v) != 4:
                raise length_error()
            if v[0] >= 224 or v == b"\x00\x00\x00\x00":
                raise UpdateMessageError(
                    UpdateSubcode.INVALID_NEXT_HOP, "next hop not a unicast address", whole
                )
            self.values["next_hop"] = sys.intern(socket.inet_ntoa(v))  # one str per next hop
        elif atype in (AttrType.MULTI_EXIT_DISC, AttrType.LOCAL_PREF):
            if len(v) != 4:
                raise length_error()
            if atype == AttrType.MULTI_EXIT_DISC:
                self.values["med"] = int.from_bytes(v, "big")
            elif ctx.peer_as is None:  # RFC 4271 §5.1.5: ignored from external peers
                self.values["local_pref"] = int.from_bytes(v, "big")
        elif atype == AttrType.ATOMIC_AGGREGATE:
            if v:
                raise length_error()
            self.values["atomic_aggregate"] = True
        elif atype in (AttrType.AGGREGATOR, AttrType.AS4_AGGREGATOR):
            size = 4 if ctx.four_octet_as or atype == AttrType.AS4_AGGREGATOR else 2
            if len(v) != size + 4:
                raise length_error()
            agg = (int.from_bytes(v[:size], "big"), socket.inet_ntoa(v[size:]))
            if atype == AttrType.AGGREGATOR:
                self.values["aggregator"] = agg
            elif not ctx.four_octet_as:
                self.as4_aggregator = agg
        elif atype == AttrType.COMMUNITIES:
            if len(v) % 4:
                raise length_error()
            self.values["communities"] = struct.unpack(f"!{len(v) // 4}I", v)
        elif atype == AttrType.LARGE_COMMUNITIES:
            if len(v) % 12:
                raise length_error()
            words = struct.unpack(f"!{len(v) // 4}I", v)
            self.values["large_communities"] = tuple(
                (words[i], words[i + 1], words[i + 2]) for i in range(0, len(words), 3)
            )
        elif atype == AttrType.AS4_PATH:
            path4 = _as_path(v, 4, whole)
            if not ctx.four_octet_as:  # RFC 6793 §4.1: ignored between NEW speakers
                self.as4_path = path4
        elif atype == AttrType.MP_REACH_NLRI:
            self._mp_reach(v, whole)
        elif atype == AttrType.MP_UNREACH_NLRI:
            self._mp_unreach(v, whole)

    def _family(self, afi: int, safi: int) -> Afi | None:
        if (afi, safi) not in self.ctx.families or afi not in (Afi.IPV4, Afi.IPV6):
            return None
        return Afi(afi)

    def _mp_reach(self, v: bytes, whole: bytes) -> None:
        def bad(why: str) -> UpdateMessageError:
            return UpdateMessageError(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, why, whole)

        if len(v) < 5:
            raise bad("MP_REACH_NLRI too short")
        afi, safi, nhl = v[0] << 8 | v[1], v[2], v[3]
        if 5 + nhl > len(v):
            raise bad("MP_REACH_NLRI next hop overruns")
        family = self._family(afi, safi)
        if family is None:
            self.other.append(RawAttribute(_OPTIONAL, AttrType.MP_REACH_NLRI, v))
            return
        nh = v[4 : 4 + nhl]
        link_local = None
        if family == Afi.IPV6 and nhl in (16, 32):
            next_hop = ipaddress.IPv6Address(nh[:16])
            if nhl == 32:
                link_local = str(ipaddress.IPv6Address(nh[16:]))
        elif family == Afi.IPV4 and nhl == 4:
            next_hop = ipaddress.IPv4Address(nh)  # type: ignore[assignment]
        else:
            raise bad(f"next hop length {nhl} for AFI {afi}")
        try:
            nlri = _prefixes(v, 5 + nhl, len(v), _BITS[family])
        except _BadNlri as exc:
            raise bad(f"MP_REACH_NLRI: {exc}") from None
        self.mp_reach = MpReach(afi, safi, str(next_hop), nlri, link_local)
        if next_hop.is_multicast or next_hop.is_unspecified:
            raise UpdateMessageError(UpdateSubcode.INVALID_NEXT_HOP, f"next hop {next_hop}", whole)

    def _mp_unreach(self, v: bytes, whole: bytes) -> None:
        if len(v) < 3:
            raise UpdateMessageError(
                UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, "MP_UNREACH_NLRI too short", whole
            )
        afi, safi = v[0] << 8 | v[1], v[2]
        family = self._family(afi, safi)
        if family is None:
            self.other.append(RawAttribute(_OPTIONAL, AttrType.MP_UNREACH_NLRI, v))
            return
        try:
            withdrawn = _prefixes(v, 3, len(v), _BITS[family])
        except _BadNlri as exc:
            raise UpdateMessageError(
                UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, f"MP_UNREACH_NLRI: {exc}", whole
            ) from None
        self.mp_unreach = MpUnreach(afi, safi, withdrawn)

    def _finish(self, has_nlri: bool) -> None:
        """AS4 reconciliation, then the mandatory attributes of announcements."""
        if self.as4_path is not None and "as_path" in self.values:
            self.values["as_path"] = _merge_as4(self.values["as_path"], self.as4_path)  # type: ignore[arg-type]
        agg = self.values.get("aggregator")
        if self.as4_aggregator is not None and isinstance(agg, tuple) and agg[0] == AS_TRANS:
            self.values["aggregator"] = self.as4_aggregator
        required: list[AttrType] = []
        if has_nlri:
            required = [AttrType.ORIGIN, AttrType.AS_PATH, AttrType.NEXT_HOP]
        elif self.mp_reach is not None and self.mp_reach.nlri:
            required = [AttrType.ORIGIN, AttrType.AS_PATH]
        for atype in required:
            if atype not in self.seen:
                exc = UpdateMessageError(
                    UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE,
                    f"missing {atype.name}",
                    bytes([atype]),
                )
                if not self.ctx.revised:
                    raise exc
                self.error = self.error or exc

    def _attributes(self) -> PathAttributes | None:
        if not self.values and not self.other:
            return None  # only MP_REACH/MP_UNREACH
        return PathAttributes(other=tuple(self.other), **self.values)  # type: ignore[arg-type]


def _as_path(v: bytes, size: int, whole: bytes) -> tuple[AsPathSegment, ...]:
    segments: list[AsPathSegment] = []
    fmt = "I" if size == 4 else "H"
    i = 0
    while i < len(v):
        if len(v) - i < 2:
            raise UpdateMessageError(UpdateSubcode.MALFORMED_AS_PATH, "truncated segment", whole)
        stype, count = v[i], v[i + 1]
        if not 1 <= stype <= 4 or count == 0:
            raise UpdateMessageError(
                UpdateSubcode.MALFORMED_AS_PATH, f"segment type {stype} count {count}", whole
            )
        end = i + 2 + count * size
        if end > len(v):
            raise UpdateMessageError(UpdateSubcode.MALFORMED_AS_PATH, "segment overruns", whole)
        asns = struct.unpack_from(f"!{count}{fmt}", v, i + 2)
        if 0 in asns:  # RFC 7607: AS 0 is never on a path
            raise UpdateMessageError(UpdateSubcode.MALFORMED_AS_PATH, "AS 0 in the path", whole)
        segments.append(AsPathSegment(_SEGMENT_TYPES[stype], asns))
        i = end
    return tuple(segments)


def _leads_with(path: tuple[AsPathSegment, ...], asn: int) -> bool:
    return bool(path) and path[0].type == SegmentType.AS_SEQUENCE and path[0].asns[0] == asn


def _path_count(path: tuple[AsPathSegment, ...]) -> int:
    """RFC 6793 §4.2.3 counting: a set counts one, confederation segments none."""
    n = 0
    for seg in path:
        if seg.type == SegmentType.AS_SEQUENCE:
            n += len(seg.asns)
        elif seg.type == SegmentType.AS_SET:
            n += 1
    return n


def _merge_as4(
    path: tuple[AsPathSegment, ...], as4: tuple[AsPathSegment, ...]
) -> tuple[AsPathSegment, ...]:
    """The real path from a 2-octet AS_PATH and its AS4_PATH (RFC 6793 §4.2.3)."""
    keep = _path_count(path) - _path_count(as4)
    if keep < 0:
        return path
    lead: list[AsPathSegment] = []
    for seg in path:
        if keep <= 0:
            break
        if seg.type == SegmentType.AS_SEQUENCE:
            taken = seg.asns[:keep]
            lead.append(AsPathSegment(seg.type, taken))
            keep -= len(taken)
        elif seg.type == SegmentType.AS_SET:
            lead.append(seg)
            keep -= 1
        else:
            lead.append(seg)
    return (*lead, *as4)


# --- encoding -------------------------------------------------------------------------------


def encode(msg: Message, four_octet_as: bool = True) -> bytes:
    """The wire form of ``msg``; raises LocalProtocolError if it cannot be expressed."""
    if isinstance(msg, Update):
        mtype, body = MessageType.UPDATE, encode_update_body(msg, four_octet_as)
    elif isinstance(msg, Keepalive):
        mtype, body = MessageType.KEEPALIVE, b""
    elif isinstance(msg, Open):
        mtype, body = MessageType.OPEN, _encode_open(msg)
    elif isinstance(msg, Notification):
        mtype, body = MessageType.NOTIFICATION, bytes([msg.code, msg.subcode]) + msg.data
    elif isinstance(msg, RouteRefresh):
        mtype, body = MessageType.ROUTE_REFRESH, struct.pack("!HBB", msg.afi, msg.subtype, msg.safi)
    else:  # pragma: no cover - the union is exhaustive
        raise LocalProtocolError(f"not a BGP message: {msg!r}")
    length = HEADER_SIZE + len(body)
    if length > MAX_MESSAGE_SIZE:
        raise LocalProtocolError(f"{mtype.name} of {length} bytes exceeds {MAX_MESSAGE_SIZE}")
    return MARKER + struct.pack("!HB", length, mtype) + body


def _encode_capability(cap: Capability) -> bytes:
    if isinstance(cap, Multiprotocol):
        code, value = CapabilityCode.MULTIPROTOCOL, struct.pack("!HBB", cap.afi, 0, cap.safi)
    elif isinstance(cap, RouteRefreshCapability):
        code, value = CapabilityCode.ROUTE_REFRESH, b""
    elif isinstance(cap, FourOctetAs):
        code, value = CapabilityCode.FOUR_OCTET_AS, struct.pack("!I", cap.asn)
    elif isinstance(cap, GracefulRestart):
        code = CapabilityCode.GRACEFUL_RESTART
        value = struct.pack("!H", (cap.flags << 12) | cap.restart_time_s) + b"".join(
            struct.pack("!HBB", *f) for f in cap.families
        )
    else:
        code, value = cap.code, cap.data  # type: ignore[assignment]
    return bytes([code, len(value)]) + value


def _encode_open(msg: Open) -> bytes:
    caps = b"".join(_encode_capability(c) for c in msg.capabilities)
    params = bytes([2, len(caps)]) + caps if caps else b""
    if len(caps) > 255:
        raise LocalProtocolError("capabilities too long for one optional parameter")
    return (
        struct.pack("!BHH", msg.version, msg.my_as, msg.hold_time)
        + ipaddress.IPv4Address(msg.bgp_id).packed
        + bytes([len(params)])
        + params
    )


def encode_prefixes(afi: Afi, prefixes: tuple[int, ...] | list[int]) -> bytes:
    bits = _BITS[afi]
    out = bytearray()
    for p in prefixes:
        plen = p & 0xFF
        nbytes = (plen + 7) >> 3
        out.append(plen)
        out += ((p >> 8) >> (bits - (nbytes << 3))).to_bytes(nbytes, "big")
    return bytes(out)


def _attr(flags: int, atype: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | AttrFlag.EXTENDED_LENGTH, atype, len(value)) + value
    return struct.pack("!BBB", flags & ~AttrFlag.EXTENDED_LENGTH, atype, len(value)) + value


def _encode_path(path: tuple[AsPathSegment, ...], size: int) -> bytes:
    fmt = "I" if size == 4 else "H"
    out = bytearray()
    for seg in path:
        asns = seg.asns if size == 4 else tuple(a if a <= 0xFFFF else AS_TRANS for a in seg.asns)
        out += struct.pack(f"!BB{len(asns)}{fmt}", seg.type, len(asns), *asns)
    return bytes(out)


def encode_attributes(
    a: PathAttributes,
    four_octet_as: bool = True,
    mp_reach: MpReach | None = None,
    mp_unreach: MpUnreach | None = None,
) -> bytes:
    out = bytearray()
    if a.origin is not None:
        out += _attr(_WELL_KNOWN, AttrType.ORIGIN, bytes([a.origin]))
    needs_as4 = False
    if a.as_path is not None:
        size = 4 if four_octet_as else 2
        out += _attr(_WELL_KNOWN, AttrType.AS_PATH, _encode_path(a.as_path, size))
        needs_as4 = not four_octet_as and any(x > 0xFFFF for x in a.flat_as_path())
    if a.next_hop is not None:
        out += _attr(_WELL_KNOWN, AttrType.NEXT_HOP, ipaddress.IPv4Address(a.next_hop).packed)
    if a.med is not None:
        out += _attr(_OPTIONAL, AttrType.MULTI_EXIT_DISC, struct.pack("!I", a.med))
    if a.local_pref is not None:
        out += _attr(_WELL_KNOWN, AttrType.LOCAL_PREF, struct.pack("!I", a.local_pref))
    if a.atomic_aggregate:
        out += _attr(_WELL_KNOWN, AttrType.ATOMIC_AGGREGATE, b"")
    if a.aggregator is not None:
        asn, addr = a.aggregator
        packed = ipaddress.IPv4Address(addr).packed
        if four_octet_as:
            out += _attr(_OPTIONAL_TRANSITIVE, AttrType.AGGREGATOR, struct.pack("!I", asn) + packed)
        else:
            small = asn if asn <= 0xFFFF else AS_TRANS
            out += _attr(
                _OPTIONAL_TRANSITIVE, AttrType.AGGREGATOR, struct.pack("!H", small) + packed
            )
            if asn > 0xFFFF:
                out += _attr(
                    _OPTIONAL_TRANSITIVE,
                    AttrType.AS4_AGGREGATOR,
                    struct.pack("!I", asn) + packed,
                )
    if a.communities:
        out += _attr(
            _OPTIONAL_TRANSITIVE,
            AttrType.COMMUNITIES,
            struct.pack(f"!{len(a.communities)}I", *a.communities),
        )
    if mp_reach is not None:
        nh = ipaddress.ip_address(mp_reach.next_hop).packed
        if mp_reach.link_local_next_hop:
            nh += ipaddress.IPv6Address(mp_reach.link_local_next_hop).packed
        value = (
            struct.pack("!HBB", mp_reach.afi, mp_reach.safi, len(nh))
            + nh
            + b"\x00"
            + encode_prefixes(Afi(mp_reach.afi), mp_reach.nlri)
        )
        out += _attr(_OPTIONAL, AttrType.MP_REACH_NLRI, value)
    if mp_unreach is not None:
        value = struct.pack("!HB", mp_unreach.afi, mp_unreach.safi) + encode_prefixes(
            Afi(mp_unreach.afi), mp_unreach.withdrawn
        )
        out += _attr(_OPTIONAL, AttrType.MP_UNREACH_NLRI, value)
    if needs_as4 and a.as_path is not None:
        out += _attr(_OPTIONAL_TRANSITIVE, AttrType.AS4_PATH, _encode_path(a.as_path, 4))
    if a.large_communities:
        words = [w for triple in a.large_communities for w in triple]
        out += _attr(
            _OPTIONAL_TRANSITIVE,
            AttrType.LARGE_COMMUNITIES,
            struct.pack(f"!{len(words)}I", *words),
        )
    for raw in a.other:
        out += _attr(raw.flags, raw.type, raw.value)
    return bytes(out)


def encode_update_body(msg: Update, four_octet_as: bool = True) -> bytes:
    withdrawn = encode_prefixes(Afi.IPV4, msg.withdrawn)
    attrs = b""
    if msg.attributes is not None or msg.mp_reach is not None or msg.mp_unreach is not None:
        attrs = encode_attributes(
            msg.attributes or PathAttributes(), four_octet_as, msg.mp_reach, msg.mp_unreach
        )
    return (
        struct.pack("!H", len(withdrawn))
        + withdrawn
        + struct.pack("!H", len(attrs))
        + attrs
        + encode_prefixes(Afi.IPV4, msg.nlri)
    )
