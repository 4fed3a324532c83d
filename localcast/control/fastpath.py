"""``POST /v1/playback`` answered in front of the framework: the control plane's hot path.

Every viewer's play press is one playback request, so it is the request the
control plane must answer most often (Apache Traffic Control's router is held
to thousands a second). Measured on 2 cores, FastAPI's middleware stack,
routing and dependency solving took more time than steering itself, so
:class:`ControlApp` (the FastAPI app) answers this one path before handing the
ASGI call to the framework: read the body (bounded), validate it with the same
pydantic model, find the client, call :func:`~localcast.control.playback.playback_answer`
(the same function the documented FastAPI route calls), write JSON. Errors
have the framework's shapes: a :class:`~localcast.control.errors.ControlError`
becomes ``{"detail": reason, "field": ...}`` with its status, a body that does
not validate becomes 422 with pydantic's error list under ``detail`` (each
``loc`` starting with ``"body"``), an oversized body 413.

Everything else (every other path, and any method but POST here) goes to
FastAPI unchanged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError

from localcast.control.errors import ControlError, Unauthorized
from localcast.control.playback import playback_answer
from localcast.control.schemas import PlaybackRequest
from localcast.control.service import ControlPlane
from localcast.core.clientip import client_address

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PLAYBACK_PATH = "/v1/playback"
MAX_BODY = 64 * 1024


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _base(scope: Scope, plane: ControlPlane) -> str:
    """How players reach us: ``[control] public_url``, else the request's scheme and Host."""
    if plane.settings.public_url:
        return plane.settings.public_url
    host = _header(scope, b"host")
    if host is None:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}".rstrip("/")


async def _respond(
    send: Send, status: int, body: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False, include_context=False):
        item: dict[str, Any] = {
            "type": err["type"],
            "loc": ["body", *err["loc"]],
            "msg": err["msg"],
        }
        if isinstance(err.get("input"), str | int | float | bool | dict | list):
            item["input"] = err["input"]
        out.append(item)
    return out


async def answer_playback(plane: ControlPlane, scope: Scope, receive: Receive, send: Send) -> None:
    """The whole ``POST /v1/playback`` exchange."""
    try:
        raw = await _read_body(receive)
    except _TooLarge:
        await _respond(send, 413, {"detail": f"request body over {MAX_BODY} bytes"})
        return
    except ConnectionResetError:
        return
    try:
        body = PlaybackRequest.model_validate_json(raw or b"null")
    except ValidationError as exc:
        await _respond(send, 422, {"detail": _validation_detail(exc)})
        return
    peer = (scope.get("client") or ("", 0))[0]
    client = client_address(peer, _header(scope, b"x-forwarded-for"), plane.trusted_proxies)
    try:
        out = await playback_answer(plane, body, client, _base(scope, plane))
    except ControlError as exc:
        detail: dict[str, Any] = {"detail": exc.reason}
        if exc.field:
            detail["field"] = exc.field
        extra = [(b"www-authenticate", b"Bearer")] if isinstance(exc, Unauthorized) else None
        await _respond(send, exc.status, detail, extra)
        return
    except Exception:
        log.exception("playback failed")
        await _respond(send, 500, {"detail": "internal error"})
        return
    await _respond(send, 200, out)


class ControlApp(FastAPI):
    """The control plane's FastAPI app, with ``POST /v1/playback`` answered up front."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == PLAYBACK_PATH
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            plane = self.state.plane
            assert isinstance(plane, ControlPlane)
            await answer_playback(plane, scope, receive, send)
            return
        await super().__call__(scope, receive, send)
