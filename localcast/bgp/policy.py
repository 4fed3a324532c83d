"""The import policy of one neighbor: which announced prefixes we keep, and why not.

A pure function of (family, prefixes, attributes): :meth:`ImportPolicy.classify`
splits an UPDATE's prefixes into accepted and rejected-with-a-:class:`Reason`.
Checks, first failing wins: the default route, bogons (loopback only when the
neighbor allows it), longer than the family's maximum length, our own AS in
the path, an origin AS not registered to the partner, RPKI invalid. The
max-prefix limit depends on what is already held, so the Adj-RIB-In applies
it (:attr:`ImportPolicy.max_prefixes`, reason :attr:`Reason.MAX_PREFIXES`).

No I/O, no state: building a policy from config is the speaker's job.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from localcast.bgp import prefix as pfx
from localcast.bgp.messages import PathAttributes
from localcast.bgp.prefix import Afi
from localcast.bgp.rpki import RpkiState, VrpTable


class Reason(enum.StrEnum):
    DEFAULT_ROUTE = "default_route"
    BOGON = "bogon"
    TOO_SPECIFIC = "too_specific"
    AS_PATH_LOOP = "as_path_loop"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    RPKI_INVALID = "rpki_invalid"
    MAX_PREFIXES = "max_prefixes"


#: Never routed on the Internet (IANA special-purpose registries, Team Cymru bogons).
BOGONS_V4 = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # shared address space (CGN)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link local
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # TEST-NET-1
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # TEST-NET-2
    "203.0.113.0/24",  # TEST-NET-3
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # class E, and the limited broadcast address
)
BOGONS_V6 = (
    "::/8",  # unspecified, loopback, IPv4-mapped and -compatible
    "100::/64",  # discard only
    "2001:2::/48",  # benchmarking
    "2001:10::/28",  # ORCHID
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4
    "3ffe::/16",  # old 6bone
    "3fff::/20",  # documentation (RFC 9637)
    "fc00::/7",  # unique local
    "fe80::/10",  # link local
    "fec0::/10",  # old site local
    "ff00::/8",  # multicast
)
_LOOPBACK = {Afi.IPV4: pfx.parse("127.0.0.0/8")[1], Afi.IPV6: pfx.parse("::1/128")[1]}


def _bogon_index(texts: tuple[str, ...]) -> tuple[tuple[int, frozenset[int]], ...]:
    """(length, {network >> (bits - length)}) ascending by length."""
    by_len: dict[int, set[int]] = {}
    for text in texts:
        afi, p = pfx.parse(text)
        length = pfx.length_of(p)
        by_len.setdefault(length, set()).add(pfx.network_of(p) >> (pfx.BITS[afi] - length))
    return tuple((length, frozenset(nets)) for length, nets in sorted(by_len.items()))


_BOGONS = {Afi.IPV4: _bogon_index(BOGONS_V4), Afi.IPV6: _bogon_index(BOGONS_V6)}


@dataclass(frozen=True)
class ImportPolicy:
    local_as: int
    peer_as: int
    allowed_origins: frozenset[int] | None = None  # None: any origin
    max_length_v4: int = 24
    max_length_v6: int = 48
    allow_loopback: bool = False
    max_prefixes: int | None = None
    rpki: VrpTable | None = None

    def is_bogon(self, afi: Afi, prefix: int) -> bool:
        """Inside a bogon range (and not loopback space this neighbor may announce)."""
        length, network, bits = prefix & 0xFF, prefix >> 8, pfx.BITS[afi]
        for blen, nets in _BOGONS[afi]:
            if blen > length:
                break
            if network >> (bits - blen) in nets:
                return not (self.allow_loopback and pfx.covers(afi, _LOOPBACK[afi], prefix))
        return False

    def route_reason(self, attrs: PathAttributes) -> Reason | None:
        """What is wrong with the route whatever its prefix (path and origin)."""
        path = attrs.flat_as_path()
        if self.local_as in path:
            return Reason.AS_PATH_LOOP
        if self.allowed_origins is not None:
            origin = attrs.origin_as(self.peer_as)
            if origin is None or origin not in self.allowed_origins:
                return Reason.ORIGIN_NOT_ALLOWED
        return None

    def classify(
        self, afi: Afi, prefixes: tuple[int, ...], attrs: PathAttributes
    ) -> tuple[list[int], list[tuple[int, Reason]]]:
        """Split one UPDATE's prefixes of family ``afi`` into (accepted, rejected)."""
        accepted: list[int] = []
        rejected: list[tuple[int, Reason]] = []
        route_reason = self.route_reason(attrs)
        max_length = self.max_length_v4 if afi == Afi.IPV4 else self.max_length_v6
        bits = pfx.BITS[afi]
        bogons = _BOGONS[afi]
        rpki = self.rpki
        origin = attrs.origin_as(self.peer_as) if rpki is not None else None
        loopback_ok = self.allow_loopback
        keep, drop = accepted.append, rejected.append
        for p in prefixes:
            length = p & 0xFF
            if length == 0:
                drop((p, Reason.DEFAULT_ROUTE))
                continue
            network = p >> 8
            bogon = False
            for blen, nets in bogons:
                if blen > length:
                    break
                if network >> (bits - blen) in nets:
                    bogon = True
                    break
            if bogon and loopback_ok:
                bogon = not pfx.covers(afi, _LOOPBACK[afi], p)
            if bogon:
                drop((p, Reason.BOGON))
            elif length > max_length:
                drop((p, Reason.TOO_SPECIFIC))
            elif route_reason is not None:
                drop((p, route_reason))
            elif rpki is not None and rpki.validate(afi, p, origin) == RpkiState.INVALID:
                drop((p, Reason.RPKI_INVALID))
            else:
                keep(p)
        return accepted, rejected
