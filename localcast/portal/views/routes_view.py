"""The route explorer and the steering explanation as rows (portal ``/portal/routes``).

What lives here: plane data (the snapshot's learned routes, each BGP
session's own routes and state from the route feed, the core's reports and
steering decisions) turned into rows a template prints. No decision is made
here: which site a client goes to is
:func:`localcast.core.steering.candidate_sites` / :func:`~localcast.core.steering.steer`,
inconsistencies are :func:`localcast.core.route_reports.site_consistency`.
:class:`SiteRoutes` reads one site's routes once per route feed generation
(the page keeps what it computed): its prefixes as sorted arrays (a page of a
full table is a slice, a prefix filter a binary search), and
:func:`sources`, the prefixes with no alternate source, exact per session
(set operations over sorted arrays: a fraction of a second at a full table).

Scope (what a viewer is shown), decided here once:

* The route tables, sessions, filters, inconsistencies and lonely routes are
  about **one site the viewer may see** (the page checks it, another
  partner's site is a 404 before anything here runs).
* A steering explanation is for any address and keeps the **whole ranking**
  (the positions are what explain the answer), but only sites in ``visible``
  are named. Any other site is a label of its kind ("another ISP's embedded
  site", "an IX site", "the origin (over transit)") and shows no id, prefix,
  appliance, route attributes, distance or exclusion reason: only its rank,
  its kind, the rule that made it a candidate (BGP route, configured prefix,
  IX peering, origin) and the decision step that placed it. Where a named
  site is compared with an unnamed one, the comparison values are shown only
  for the steps that reveal nothing of the other's routes (origin-last,
  prefix length, connection kind). Appliances left out at unnamed sites are
  counted by the class of their reason (route, health, drain, content, load,
  limit), never named. The client's location is shown when it comes from
  GeoIP or from a named site; otherwise "near an unnamed site".

Pure: no I/O, no clock (``now`` is given).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from localcast.control.route_feed import FeedState
from localcast.control.route_schemas import BgpSession
from localcast.core.decision import STEPS, Rule, Step, client_location
from localcast.core.fleet import FleetSnapshot, Site, SiteKind, frozen_map
from localcast.core.geo import Locate
from localcast.core.rib import AdjRibIn, Attributes, Path, mask, prefix_text
from localcast.core.route_reports import (
    AdvertisementDiff,
    SiteConsistency,
    site_consistency,
)
from localcast.core.steering import (
    SiteCandidate,
    SiteExplain,
    SteeringDecision,
    candidate_sites,
    explain_site,
)
from localcast.portal.views.fleet_view import format_age, session_uptime

DEFAULT_ROWS = 50
MAX_ROWS = 500
#: A site with at most this many prefixes gets "clients it would get" counted over all of
#: them (one steering ranking per prefix); bigger ones only for the prefixes on the page.
CLIENT_COUNT_LIMIT = 2000
#: A site hearing more prefixes than this gets its inconsistencies (the core's report compares
#: every route of its appliances: seconds at full tables) when asked, or when they are cached.
REPORT_AUTO_LIMIT = 100_000

#: What the appliance's import policy reasons mean (localcast.bgp.policy.Reason).
FILTER_REASONS: Mapping[str, str] = {
    "default_route": "a default route (0.0.0.0/0 or ::/0): it would cover every client",
    "bogon": "inside a range never routed on the internet (private, documentation, "
    "loopback, multicast...)",
    "too_specific": "longer than the session accepts (by default /24 for IPv4, /48 for IPv6)",
    "as_path_loop": "the operator's own AS is in the AS path",
    "origin_not_allowed": "the origin AS is not one of your registered ASNs: ask the operator "
    "to add it to your partner account",
    "rpki_invalid": "RPKI invalid: a ROA says this origin AS may not announce the prefix "
    "(or not this long)",
    "max_prefixes": "the session's maximum prefix count was reached; the rest was dropped",
}

_KIND_LABEL: Mapping[SiteKind, str] = {
    SiteKind.EMBEDDED: "another ISP's embedded site",
    SiteKind.PNI: "another ISP's PNI site",
    SiteKind.IX: "an IX site",
    SiteKind.ORIGIN: "the origin (over transit)",
}

_RULE_TEXT: Mapping[str, str] = {
    str(Rule.BGP_ROUTE): "BGP route",
    str(Rule.PREFIX_MATCH): "configured prefix",
    str(Rule.PEERING_DEFAULT): "IX peering (reachable from any network)",
    str(Rule.ORIGIN): "origin (over transit)",
    str(Rule.ORIGIN_LAST_RESORT): "origin, last resort",
}

#: Steps whose compared values tell nothing about another site's routes.
_PUBLIC_STEPS = frozenset({Step.ORIGIN_LAST, Step.LONGEST_PREFIX, Step.CONNECTION_KIND})


# --- names ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labels:
    """How the viewer sees each site: by id when visible, else by a label of its kind."""

    sites: Mapping[str, Site]
    visible: frozenset[str]

    def shows(self, site_id: str | None) -> bool:
        return site_id is not None and site_id in self.visible

    def site(self, site_id: str | None) -> str:
        if site_id is None:
            return "another site"
        if site_id in self.visible:
            return site_id
        found = self.sites.get(site_id)
        return _KIND_LABEL[found.kind] if found is not None else "another site"


#: How an unnamed site's exclusions read, per class of reason.
CLASS_TEXT: Mapping[str, str] = {
    "route": "no covering route",
    "drain": "drained",
    "content": "does not hold the title",
    "load": "saturated",
    "limit": "beyond the pathways chosen",
    "not registered": "not registered",
    "disabled": "disabled by the operator or its ISP",
    "turn-up": "not turned up yet",
    "health": "down or unhealthy",
}


def classify(reason: str) -> str:
    """The class of an exclusion reason (what an unnamed site's exclusions are shown as): the
    reasons of :func:`localcast.core.steering.ineligibility` and of the appliance's steering
    state (:func:`localcast.core.maintenance.steering_state`), strongest first."""
    r = reason.lower()
    for start, kind in (
        ("heard no route", "route"),
        ("drained", "drain"),
        ("disabled", "disabled"),
        ("not turned up", "turn-up"),
        ("content miss", "content"),
        ("beyond the", "limit"),
        ("provisioned", "not registered"),
    ):
        if r.startswith(start):
            return kind
    return "load" if "saturated" in r else "health"


def _communities(a: Attributes) -> str:
    standard = [f"{c >> 16}:{c & 0xFFFF}" for c in a.communities]
    large = [f"{x}:{y}:{z}" for x, y, z in a.large_communities]
    return " ".join(standard + large)


def attributes_text(a: Attributes) -> str:
    path = " ".join(map(str, a.as_path)) or "(empty)"
    text = f"AS path {path}, origin {a.origin.name.lower()}, MED {a.med}, local pref {a.local_pref}"
    communities = _communities(a)
    return f"{text}, communities {communities}" if communities else text


# --- the sites of a partner ----------------------------------------------------------------------


@dataclass(frozen=True)
class SiteSummary:
    site_id: str
    kind: str
    appliances: int
    speakers: int  # appliances with an Adj-RIB-In (BGP)
    routes: tuple[tuple[str, int], ...]  # (appliance, routes held) of each speaker
    sessions_up: int
    sessions: int
    configured: int  # configured prefixes (they count only while no appliance speaks BGP)

    @property
    def speaks_bgp(self) -> bool:
        return self.speakers > 0

    @property
    def css(self) -> str:
        if not self.speaks_bgp:
            return "status-unknown"
        if self.sessions and self.sessions_up == self.sessions:
            return "status-ok"
        return "status-error" if self.sessions_up == 0 else "status-warning"

    @property
    def status(self) -> str:
        if not self.speaks_bgp:
            return "No BGP"
        return f"{self.sessions_up} of {self.sessions} up"


def site_summaries(
    snap: FleetSnapshot, sites: Iterable[Site], sessions: Callable[[str], list[FeedState]]
) -> list[SiteSummary]:
    ribs = snap.routes.learned.ribs
    out = []
    for site in sites:
        apps = sorted(snap.appliances_at(site.id), key=lambda a: a.id)
        speakers = [a.id for a in apps if a.id in ribs]
        states = [s for a in apps for s in sessions(a.id)]
        out.append(
            SiteSummary(
                site_id=site.id,
                kind=str(site.kind),
                appliances=len(apps),
                speakers=len(speakers),
                routes=tuple((a, len(ribs[a])) for a in speakers),
                sessions_up=sum(1 for s in states if s.session.established),
                sessions=len(states),
                configured=len(site.prefixes),
            )
        )
    return out


# --- sessions, filtered routes -------------------------------------------------------------------


@dataclass(frozen=True)
class FilterRow:
    reason: str
    count: int
    meaning: str
    prefixes: tuple[str, ...] = ()  # the first ones the appliance refused, in prefix order
    listed: bool = False  # the appliance said which (a relay older than the list sends counts)

    @property
    def more(self) -> int:
        """Refused prefixes not listed."""
        return max(self.count - len(self.prefixes), 0)


@dataclass(frozen=True)
class SessionRow:
    appliance_id: str
    neighbor: str
    description: str
    remote_as: int
    state: str
    established: bool
    uptime: str
    received: int
    accepted: int
    filtered: tuple[FilterRow, ...]
    last_error: str
    reported: str  # how long ago the control plane last heard about it

    @property
    def filtered_total(self) -> int:
        return sum(f.count for f in self.filtered)

    @property
    def css(self) -> str:
        return "status-ok" if self.established else "status-error"


def filter_rows(session: BgpSession) -> tuple[FilterRow, ...]:
    """Per reason the session's import policy refuses prefixes now: how many, what the reason
    means, and which prefixes when the appliance listed them; most refused first."""
    listed = session.filtered_prefixes
    counts = {r: n for r, n in session.filtered.items() if n > 0}
    for reason, sample in (listed or {}).items():
        if sample.count > 0:
            counts.setdefault(reason, sample.count)
    rows = []
    for reason, count in sorted(counts.items(), key=lambda x: (-x[1], x[0])):
        found = listed.get(reason) if listed is not None else None
        rows.append(
            FilterRow(
                reason,
                count,
                FILTER_REASONS.get(reason, reason.replace("_", " ")),
                tuple(found.prefixes) if found is not None else (),
                listed is not None,
            )
        )
    return tuple(rows)


def session_rows(
    appliance_ids: Iterable[str], sessions: Callable[[str], list[FeedState]], now: float
) -> list[SessionRow]:
    rows = []
    for aid in appliance_ids:
        for st in sessions(aid):
            s = st.session
            rows.append(
                SessionRow(
                    appliance_id=aid,
                    neighbor=s.neighbor,
                    description=s.description,
                    remote_as=s.remote_as,
                    state=s.state,
                    established=s.established,
                    uptime=session_uptime(st, now),
                    received=s.received,
                    accepted=s.accepted,
                    filtered=filter_rows(s),
                    last_error=s.last_error or "",
                    reported=format_age(now - st.reported_at) + " ago",
                )
            )
    return rows


def session_hints(rows: Sequence[SessionRow], sources: SourcesView | None = None) -> list[str]:
    """Per appliance, its sessions down while others carry its routes; with several sessions
    up at the site, each session that alone announces some of the site's prefixes (exact:
    from each session's own table, see :class:`SourcesView`)."""
    by_app: dict[str, list[SessionRow]] = {}
    for r in rows:
        by_app.setdefault(r.appliance_id, []).append(r)
    hints = []
    for aid, mine in by_app.items():
        up = [r for r in mine if r.established]
        down = [r for r in mine if not r.established]
        if up and down:
            hints.append(
                f"{aid}: {len(down)} of {len(mine)} sessions down: every route rests on "
                f"{', '.join(r.neighbor for r in up)}"
            )
    if sources is not None and sum(1 for r in rows if r.established) > 1:
        for aid, nb, n in sources.per_session:
            hints.append(
                f"{session_label((aid, nb))} alone announces {n:,} prefix(es) of the site (no "
                f"other session has them or a covering prefix): if it goes down, their clients "
                f"leave the site"
            )
    return hints


# --- the routes a site hears ---------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """The prefix filter: a prefix (routes inside it) or an address (routes covering it)."""

    text: str
    version: int
    low: int  # packed keys from low to high, and at least ``length`` long: inside the prefix
    high: int
    length: int
    address: int | None  # an address: covering routes instead


def parse_query(text: str) -> Query | None:
    """``ValueError`` naming the problem for anything but a prefix or an address."""
    text = text.strip()
    if not text:
        return None
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            bits = net.max_prefixlen
            low = (int(net.network_address) << 8) | net.prefixlen
            high = (int(net.broadcast_address) << 8) | bits
            return Query(str(net), net.version, low, high, net.prefixlen, None)
        addr = ipaddress.ip_address(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither a prefix (203.0.113.0/24) nor an address") from exc
    return Query(str(addr), addr.version, 0, 0, 0, int(addr))


@dataclass(frozen=True)
class RouteRow:
    prefix: str
    appliance_id: str
    heard: bool
    peer: str = ""
    peer_as: int | None = None
    as_path: str = ""
    origin_as: int | None = None
    origin: str = ""
    med: int | None = None
    local_pref: int | None = None
    communities: str = ""
    next_hop: str = ""
    also: tuple[str, ...] = ()  # the appliance's other sessions announcing the prefix


@dataclass(frozen=True)
class PrefixRows:
    """One prefix the site hears, on every appliance of the site."""

    prefix: str
    version: int
    key: int
    rows: tuple[RouteRow, ...]
    status: str  # "same" | "missing" | "differs" | "single"
    note: str

    @property
    def css(self) -> str:
        return "status-ok" if self.status in ("same", "single") else "status-warning"

    @property
    def label(self) -> str:
        return {
            "same": "Same everywhere",
            "single": "One appliance",
            "missing": "Not heard everywhere",
            "differs": "Attributes differ",
        }[self.status]


def route_row(prefix: str, aid: str, path: Path | None, also: tuple[str, ...] = ()) -> RouteRow:
    """``path``: the route the appliance holds (the best of its sessions'); ``also``: its
    other sessions that announce the prefix too."""
    if path is None:
        return RouteRow(prefix, aid, False)
    a = path.attributes
    return RouteRow(
        prefix=prefix,
        appliance_id=aid,
        heard=True,
        peer=path.peer.address,
        peer_as=path.peer.asn,
        as_path=" ".join(map(str, a.as_path)),
        origin_as=a.as_path[-1] if a.as_path else None,
        origin=a.origin.name.lower(),
        med=a.med,
        local_pref=a.local_pref,
        communities=_communities(a),
        next_hop=path.next_hop,
        also=also,
    )


def _site_ribs(snap: FleetSnapshot, site_id: str) -> dict[str, AdjRibIn]:
    """Every appliance of a BGP site (one without an Adj-RIB-In hears nothing); {} otherwise."""
    learned = snap.routes.learned.ribs
    apps = sorted(a.id for a in snap.appliances_at(site_id))
    if not any(a in learned for a in apps):
        return {}
    return {a: learned.get(a, AdjRibIn(a)) for a in apps}


# --- prefixes as sorted arrays --------------------------------------------------------------------

#: Packed prefixes (:func:`localcast.core.rib.pack`), sorted and distinct: ``uint64`` for IPv4
#: (40 bits), Python ints for IPv6 (136 bits). Sorted packed prefixes are in prefix order.
Keys = npt.NDArray[Any]
Table = Mapping[int, Path]  # one family of an Adj-RIB-In: packed prefix -> path
#: Per appliance, its BGP sessions (neighbor -> that session's routes): RouteFeed.session_prefixes.
SessionTables = Callable[[str], Mapping[str, AdjRibIn]]


class Memo:
    """Values derived from route tables, for the Adj-RIB-Ins they were derived from.

    Route tables are replaced, never changed (the snapshot's Adj-RIB-Ins, the route feed's
    per-session tables, each an :class:`AdjRibIn`), so an Adj-RIB-In's identity is its
    version: a value is valid while every Adj-RIB-In it read is the same object. The page
    keeps a real one per route feed (:mod:`localcast.portal.pages.routes`); this one keeps
    nothing.
    """

    def get(self, name: Hashable, ribs: Sequence[AdjRibIn], compute: Callable[[], Any]) -> Any:
        """``compute()``, or what it gave before for ``name`` over the same ``ribs``."""
        return compute()

    def peek(self, name: Hashable, ribs: Sequence[AdjRibIn]) -> Any:
        """What ``get`` would give without computing; None when it is not kept."""
        return None

    def keys(self, ribs: Sequence[AdjRibIn], version: int) -> Keys:
        """The sorted prefixes of ``version`` that any of ``ribs`` holds."""
        if len(ribs) == 1:
            return self.get(
                ("keys", version), ribs, lambda: table_keys(ribs[0].table(version), version)
            )
        return self.get(
            ("keys", version),
            ribs,
            lambda: _union([self.keys([r], version) for r in ribs], version),
        )


NO_MEMO = Memo()


def _dtype(version: int) -> Any:
    return np.uint64 if version == 4 else object


def table_keys(table: Table, version: int) -> Keys:
    """The packed prefixes of ``table``, sorted."""
    keys = np.fromiter(table, dtype=_dtype(version), count=len(table))
    keys.sort()
    return keys


def _distinct(keys: Keys) -> tuple[Keys, npt.NDArray[np.intp]]:
    """The distinct values of ``keys``, sorted, and how many times each occurs (a sort, not
    ``np.unique``: its hashing is several times slower on a million prefixes)."""
    ordered = np.sort(keys, kind="stable")  # timsort: sorted runs (unions) merge in O(n)
    if not len(ordered):
        return ordered, np.zeros(0, dtype=np.intp)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return ordered[starts], np.diff(np.append(starts, len(ordered)))


def _union(arrays: Sequence[Keys], version: int) -> Keys:
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return np.empty(0, dtype=_dtype(version))
    if len(arrays) == 1:
        return arrays[0]
    return _distinct(np.concatenate(arrays))[0]


def _member(values: Keys, keys: Keys) -> npt.NDArray[np.bool_]:
    """Which of ``values`` are in the sorted ``keys``."""
    if not len(values) or not len(keys):
        return np.zeros(len(values), dtype=bool)
    if values.dtype == object:  # IPv6: a set probe each beats a search by Python comparisons
        present = set(keys.tolist())
        probes = map(present.__contains__, values.tolist())
        return np.fromiter(probes, dtype=bool, count=len(values))
    at = np.searchsorted(keys, values)
    np.minimum(at, len(keys) - 1, out=at)
    found: npt.NDArray[np.bool_] = np.asarray(keys[at] == values, dtype=bool)
    return found


def _covered(values: Keys, version: int, by: Keys) -> npt.NDArray[np.bool_]:
    """Which of ``values`` lie inside a strictly shorter prefix of the sorted ``by``
    (one vectorised lookup per prefix length ``by`` holds)."""
    hit = np.zeros(len(values), dtype=bool)
    if not len(values) or not len(by):
        return hit
    lengths = (values & 0xFF).astype(np.uint8)
    by_lengths = (by & 0xFF).astype(np.uint8)
    if version == 6:  # the network's first 64 bits, as uint64: what a prefix up to /64 covers
        top, by_top = (values >> 72).astype(np.uint64), (by >> 72).astype(np.uint64)
    for length in sorted(set(np.unique(by_lengths).tolist())):
        longer = lengths > length
        if not longer.any():
            continue
        if version == 4 or length > 64:  # exact packed keys (IPv6 past /64: rare)
            cover = (values[longer] & (mask(version, length) << 8)) | length
            hit[longer] |= _member(cover, by)
        else:
            first_bits = np.uint64(((1 << length) - 1) << (64 - length) if length else 0)
            hit[longer] |= _member(top[longer] & first_bits, np.sort(by_top[by_lengths == length]))
    return hit


@dataclass(frozen=True)
class RoutePage:
    total: int  # prefixes matching (the site's distinct prefixes without a filter)
    offset: int
    limit: int
    prefixes: tuple[PrefixRows, ...]

    @property
    def first(self) -> int:
        return self.offset + 1 if self.prefixes else 0

    @property
    def last(self) -> int:
        return self.offset + len(self.prefixes)

    @property
    def has_next(self) -> bool:
        return self.last < self.total

    @property
    def has_previous(self) -> bool:
        return self.offset > 0


def _no_sessions(appliance_id: str) -> Mapping[str, AdjRibIn]:
    return {}


def topology_key(snap: FleetSnapshot) -> tuple[tuple[str, str, str], ...]:
    """What the site reports read of the topology besides routes: each appliance's site and
    the site's kind. With the route feed's generation, the stamp of a cached report."""
    return tuple(
        sorted(
            (a.id, a.site_id, str(snap.sites[a.site_id].kind) if a.site_id in snap.sites else "")
            for a in snap.appliances.values()
        )
    )


class SiteRoutes:
    """What the route explorer reads of one site's routes.

    Every part is kept in ``memo`` for the tables it read (the page's memo keeps them per
    route feed, see :class:`Memo`): a reload computes nothing again, and a report changes
    only what depends on the tables it replaced. ``sessions`` gives each appliance's
    sessions with their own routes
    (:meth:`localcast.control.route_feed.RouteFeed.session_prefixes`).
    """

    def __init__(
        self,
        snap: FleetSnapshot,
        site_id: str,
        sessions: SessionTables = _no_sessions,
        memo: Memo = NO_MEMO,
    ) -> None:
        self.snap = snap
        self.site_id = site_id
        self.ribs = _site_ribs(snap, site_id)
        self._sessions = sessions
        self.memo = memo

    @cached_property
    def sessions(self) -> dict[SessionKey, AdjRibIn]:
        """Every BGP session of the site's appliances, (appliance, neighbor) -> its routes."""
        return {(aid, nb): rib for aid in self.ribs for nb, rib in self._sessions(aid).items()}

    def prefixes(self, version: int) -> Keys:
        """Every prefix of ``version`` the site hears, sorted."""
        return self.memo.keys(list(self.ribs.values()), version)

    @property
    def total(self) -> int:
        return sum(len(self.prefixes(v)) for v in (4, 6))

    def page(self, query: Query | None, offset: int, limit: int) -> RoutePage:
        """The prefixes the site's appliances hear (filtered by ``query``), ``limit`` from
        ``offset``: IPv4 first, each family in prefix order (an address: longest first)."""
        if not self.ribs:
            return RoutePage(0, offset, limit, ())
        if query is None:
            picked: list[tuple[int, int]] = []
            total, skip = 0, offset
            for v in (4, 6):
                keys = self.prefixes(v)
                total += len(keys)
                if len(picked) < limit:
                    picked += [(v, int(k)) for k in keys[skip : skip + limit - len(picked)]]
                skip = max(0, skip - len(keys))
        else:
            found = self._matching(query)
            total, picked = len(found), found[offset : offset + limit]
        return RoutePage(total, offset, limit, tuple(self.rows(v, k) for v, k in picked))

    def _matching(self, query: Query) -> list[tuple[int, int]]:
        """The keys a filter selects: covering an address (longest first), or inside a prefix
        (in prefix order)."""
        if query.address is not None:
            wanted = set(self.ribs)
            learned = self.snap.routes.learned
            return [
                (query.version, key)
                for key, route_set in learned.covering(query.version, query.address)
                if wanted.intersection(route_set)
            ]
        keys = self.prefixes(query.version)
        lo, hi = np.searchsorted(keys, [query.low, query.high + 1])
        inside = keys[lo:hi]
        inside = inside[(inside & 0xFF).astype(np.uint8) >= query.length]
        return [(query.version, int(k)) for k in inside]

    def rows(self, version: int, key: int) -> PrefixRows:
        """One prefix on every appliance of the site, with the sessions announcing it."""
        text = prefix_text(version, key)
        paths = {a: rib.table(version).get(key) for a, rib in self.ribs.items()}
        also: dict[str, list[str]] = {}
        for (aid, nb), rib in self.sessions.items():
            held = paths.get(aid)
            if held is not None and held.peer.address != nb and key in rib.table(version):
                also.setdefault(aid, []).append(nb)
        rows = tuple(route_row(text, a, p, tuple(also.get(a, ()))) for a, p in paths.items())
        held_paths = {a: p for a, p in paths.items() if p is not None}
        absent = [a for a, p in paths.items() if p is None]
        if len(paths) == 1:
            return PrefixRows(text, version, key, rows, "single", "the site's only appliance")
        if absent:
            note = f"not heard by {', '.join(absent)}"
            return PrefixRows(text, version, key, rows, "missing", note)
        if len({p.attributes for p in held_paths.values()}) > 1:
            note = "heard with different attributes"
            return PrefixRows(text, version, key, rows, "differs", note)
        return PrefixRows(text, version, key, rows, "same", "")

    # --- the reports (kept per tables read) -----------------------------------------------------

    def _consistency_of(self) -> tuple[Hashable, list[AdjRibIn]]:
        return ("consistency", self.site_id, tuple(self.ribs)), list(self.ribs.values())

    def consistency(self, compute: bool = True) -> ConsistencyView | None:
        """:func:`consistency` of the site (the core's report: seconds at full tables); with
        ``compute`` false, only when kept."""
        name, tables = self._consistency_of()
        if not compute:
            found: ConsistencyView | None = self.memo.peek(name, tables)
            return found
        kept: ConsistencyView = self.memo.get(
            name, tables, lambda: consistency(self.snap, self.site_id)
        )
        return kept

    def _single_of(self) -> tuple[Hashable, list[AdjRibIn]]:
        return ("single", self.site_id, tuple(self.sessions)), list(self.sessions.values())

    def _lonely_of(self) -> tuple[Hashable, list[AdjRibIn]]:
        learned = self.snap.routes.learned
        speakers = sorted(learned.ribs)
        kinds = tuple((a, _kind(self.snap, a)) for a in speakers)
        ribs = [learned.ribs[a] for a in speakers]
        return ("lonely", self.site_id, tuple(self.ribs), kinds), ribs

    def sources(self, compute: bool = True) -> SourcesView | None:
        """:func:`sources` of the site (site ids: label it for a viewer); with ``compute``
        false, only when kept."""
        (single_name, single_tables), (lonely_name, lonely_tables) = (
            self._single_of(),
            self._lonely_of(),
        )
        checked = self.snap.sites[self.site_id].kind is SiteKind.EMBEDDED and bool(self.ribs)
        if not compute:
            single = self.memo.peek(single_name, single_tables)
            lonely = self.memo.peek(lonely_name, lonely_tables) if checked else (0, [])
            if single is None or lonely is None:
                return None
        else:
            single = self.memo.get(
                single_name, single_tables, lambda: _single(self.sessions, self.memo)
            )
            lonely = (
                self.memo.get(
                    lonely_name, lonely_tables, lambda: _lonely(self.snap, self.prefixes, self.memo)
                )
                if checked
                else (0, [])
            )
        return _sources_view(self.snap, self.site_id, self.sessions, single, lonely, checked)


def route_page(
    snap: FleetSnapshot,
    site_id: str,
    query: Query | None,
    offset: int = 0,
    limit: int = DEFAULT_ROWS,
    sessions: SessionTables = _no_sessions,
) -> RoutePage:
    """:meth:`SiteRoutes.page` of a site, computed once (no memo kept)."""
    return SiteRoutes(snap, site_id, sessions).page(query, offset, limit)


# --- which clients the site would get ------------------------------------------------------------


@dataclass(frozen=True)
class ClientRow:
    """Where steering ranks the site for a client at the first address of one prefix."""

    prefix: str
    probe: str
    best: bool
    rank: int | None  # of the site; None: not a candidate
    winner: str  # label of the site ranked first
    why: str

    @property
    def css(self) -> str:
        return "status-ok" if self.best else "status-warning"


def _probe(version: int, key: int) -> str:
    network = key >> 8
    return str(ipaddress.IPv4Address(network) if version == 4 else ipaddress.IPv6Address(network))


def client_row(
    snap: FleetSnapshot,
    site_id: str,
    version: int,
    key: int,
    labels: Labels,
    locate: Locate | None = None,
) -> ClientRow:
    """Steering's site ranking for a client at the prefix's first address (the same
    :func:`candidate_sites` playback uses; health, drain and content come per title)."""
    text, probe = prefix_text(version, key), _probe(version, key)
    ranked = candidate_sites(snap, probe, locate)
    mine = next((c for c in ranked if c.site.id == site_id), None)
    top = ranked[0] if ranked else None
    if top is None or mine is None:
        return ClientRow(text, probe, False, None, labels.site(top.site.id) if top else "", "")
    rank = mine.ranked.rank if mine.ranked else None
    if top.site.id == site_id:
        if mine.ranked is None or mine.ranked.versus is None:
            why = "the only candidate"
        else:
            why = f"ahead of {labels.site(mine.ranked.versus)} by {mine.decided_by}"
        return ClientRow(text, probe, True, rank, site_id, why)
    if top.prefix_len > (key & 0xFF):
        shown = f" {top.prefix}" if labels.shows(top.site.id) and top.prefix else ""
        why = f"a more specific route{shown} at {labels.site(top.site.id)} takes these clients"
    else:
        above = mine.ranked.versus if mine.ranked else None
        why = f"behind {labels.site(above)} by {mine.decided_by}"
    return ClientRow(text, probe, False, rank, labels.site(top.site.id), why)


def clients_best(
    snap: FleetSnapshot,
    site_id: str,
    labels: Labels,
    locate: Locate | None = None,
    limit: int = CLIENT_COUNT_LIMIT,
    routes: SiteRoutes | None = None,
) -> tuple[int, int] | None:
    """(prefixes whose clients the site gets, prefixes heard), or None past ``limit``."""
    site = routes if routes is not None else SiteRoutes(snap, site_id)
    if sum(len(r) for r in site.ribs.values()) > limit * max(len(site.ribs), 1):
        return None  # at least one appliance holds more than ``limit``
    if site.total > limit:
        return None
    best = sum(
        1
        for v in (4, 6)
        for k in site.prefixes(v)
        if client_row(snap, site_id, v, int(k), labels, locate).best
    )
    return best, site.total


# --- inconsistencies, lonely routes --------------------------------------------------------------


@dataclass(frozen=True)
class Inconsistency:
    prefix: str
    kind: str  # "missing" | "attributes"
    heard_by: tuple[str, ...]
    missing_from: tuple[str, ...]
    off_site: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...]  # (appliance, attributes text)
    reason: str


@dataclass(frozen=True)
class ConsistencyView:
    appliances: tuple[str, ...]
    missing_count: int
    attribute_count: int
    items: tuple[Inconsistency, ...]

    @property
    def consistent(self) -> bool:
        return self.missing_count == 0 and self.attribute_count == 0


def _inconsistency(d: AdvertisementDiff) -> Inconsistency:
    return Inconsistency(
        prefix=d.prefix,
        kind="missing" if d.missing_from else "attributes",
        heard_by=d.heard_by,
        missing_from=d.missing_from,
        off_site=d.off_site,
        attributes=tuple((a, attributes_text(attrs)) for a, attrs in d.attributes),
        reason=d.reason,
    )


def consistency(snap: FleetSnapshot, site_id: str, limit: int = DEFAULT_ROWS) -> ConsistencyView:
    """:func:`site_consistency` for one site (the core report over a snapshot narrowed to the
    site's appliances: the report is per site, so the answer is the same, without the cost
    of every other site)."""
    site = snap.sites[site_id]
    apps = {a.id: a for a in snap.appliances_at(site_id)}
    narrowed = replace(snap, sites=frozen_map({site_id: site}), appliances=frozen_map(apps))
    found: SiteConsistency | None = next(
        (s for s in site_consistency(narrowed, limit) if s.site_id == site_id), None
    )
    if found is None:
        return ConsistencyView(tuple(sorted(apps)), 0, 0, ())
    return ConsistencyView(
        found.appliances,
        found.missing_count,
        found.attribute_count,
        tuple(_inconsistency(d) for d in found.diffs),
    )


SessionKey = tuple[str, str]  # (appliance, neighbor)


def session_label(key: SessionKey) -> str:
    return f"{key[0]} · {key[1]}"


@dataclass(frozen=True)
class SourceRow:
    """A prefix of the site with no alternate source."""

    prefix: str
    version: int
    key: int
    sessions: tuple[str, ...]  # the site's sessions announcing it ("a1 · 192.0.2.1")
    elsewhere: tuple[str, ...]  # other sites hearing it or a covering prefix (ids, or labels)


@dataclass(frozen=True)
class SourcesView:
    """Which prefixes of a site have no alternate source, exactly (from each session's own
    table, not only the route each appliance holds).

    * ``single``: prefixes one BGP session of the site alone announces, with no covering
      prefix from another of its sessions: that one router or session going away takes
      their clients off the site, whatever the number of appliances. Every BGP site.
    * ``lonely``: the core's "no alternate source"
      (:func:`localcast.core.route_reports.no_alternate_source`, for this site): heard only
      from embedded appliances, no PNI or IX route covering them; if the site fails, those
      clients are reached over transit. Embedded sites only (``checked``).
    """

    sessions: int  # sessions of the site
    single_count: int
    single: tuple[SourceRow, ...]  # the first ``limit``, in prefix order
    per_session: tuple[tuple[str, str, int], ...]  # (appliance, neighbor, prefixes it alone has)
    checked: bool
    lonely_count: int
    lonely: tuple[SourceRow, ...]

    def labelled(self, labels: Labels) -> SourcesView:
        """The view as ``labels`` show sites (other partners' sites unnamed)."""

        def named(rows: tuple[SourceRow, ...]) -> tuple[SourceRow, ...]:
            return tuple(
                replace(r, elsewhere=tuple(sorted({labels.site(s) for s in r.elsewhere})))
                for r in rows
            )

        return replace(self, single=named(self.single), lonely=named(self.lonely))


def _kind(snap: FleetSnapshot, appliance_id: str) -> SiteKind | None:
    a = snap.appliances.get(appliance_id)
    return snap.sites[a.site_id].kind if a is not None and a.site_id in snap.sites else None


def _elsewhere(snap: FleetSnapshot, site_id: str, version: int, key: int) -> tuple[str, ...]:
    """Other sites whose appliances hear ``key`` or a prefix covering it (site ids)."""
    network, length = key >> 8, key & 0xFF
    found: set[str | None] = set()
    for k, route_set in snap.routes.learned.covering(version, network):
        if k & 0xFF <= length:
            found.update(snap.appliance_sites.get(a) for a in route_set)
    return tuple(sorted(s for s in found if s is not None and s != site_id))


Single = tuple[int, list[tuple[int, int, SessionKey]], dict[SessionKey, int]]
Lonely = tuple[int, list[tuple[int, int]]]


def _single(
    sessions: Mapping[SessionKey, AdjRibIn], memo: Memo = NO_MEMO, limit: int = DEFAULT_ROWS
) -> Single:
    """(prefixes one session alone announces, the first ``limit`` with their session, per
    session how many): no other session of the site has them or a covering prefix."""
    first: list[tuple[int, int, SessionKey]] = []
    count = 0
    alone: dict[SessionKey, int] = {}
    for v in (4, 6):
        per = {s: memo.keys([rib], v) for s, rib in sessions.items()}
        per = {s: k for s, k in per.items() if len(k)}
        only: dict[SessionKey, Keys] = {}
        if len(per) == 1:
            only = per  # one session: every prefix rests on it
        elif per:
            every, counts = _distinct(np.concatenate(list(per.values())))
            once = every[counts == 1]
            for s, k in per.items():
                mine = k[_member(k, once)]
                others = every[~_member(every, mine)]  # what any other session announces
                only[s] = mine[~_covered(mine, v, others)]
        for s, k in only.items():
            alone[s] = alone.get(s, 0) + len(k)
            count += len(k)
        heads = sorted((int(key), s) for s, k in only.items() for key in k[: limit - len(first)])
        first += [(v, key, s) for key, s in heads[: limit - len(first)]]
    return count, first, alone


def _lonely(
    snap: FleetSnapshot,
    prefixes: Callable[[int], Keys],
    memo: Memo = NO_MEMO,
    limit: int = DEFAULT_ROWS,
) -> Lonely:
    """(the site's prefixes heard only from embedded appliances with no PNI or IX route
    covering them, the first ``limit``): the core's
    :func:`~localcast.core.route_reports.no_alternate_source`, for one site."""
    learned = snap.routes.learned
    kind_of = {aid: _kind(snap, aid) for aid in learned.ribs}
    first: list[tuple[int, int]] = []
    count = 0
    for v in (4, 6):
        mine = prefixes(v)
        not_embedded = [r for a, r in learned.ribs.items() if kind_of[a] is not SiteKind.EMBEDDED]
        peering = [r for a, r in learned.ribs.items() if kind_of[a] in (SiteKind.PNI, SiteKind.IX)]
        found = mine[~_member(mine, memo.keys(not_embedded, v))]
        found = found[~_covered(found, v, memo.keys(peering, v))]
        count += len(found)
        first += [(v, int(k)) for k in found[: max(0, limit - len(first))]]
    return count, first


def _sources_view(
    snap: FleetSnapshot,
    site_id: str,
    sessions: Mapping[SessionKey, AdjRibIn],
    single: Single,
    lonely: Lonely,
    checked: bool,
) -> SourcesView:
    def announced_by(version: int, key: int) -> tuple[str, ...]:
        return tuple(session_label(s) for s, r in sessions.items() if key in r.table(version))

    single_count, single_first, alone = single
    lonely_count, lonely_first = lonely
    return SourcesView(
        sessions=len(sessions),
        single_count=single_count,
        single=tuple(
            SourceRow(prefix_text(v, k), v, k, (session_label(s),), _elsewhere(snap, site_id, v, k))
            for v, k, s in single_first
        ),
        per_session=tuple((aid, nb, n) for (aid, nb), n in sorted(alone.items()) if n > 0),
        checked=checked,
        lonely_count=lonely_count,
        lonely=tuple(
            SourceRow(prefix_text(v, k), v, k, announced_by(v, k), _elsewhere(snap, site_id, v, k))
            for v, k in lonely_first
        ),
    )


def sources(
    snap: FleetSnapshot, site_id: str, sessions: SessionTables = _no_sessions
) -> SourcesView:
    """:class:`SourcesView` of a site (computed, nothing kept): see :meth:`SiteRoutes.sources`."""
    found = SiteRoutes(snap, site_id, sessions).sources()
    assert found is not None
    return found


# --- the steering explanation --------------------------------------------------------------------


@dataclass(frozen=True)
class RouteInfo:
    appliance_id: str
    prefix: str
    attributes: str
    peer: str
    peer_as: int


@dataclass(frozen=True)
class PathwayRow:
    rank: int
    appliance: str  # id, or the site's label at an unnamed site
    site: str
    kind: str
    reason: str


@dataclass(frozen=True)
class ExcludedRow:
    appliance: str  # id, or "" at an unnamed site
    site: str
    kind: str  # class of the reason
    reason: str
    count: int = 1  # appliances (unnamed sites are counted per class)


@dataclass(frozen=True)
class SiteLine:
    rank: int
    label: str
    named: bool
    kind: str
    rule: str
    prefix: str
    route: RouteInfo | None
    decided_by: str
    versus: str
    distance: str
    reason: str
    chosen: tuple[int, ...]  # pathway ranks at this site
    excluded: tuple[ExcludedRow, ...]

    @property
    def css(self) -> str:
        if self.chosen:
            return "status-ok"
        return "status-warning" if self.excluded else "status-unknown"

    @property
    def status(self) -> str:
        if self.chosen:
            return "Chosen " + ", ".join(f"#{r}" for r in self.chosen)
        return "Not chosen" if self.excluded else "No appliance"


@dataclass(frozen=True)
class Explanation:
    client_ip: str
    title_id: str | None
    summary: str
    location: str
    steps: tuple[str, ...]
    sites: tuple[SiteLine, ...]
    pathways: tuple[PathwayRow, ...]
    with_title: bool


def _route_info(snap: FleetSnapshot, s: SiteExplain) -> RouteInfo | None:
    if s.appliance_id is None or s.prefix is None:
        return None
    rib = snap.routes.learned.ribs.get(s.appliance_id)
    if rib is None:
        return None
    path = rib.get(s.prefix)
    if path is None:
        return None
    return RouteInfo(
        s.appliance_id,
        s.prefix,
        attributes_text(path.attributes),
        path.peer.address,
        path.peer.asn,
    )


def _comparison(reason: str) -> str:
    """The ``(a vs b)`` the core's reason ends with, or ""."""
    tail = reason.rpartition("; ")[2]
    if tail.endswith(")") and " (" in tail:
        return tail[tail.rindex(" (") + 2 : -1]
    return ""


def _reason(s: SiteExplain, labels: Labels) -> str:
    """A sentence for one ranked site, naming only what the viewer may see."""
    verb = "ahead of" if s.rank == 1 else "behind"
    if s.versus is None:
        placed = "the only candidate"
    else:
        placed = f"{verb} {labels.site(s.versus)} by {s.decided_by}"
        both = labels.shows(s.site_id) and labels.shows(s.versus)
        values = _comparison(s.reason)
        if values and (both or s.decided_by in _PUBLIC_STEPS):
            placed += f" ({values})"
    if not labels.shows(s.site_id):
        return f"{_RULE_TEXT.get(str(s.rule), str(s.rule))}; {placed}"
    describe = s.reason.split("; ")[0]
    return f"{describe}; {placed}"


def _placed_at(source: str) -> str | None:
    """The site a client was placed at (no GeoIP answer), from the location's source
    (:func:`localcast.core.decision.client_location`: ``"site <id> (its route <prefix>)"``)."""
    return source[5:].split(" ", 1)[0] if source.startswith("site ") else None


def _location(source: str, lat: float, lon: float, labels: Labels) -> str:
    site_id = _placed_at(source)
    if site_id is not None:
        if not labels.shows(site_id):
            return f"near {labels.site(site_id)} (its route matched best; no GeoIP answer)"
        return f"at site {site_id}, whose route matched best ({lat:.2f}, {lon:.2f})"
    return f"{lat:.2f}, {lon:.2f} ({source or 'located'})"


def explanation(
    snap: FleetSnapshot,
    client_ip: str,
    labels: Labels,
    decision: SteeringDecision | None = None,
    candidates: Sequence[SiteCandidate] = (),
    locate: Locate | None = None,
) -> Explanation:
    """The explanation of ``decision`` (a title given), else of the site ranking alone."""
    if decision is not None:
        lines = list(decision.sites)
        where = decision.client_location
        pathways = decision.pathways
        excluded = decision.excluded
    else:
        lines = [explain_site(c) for c in candidates]
        where = None
        if candidates:
            where = client_location(
                client_ip, [c.ranked.candidate for c in candidates if c.ranked], locate
            )
        pathways, excluded = (), ()
    location = (
        _location(where.source, where.lat, where.lon, labels)
        if where is not None
        else "unknown (no route covers it and no GeoIP answer)"
    )
    # placed at an unnamed site: distances from there would tell where that site is
    placed_at = _placed_at(where.source) if where is not None else None
    distances = placed_at is None or labels.shows(placed_at)
    by_site = {s.site_id: s for s in lines}
    chosen: dict[str, list[int]] = {}
    path_rows = []
    for p in pathways:
        chosen.setdefault(p.site_id, []).append(p.rank)
        named = labels.shows(p.site_id)
        line = by_site.get(p.site_id)
        if named and line is not None:  # the site's sentence (names checked) + rendezvous
            reason = f"{_reason(line, labels)}; {p.reason.rpartition('; ')[2]}"
            if p.rule is Rule.ORIGIN_LAST_RESORT:
                reason = f"last resort, origin not heartbeating: {reason}"
        else:
            reason = _RULE_TEXT.get(str(p.rule), str(p.rule))
        path_rows.append(
            PathwayRow(
                rank=p.rank,
                appliance=p.appliance_id if named else labels.site(p.site_id),
                site=labels.site(p.site_id),
                kind=str(p.kind),
                reason=reason,
            )
        )
    left_out: dict[str, list[ExcludedRow]] = {}
    hidden_counts: dict[tuple[str, str], int] = {}
    for x in excluded:
        kind = classify(x.reason)
        if labels.shows(x.site_id):
            left_out.setdefault(x.site_id, []).append(
                ExcludedRow(x.appliance_id, x.site_id, kind, x.reason)
            )
        else:
            hidden_counts[(x.site_id, kind)] = hidden_counts.get((x.site_id, kind), 0) + 1
    for (site_id, kind), n in sorted(hidden_counts.items()):
        left_out.setdefault(site_id, []).append(
            ExcludedRow("", labels.site(site_id), kind, f"{n} appliance(s): {CLASS_TEXT[kind]}", n)
        )
    site_lines = []
    for s in lines:
        named = labels.shows(s.site_id)
        shown = named and distances and s.distance_km is not None
        distance = f"{s.distance_km:.0f} km" if shown else ""
        site_lines.append(
            SiteLine(
                rank=s.rank,
                label=labels.site(s.site_id),
                named=named,
                kind=str(s.kind),
                rule=_RULE_TEXT.get(str(s.rule), str(s.rule)),
                prefix=(s.prefix or "") if named else "",
                route=_route_info(snap, s) if named else None,
                decided_by=str(s.decided_by),
                versus=labels.site(s.versus) if s.versus else "",
                distance=distance,
                reason=_reason(s, labels),
                chosen=tuple(chosen.get(s.site_id, ())),
                excluded=tuple(left_out.get(s.site_id, ())),
            )
        )
    if decision is None:
        summary = f"best site: {site_lines[0].label}" if site_lines else "no candidate site"
    elif path_rows:
        first = path_rows[0]
        best = (
            f"{first.kind} site {first.site}" if labels.shows(pathways[0].site_id) else first.site
        )
        summary = f"{len(path_rows)} pathway(s), best: {best}"
    else:
        summary = decision.reason  # no pathway: names only the title and the address
    return Explanation(
        client_ip=decision.client_ip if decision is not None else client_ip,
        title_id=decision.title_id if decision is not None else None,
        summary=summary,
        location=location,
        steps=tuple(str(step) for step, _ in STEPS),
        sites=tuple(site_lines),
        pathways=tuple(path_rows),
        with_title=decision is not None,
    )
