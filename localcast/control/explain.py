"""``GET /v1/steering/explain`` as JSON: a steering decision made readable.

The core's :class:`~localcast.core.steering.SteeringDecision` already says,
for each candidate site, the rule that made it a candidate, the decision step
that placed it and against which site, and why. This module turns it into
the answer operators read: the client's location and what placed it, the
decision steps in order, one entry per candidate site (with the BGP
attributes of the route that ranked it, when learned), a one-line summary
per site, the chosen pathways and every appliance left out with its reason.
Rendering only, no decision.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from localcast.core.decision import STEPS
from localcast.core.fleet import FleetSnapshot
from localcast.core.rib import parse_prefix
from localcast.core.steering import SiteExplain, SteeringDecision


def _route(snap: FleetSnapshot, s: SiteExplain) -> dict[str, Any] | None:
    """The learned route that ranked site ``s`` (None for configured prefixes and defaults)."""
    if s.appliance_id is None or s.prefix is None:
        return None
    rib = snap.routes.learned.ribs.get(s.appliance_id)
    if rib is None:
        return None
    version, key = parse_prefix(s.prefix)
    path = rib.table(version).get(key)
    if path is None:
        return None
    a = path.attributes
    return {
        "appliance_id": s.appliance_id,
        "prefix": s.prefix,
        "as_path": list(a.as_path),
        "local_pref": a.local_pref,
        "origin": a.origin.name.lower(),
        "med": a.med,
        "communities": [f"{c >> 16}:{c & 0xFFFF}" for c in a.communities],
        "peer": path.peer.address,
        "peer_as": path.peer.asn,
        "peer_router_id": path.peer.router_id_text,
        "ebgp": path.peer.ebgp,
        "next_hop": path.next_hop,
        "received_at": path.received_at,
    }


def _site(snap: FleetSnapshot, s: SiteExplain) -> dict[str, Any]:
    return {
        "rank": s.rank,
        "site_id": s.site_id,
        "kind": str(s.kind),
        "rule": str(s.rule),
        "prefix": s.prefix,
        "appliance_id": s.appliance_id,
        "decided_by": str(s.decided_by),
        "versus": s.versus,
        "distance_km": None if s.distance_km is None else round(s.distance_km, 1),
        "reason": s.reason,
        "route": _route(snap, s),
    }


def _line(s: SiteExplain) -> str:
    return f"#{s.rank} {s.site_id} ({s.kind}, {s.rule}) [{s.decided_by}]: {s.reason}"


def explanation(
    snap: FleetSnapshot, decision: SteeringDecision, geoip: bool = False
) -> dict[str, Any]:
    """The JSON body of an explain answer for ``decision`` taken on ``snap``."""
    where = decision.client_location
    return {
        "snapshot_version": decision.snapshot_version,
        "client_ip": decision.client_ip,
        "title_id": decision.title_id,
        "reason": decision.reason,
        "geoip": geoip,
        "client_location": None
        if where is None
        else {"lat": where.lat, "lon": where.lon, "source": where.source},
        "decision_steps": [str(step) for step, _ in STEPS],
        "summary": [_line(s) for s in decision.sites],
        "sites": [_site(snap, s) for s in decision.sites],
        "pathways": [
            {**asdict(p), "kind": str(p.kind), "rule": str(p.rule), "decided_by": str(p.decided_by)}
            for p in decision.pathways
        ],
        "excluded": [asdict(x) for x in decision.excluded],
    }
