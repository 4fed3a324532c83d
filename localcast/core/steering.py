"""Steering v0: which appliances should serve this client this title, best first.

Inputs are data only: a :class:`~localcast.core.fleet.FleetSnapshot`, the
client address, the title and ``now``. The rules, in the order they apply:

1. **Candidate sites** (:func:`candidate_sites`, the one place that reads
   routes): a site whose prefixes cover the client is a candidate
   (``prefix-match``); an IX site without prefixes is reachable over peering
   from any network (``peering-default``); origin sites are candidates for
   everyone (``origin``). Embedded and PNI sites serve only the clients
   inside their prefixes.
2. **Site order**: origin last; then the longest matching prefix; then the
   connection kind, embedded > pni > ix; then the site id (determinism).
3. **Appliance eligibility**: registered, not drained, alive
   (:func:`localcast.core.health.liveness`), holds the title complete
   ("content miss" otherwise), not saturated ("health miss" otherwise).
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
left out carries the reason why (for ``/v1/steering/explain``).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from localcast.core.fleet import (
    KIND_PREFERENCE,
    Appliance,
    ApplianceState,
    FleetSnapshot,
    Site,
    SiteKind,
)
from localcast.core.health import liveness, saturated
from localcast.core.routes import parse_address, select_routes

DEFAULT_LIMIT = 4
DEFAULT_PER_SITE = 2


class Rule(enum.StrEnum):
    PREFIX_MATCH = "prefix-match"
    PEERING_DEFAULT = "peering-default"
    ORIGIN = "origin"
    ORIGIN_LAST_RESORT = "origin-last-resort"


@dataclass(frozen=True)
class SiteCandidate:
    site: Site
    rule: Rule
    prefix: str | None
    prefix_len: int
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


@dataclass(frozen=True)
class _Entry:
    """An eligible appliance in the full ranking, before selection."""

    candidate: SiteCandidate
    appliance: Appliance
    place: int  # 1-based rendezvous place inside its site
    of: int  # eligible appliances at the site


# --- rule 1 and 2: candidate sites ---------------------------------------------------------


def _site_order_key(c: SiteCandidate) -> tuple[bool, int, int, str]:
    return (
        c.site.kind is SiteKind.ORIGIN,
        -c.prefix_len,
        KIND_PREFERENCE[c.site.kind],
        c.site.id,
    )


def candidate_sites(snapshot: FleetSnapshot, client_ip: str) -> tuple[SiteCandidate, ...]:
    """The sites that may serve ``client_ip``, in steering order (rules 1 and 2)."""
    candidates: dict[str, SiteCandidate] = {}
    for match in select_routes(snapshot.routes, client_ip):
        site = snapshot.sites.get(match.site_id)
        if site is None:
            continue
        candidates[site.id] = SiteCandidate(
            site=site,
            rule=Rule.ORIGIN if site.kind is SiteKind.ORIGIN else Rule.PREFIX_MATCH,
            prefix=match.prefix,
            prefix_len=match.prefix_len,
            reason=f"{site.kind} site {site.id} covers {client_ip} via {match.prefix}",
        )
    for site in snapshot.sites.values():
        if site.id in candidates:
            continue
        if site.kind is SiteKind.ORIGIN:
            candidates[site.id] = SiteCandidate(
                site, Rule.ORIGIN, None, 0, f"origin site {site.id}: over transit, always last"
            )
        elif site.kind is SiteKind.IX and not site.prefixes:
            candidates[site.id] = SiteCandidate(
                site,
                Rule.PEERING_DEFAULT,
                None,
                0,
                f"ix site {site.id} has no client prefixes: reachable over peering",
            )
    return tuple(sorted(candidates.values(), key=_site_order_key))


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
    if title_id not in appliance.titles:
        return f"content miss: does not hold {title_id} complete"
    if saturated(appliance):
        return (
            f"health miss: saturated ({appliance.load.egress_bps / 1e9:.2f} of "
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
    snapshot: FleetSnapshot, client_ip: str, title_id: str, now: float
) -> tuple[list[_Entry], list[Exclusion], list[_Entry]]:
    """Eligible appliances in steering order, the excluded ones, and last-resort origins."""
    eligible: list[_Entry] = []
    excluded: list[Exclusion] = []
    last_resort: list[_Entry] = []
    for cand in candidate_sites(snapshot, client_ip):
        ok: list[Appliance] = []
        dead_origin: list[Appliance] = []
        for appliance in snapshot.appliances_at(cand.site.id):
            why = ineligibility(appliance, title_id, now)
            if why is None:
                ok.append(appliance)
                continue
            excluded.append(Exclusion(appliance.id, cand.site.id, why))
            alive = liveness(appliance.health, now).alive
            if (
                cand.site.kind is SiteKind.ORIGIN
                and appliance.state is ApplianceState.REGISTERED
                and not appliance.drained
                and not alive
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
    )


def steer(
    snapshot: FleetSnapshot,
    client_ip: str,
    title_id: str,
    now: float,
    limit: int = DEFAULT_LIMIT,
    per_site: int = DEFAULT_PER_SITE,
) -> SteeringDecision:
    """Up to ``limit`` ranked pathways for ``client_ip`` to play ``title_id``.

    Raises ``ValueError`` for a malformed client address.
    """
    client_ip = str(parse_address(client_ip))
    if title_id not in snapshot.catalog:
        return SteeringDecision(
            snapshot.version, client_ip, title_id, (), (), f"title {title_id} is not in the catalog"
        )
    eligible, excluded, last_resort = _rank_all(snapshot, client_ip, title_id, now)
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
        snapshot.version, client_ip, title_id, pathways, tuple(excluded), reason
    )


@dataclass(frozen=True)
class PathwayPriority:
    """A session's pathways re-ranked now: ``order`` best first, demoted ones last."""

    snapshot_version: int
    order: tuple[str, ...]
    demoted: tuple[Exclusion, ...]


def rerank(
    snapshot: FleetSnapshot,
    client_ip: str,
    title_id: str,
    session_pathways: Sequence[str],
    now: float,
) -> PathwayPriority:
    """Re-rank a session's fixed pathways from the current snapshot.

    Eligible pathways keep the steering order; those no longer eligible
    (dead, drained, gone, content miss) move to the end in their original
    order, each with its reason, so a player that has tried everything else
    may still try them.
    """
    decision = steer(snapshot, client_ip, title_id, now, limit=max(len(snapshot.appliances), 1))
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
    return PathwayPriority(
        snapshot.version, tuple(ranked) + tuple(d.appliance_id for d in demoted), tuple(demoted)
    )
