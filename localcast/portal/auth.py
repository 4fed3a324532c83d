"""Who is asking: the login cookie, the viewer it names, and the CSRF check on every form.

The cookie (``COOKIE``) is HttpOnly, SameSite=Lax, path ``/``, and Secure when the
request came over TLS. A page dependency that finds no live session raises
:class:`LoginRequired`, which the portal turns into a 303 to the login page
(keeping where the viewer was going); an API answers 401 instead.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from localcast.control.errors import ControlError, NotFound
from localcast.control.service import ControlPlane
from localcast.portal.accounts import AccountStore, LoginSession

COOKIE = "localcast_portal"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRejected(ControlError):
    status = 403


@dataclass(frozen=True)
class Viewer:
    user_id: int
    email: str
    name: str
    role: str  # "operator" | "partner"
    partner: str | None  # a partner user's partner; None for an operator
    csrf: str  # this login session's CSRF token

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    @classmethod
    def of(cls, session: LoginSession) -> Viewer:
        u = session.user
        return cls(u.id, u.email, u.name, u.role, u.partner, session.csrf)


def accounts_of(request: Request) -> AccountStore:
    store = request.app.state.accounts
    assert isinstance(store, AccountStore)
    return store


def plane_of(request: Request) -> ControlPlane:
    plane = request.app.state.plane
    assert isinstance(plane, ControlPlane)
    return plane


def session_viewer(request: Request) -> Viewer | None:
    """The viewer of this request's login cookie, or None."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    found = accounts_of(request).session(token, plane_of(request).clock())
    return Viewer.of(found) if found is not None else None


def _next_path(request: Request) -> str:
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


async def current_viewer(request: Request) -> Viewer:
    viewer = session_viewer(request)
    if viewer is None:
        raise LoginRequired(_next_path(request))
    return viewer


async def operator_viewer(viewer: Annotated[Viewer, Depends(current_viewer)]) -> Viewer:
    if not viewer.is_operator:  # partners do not learn operator pages exist
        raise NotFound("no such page")
    return viewer


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
OperatorViewer = Annotated[Viewer, Depends(operator_viewer)]


async def check_csrf(request: Request, viewer: CurrentViewer) -> None:
    """Every state-changing request carries the session's CSRF token (form field or header)."""
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    if not given or not hmac.compare_digest(given.encode(), viewer.csrf.encode()):
        raise CsrfRejected("the form's security token is missing or stale: reload the page")


Csrf = Depends(check_csrf)


def set_login_cookie(request: Request, response: Response, session: LoginSession) -> None:
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=int(session.expires_at - plane_of(request).clock()),
        path="/",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
    )


def clear_login_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, secure=request.url.scheme == "https", samesite="lax"
    )
