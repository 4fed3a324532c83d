"""What the speaker tells the rest of the appliance: events, and per-neighbor status.

Events (:data:`SpeakerEvent`) are the feed the relay forwards to the control
plane: route deltas, session state changes, End-of-RIB markers and the
max-prefix alarm. :class:`NeighborStatus` is a snapshot for status pages and
the CLI. Plain frozen data; no behaviour, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localcast.bgp.adjrib import RibDelta
from localcast.bgp.fsm import State
from localcast.bgp.prefix import Afi


@dataclass(frozen=True)
class RouteDelta:
    neighbor: str
    delta: RibDelta


@dataclass(frozen=True)
class SessionChanged:
    neighbor: str
    old: State
    new: State
    reason: str
    at: float  # wall clock, seconds


@dataclass(frozen=True)
class EndOfRib:
    """The neighbor has sent its whole table for this family (RFC 4724)."""

    neighbor: str
    afi: Afi


@dataclass(frozen=True)
class MaxPrefixAlarm:
    """The neighbor announced more than its max_prefixes: further prefixes are refused."""

    neighbor: str
    limit: int


SpeakerEvent = RouteDelta | SessionChanged | EndOfRib | MaxPrefixAlarm


@dataclass(frozen=True)
class NeighborStatus:
    address: str
    remote_as: int
    description: str
    state: State
    state_since: float  # wall clock
    uptime_s: float | None  # while established
    last_error: str | None
    peer_router_id: str | None
    hold_time_s: int | None  # negotiated
    families: tuple[str, ...]  # negotiated, "ipv4"/"ipv6"
    received: int  # prefixes currently announced by the peer
    accepted: int  # ... of which in the Adj-RIB-In
    filtered: dict[str, int] = field(default_factory=dict)  # ... refused now, by reason
    rejected_total: dict[str, int] = field(default_factory=dict)  # ever refused, by reason
    treat_as_withdraw: int = 0
    max_prefix_alarm: bool = False
    end_of_rib: tuple[str, ...] = ()
    updates_received: int = 0
    messages_received: int = 0
    messages_sent: int = 0
    established_count: int = 0
    connections_refused: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "remote_as": self.remote_as,
            "description": self.description,
            "state": str(self.state),
            "state_since": self.state_since,
            "uptime_s": self.uptime_s,
            "last_error": self.last_error,
            "peer_router_id": self.peer_router_id,
            "hold_time_s": self.hold_time_s,
            "families": list(self.families),
            "received": self.received,
            "accepted": self.accepted,
            "filtered": dict(self.filtered),
            "rejected_total": dict(self.rejected_total),
            "treat_as_withdraw": self.treat_as_withdraw,
            "max_prefix_alarm": self.max_prefix_alarm,
            "end_of_rib": list(self.end_of_rib),
            "updates_received": self.updates_received,
            "messages_received": self.messages_received,
            "messages_sent": self.messages_sent,
            "established_count": self.established_count,
            "connections_refused": self.connections_refused,
        }
