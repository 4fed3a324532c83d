"""The control plane as the player calls it: playback, multivariant, steering, views.

Contract (``localcast.control``):

* ``POST /v1/playback`` ``{"title_id", "profile_id", "device": {"codecs",
  "max_height"}, "platform"}`` -> ``{"session_id", "multivariant_url",
  "mpd_url", "pathways": [...], "resume_offset_s", "expires_at"}``; 404 for an
  unknown title.
* the multivariant playlist and the steering manifest, by URL;
* ``PUT /v1/views/{profile}/{title}`` ``{"offset_s", "platform", "client_time"}``.

:func:`parse_grant` is pure; :class:`ControlApi` does the requests. Control
plane traffic does not go through the emulated link and is not counted as
media bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

import httpx

from localcast.player.errors import PlayerError, TitleNotFound
from localcast.player.steering import SteeringError, SteeringManifest, parse_steering


@dataclass(frozen=True)
class PathwayInfo:
    id: str
    appliance_id: str
    site_id: str
    kind: str
    base_url: str
    rank: int


@dataclass(frozen=True)
class PlaybackGrant:
    session_id: str
    multivariant_url: str
    mpd_url: str | None
    pathways: tuple[PathwayInfo, ...]
    resume_offset_s: float
    expires_at: Any


def parse_grant(data: Any, control_url: str) -> PlaybackGrant:
    """Validate a playback response; relative URLs resolve against ``control_url``."""
    if not isinstance(data, dict):
        raise PlayerError("playback response: expected a JSON object")
    mv = data.get("multivariant_url")
    if not isinstance(mv, str) or not mv:
        raise PlayerError("playback response: multivariant_url missing")
    pathways = []
    for i, p in enumerate(data.get("pathways") or []):
        if not isinstance(p, dict) or not isinstance(p.get("id"), str):
            raise PlayerError(f"playback response: pathways[{i}] has no id")
        pathways.append(
            PathwayInfo(
                id=p["id"],
                appliance_id=str(p.get("appliance_id", "")),
                site_id=str(p.get("site_id", "")),
                kind=str(p.get("kind", "")),
                base_url=str(p.get("base_url", "")),
                rank=int(p.get("rank", i)),
            )
        )
    resume = data.get("resume_offset_s") or 0.0
    if isinstance(resume, bool) or not isinstance(resume, int | float) or resume < 0:
        raise PlayerError("playback response: resume_offset_s must be a non-negative number")
    mpd = data.get("mpd_url")
    return PlaybackGrant(
        session_id=str(data.get("session_id", "")),
        multivariant_url=urljoin(control_url, mv),
        mpd_url=urljoin(control_url, mpd) if isinstance(mpd, str) and mpd else None,
        pathways=tuple(sorted(pathways, key=lambda p: p.rank)),
        resume_offset_s=float(resume),
        expires_at=data.get("expires_at"),
    )


class ControlApi:
    def __init__(self, client: httpx.AsyncClient, control_url: str, timeout_s: float = 5.0):
        self._client = client
        self.control_url = control_url.rstrip("/") + "/"
        self._timeout_s = timeout_s

    async def start_playback(
        self,
        title_id: str,
        profile_id: str,
        codecs: Sequence[str],
        max_height: int | None,
        platform: str,
    ) -> PlaybackGrant:
        device: dict[str, Any] = {"codecs": list(codecs)}
        if max_height is not None:
            device["max_height"] = max_height
        body = {
            "title_id": title_id,
            "profile_id": profile_id,
            "device": device,
            "platform": platform,
        }
        url = urljoin(self.control_url, "v1/playback")
        try:
            resp = await self._client.post(url, json=body, timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            raise PlayerError(f"control plane unreachable at {url}: {exc!r}") from exc
        if resp.status_code == 404:
            raise TitleNotFound(f"unknown title {title_id!r}")
        if resp.status_code >= 400:
            raise PlayerError(f"playback refused: HTTP {resp.status_code} {resp.text[:200]}")
        try:
            data = resp.json()
        except json.JSONDecodeError as exc:
            raise PlayerError("playback response is not JSON") from exc
        return parse_grant(data, self.control_url)

    async def get_text(self, url: str) -> str:
        try:
            resp = await self._client.get(url, timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            raise PlayerError(f"{url}: {exc!r}") from exc
        if resp.status_code >= 400:
            raise PlayerError(f"{url}: HTTP {resp.status_code}")
        return resp.text

    async def steering(self, url: str) -> SteeringManifest:
        """Fetch and validate a steering manifest (raises :class:`PlayerError`)."""
        try:
            resp = await self._client.get(url, timeout=self._timeout_s)
            resp.raise_for_status()
            return parse_steering(resp.json(), url)
        except (httpx.HTTPError, json.JSONDecodeError, SteeringError) as exc:
            raise PlayerError(f"steering {url}: {exc!r}") from exc

    async def report_view(
        self, profile_id: str, title_id: str, offset_s: float, platform: str, client_time: float
    ) -> bool:
        """Record the viewing offset; ``False`` (never an exception) if it did not work.

        ``client_time`` (wall-clock seconds) lets the control plane ignore a
        write that arrives after a newer one.
        """
        url = urljoin(
            self.control_url, f"v1/views/{quote(profile_id, safe='')}/{quote(title_id, safe='')}"
        )
        body = {"offset_s": round(offset_s, 3), "platform": platform, "client_time": client_time}
        try:
            resp = await self._client.put(url, json=body, timeout=self._timeout_s)
        except httpx.HTTPError:
            return False
        return resp.status_code < 400
