"""The demo's last step: the partner portal shows the ISP what just happened.

Makes the portal's users with the real CLI (``localcast control user add``, a
random password each), logs in over HTTP as the ISP's user, reads its home
page and its traffic (``GET /v1/partners/{id}/traffic`` with the login cookie)
and checks what a partner must see: its embedded appliances with their
statuses, the one the demo killed not OK, and its viewers' bytes from its own
appliances. ``--keep`` prints the portal's address and the logins.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field

import httpx

from localcast.devstack import LocalStack
from localcast.devstack.procs import localcast_argv

PARTNER = "isp-demo"


@dataclass
class PortalOutcome:
    url: str
    logins: dict[str, str] = field(default_factory=dict)  # email -> password
    embedded_bytes: int = 0
    statuses: dict[str, str] = field(default_factory=dict)  # appliance -> status on the page
    problems: list[str] = field(default_factory=list)


def _add_user(stack: LocalStack, email: str, role: str, partner: str | None) -> str:
    password = secrets.token_urlsafe(12)
    argv = localcast_argv(stack.control_home, "control", "user", "add", email, "--role", role)
    argv += ["--password-file", "-", *(["--partner", partner] if partner else [])]
    done = subprocess.run(
        argv, input=password + "\n", capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"localcast control user add {email}: {done.stderr.strip()}")
    return password


def _statuses(html: str, appliance_ids: list[str]) -> dict[str, str]:
    """Each appliance's status badge on the home page (the first badge of its row)."""
    out = {}
    for aid in appliance_ids:
        row = re.search(
            rf'href="/portal/appliances/{re.escape(aid)}".*?class="status [^"]*">([^<]+)<',
            html,
            re.S,
        )
        out[aid] = row.group(1).strip() if row else "absent"
    return out


def check_portal(
    stack: LocalStack, embedded: list[str], killed: str | None, settle_s: float = 20.0
) -> PortalOutcome:
    """Log in as the partner and check its pages; the control plane notices a killed appliance
    and counts the last traffic reports within seconds, so the checks are retried until
    ``settle_s`` has passed."""
    operator, partner = "noc@localcast.example", f"noc@{PARTNER}.example"
    logins = {
        operator: _add_user(stack, operator, "operator", None),
        partner: _add_user(stack, partner, "partner", PARTNER),
    }
    deadline = time.monotonic() + settle_s
    with httpx.Client(
        base_url=stack.control_url, trust_env=False, timeout=30, follow_redirects=True
    ) as http:
        r = http.post("/portal/login", data={"email": partner, "password": logins[partner]})
        if r.status_code != 200 or "/portal/login" in str(r.url):
            out = PortalOutcome(url=f"{stack.control_url}/portal/", logins=logins)
            out.problems.append(f"portal: {partner} could not log in ({r.status_code})")
            return out
        while True:
            out = _look(http, embedded, killed)
            out.url, out.logins = f"{stack.control_url}/portal/", logins
            if not out.problems or time.monotonic() > deadline:
                return out
            time.sleep(0.5)


def _look(http: httpx.Client, embedded: list[str], killed: str | None) -> PortalOutcome:
    out = PortalOutcome(url="")
    out.statuses = _statuses(http.get("/portal/").text, embedded)
    for aid, status in out.statuses.items():
        if status == "absent":
            out.problems.append(f"portal: {aid} is missing from {PARTNER}'s home page")
        elif aid != killed and status != "OK":
            out.problems.append(f"portal: {aid} shows {status}, not OK")
        elif aid == killed and status == "OK":
            out.problems.append(f"portal: {aid} was killed but shows OK")
    traffic = http.get(f"/v1/partners/{PARTNER}/traffic").json()
    out.embedded_bytes = int(traffic["total"]["bytes_by_source"].get("embedded", 0))
    if out.embedded_bytes <= 0:
        out.problems.append(f"portal: no bytes from {PARTNER}'s embedded appliances counted")
    if http.get("/v1/partners/other-isp/traffic").status_code != 404:
        out.problems.append("portal: a partner's login reads another partner's traffic")
    return out
