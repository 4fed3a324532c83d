"""Steering: which appliances should serve this client this title, best first.

Inputs are data only: a :class:`~localcast.core.fleet.FleetSnapshot`, the
client address, the title, ``now`` and optionally a :data:`~localcast.core.geo.Locate`
function (a GeoIP database). The rules, in the order they apply:

1. **Candidate sites** (:func:`candidate_sites`, the one place that reads
   routes, through :func:`~localcast.core.routes.select_routes`): a site
   one of whose appliances heard a BGP route covering the client is a
   candidate (``bgp-route``), by the best of its appliances' routes; a site
   with no BGP-speaking appliance is a candidate when one of its configured
   prefixes covers the client (``prefix-match``); an IX site with neither
   is reachable over peering from any network (``peering-default``); origin
   sites are candidates for everyone (``origin``). Embedded and PNI sites
   serve only the clients their routes cover.
2. **Site order**: the decision process of :mod:`localcast.core.decision`
   (origin last; longest prefix; connection kind, embedded > pni > ix; the
   BGP attributes; distance from the client; load; site id). Every site
   carries the step that placed it.
3. **Appliance eligibility**: at a BGP site, only the appliances that heard
   a route covering the client ("heard no route covering ..." otherwise:
   the ISP's advertisements to the site differ); registered, not drained, alive
   (:func:`localcast.core.health.liveness`), taking new sessions by its
   steering state (:attr:`~localcast.core.fleet.Appliance.steering`: drain,
   disable, turn-up and held status, computed by the control plane and held
   by the snapshot; its reason otherwise, prefixed "health miss" when only
   the status restricts it), holds the title complete ("content miss"
   otherwise), not saturated ("health miss" otherwise).
4. **Order inside a site**: rendezvous hashing of the title id over the
   site's eligible appliances, weighted by capacity (score
   ``-gbps / ln(h)``), so each title sticks to the same appliances and
   load spreads in proportion to capacity with little churn.
5. **Selection**: at most ``limit`` pathways; at most ``per_site`` from one
   site on a first pass (so one site's outage leaves alternatives), then
   filled in order; one slot is kept for the origin when it is eligible.
6. **Last resort**: when no appliance is eligible, origin appliances that
   only fail the liveness check are returned anyway, flagged as such.

Every pathway carries the rule and reason that placed it, every appliance
left out carries the reason why, and the decision lists every candidate site
with the decision step that ranked it (for ``/v1/steering/explain``).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from localcast.core.decision import (
    Candidate,
    RankedSite,
    Rule,
    Step,
    client_location,
    order,
    rank_sites,
)
from localcast.core.fleet import (
    Appliance,
    ApplianceState,
    FleetSnapshot,
    Site,
    SiteKind,
)
from localcast.core.geo import Locate, Location
from localcast.core.health import liveness, saturated
from localcast.core.routes import IPAddress, RouteMatch, parse_address, select_routes

DEFAULT_LIMIT = 4
DEFAULT_PER_SITE = 2
HEALTH_MISS = "health miss"  # how an exclusion for the appliance's health begins


@dataclass(frozen=True)
class SiteCandidate:
    """A candidate site in steering order, with the route and the step that placed it.

    ``routed`` is, for a BGP site, the appliances that heard a route covering
    the client (the others may not serve it); None means every appliance.
    """

    site: Site
    rule: Rule
    prefix: str | None
    prefix_len: int
    reason: str
    decided_by: Step = Step.ONLY
    routed: frozenset[str] | None = None
    ranked: RankedSite | None = None


@dataclass(frozen=True)
class SiteExplain:
    """One line of the site ranking, for ``/v1/steering/explain``."""

    rank: int
    site_id: str
    kind: SiteKind
    rule: Rule
    prefix: str | None
    appliance_id: str | None  # whose BGP route ranked the site
    decided_by: Step
    versus: str | None
    distance_km: float | None
    reason: str


@dataclass(frozen=True)
class RankedPathway:
    rank: int  # 1 = best
    appliance_id: str
    site_id: str
    kind: SiteKind
    base_url: str
    rule: Rule
    reason: str
    decided_by: Step = Step.ONLY  # the decision step that ranked its site

    @property
    def pathway_id(self) -> str:
        """The HLS PATHWAY-ID / DASH serviceLocation of this appliance."""
        return self.appliance_id


@dataclass(frozen=True)
class Exclusion:
    appliance_id: str
    site_id: str
    reason: str


@dataclass(frozen=True)
class SteeringDecision:
    snapshot_version: int
    client_ip: str
    title_id: str
    pathways: tuple[RankedPathway, ...]
    excluded: tuple[Exclusion, ...]
    reason: str
    sites: tuple[SiteExplain, ...] = ()
    client_location: Location | None = None


@dataclass(frozen=True)
class _Entry:
    """An eligible appliance in the full ranking, before selection."""

    candidate: SiteCandidate
    appliance: Appliance
    place: int  # 1-based rendezvous place inside its site
    of: int  # eligible appliances at the site


# --- rule 1 and 2: candidate sites ---------------------------------------------------------


def _candidates(
    snapshot: FleetSnapshot, addr: IPAddress
) -> tuple[list[Candidate], dict[str, frozenset[str]]]:
    """One candidate per site (its best route), and the routed appliances of BGP sites."""
    learned: dict[str, list[Candidate]] = {}
    found: dict[str, Candidate] = {}
    routed: dict[str, set[str]] = {}
    util = snapshot.site_utilisation

    def candidate(site: Site, m: RouteMatch | None, rule: Rule) -> Candidate:
        load = util.get(site.id, 0.0)
        if m is None:
            return Candidate(site, rule, utilisation=load)
        return Candidate(site, rule, m.prefix, m.prefix_len, m.path, m.appliance_id, load)

    matches = select_routes(
        snapshot.routes, addr, snapshot.appliance_sites, snapshot.speaking_sites
    )
    for m in matches:
        site = snapshot.sites.get(m.site_id)
        if site is None:
            continue
        if site.kind is SiteKind.ORIGIN:
            rule = Rule.ORIGIN
        else:
            rule = Rule.BGP_ROUTE if m.learned else Rule.PREFIX_MATCH
        if m.learned:
            assert m.appliance_id is not None
            learned.setdefault(site.id, []).append(candidate(site, m, rule))
            routed.setdefault(site.id, set()).add(m.appliance_id)
        elif site.id not in found:
            found[site.id] = candidate(site, m, rule)
    for site_id, cands in learned.items():
        found[site_id] = cands[0] if len(cands) == 1 else order(cands)[0]
    for site in snapshot.sites.values():
        if site.id in found:
            continue
        if site.kind is SiteKind.ORIGIN:
            found[site.id] = candidate(site, None, Rule.ORIGIN)
        elif (
            site.kind is SiteKind.IX
            and not site.prefixes
            and site.id not in snapshot.speaking_sites
        ):
            found[site.id] = candidate(site, None, Rule.PEERING_DEFAULT)
    return list(found.values()), {k: frozenset(v) for k, v in routed.items()}


def _ranked(
    snapshot: FleetSnapshot, addr: IPAddress, locate: Locate | None
) -> tuple[tuple[SiteCandidate, ...], Location | None]:
    cands, routed = _candidates(snapshot, addr)
    where = client_location(str(addr), cands, locate)
    out = tuple(
        SiteCandidate(
            site=r.candidate.site,
            rule=r.candidate.rule,
            prefix=r.candidate.prefix,
            prefix_len=max(r.candidate.prefix_len, 0),
            reason=r.reason,
            decided_by=r.decided_by,
            routed=routed.get(r.site_id),
            ranked=r,
        )
        for r in rank_sites(cands, where)
    )
    return out, where


def candidate_sites(
    snapshot: FleetSnapshot, client_ip: str, locate: Locate | None = None
) -> tuple[SiteCandidate, ...]:
    """The sites that may serve ``client_ip``, in steering order (rules 1 and 2)."""
    return _ranked(snapshot, parse_address(client_ip), locate)[0]


# --- rule 3: eligibility -------------------------------------------------------------------


def ineligibility(appliance: Appliance, title_id: str, now: float) -> str | None:
    """Why ``appliance`` cannot serve ``title_id`` now, or None when it can."""
    if appliance.state is not ApplianceState.REGISTERED:
        return "provisioned: never registered"
    if appliance.drained:
        return "drained for maintenance"
    live = liveness(appliance.health, now)
    if not live.alive:
        return live.reason
    st = appliance.steering
    if not st.new_sessions:
        return f"{HEALTH_MISS}: {st.reason}" if st.health else st.reason
    if title_id not in appliance.titles:
        return f"content miss: does not hold {title_id} complete"
    if saturated(appliance):
        return (
            f"{HEALTH_MISS}: saturated ({appliance.load.egress_bps / 1e9:.2f} of "
            f"{appliance.gbps:g} Gbit/s)"
        )
    return None


# --- rule 4: rendezvous hashing ------------------------------------------------------------


def rendezvous_score(key: str, appliance_id: str, weight: float) -> float:
    """Weighted rendezvous (highest random weight) score of ``appliance_id`` for ``key``."""
    digest = hashlib.blake2b(f"{key}\x00{appliance_id}".encode(), digest_size=8).digest()
    h = (int.from_bytes(digest, "big") + 0.5) / 2.0**64  # uniform in (0, 1)
    return -max(weight, 1e-9) / math.log(h)


def rendezvous_order(key: str, appliances: Sequence[Appliance]) -> tuple[Appliance, ...]:
    """``appliances`` ordered by weighted rendezvous score for ``key``, best first."""
    return tuple(
        sorted(appliances, key=lambda a: (-rendezvous_score(key, a.id, a.gbps), a.id)),
    )


# --- the full ranking and the selection ----------------------------------------------------


def _rank_all(
    snapshot: FleetSnapshot,
    client_ip: str,
    title_id: str,
    now: float,
    sites: Sequence[SiteCandidate],
) -> tuple[list[_Entry], list[Exclusion], list[_Entry]]:
    """Eligible appliances in steering order, the excluded ones, and last-resort origins."""
    eligible: list[_Entry] = []
    excluded: list[Exclusion] = []
    last_resort: list[_Entry] = []
    for cand in sites:
        ok: list[Appliance] = []
        dead_origin: list[Appliance] = []
        for appliance in snapshot.appliances_at(cand.site.id):
            if cand.routed is not None and appliance.id not in cand.routed:
                excluded.append(
                    Exclusion(
                        appliance.id,
                        cand.site.id,
                        f"heard no route covering {client_ip} (other appliances of site "
                        f"{cand.site.id} did: the ISP's advertisements to the site differ)",
                    )
                )
                continue
            why = ineligibility(appliance, title_id, now)
            if why is None:
                ok.append(appliance)
                continue
            excluded.append(Exclusion(appliance.id, cand.site.id, why))
            alive = liveness(appliance.health, now).alive
            steering = appliance.steering
            if (
                cand.site.kind is SiteKind.ORIGIN
                and appliance.state is ApplianceState.REGISTERED
                and not appliance.drained
                and not alive
                and (steering.new_sessions or steering.health)
            ):
                dead_origin.append(appliance)
        ordered = rendezvous_order(title_id, ok)
        eligible += [_Entry(cand, a, i + 1, len(ordered)) for i, a in enumerate(ordered)]
        ordered_dead = rendezvous_order(title_id, dead_origin)
        last_resort += [
            _Entry(cand, a, i + 1, len(ordered_dead)) for i, a in enumerate(ordered_dead)
        ]
    return eligible, excluded, last_resort


def _pick(entries: Sequence[_Entry], slots: int, per_site: int) -> list[_Entry]:
    """Rule 5: up to ``per_site`` per site first, then fill in order; keeps the order."""
    if slots <= 0:
        return []
    taken: list[int] = []
    per: dict[str, int] = {}
    for i, e in enumerate(entries):
        if len(taken) == slots:
            break
        if per.get(e.candidate.site.id, 0) < per_site:
            taken.append(i)
            per[e.candidate.site.id] = per.get(e.candidate.site.id, 0) + 1
    for i in range(len(entries)):
        if len(taken) == slots:
            break
        if i not in taken:
            taken.append(i)
    return [entries[i] for i in sorted(taken)]


def _pathway(rank: int, e: _Entry, title_id: str, rule: Rule | None = None) -> RankedPathway:
    reason = f"{e.candidate.reason}; rendezvous #{e.place} of {e.of} at the site for {title_id}"
    if rule is Rule.ORIGIN_LAST_RESORT:
        reason = f"last resort, origin not heartbeating: {reason}"
    return RankedPathway(
        rank=rank,
        appliance_id=e.appliance.id,
        site_id=e.candidate.site.id,
        kind=e.candidate.site.kind,
        base_url=e.appliance.base_url,
        rule=rule or e.candidate.rule,
        reason=reason,
        decided_by=e.candidate.decided_by,
    )


def steer(
    snapshot: FleetSnapshot,
    client_ip: str,
    title_id: str,
    now: float,
    limit: int = DEFAULT_LIMIT,
    per_site: int = DEFAULT_PER_SITE,
    locate: Locate | None = None,
) -> SteeringDecision:
    """Up to ``limit`` ranked pathways for ``client_ip`` to play ``title_id``.

    ``locate`` places the client (a GeoIP database); without it, or when it
    does not know the address, the client is placed at its best-matching
    site. Raises ``ValueError`` for a malformed client address.
    """
    addr = parse_address(client_ip)
    client_ip = str(addr)
    if title_id not in snapshot.catalog:
        return SteeringDecision(
            snapshot.version, client_ip, title_id, (), (), f"title {title_id} is not in the catalog"
        )
    sites, where = _ranked(snapshot, addr, locate)
    eligible, excluded, last_resort = _rank_all(snapshot, client_ip, title_id, now, sites)
    others = [e for e in eligible if e.candidate.site.kind is not SiteKind.ORIGIN]
    origins = [e for e in eligible if e.candidate.site.kind is SiteKind.ORIGIN]
    reserve = 1 if origins and limit > 1 else 0
    chosen = _pick(others, limit - reserve, per_site)
    chosen += _pick(origins, limit - len(chosen), per_site)
    rule: Rule | None = None
    if not chosen and last_resort:
        chosen = _pick(last_resort, limit, per_site)
        rule = Rule.ORIGIN_LAST_RESORT
    pathways = tuple(_pathway(i + 1, e, title_id, rule) for i, e in enumerate(chosen))
    chosen_ids = {p.appliance_id for p in pathways}
    excluded += [
        Exclusion(e.appliance.id, e.candidate.site.id, f"beyond the {limit} pathways chosen")
        for e in eligible
        if e.appliance.id not in chosen_ids
    ]
    excluded = [x for x in excluded if x.appliance_id not in chosen_ids]
    if pathways:
        reason = f"{len(pathways)} pathway(s), best {pathways[0].kind} site {pathways[0].site_id}"
    else:
        reason = f"no live appliance holds {title_id} for {client_ip}"
    return SteeringDecision(
        snapshot.version,
        client_ip,
        title_id,
        pathways,
        tuple(excluded),
        reason,
        tuple(explain_site(c) for c in sites),
        where,
    )


def explain_site(c: SiteCandidate) -> SiteExplain:
    """A ranked candidate site as the line a steering decision's explanation gives it."""
    r = c.ranked
    return SiteExplain(
        rank=r.rank if r else 0,
        site_id=c.site.id,
        kind=c.site.kind,
        rule=c.rule,
        prefix=c.prefix,
        appliance_id=r.candidate.appliance_id if r else None,
        decided_by=c.decided_by,
        versus=r.versus if r else None,
        distance_km=r.distance_km if r else None,
        reason=c.reason,
    )


@dataclass(frozen=True)
class PathwayPriority:
    """A session's pathways re-ranked now: ``order`` best first, demoted ones last.

    ``dropped``: pathways left out of ``order`` (their appliance's steering
    state keeps no in-flight session), each with its reason.
    """

    snapshot_version: int
    order: tuple[str, ...]
    demoted: tuple[Exclusion, ...]
    dropped: tuple[Exclusion, ...] = ()


def rerank(
    snapshot: FleetSnapshot,
    client_ip: str,
    title_id: str,
    session_pathways: Sequence[str],
    now: float,
    locate: Locate | None = None,
) -> PathwayPriority:
    """Re-rank a session's fixed pathways from the current snapshot.

    Eligible pathways keep the steering order; those no longer eligible
    (dead, drained, gone, content miss) move to the end in their original
    order, each with its reason, so a player that has tried everything else
    may still try them. A pathway whose appliance's steering state keeps no
    in-flight session (disabled, dead or failing by its held status, not
    turned up) is dropped, so players move off it now; unless that would
    leave the session no pathway at all (then it stays, demoted: a player
    with nowhere else to go keeps trying it).
    """
    decision = steer(
        snapshot, client_ip, title_id, now, limit=max(len(snapshot.appliances), 1), locate=locate
    )
    ranked = [p.appliance_id for p in decision.pathways if p.appliance_id in session_pathways]
    why = {x.appliance_id: x.reason for x in decision.excluded}
    demoted = [
        Exclusion(
            pid,
            snapshot.appliances[pid].site_id if pid in snapshot.appliances else "",
            why.get(pid, "no longer a candidate for this client"),
        )
        for pid in session_pathways
        if pid not in ranked
    ]
    kept = [
        d
        for d in demoted
        if d.appliance_id not in snapshot.appliances
        or snapshot.appliances[d.appliance_id].steering.keep_in_flight
    ]
    dropped: list[Exclusion] = []
    if ranked or kept:
        dropped = [d for d in demoted if d not in kept]
        demoted = kept
    return PathwayPriority(
        snapshot.version,
        tuple(ranked) + tuple(d.appliance_id for d in demoted),
        tuple(demoted),
        tuple(dropped),
    )
