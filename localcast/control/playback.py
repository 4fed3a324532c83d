"""Playback routes: start a session, serve its manifests and its live steering.

* ``POST /v1/playback``                        start a session (steering + resume)
* ``GET  /v1/sessions/{sid}``                  the session and its live ranking (explain)
* ``GET  /v1/sessions/{sid}/master.m3u8``      HLS multivariant with content steering
* ``GET  /v1/sessions/{sid}/manifest.mpd``     DASH MPD with content steering
* ``GET  /v1/sessions/{sid}/steering``         steering manifest (``?format=dash`` for DASH)
* ``GET  /v1/steering/explain``                a full steering decision, with reasons

Thin: decisions are in :mod:`localcast.control.sessions` and the core.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from localcast.control import sessions
from localcast.control.deps import Client, FleetReader, Plane, public_base
from localcast.control.errors import Invalid, NotFound
from localcast.control.explain import explanation
from localcast.control.schemas import PlaybackRequest, PlaybackResponse
from localcast.control.service import ControlPlane
from localcast.core.clientip import ClientAddress
from localcast.core.routes import parse_address
from localcast.core.steering import rerank, steer

log = logging.getLogger(__name__)
router = APIRouter()

HLS_TYPE = "application/vnd.apple.mpegurl"
DASH_TYPE = "application/dash+xml"
NO_STORE = {"Cache-Control": "no-store"}


def _urls(base: str, sid: str) -> dict[str, str]:
    root = f"{base}/v1/sessions/{quote(sid, safe='')}"
    return {
        "multivariant": f"{root}/master.m3u8",
        "mpd": f"{root}/manifest.mpd",
        "steering": f"{root}/steering",
        "steering_dash": f"{root}/steering?format=dash",
    }


@router.post("/v1/playback", response_model=PlaybackResponse)
async def start_playback(
    body: PlaybackRequest, request: Request, plane: Plane, client: Client
) -> Response:
    """Documents the endpoint; requests are answered by :mod:`localcast.control.fastpath`,
    which calls :func:`playback_answer` in front of the framework (this route answers only
    when the app is mounted under another ASGI app)."""
    return JSONResponse(await playback_answer(plane, body, client, public_base(request, plane)))


async def playback_answer(
    plane: ControlPlane, body: PlaybackRequest, client: ClientAddress, base: str
) -> dict[str, Any]:
    """Start a session: the ``PlaybackResponse`` body, built as a plain dict.

    Runs on the event loop (steering is CPU only); the database is read in the
    threadpool, and only when the stored view is not cached. The dict is shaped as
    ``PlaybackResponse`` (which documents it) to skip re-validating our own output.
    """
    ask = sessions.PlaybackAsk(
        title_id=body.title_id,
        profile_id=body.profile_id,
        codecs=tuple(body.device.codecs) if body.device.codecs else None,
        max_height=body.device.max_height,
        platform=body.platform,
    )
    try:
        parse_address(client.ip)
    except ValueError as exc:
        raise Invalid(f"client address {client.ip!r} is not an IP address") from exc
    resume = plane.cached_resume_point(ask.profile_id, ask.title_id)
    if resume is None:
        resume = await run_in_threadpool(plane.resume_point, ask.profile_id, ask.title_id)
    started = sessions.start_session(plane, ask, client, resume)
    plane.count_playback(started.decision)  # demand + steering outcome, in memory
    session = started.session
    urls = _urls(base, started.session_id)
    bases = {
        p.id: p.base_uri for p in sessions.session_pathways(plane.snapshot, plane.keyring, session)
    }
    mpd_url = urls["mpd"]
    if session.resume_offset_s > 0:
        mpd_url += f"#t={session.resume_offset_s:g}"
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "playback %s for %s (%s): %s; resume %.1f s",
            body.title_id,
            client.ip,
            client.reason,
            ", ".join(p.pathway_id for p in started.decision.pathways),
            started.resume.offset_s,
        )
    return {
        "session_id": started.session_id,
        "multivariant_url": urls["multivariant"],
        "mpd_url": mpd_url,
        "steering_url": urls["steering"],
        "pathways": [
            {
                "id": p.pathway_id,
                "appliance_id": p.appliance_id,
                "site_id": p.site_id,
                "kind": p.kind.value,
                "base_url": bases.get(p.pathway_id, ""),
                "appliance_url": p.base_url,
                "rank": p.rank,
                "rule": p.rule.value,
                "reason": p.reason,
            }
            for p in started.decision.pathways
        ],
        "resume_offset_s": float(started.resume.offset_s),
        "resume_reason": started.resume.reason,
        "expires_at": session.expires_at,
        "client_ip": client.ip,
        "client_ip_reason": client.reason,
        "snapshot_version": started.decision.snapshot_version,
    }


@router.get("/v1/sessions/{sid}")
async def session_info(sid: str, plane: Plane) -> dict[str, Any]:
    session = sessions.open_session(plane, sid)
    snap = plane.snapshot
    priority = rerank(
        snap,
        session.client_ip,
        session.title_id,
        session.pathways,
        plane.clock(),
        locate=plane.locate,
    )
    return {
        "session": asdict(session),
        "priority": list(priority.order),
        "demoted": [asdict(d) for d in priority.demoted],
        "dropped": [asdict(d) for d in priority.dropped],
        "snapshot_version": priority.snapshot_version,
    }


@router.get("/v1/sessions/{sid}/master.m3u8")
async def session_multivariant(sid: str, request: Request, plane: Plane) -> Response:
    session = sessions.open_session(plane, sid)
    steering = _urls(public_base(request, plane), sid)["steering"]
    body = sessions.multivariant(plane, session, steering)
    return Response(body, media_type=HLS_TYPE, headers=NO_STORE)


@router.get("/v1/sessions/{sid}/manifest.mpd")
async def session_mpd(sid: str, request: Request, plane: Plane) -> Response:
    session = sessions.open_session(plane, sid)
    steering = _urls(public_base(request, plane), sid)["steering_dash"]
    body = sessions.mpd(plane, session, steering)
    return Response(body, media_type=DASH_TYPE, headers=NO_STORE)


@router.get("/v1/sessions/{sid}/steering")
async def session_steering(
    sid: str,
    request: Request,
    plane: Plane,
    format: Literal["hls", "dash"] = "hls",
    hls_pathway: Annotated[str | None, Query(alias="_HLS_pathway")] = None,
    dash_pathway: Annotated[str | None, Query(alias="_DASH_pathway")] = None,
) -> JSONResponse:
    """The steering manifest; players add ``_HLS_pathway``/``_DASH_pathway`` (logged only)."""
    session = sessions.open_session(plane, sid)
    urls = _urls(public_base(request, plane), sid)
    reload_uri = urls["steering_dash"] if format == "dash" else urls["steering"]
    body = sessions.steering_manifest(plane, session, format, reload_uri)
    current = hls_pathway or dash_pathway
    if current is not None:
        log.debug("steering %s: player on %s", session.title_id, current)
    return JSONResponse(body, headers=NO_STORE)


@router.get("/v1/steering/explain", dependencies=[FleetReader])
async def explain(
    plane: Plane,
    client: Client,
    title_id: str | None = None,
    client_ip: str | None = None,
    title: str | None = None,
    ip: str | None = None,
    limit: Annotated[int, Query(ge=1, le=64)] = 4,
) -> dict[str, Any]:
    """The full steering decision for ``ip`` (default: the caller) and ``title``.

    ``title_id`` / ``client_ip`` are the same parameters under their older
    names. Every candidate site comes with its rank, the rule that made it a
    candidate, its route (and the BGP attributes when learned), the decision
    step that placed it against which other site, its distance and a sentence.
    """
    wanted = title or title_id
    if wanted is None:
        raise Invalid("title is required", field="title")
    snap = plane.snapshot
    if wanted not in snap.catalog:
        raise NotFound(f"unknown title {wanted!r}")
    asked = ip or client_ip
    where = "ip" if ip else "client_ip"
    addr = asked or client.ip
    try:
        decision = steer(
            snap,
            addr,
            wanted,
            plane.clock(),
            limit,
            plane.settings.per_site,
            locate=plane.locate,
        )
    except ValueError as exc:
        raise Invalid(f"{addr!r} is not an IP address", field=where) from exc
    return explanation(snap, decision, geoip=plane.locate is not None)
