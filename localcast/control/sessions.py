"""Playback sessions: starting one, and the manifests a session serves.

A session is started by ``POST /v1/playback``: steering ranks the pathways
for the client (:func:`localcast.core.steering.steer`), the stored view gives
the resume point (:func:`localcast.core.views.resume_point`), and the result
is sealed into a signed session id (:mod:`localcast.core.sessions`), so
nothing about the session is stored and any control plane instance sharing
the keyring can serve it (a restart does not break a playing client).

Per session the control plane then serves:

* the HLS multivariant playlist: one PATHWAY-ID per session pathway, each
  pathway's URIs under ``<appliance URL>/<token>/<title_id>/`` (token from
  :func:`localcast.core.tokens.signed_path`, expiring with the session),
  ``EXT-X-CONTENT-STEERING`` pointing at the session's steering URL and
  ``EXT-X-START`` when resuming;
* the DASH MPD, the same with ``BaseURL@serviceLocation`` and
  ``ContentSteering``;
* the steering manifest, re-ranked from the *current* snapshot on every
  request (:func:`localcast.core.steering.rerank`), in HLS or DASH-IF form.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from localcast.control.errors import Gone, Invalid, NotFound, Unavailable
from localcast.control.service import ControlPlane
from localcast.core.clientip import ClientAddress
from localcast.core.fleet import FleetSnapshot
from localcast.core.sessions import Session, SessionError, decode_session, encode_session
from localcast.core.steering import SteeringDecision, rerank, steer
from localcast.core.tokens import Keyring, signed_path
from localcast.core.views import Resume
from localcast.media.dash import render_mpd
from localcast.media.hls import Pathway, render_multivariant, select_renditions
from localcast.media.manifest import TitleManifest

SteeringFormat = Literal["hls", "dash"]


@dataclass(frozen=True)
class PlaybackAsk:
    title_id: str
    profile_id: str
    codecs: tuple[str, ...] | None
    max_height: int | None
    platform: str | None


@dataclass(frozen=True)
class Started:
    session_id: str
    session: Session
    decision: SteeringDecision
    resume: Resume
    client: ClientAddress


def pathway_base(appliance_url: str, keyring: Keyring, title_id: str, expires_at: int) -> str:
    """``<appliance URL>/<token>/<title_id>/``: where a pathway's files are fetched."""
    return appliance_url.rstrip("/") + signed_path(keyring, f"/{title_id}", expires_at) + "/"


def start_session(
    plane: ControlPlane, ask: PlaybackAsk, client: ClientAddress, resume: Resume | None = None
) -> Started:
    """Steer and seal a session; ``resume``, when given, is ``plane.resume_point`` of the ask."""
    snap = plane.snapshot
    entry = snap.catalog.get(ask.title_id)
    if entry is None:
        raise NotFound(f"unknown title {ask.title_id!r}")
    try:
        select_renditions(entry.manifest, ask.max_height, ask.codecs)
    except ValueError as exc:
        raise Invalid(str(exc), field="device.codecs") from exc
    now = plane.clock()
    decision = steer(
        snap,
        client.ip,
        ask.title_id,
        now,
        limit=plane.settings.max_pathways,
        per_site=plane.settings.per_site,
        locate=plane.locate,
    )
    if not decision.pathways:
        raise Unavailable(decision.reason)
    if resume is None:
        resume = plane.resume_point(ask.profile_id, ask.title_id)
    session = Session(
        title_id=ask.title_id,
        profile_id=ask.profile_id,
        client_ip=decision.client_ip,
        pathways=tuple(p.pathway_id for p in decision.pathways),
        resume_offset_s=resume.offset_s,
        issued_at=int(now),
        expires_at=int(now) + plane.settings.session_ttl_s,
        nonce=secrets.token_urlsafe(6),
        max_height=ask.max_height,
        codecs=ask.codecs,
        platform=ask.platform,
    )
    return Started(encode_session(plane.keyring, session), session, decision, resume, client)


def open_session(plane: ControlPlane, session_id: str) -> Session:
    try:
        return decode_session(plane.keyring, session_id, plane.clock())
    except SessionError as exc:
        if str(exc) == "session expired":
            raise Gone("session expired: start a new one with POST /v1/playback") from exc
        raise NotFound(f"unknown session: {exc}") from exc


def _manifest(snap: FleetSnapshot, session: Session) -> TitleManifest:
    entry = snap.catalog.get(session.title_id)
    if entry is None:
        raise Gone(f"title {session.title_id!r} left the catalog")
    return entry.manifest


def session_pathways(snap: FleetSnapshot, keyring: Keyring, session: Session) -> list[Pathway]:
    """The session's pathways that still exist, in their initial order, with signed bases."""
    out = []
    for pid in session.pathways:
        appliance = snap.appliances.get(pid)
        if appliance is not None:
            base = pathway_base(appliance.base_url, keyring, session.title_id, session.expires_at)
            out.append(Pathway(id=pid, base_uri=base))
    if not out:
        raise Gone("every appliance of this session left the fleet: start a new session")
    return out


def _start(session: Session) -> float | None:
    return session.resume_offset_s if session.resume_offset_s > 0 else None


def _manifest_and_pathways(
    plane: ControlPlane, session: Session
) -> tuple[TitleManifest, list[Pathway]]:
    """The session's title and its pathways in today's order, from one snapshot."""
    snap = plane.snapshot
    pathways = session_pathways(snap, plane.keyring, session)
    return _manifest(snap, session), _current_first(snap, plane, session, pathways)


def multivariant(plane: ControlPlane, session: Session, steering_url: str) -> str:
    manifest, pathways = _manifest_and_pathways(plane, session)
    return render_multivariant(
        manifest,
        pathways=pathways,
        steering_uri=steering_url,
        start_offset_s=_start(session),
        max_height=session.max_height,
        codecs=session.codecs,
    )


def mpd(plane: ControlPlane, session: Session, steering_url: str) -> str:
    manifest, pathways = _manifest_and_pathways(plane, session)
    return render_mpd(
        manifest,
        pathways=pathways,
        steering_uri=steering_url,
        start_offset_s=_start(session),
        max_height=session.max_height,
    )


def _current_first(
    snap: FleetSnapshot, plane: ControlPlane, session: Session, pathways: list[Pathway]
) -> list[Pathway]:
    """Pathways in today's priority order: the default pathway is the best one now."""
    order = rerank(
        snap,
        session.client_ip,
        session.title_id,
        session.pathways,
        plane.clock(),
        locate=plane.locate,
    ).order
    rank = {pid: i for i, pid in enumerate(order)}
    return sorted(pathways, key=lambda p: rank.get(p.id, len(rank)))


def steering_manifest(
    plane: ControlPlane, session: Session, fmt: SteeringFormat, reload_uri: str
) -> dict[str, Any]:
    """The steering manifest of ``session``, ranked from the current snapshot."""
    snap = plane.snapshot
    _manifest(snap, session)
    priority = rerank(
        snap,
        session.client_ip,
        session.title_id,
        session.pathways,
        plane.clock(),
        locate=plane.locate,
    )
    key = "PATHWAY-PRIORITY" if fmt == "hls" else "SERVICE-LOCATION-PRIORITY"
    return {
        "VERSION": 1,
        "TTL": plane.settings.steering_ttl_s,
        "RELOAD-URI": reload_uri,
        key: list(priority.order),
    }
