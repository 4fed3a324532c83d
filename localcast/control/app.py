"""FastAPI assembly of the control plane: routers, error mapping, background refresh.

:func:`create_app` takes a ready :class:`ControlPlane` (built from config by
the caller) and adds nothing global. While the app runs, a background task
calls :meth:`ControlPlane.refresh` every ``refresh_interval_s`` so that a
topology applied or titles imported by another process (``localcast control
apply``) reach the snapshot: one tiny query per interval, never one per
playback request. The same task then runs ``plane.fills.tick``
(:class:`~localcast.control.fills.FillService`): the playback demand counted
in memory goes to the database, and the fill is planned again when the
configuration changed or a new UTC day began.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from localcast import __version__
from localcast.control import (
    appliances_api,
    catalog_api,
    fill_api,
    playback,
    routes_api,
    topology_api,
    views_api,
)
from localcast.control.deps import Plane
from localcast.control.errors import ControlError, Unauthorized
from localcast.control.fastpath import ControlApp
from localcast.control.service import ControlPlane
from localcast.web.assets import hlsjs_path
from localcast.web.watch import watch_router

log = logging.getLogger(__name__)


async def _refresh_forever(plane: ControlPlane) -> None:
    while True:
        await asyncio.sleep(plane.settings.refresh_interval_s)
        try:
            await asyncio.to_thread(plane.refresh)
        except Exception:  # keep serving from the last good snapshot
            log.exception("snapshot refresh failed; serving snapshot v%d", plane.snapshot.version)
        try:  # demand to the database; a fill plan when something changed or a day began
            await asyncio.to_thread(plane.fills.tick)
        except Exception:  # keep the last manifests
            log.exception("fill tick failed; agents keep their manifests")


def create_app(plane: ControlPlane, background_refresh: bool = True) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_refresh_forever(plane)) if background_refresh else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = ControlApp(
        title="Localcast control plane",
        version=__version__,
        lifespan=lifespan,
        summary="Fleet, catalog, steering, playback sessions and views.",
    )
    app.state.plane = plane

    @app.exception_handler(ControlError)
    async def _control_error(_request: Request, exc: ControlError) -> JSONResponse:
        body: dict[str, Any] = {"detail": exc.reason}
        if exc.field:
            body["field"] = exc.field
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.get("/healthz")
    async def healthz(plane: Plane) -> dict[str, Any]:
        snap = plane.snapshot
        return {
            "ok": True,
            "snapshot_version": snap.version,
            "sites": len(snap.sites),
            "appliances": len(snap.appliances),
            "titles": len(snap.catalog),
        }

    for module in (
        playback,
        views_api,
        appliances_api,
        routes_api,
        catalog_api,
        topology_api,
        fill_api,
    ):
        app.include_router(module.router)
    app.include_router(watch_router(hlsjs_path()))
    return app
