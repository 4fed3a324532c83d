"""What every route needs from the request: the control plane, the client, our own URL."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from localcast.control.credentials import bearer
from localcast.control.errors import Unauthorized
from localcast.control.service import ControlPlane
from localcast.core.clientip import ClientAddress, client_address


async def get_plane(request: Request) -> ControlPlane:
    plane = request.app.state.plane
    assert isinstance(plane, ControlPlane)
    return plane


Plane = Annotated[ControlPlane, Depends(get_plane)]


async def get_client(request: Request, plane: Plane) -> ClientAddress:
    """The socket peer, or X-Forwarded-For when the peer is a trusted proxy."""
    peer = request.client.host if request.client else ""
    return client_address(peer, request.headers.get("x-forwarded-for"), plane.trusted_proxies)


Client = Annotated[ClientAddress, Depends(get_client)]


def public_base(request: Request, plane: ControlPlane) -> str:
    """How players reach this control plane: ``[control] public_url`` or the request's."""
    return plane.settings.public_url or str(request.base_url).rstrip("/")


def require_admin(plane: Plane, authorization: Annotated[str | None, Header()] = None) -> None:
    """Writes to topology and catalog need ``[control] admin_token`` when one is set."""
    token = plane.settings.admin_token
    given = bearer(authorization)
    if token is not None and (given is None or not hmac.compare_digest(given, token)):
        raise Unauthorized("this operation needs the admin bearer token")


Admin = Depends(require_admin)
