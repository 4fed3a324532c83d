"""A route prefix as one int: ``(network << 8) | length``, per address family.

A full table is about a million prefixes; held as ``ipaddress`` objects or
tuples they cost twice the memory and twice the decode time of one int each
(measured: 0.96 M vs 1.9 M prefixes/s decoded, 121 vs 65 MiB for 900k in a
dict). So the codec, the policy and the Adj-RIB-In pass prefixes around as
these ints, always together with their address family (:class:`Afi`), and
only turn them into text at the edges (logs, JSON, tests).

Pure helpers only: no I/O, nothing that knows BGP messages.
"""

from __future__ import annotations

import enum
import ipaddress


class Afi(enum.IntEnum):
    """Address family identifiers (IANA), the ones an appliance handles."""

    IPV4 = 1
    IPV6 = 2


class Safi(enum.IntEnum):
    UNICAST = 1


#: Address width in bits per family.
BITS = {Afi.IPV4: 32, Afi.IPV6: 128}


def make(network: int, length: int) -> int:
    """The packed prefix; ``network`` must already have its host bits cleared."""
    return (network << 8) | length


def network_of(prefix: int) -> int:
    return prefix >> 8


def length_of(prefix: int) -> int:
    return prefix & 0xFF


def mask(afi: Afi, length: int) -> int:
    bits = BITS[afi]
    return ((1 << length) - 1) << (bits - length) if length else 0


def to_text(afi: Afi, prefix: int) -> str:
    """``"203.0.113.0/24"`` or ``"2001:db8::/32"``."""
    network, length = prefix >> 8, prefix & 0xFF
    if afi == Afi.IPV4:
        return (
            f"{network >> 24}.{network >> 16 & 255}.{network >> 8 & 255}.{network & 255}/{length}"
        )
    return f"{ipaddress.IPv6Address(network)}/{length}"


def parse(text: str, strict: bool = True) -> tuple[Afi, int]:
    """A prefix from text; ``strict`` refuses host bits set (``10.0.0.1/8``).

    Raises ``ValueError`` for anything that is not a prefix.
    """
    net = ipaddress.ip_network(text.strip(), strict=strict)
    afi = Afi.IPV4 if net.version == 4 else Afi.IPV6
    return afi, make(int(net.network_address), net.prefixlen)


def covers(afi: Afi, outer: int, inner: int) -> bool:
    """Whether prefix ``outer`` contains prefix ``inner`` (or equals it)."""
    olen, ilen = outer & 0xFF, inner & 0xFF
    if olen > ilen:
        return False
    shift = BITS[afi] - olen
    return (outer >> 8) >> shift == (inner >> 8) >> shift if olen else True
