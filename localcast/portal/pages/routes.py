"""The route explorer and the steering explanation: ``GET /portal/routes``.

Query: ``partner`` (operators), ``site`` (one of the viewer's sites; another
partner's site answers 404), ``q`` (a prefix: the routes inside it; an
address: the routes covering it), ``offset`` / ``limit`` (prefixes per page,
at most :data:`~localcast.portal.views.routes_view.MAX_ROWS`), ``ip`` and
``title`` (the steering explanation for a client at ``ip`` playing ``title``;
without a catalog, the site ranking alone), ``check=lonely`` / ``check=consistency``
(the site's routes with no alternate source / its inconsistencies: computed unasked
while the site hears at most
:data:`~localcast.portal.views.routes_view.REPORT_AUTO_LIMIT` prefixes, past that
when asked, then shown while the routes they read are unchanged; the
inconsistencies are the core's report, which compares every route: seconds at full
tables). Both forms are GET: nothing changes, and a result can be bookmarked or sent
to a colleague.

Speed at full tables: what depends on the route tables alone (each Adj-RIB-In's and
the site's sorted prefixes, the site's reports) is kept in a memo per route feed
(:class:`_RouteMemo`) for the Adj-RIB-Ins it read (the snapshot's, and each BGP
session's own): they are replaced, never changed, so a reload computes nothing again
and a report recomputes only what read one it replaced; held weakly, so a replaced
table is freed with its snapshot. A page lists at most
:data:`~localcast.portal.views.routes_view.MAX_ROWS` prefixes and the reports' first
rows; the rest is a slice or a binary search of sorted arrays.

What each section shows, and which core function it comes from, is in
:mod:`localcast.portal.views.routes_view` (scope rules included): this module
only gathers the inputs.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from localcast.control.errors import NotFound
from localcast.control.route_feed import RouteFeed
from localcast.core.fleet import FleetSnapshot, Site, SiteKind
from localcast.core.rib import AdjRibIn
from localcast.core.steering import candidate_sites, steer
from localcast.portal.auth import CurrentViewer, Viewer, plane_of
from localcast.portal.render import page, url
from localcast.portal.scope import partner_for, partner_sites, site_or_404
from localcast.portal.views import routes_view as rv

router = APIRouter()

#: Values one memo keeps at most (the least recently used go first).
MEMO_SIZE = 4096


_Entry = tuple[tuple[weakref.ref[AdjRibIn], ...], Any]  # (what it read, the value)


class _RouteMemo(rv.Memo):
    """One route feed's memo of what the route explorer derives from route tables (sorted
    prefixes per Adj-RIB-In and per site, the site reports), kept per Adj-RIB-In identity:
    they are replaced, never changed, so a value stays valid while the ones it read are the
    current ones. Held weakly: a replaced Adj-RIB-In is freed with its snapshot, and what
    was derived from it goes with it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._gone: list[Hashable] = []  # keys whose Adj-RIB-In was freed (weakref callbacks)

    def _purge(self) -> None:
        """Drop what was derived from freed Adj-RIB-Ins (under the lock)."""
        while self._gone:
            key = self._gone.pop()
            hit = self._values.get(key)
            if hit is not None and any(w() is None for w in hit[0]):
                del self._values[key]

    def _key(self, name: Hashable, ribs: Sequence[AdjRibIn]) -> Hashable:
        return (name, tuple(id(r) for r in ribs))

    def peek(self, name: Hashable, ribs: Sequence[AdjRibIn]) -> Any:
        key = self._key(name, ribs)
        with self._lock:
            self._purge()
            hit = self._values.get(key)
            if hit is None or any(w() is not r for w, r in zip(hit[0], ribs, strict=True)):
                return None
            self._values.move_to_end(key)
            return hit[1]

    def get(self, name: Hashable, ribs: Sequence[AdjRibIn], compute: Callable[[], Any]) -> Any:
        found = self.peek(name, ribs)
        if found is not None:
            return found
        value = compute()  # not under the lock: other pages go on meanwhile
        key = self._key(name, ribs)
        refs = tuple(weakref.ref(r, self._dropper(key)) for r in ribs)
        with self._lock:
            self._values[key] = (refs, value)
            while len(self._values) > MEMO_SIZE:
                self._values.popitem(last=False)
        return value

    def _dropper(self, key: Hashable) -> Callable[[weakref.ref[AdjRibIn]], None]:
        def gone(_: weakref.ref[AdjRibIn]) -> None:
            # may run in any thread, inside any code (the collector): no lock, one append
            self._gone.append(key)

        return gone


_memos: weakref.WeakKeyDictionary[RouteFeed, _RouteMemo] = weakref.WeakKeyDictionary()
_memos_lock = threading.Lock()


def _memo(feed: RouteFeed) -> _RouteMemo:
    with _memos_lock:
        memo = _memos.get(feed)
        if memo is None:
            memo = _memos[feed] = _RouteMemo()
        return memo


def _partner(viewer: Viewer, request: Request, asked: str | None, site: Site | None) -> str | None:
    """The partner the page is about; an operator looking at a site: the site's partner."""
    plane = plane_of(request)
    if viewer.is_operator and site is not None and site.partner:
        asked = site.partner
    try:
        return partner_for(viewer, plane, asked)
    except NotFound:
        if viewer.is_operator and not asked:  # no partner declared yet: the operator's sites
            return None
        raise


@router.get("/portal/routes", response_class=HTMLResponse)
def routes(
    request: Request,
    viewer: CurrentViewer,
    partner: str | None = None,
    site: str | None = None,
    q: str = "",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=rv.MAX_ROWS)] = rv.DEFAULT_ROWS,
    ip: str = "",
    title: str = "",
    check: str = "",
) -> Response:
    plane = plane_of(request)
    snap = plane.snapshot
    now = plane.clock()
    chosen = site_or_404(viewer, plane, site) if site else None
    partner_id = _partner(viewer, request, partner, chosen)
    sites = partner_sites(plane, partner_id) if partner_id else []
    if viewer.is_operator:  # the operator's own IX sites (BGP with route servers, peers)
        sites += sorted(
            (s for s in snap.sites.values() if s.partner is None and s.kind is SiteKind.IX),
            key=lambda s: s.id,
        )
        if chosen is not None and chosen not in sites:
            sites.append(chosen)
    visible = frozenset(snap.sites) if viewer.is_operator else frozenset(s.id for s in sites)
    labels = rv.Labels(snap.sites, visible)
    summaries = rv.site_summaries(snap, sites, plane.routes.sessions)
    if chosen is None:
        speaking = [s for s, summary in zip(sites, summaries, strict=True) if summary.speaks_bgp]
        pick = speaking or sites
        chosen = pick[0] if pick else None
    link_partner = partner_id if viewer.is_operator else None

    def link(**params: object) -> str:
        return url("/portal/routes", partner=link_partner, **params)

    context: dict[str, Any] = {
        "summaries": summaries,
        "selected": chosen,
        "link": link,
        "link_partner": link_partner or "",
        "q": q,
        "query_error": "",
        "offset": offset,
        "limit": limit,
        "filter_reasons": rv.FILTER_REASONS,
        "client_limit": rv.CLIENT_COUNT_LIMIT,
        "report_limit": rv.REPORT_AUTO_LIMIT,
    }
    if chosen is not None:
        context.update(_site_sections(request, snap, chosen, labels, q, offset, limit, now, check))
    context.update(_explain_section(request, labels, ip, title, now))
    return page(request, viewer, "routes.html", "Routes", partner=partner_id, **context)


def _site_sections(
    request: Request,
    snap: FleetSnapshot,
    site: Site,
    labels: rv.Labels,
    q: str,
    offset: int,
    limit: int,
    now: float,
    check: str,
) -> dict[str, object]:
    plane = plane_of(request)
    feed = plane.routes
    memo = _memo(feed)
    apps = sorted(a.id for a in snap.appliances_at(site.id))
    routes = rv.SiteRoutes(snap, site.id, feed.session_prefixes, memo)
    small = routes.total <= rv.REPORT_AUTO_LIMIT  # else: when asked, or kept from before
    sessions = rv.session_rows(apps, feed.sessions, now)
    sources = routes.sources(compute=small or check == "lonely") if routes.ribs else None
    out: dict[str, object] = {
        "appliances": apps,
        "speaks_bgp": bool(routes.ribs),
        "sessions": sessions,
        "hints": rv.session_hints(sessions, sources),
        "sources": sources.labelled(labels) if sources is not None else None,
        "consistency": routes.consistency(compute=small or check == "consistency"),
    }
    try:
        query = rv.parse_query(q)
    except ValueError as exc:
        out["query_error"] = str(exc)
        query = None
    page = routes.page(query, offset, limit)
    out["routes"] = page
    out["clients"] = [
        rv.client_row(snap, site.id, p.version, p.key, labels, plane.locate) for p in page.prefixes
    ]
    out["clients_count"] = rv.clients_best(snap, site.id, labels, plane.locate, routes=routes)
    return out


def _explain_section(
    request: Request, labels: rv.Labels, ip: str, title: str, now: float
) -> dict[str, object]:
    plane = plane_of(request)
    snap = plane.snapshot
    titles = [(t, snap.catalog[t].manifest.name) for t in sorted(snap.catalog)]
    out: dict[str, object] = {
        "ip": ip,
        "titles": titles,
        "title_id": title or (titles[0][0] if titles else ""),
        "ip_error": "",
        "explanation": None,
    }
    ip = ip.strip()
    if not ip:
        return out
    if title and title not in snap.catalog:
        out["ip_error"] = f"unknown title {title!r}: pick one from the list"
        return out
    try:
        if titles:
            decision = steer(
                snap,
                ip,
                str(out["title_id"]),
                now,
                plane.settings.max_pathways,
                plane.settings.per_site,
                locate=plane.locate,
            )
            out["explanation"] = rv.explanation(snap, ip, labels, decision=decision)
        else:
            ranked = candidate_sites(snap, ip, plane.locate)
            out["explanation"] = rv.explanation(
                snap, ip, labels, candidates=ranked, locate=plane.locate
            )
    except ValueError:
        out["ip_error"] = f"{ip!r} is not an IP address (e.g. 203.0.113.7 or 2001:db8::7)"
    return out
