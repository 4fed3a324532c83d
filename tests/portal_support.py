"""Helpers for portal tests: a control plane with two partners, their users, a login.

The topology is :data:`control_fixtures.TOPOLOGY`: partner ``isp-a`` (site
``a-par``: appliances ``a1``, ``a2``), partner ``isp-b`` (site ``b-lys``:
``b1``), the operator's IX (``ix-fra``: ``ix1``) and origin (``o1``). One
synthetic title is imported and every appliance is registered holding it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control_fixtures import FakeClock, bring_up, client_for, make_plane, provision, synthetic_title
from fastapi.testclient import TestClient

from localcast.control.service import ControlPlane
from localcast.portal.accounts import AccountStore

PASSWORD = "correct horse battery"
OPERATOR = "op@example.net"
ALICE = "alice@isp-a.example"  # isp-a
BOB = "bob@isp-b.example"  # isp-b
USERS = {OPERATOR: ("operator", None), ALICE: ("partner", "isp-a"), BOB: ("partner", "isp-b")}


@dataclass
class Portal:
    plane: ControlPlane
    clock: FakeClock
    credentials: dict[str, str]
    accounts: AccountStore
    title_id: str

    def client(self, ip: str = "10.1.2.3") -> TestClient:
        return client_for(self.plane, ip)


def portal_plane(root: Path, clock: FakeClock | None = None, **settings: Any) -> Portal:
    """The plane, topology applied, a title held everywhere, and the three users."""
    clock = clock or FakeClock()
    plane = make_plane(root, clock, **settings)
    title = synthetic_title("t1")
    creds = provision(plane, title)
    with client_for(plane) as c:
        bring_up(c, creds, {aid: [title] for aid in creds})
    accounts = AccountStore(plane.sessions)
    for email, (role, partner) in USERS.items():
        accounts.add_user(email, PASSWORD, role, clock(), partner, name=email.split("@")[0])
    return Portal(plane, clock, creds, accounts, title.title_id)


def login(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Log ``client`` in (the cookie stays in it); the session's CSRF token."""
    r = client.post(
        "/portal/login",
        data={"email": email, "password": password, "next": "/portal/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return csrf_of(client)


def csrf_of(client: TestClient) -> str:
    """The CSRF token of the client's session."""
    r = client.get("/portal/api/session")
    assert r.status_code == 200, f"not logged in? {r.status_code} {r.text}"
    token = r.json()["csrf"]
    assert isinstance(token, str)
    return token
