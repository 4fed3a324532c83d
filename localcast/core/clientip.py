"""The client's address: the socket peer, or what a trusted proxy forwarded.

``X-Forwarded-For`` is only believed when the socket peer is one of the
configured trusted proxies; then the header is read right to left (each
proxy appends the address it received from), skipping further trusted
proxies, and the first untrusted address is the client. A forwarded header
from an untrusted peer is ignored entirely: anyone can write one.

Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from localcast.core.routes import IPNetwork, parse_address


@dataclass(frozen=True)
class ClientAddress:
    ip: str
    reason: str


def parse_trusted(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Trusted proxies as networks (``127.0.0.1`` or ``10.0.0.0/8``); ValueError names the entry."""
    out: list[IPNetwork] = []
    for i, entry in enumerate(entries):
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"trusted_proxies[{i}]: {entry!r} is not an address or network"
            ) from exc
    return tuple(out)


def _trusted(ip: str, trusted: Sequence[IPNetwork]) -> bool:
    addr = parse_address(ip)
    return any(addr.version == net.version and addr in net for net in trusted)


def client_address(
    peer: str, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> ClientAddress:
    """The client address for a request from socket ``peer`` carrying ``forwarded_for``."""
    try:
        peer = str(parse_address(peer))
    except ValueError:
        return ClientAddress(peer, "socket peer (not an IP address)")
    if not forwarded_for:
        return ClientAddress(peer, "socket peer")
    if not _trusted(peer, trusted):
        return ClientAddress(peer, f"socket peer; X-Forwarded-For ignored: {peer} is not trusted")
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    current = peer
    for hop in reversed(hops):
        try:
            hop = str(parse_address(hop))
        except ValueError:
            return ClientAddress(current, f"X-Forwarded-For entry {hop!r} is malformed; stop")
        if not _trusted(hop, trusted):
            return ClientAddress(hop, f"X-Forwarded-For from trusted proxy {current}")
        current = hop
    return ClientAddress(current, "X-Forwarded-For: every hop is a trusted proxy")
