"""The portal's assembly: its pages' routers, static files, and how its errors look.

:func:`install` is called by the control plane's :func:`~localcast.control.app.create_app`.
A page error (404 out of scope, 403 stale CSRF token, 422 bad input) renders as a
page for a browser and stays JSON for an API client; a page needing a login
redirects to it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from localcast.control.errors import ControlError
from localcast.control.service import ControlPlane
from localcast.portal.accounts import AccountStore
from localcast.portal.auth import LoginRequired, session_viewer
from localcast.portal.pages import (
    appliance,
    home,
    login,
    operator,
    peering,
    requests,
    routes,
    traffic,
)
from localcast.portal.render import page, see_other, url
from localcast.web.assets import node_modules

STATIC = Path(__file__).resolve().parent / "static"
PAGES = (login, home, appliance, routes, traffic, requests, peering, operator)


def _static_router() -> APIRouter:
    router = APIRouter()

    @router.get("/portal/static/chart.umd.min.js", include_in_schema=False)
    def chartjs() -> Response:
        path = node_modules() / "chart.js" / "dist" / "chart.umd.min.js"
        if not path.is_file():
            return JSONResponse({"detail": "chart.js is not installed: run make deps"}, 404)
        return FileResponse(path, media_type="text/javascript")

    @router.get("/portal/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return JSONResponse({"detail": "no such file"}, 404)
        return FileResponse(path)

    return router


def wants_page(request: Request) -> bool:
    """A portal page (not its JSON or CSV endpoints) answers errors as a page."""
    path = request.url.path
    return path.startswith("/portal") and not (
        path.startswith("/portal/api/") or path.endswith((".csv", ".json"))
    )


def control_error_page(request: Request, exc: ControlError) -> Response | None:
    """The page for a portal error; None when the JSON answer is right."""
    if not wants_page(request):
        return None
    return page(
        request, session_viewer(request), "error.html", "Sorry", exc.status, message=exc.reason
    )


def install(app: FastAPI, plane: ControlPlane) -> None:
    app.state.accounts = AccountStore(plane.sessions)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if request.url.path.startswith("/portal") and request.method == "GET":
            return see_other(request, url("/portal/login", next=exc.next_path))
        return JSONResponse({"detail": "log in to the portal first"}, status_code=401)

    for module in PAGES:
        app.include_router(module.router)
    app.include_router(_static_router())
