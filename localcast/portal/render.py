"""Page rendering: one Jinja2 environment (autoescaped), the layout's context, flash notices.

Every page is ``page(request, viewer, "<name>.html", title, **context)``; the
layout (``templates/base.html``) gets the viewer, its CSRF token, the navigation
and the one-shot flash notice. A POST answers ``see_other(url, flash=...)``
(Post/Redirect/Get); the notice rides in a short-lived cookie, not the URL, so
nobody can craft a link that puts words on our page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from localcast import __version__
from localcast.portal.auth import Viewer, plane_of
from localcast.portal.scope import partners

TEMPLATES = Path(__file__).resolve().parent / "templates"
FLASH_COOKIE = "localcast_flash"
# Every page: not cached (one viewer's data), never framed (clickjacking), scripts and forms
# only from this origin (inline style attributes are allowed: the meters' widths).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
MAX_FLASH = 300


def url(path: str, **params: object) -> str:
    """``path`` with the query ``params`` that are not None or empty."""
    query = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(query)}" if query else path


def _csrf_field(token: str) -> Markup:
    return Markup('<input type="hidden" name="csrf" value="{}">').format(token)


ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.globals["url"] = url
ENV.globals["version"] = __version__


def nav(viewer: Viewer | None, partner: str | None) -> list[tuple[str, str]]:
    """The menu: (label, href). Partner pages keep an operator's ``?partner=``."""
    if viewer is None:
        return []
    p = partner if viewer.is_operator else None
    items = [
        ("Home", url("/portal/", partner=p)),
        ("Routes", url("/portal/routes", partner=p)),
        ("Traffic", url("/portal/traffic", partner=p)),
        ("Appliance requests", url("/portal/requests", partner=p)),
        ("Peering", "/portal/peering"),
    ]
    if viewer.is_operator:
        items += [
            ("Fleet", "/portal/operator/fleet"),
            ("Catalog", "/portal/operator/catalog"),
            ("Users", "/portal/operator/users"),
        ]
    return items


def page(
    request: Request,
    viewer: Viewer | None,
    template: str,
    title: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    flash = request.cookies.get(FLASH_COOKIE, "")[:MAX_FLASH]
    partner = context.pop("partner", None)
    csrf = viewer.csrf if viewer is not None else ""
    body = ENV.get_template(template).render(
        request=request,
        viewer=viewer,
        title=title,
        csrf=csrf,
        csrf_field=lambda: _csrf_field(csrf),
        nav=nav(viewer, partner),
        current=request.url.path,
        partner=partner,
        partner_choices=(
            partners(plane_of(request)) if viewer and viewer.is_operator and partner else []
        ),
        flash=flash,
        **context,
    )
    response = HTMLResponse(body, status_code=status_code)
    response.headers.update(PAGE_HEADERS)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/portal")
    return response


def see_other(request: Request, target: str, flash: str | None = None) -> RedirectResponse:
    """303 to ``target`` (a path of ours), with a one-shot notice for the next page."""
    if not target.startswith("/") or target.startswith("//"):
        target = "/portal/"
    response = RedirectResponse(target, status_code=303)
    if flash:
        response.set_cookie(
            FLASH_COOKIE,
            flash[:MAX_FLASH],
            max_age=60,
            path="/portal",
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="lax",
        )
    return response
