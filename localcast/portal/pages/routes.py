"""The route explorer and the steering explanation: ``GET /portal/routes``.

Query: ``partner`` (operators), ``site`` (one of the viewer's sites; another
partner's site answers 404), ``q`` (a prefix: the routes inside it; an
address: the routes covering it), ``offset`` / ``limit`` (prefixes per page,
at most :data:`~localcast.portal.views.routes_view.MAX_ROWS`), ``ip`` and
``title`` (the steering explanation for a client at ``ip`` playing ``title``;
without a catalog, the site ranking alone), ``check=lonely`` (the routes with no
alternate source, computed unasked only while the fleet's learned routes are few:
the report reads all of them). Both forms are GET: nothing
changes, and a result can be bookmarked or sent to a colleague.

What each section shows, and which core function it comes from, is in
:mod:`localcast.portal.views.routes_view` (scope rules included): this module
only gathers the inputs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from localcast.control.errors import NotFound
from localcast.core.fleet import Site, SiteKind
from localcast.core.steering import candidate_sites, steer
from localcast.portal.auth import CurrentViewer, Viewer, plane_of
from localcast.portal.render import page, url
from localcast.portal.scope import partner_for, partner_sites, site_or_404
from localcast.portal.views import routes_view as rv

router = APIRouter()


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
    }
    if chosen is not None:
        context.update(
            _site_sections(request, chosen, labels, q, offset, limit, now, check == "lonely")
        )
    context.update(_explain_section(request, labels, ip, title, now))
    return page(request, viewer, "routes.html", "Routes", partner=partner_id, **context)


def _site_sections(
    request: Request,
    site: Site,
    labels: rv.Labels,
    q: str,
    offset: int,
    limit: int,
    now: float,
    lonely: bool,
) -> dict[str, object]:
    plane = plane_of(request)
    snap = plane.snapshot
    apps = sorted(a.id for a in snap.appliances_at(site.id))
    sessions = rv.session_rows(apps, plane.routes.sessions, now)
    out: dict[str, object] = {
        "appliances": apps,
        "speaks_bgp": any(a in snap.routes.learned.ribs for a in apps),
        "sessions": sessions,
        "hints": rv.session_hints(sessions),
    }
    try:
        query = rv.parse_query(q)
    except ValueError as exc:
        out["query_error"] = str(exc)
        query = None
    routes = rv.route_page(snap, site.id, query, offset, limit)
    out["routes"] = routes
    out["clients"] = [
        rv.client_row(snap, site.id, p.version, p.key, labels, plane.locate)
        for p in routes.prefixes
    ]
    out["clients_count"] = rv.clients_best(snap, site.id, labels, plane.locate)
    out["consistency"] = rv.consistency(snap, site.id)
    if lonely or snap.routes.learned.route_count <= rv.LONELY_AUTO_LIMIT:
        out["lonely"] = rv.lonely(snap, site.id, labels)
    else:  # seconds at full tables: on request
        out["lonely"] = None
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
