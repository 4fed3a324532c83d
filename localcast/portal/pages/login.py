"""Log in, log out, and accept an invitation.

The login form refuses a POST whose Origin names another site (login CSRF:
being logged in to someone else's account); wrong email and wrong password
get the same answer.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from localcast.portal.accounts import AccountError
from localcast.portal.auth import (
    COOKIE,
    Csrf,
    CsrfRejected,
    CurrentViewer,
    accounts_of,
    clear_login_cookie,
    plane_of,
    session_viewer,
    set_login_cookie,
)
from localcast.portal.render import page, see_other

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only a path of the portal: never another host (an open redirect)."""
    if not target or not target.startswith("/portal") or target.startswith("//"):
        return "/portal/"
    return target


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)


@router.get("/portal/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    if session_viewer(request) is not None:
        return see_other(request, _safe_next(next))
    return page(request, None, "login.html", "Log in", next=_safe_next(next), email="", error="")


@router.post("/portal/login", response_class=HTMLResponse)
def login(
    request: Request,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/portal/",
) -> Response:
    if not _same_origin(request):
        raise CsrfRejected("a login must come from this site's own form")
    try:
        session = accounts_of(request).login(email, password, plane_of(request).clock())
    except AccountError as exc:
        return page(
            request,
            None,
            "login.html",
            "Log in",
            status_code=401,
            next=_safe_next(next),
            email=email,
            error=exc.reason,
        )
    response = see_other(request, _safe_next(next))
    set_login_cookie(request, response, session)
    return response


@router.post("/portal/logout", dependencies=[Csrf])
def logout(request: Request) -> Response:
    token = request.cookies.get(COOKIE)
    if token:
        accounts_of(request).logout(token)
    response = see_other(request, "/portal/login", flash="You are logged out.")
    clear_login_cookie(request, response)
    return response


@router.get("/portal/invite/{token}", response_class=HTMLResponse)
def invite_form(request: Request, token: str) -> Response:
    invite = accounts_of(request).pending_invite(token, plane_of(request).clock())
    return page(
        request,
        None,
        "invite.html",
        "Accept your invitation",
        status_code=200 if invite else 404,
        invite=invite,
        name="",
        error="",
    )


@router.post("/portal/invite/{token}", response_class=HTMLResponse)
def accept_invite(
    request: Request,
    token: str,
    password: Annotated[str, Form(max_length=1024)] = "",
    name: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    accounts = accounts_of(request)
    now = plane_of(request).clock()
    invite = accounts.pending_invite(token, now)
    try:
        user = accounts.accept_invite(token, password, name, now)
    except AccountError as exc:
        return page(
            request,
            None,
            "invite.html",
            "Accept your invitation",
            status_code=422 if invite else 404,
            invite=invite,
            name=name,
            error=exc.reason,
        )
    session = accounts.login(user.email, password, now)
    response = see_other(request, "/portal/", flash=f"Welcome, {user.name or user.email}.")
    set_login_cookie(request, response, session)
    return response


@router.get("/portal/api/session")
def whoami(viewer: CurrentViewer) -> dict[str, object]:
    """Who is logged in, and the CSRF token a script sends as X-CSRF-Token (same origin only:
    no CORS header is ever set on the portal)."""
    return {
        "email": viewer.email,
        "name": viewer.name,
        "role": viewer.role,
        "partner": viewer.partner,
        "csrf": viewer.csrf,
    }
