"""FastAPI assembly of the control plane: routers, error mapping, background refresh.

:func:`create_app` takes a ready :class:`ControlPlane` (built from config by
the caller) and adds nothing global. While the app runs, a background task
calls :meth:`ControlPlane.refresh` every ``refresh_interval_s`` so that a
topology applied or titles imported by another process (``localcast control
apply``) reach the snapshot: one tiny query per interval, never one per
playback request. The same task then runs ``plane.fills.tick``
(:class:`~localcast.control.fills.FillService`): the playback demand counted
in memory goes to the database, and the fill is planned again when the
configuration changed or a new UTC day began, and ``plane.health.refresh``
(:mod:`localcast.control.health`): every appliance's status observed again,
so one that stopped heartbeating turns Error without any event. Beside it,
the turn-up prober (:mod:`localcast.control.prober`) probes the registered
appliances not turned up yet, every ``refresh_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from localcast import __version__
from localcast.control import (
    appliances_api,
    catalog_api,
    fill_api,
    health_api,
    metrics_api,
    playback,
    routes_api,
    topology_api,
    traffic_api,
    views_api,
)
from localcast.control.deps import Plane
from localcast.control.errors import ControlError, Unauthorized
from localcast.control.fastpath import ControlApp
from localcast.control.prober import probe_forever
from localcast.control.service import ControlPlane
from localcast.portal import app as portal
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
        try:  # traffic and steering counts per partner and day to the database
            await asyncio.to_thread(plane.traffic.flush)
        except Exception:  # kept in memory for the next flush
            log.exception("traffic flush failed; the counts are kept for the next one")
        try:  # statuses move with time alone: a silent appliance turns Error here
            await asyncio.to_thread(plane.health.refresh)
        except Exception:  # keep the last steering states
            log.exception("health refresh failed; steering keeps the last states")


def create_app(plane: ControlPlane, background_refresh: bool = True) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if background_refresh:  # the refresh loop, and the turn-up prober beside it
            tasks = [
                asyncio.create_task(_refresh_forever(plane)),
                asyncio.create_task(probe_forever(plane)),
            ]
        try:
            yield
        finally:
            for task in tasks:
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
    async def _control_error(request: Request, exc: ControlError) -> Response:
        shown = portal.control_error_page(request, exc)  # a browser on a portal page
        if shown is not None:
            return shown
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
        health_api,
        traffic_api,
        metrics_api,
    ):
        app.include_router(module.router)
    app.include_router(watch_router(hlsjs_path()))
    portal.install(app, plane)
    return app
