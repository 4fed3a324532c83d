"""The turn-up prober: the control plane looks at each new appliance from the outside.

Every ``[control] refresh_interval_s`` (an asyncio task beside the refresh
loop, :func:`probe_forever`), for each registered appliance not turned up
yet (:meth:`localcast.control.health.HealthService.probe_targets`), all at
once, each request bounded by ``probe_timeout_s``:

* **reachable**: ``GET <base_url>/``. Any HTTP answer counts (the data
  plane answers 404 there): the appliance listens where the topology says.
* **content**: one file of a title it holds complete (the first title by
  id, its smallest file), fetched through a path signed by the control
  plane's keyring (:func:`localcast.core.tokens.signed_path`, valid
  :data:`TOKEN_TTL_S`), like a player's: 200 or 206 with the manifest's
  size, and for a 200 the bytes hash to the file's name. An appliance that
  holds no title complete is not probed for content: the check stays
  pending ("holds no title complete yet") and passes once it holds one.
  Not probed either when it is unreachable.

The results go to :meth:`~localcast.control.health.HealthService.record_probes`,
which runs the turn-up checks (and BGP and fill) and moves the steering state.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING

import httpx

from localcast.control.health import NO_TITLE_YET, Probes
from localcast.core.fleet import Appliance, FleetSnapshot
from localcast.core.tokens import Keyring, signed_path
from localcast.core.turnup import Probe

if TYPE_CHECKING:
    from localcast.control.service import ControlPlane

log = logging.getLogger(__name__)
TOKEN_TTL_S = 300


def _failure(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def probe_appliance(
    http: httpx.AsyncClient, keyring: Keyring, snap: FleetSnapshot, a: Appliance, now: float
) -> Probes:
    """Reachability then content of one appliance (never raises for network trouble)."""
    base = a.base_url.rstrip("/")
    try:
        resp = await http.get(base + "/")
        reach = Probe(True, now, f"HTTP {resp.status_code} from {base}/")
    except httpx.HTTPError as exc:
        return Probes(Probe(False, now, f"{base}/: {_failure(exc)}"), None, None)
    titles = sorted(t for t in a.titles if t in snap.catalog)
    if not titles:
        return Probes(reach, None, NO_TITLE_YET)
    entry = snap.catalog[titles[0]]
    files = [f for f in entry.manifest.files() if f.name in entry.required_files]
    ref = min(files, key=lambda f: (f.size, f.name))
    title_file = f"{entry.title_id}/{ref.name}"
    path = signed_path(keyring, f"/{title_file}", int(now) + TOKEN_TTL_S)
    try:
        resp = await http.get(base + path)
    except httpx.HTTPError as exc:
        return Probes(reach, Probe(False, now, f"{title_file}: {_failure(exc)}"))
    body = resp.content
    if resp.status_code == 200:
        ok = len(body) == ref.size and hashlib.sha256(body).hexdigest() == ref.file_id
        got = f"HTTP 200, {len(body)} of {ref.size} bytes" + ("" if ok else ", wrong bytes")
    elif resp.status_code == 206:
        total = resp.headers.get("content-range", "").rpartition("/")[2]
        ok = total == str(ref.size)
        got = f"HTTP 206, whole size {total or '?'} (expected {ref.size})"
    else:
        ok = False
        got = f"HTTP {resp.status_code}"
    return Probes(reach, Probe(ok, now, f"{title_file}: {got}"))


async def probe_round(plane: ControlPlane, http: httpx.AsyncClient) -> dict[str, Probes]:
    """Probe every appliance waiting for turn-up once; the results, recorded."""
    snap = plane.snapshot
    targets = plane.health.probe_targets(snap)
    if not targets:
        return {}
    now = plane.clock()
    found = await asyncio.gather(
        *(probe_appliance(http, plane.keyring, snap, a, now) for a in targets)
    )
    results = {a.id: p for a, p in zip(targets, found, strict=True)}
    await asyncio.to_thread(plane.health.record_probes, results)
    return results


def probe_client(plane: ControlPlane) -> httpx.AsyncClient:
    """The prober's HTTP client: no proxies from the environment, bounded by probe_timeout_s."""
    return httpx.AsyncClient(
        timeout=plane.settings.probe_timeout_s, trust_env=False, follow_redirects=False
    )


async def probe_forever(plane: ControlPlane) -> None:
    async with probe_client(plane) as http:
        while True:
            await asyncio.sleep(plane.settings.refresh_interval_s)
            try:
                await probe_round(plane, http)
            except Exception:  # keep probing; the appliances stay gated meanwhile
                log.exception("turn-up probe round failed")
