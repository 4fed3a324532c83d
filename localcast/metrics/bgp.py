"""The BGP speaker's metric families, from what it already reports (``NeighborStatus``).

Nothing is counted on the speaker's path: once a second :func:`publish_speaker`
reads every session's status (the same numbers ``localcast bgp run`` prints)
into a :class:`~localcast.metrics.MetricsWriter`. Families::

    localcast_bgp_session_state{neighbor, state}         1 for the current state, 0 for the others
    localcast_bgp_session_uptime_seconds{neighbor}       0 unless established
    localcast_bgp_session_established_total{neighbor}    times the session came up
    localcast_bgp_routes_received{neighbor}              prefixes the peer announces now
    localcast_bgp_routes_accepted{neighbor}              ... of which in the Adj-RIB-In
    localcast_bgp_routes_filtered{neighbor, reason}      ... refused now, by policy reason
    localcast_bgp_routes_rejected_total{neighbor, reason}   every refusal ever, by reason
    localcast_bgp_routes_treat_as_withdraw_total{neighbor}  prefixes of malformed UPDATEs
    localcast_bgp_max_prefix_alarm{neighbor}
    localcast_bgp_updates_received_total{neighbor}
    localcast_bgp_messages_received_total{neighbor}, localcast_bgp_messages_sent_total{neighbor}
    localcast_bgp_connections_refused_total{neighbor}    a configured peer's extra connections
    localcast_bgp_unknown_peer_connections_total         connections from unconfigured addresses
    localcast_bgp_relay_posts_total, localcast_bgp_relay_up   (when relaying to the control plane)
"""

from __future__ import annotations

from collections.abc import Iterable

from localcast.bgp.events import NeighborStatus
from localcast.bgp.fsm import State
from localcast.bgp.policy import Reason
from localcast.metrics.snapshot import MetricsWriter

COMPONENT = "bgp"
P = "localcast_bgp_"


def publish_speaker(
    writer: MetricsWriter,
    statuses: Iterable[NeighborStatus],
    unknown_peer_connections: int = 0,
    relay: tuple[int, bool] | None = None,
) -> None:
    """Set the speaker's families in ``writer`` (``relay``: posts made, control plane reachable).

    Neighbors are re-listed on every call, so one removed from the config
    disappears from the gauges.
    """
    w = writer
    for name in ("session_state", "session_uptime_seconds", "max_prefix_alarm"):
        w.clear(P + name)
    w.clear(P + "routes_received")
    w.clear(P + "routes_accepted")
    w.clear(P + "routes_filtered")
    for s in statuses:
        n = {"neighbor": s.address}
        for state in State:
            w.gauge(
                P + "session_state",
                {"neighbor": s.address, "state": str(state)},
                1 if s.state == state else 0,
                help="BGP session state per neighbor: 1 for the current state.",
            )
        w.gauge(
            P + "session_uptime_seconds",
            n,
            round(s.uptime_s, 3) if s.uptime_s is not None else 0,
            help="Seconds since the session was established (0 when it is not).",
        )
        w.counter(
            P + "session_established",
            n,
            s.established_count,
            help="Times the session reached Established.",
        )
        w.gauge(P + "routes_received", n, s.received, help="Prefixes the neighbor announces now.")
        w.gauge(
            P + "routes_accepted",
            n,
            s.accepted,
            help="Prefixes of the neighbor in the Adj-RIB-In (accepted by the import policy).",
        )
        for reason in Reason:
            labels = {"neighbor": s.address, "reason": str(reason)}
            w.gauge(
                P + "routes_filtered",
                labels,
                s.filtered.get(str(reason), 0),
                help="Prefixes of the neighbor refused now by the import policy, by reason.",
            )
            w.counter(
                P + "routes_rejected",
                labels,
                s.rejected_total.get(str(reason), 0),
                help="Prefixes refused by the import policy since start, by reason.",
            )
        w.counter(
            P + "routes_treat_as_withdraw",
            n,
            s.treat_as_withdraw,
            help="Prefixes withdrawn because their UPDATE was malformed (RFC 7606).",
        )
        w.gauge(
            P + "max_prefix_alarm",
            n,
            1 if s.max_prefix_alarm else 0,
            help="1 while the neighbor is over its max-prefix limit.",
        )
        w.counter(P + "updates_received", n, s.updates_received, help="UPDATE messages received.")
        w.counter(P + "messages_received", n, s.messages_received, help="BGP messages received.")
        w.counter(P + "messages_sent", n, s.messages_sent, help="BGP messages sent.")
        w.counter(
            P + "connections_refused",
            n,
            s.connections_refused,
            help="Connections from the neighbor refused (a session was already up).",
        )
    w.counter(
        P + "unknown_peer_connections",
        None,
        unknown_peer_connections,
        help="Connections refused because they came from no configured neighbor.",
    )
    if relay is not None:
        posts, up = relay
        w.counter(P + "relay_posts", None, posts, help="Route posts made to the control plane.")
        w.gauge(
            P + "relay_up",
            None,
            1 if up else 0,
            help="1 while the relay reaches the control plane.",
        )
