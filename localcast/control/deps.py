"""What every route needs from the request: the control plane, the client, our own URL."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from localcast.control.credentials import bearer
from localcast.control.errors import NotFound, Unauthorized
from localcast.control.service import ControlPlane
from localcast.core.clientip import ClientAddress, client_address
from localcast.portal.auth import session_viewer


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


def _admin_ok(plane: ControlPlane, authorization: str | None) -> bool:
    """The admin bearer token was given, or none is configured (an open, development plane)."""
    token = plane.settings.admin_token
    given = bearer(authorization)
    return token is None or (given is not None and hmac.compare_digest(given, token))


def require_admin(plane: Plane, authorization: Annotated[str | None, Header()] = None) -> None:
    """Writes to topology and catalog need ``[control] admin_token`` when one is set."""
    if not _admin_ok(plane, authorization):
        raise Unauthorized("this operation needs the admin bearer token")


Admin = Depends(require_admin)


def require_fleet_reader(
    request: Request, plane: Plane, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Fleet-wide reads (every appliance, route, fill): the admin token when one is set, or
    an operator logged in to the portal."""
    if _admin_ok(plane, authorization):
        return
    viewer = session_viewer(request)
    if viewer is None or not viewer.is_operator:
        raise Unauthorized("this read needs the admin bearer token or an operator's login")


FleetReader = Depends(require_fleet_reader)


def require_partner_reader(
    partner_id: str,
    request: Request,
    plane: Plane,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """A partner's data: a portal login sees its own partner only (another's is a 404, as if
    it did not exist); without a login, the admin token when one is set."""
    viewer = session_viewer(request)
    if viewer is not None:
        if not viewer.is_operator and viewer.partner != partner_id:
            raise NotFound(f"unknown partner {partner_id!r}")
        return
    if not _admin_ok(plane, authorization):
        raise Unauthorized("this read needs the admin bearer token or the partner's login")


PartnerReader = Depends(require_partner_reader)
