"""The appliance side of the control protocol: register, then heartbeat with inventory.

:func:`run_reporter` is an asyncio task for an appliance process (or the
``localcast control reporter`` command). It registers with the appliance's
credential, then every ``interval_s``:

1. scans the store (``<store>/<title_id>/<sha256>.<ext>``) in a worker thread;
2. sends a heartbeat with load, disk and inventory: the load from the
   ``load`` sampler, which ``localcast control reporter`` points at the
   node's metrics directory (:class:`localcast.metrics.load.NodeLoad`, the
   files the data plane's ``/metrics`` merges, read-only): client
   connections open now, egress bits/s and the serving window (tokened
   requests and their 5xx answers) since the previous heartbeat, so steering
   sees the site's load (saturation) and the status its load and serving
   components (the first heartbeat has no rate: egress 0, no window); the
   **full** inventory first (and whenever the control plane answers
   ``resync``), afterwards
   only the **delta** against the last inventory the control plane
   acknowledged, tagged ``base_seq`` so a lost answer cannot desynchronise
   the two sides (the control plane refuses an out-of-sequence delta and
   asks for a full one);
3. posts the data plane's traffic counts per client network, when given the
   workers' traffic directory (:class:`localcast.appliance.traffic.TrafficUplink`);
4. re-registers if the control plane forgot it (409) and keeps retrying,
   with a log line per change of state, when it is unreachable.

It never raises on network trouble; cancel the task to stop it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from localcast.appliance.traffic import TrafficUplink
from localcast.control.schemas import (
    DeltaInventory,
    DiskIn,
    FullInventory,
    HeartbeatRequest,
    LoadIn,
    RegisterRequest,
    ServingIn,
)
from localcast.core.inventory import Inventory, diff, freeze, is_content_file
from localcast.media.manifest import TITLE_ID_RE
from localcast.metrics.load import LoadSample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreScan:
    inventory: Inventory
    used_bytes: int
    free_bytes: int


def scan_store(store_dir: Path) -> StoreScan:
    """What the store holds: content files per title directory, their bytes, free space."""
    titles: dict[str, list[str]] = {}
    used = 0
    try:
        title_dirs = list(os.scandir(store_dir))
    except FileNotFoundError:
        title_dirs = []
    for entry in title_dirs:
        if not entry.is_dir() or not TITLE_ID_RE.match(entry.name):
            continue
        names = []
        for f in os.scandir(entry.path):
            if is_content_file(f.name) and f.is_file():
                names.append(f.name)
                used += f.stat().st_size
        titles[entry.name] = names
    try:
        free = shutil.disk_usage(store_dir).free
    except FileNotFoundError:
        free = 0
    return StoreScan(freeze(titles), used, free)


class _Rejected(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
    except ValueError:
        return resp.text[:200]


class Reporter:
    """One appliance's reporting state; :meth:`step` is one register-if-needed + heartbeat."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        control_url: str,
        appliance_id: str,
        credential: str,
        store_dir: Path,
        interval_s: float,
        now: Callable[[], float],
        load: Callable[[], LoadSample],
        traffic_dir: Path | None = None,
        contact_file: Path | None = None,
    ) -> None:
        self.client = client
        self.contact_file = contact_file  # touched on every successful heartbeat
        self.base = f"{control_url.rstrip('/')}/v1/appliances/{appliance_id}"
        self.headers = {"Authorization": f"Bearer {credential}"}
        self.appliance_id = appliance_id
        self.store_dir = store_dir
        self.interval_s = interval_s
        self.now = now
        self.load = load
        self.acked: Inventory | None = None  # what the control plane holds; None: send full
        self.seq = 0
        self.registered = False
        self.trouble: str | None = None
        self.traffic = TrafficUplink(traffic_dir) if traffic_dir is not None else None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = await self.client.post(self.base + path, json=body, headers=self.headers)
        if resp.status_code != 200:
            raise _Rejected(resp.status_code, _detail(resp))
        data = resp.json()
        assert isinstance(data, dict)
        return data

    async def register(self) -> None:
        body = RegisterRequest(software="localcast", heartbeat_interval_s=self.interval_s)
        answer = await self._post("/register", body.model_dump(exclude_none=True))
        self.interval_s = float(answer.get("heartbeat_interval_s", self.interval_s))
        self.registered, self.acked, self.seq = True, None, int(answer.get("inventory_seq", 0))
        log.info("registered %s with the control plane (%s)", self.appliance_id, answer["reason"])

    async def beat(self) -> None:
        scan = await asyncio.to_thread(scan_store, self.store_dir)
        inventory: FullInventory | DeltaInventory | None
        if self.acked is None:
            inventory = FullInventory(seq=self.seq + 1, titles=_lists(scan.inventory))
        else:
            delta = diff(self.acked, scan.inventory)
            inventory = (
                None
                if delta.empty
                else DeltaInventory(
                    seq=self.seq + 1,
                    base_seq=self.seq,
                    added=_lists(delta.added),
                    removed=_lists(delta.removed),
                )
            )
        try:
            sample = self.load()
        except Exception:  # a load reading bug must not stop the heartbeats
            log.exception("appliance %s: load not sampled", self.appliance_id)
            sample = LoadSample()
        body = HeartbeatRequest(
            interval_s=self.interval_s,
            load=LoadIn(active_connections=sample.active_connections, egress_bps=sample.egress_bps),
            disk=DiskIn(used_bytes=scan.used_bytes, free_bytes=scan.free_bytes),
            inventory=inventory,
            sent_at=self.now(),
            serving=(
                ServingIn(
                    requests=sample.serving.requests,
                    errors_5xx=sample.serving.errors_5xx,
                    window_s=sample.serving.window_s,
                )
                if sample.serving is not None
                else None
            ),
        )
        answer = await self._post("/heartbeat", body.model_dump(exclude_none=True))
        if answer.get("resync"):
            self.acked = None
            self.seq = int(answer.get("inventory_seq", self.seq))
        elif inventory is not None:
            self.acked, self.seq = scan.inventory, inventory.seq

    def _state(self, trouble: str | None) -> None:
        if trouble != self.trouble:
            if trouble:
                log.warning("appliance %s: %s", self.appliance_id, trouble)
            else:
                log.info("appliance %s: control plane reachable again", self.appliance_id)
            self.trouble = trouble

    def _mark_contact(self) -> None:
        """The data plane reads this file's mtime: no fresh mark, no new sessions (admission)."""
        if self.contact_file is None:
            return
        try:
            self.contact_file.parent.mkdir(parents=True, exist_ok=True)
            self.contact_file.touch()
        except OSError as exc:
            log.warning("contact mark %s not written: %s", self.contact_file, exc)

    async def step(self) -> None:
        if self.traffic is not None:  # taken every interval, sent once the plane answers
            await self.traffic.collect()
        try:
            if not self.registered:
                await self.register()
            await self.beat()
            if self.traffic is not None:  # the data plane's bytes per client network
                await self.traffic.send(self._post)
            self._mark_contact()
            self._state(None)
        except _Rejected as exc:
            if exc.status in (401, 404, 409):
                self.registered = False  # credential rotated, appliance removed, or forgotten
            self._state(f"control plane refused: {exc}")
        except httpx.HTTPError as exc:
            self._state(f"control plane unreachable: {exc!r}")


async def run_reporter(
    control_url: str,
    appliance_id: str,
    credential: str,
    store_dir: Path,
    interval_s: float,
    now: Callable[[], float] = time.time,
    load: Callable[[], LoadSample] = LoadSample,
    client: httpx.AsyncClient | None = None,
    traffic_dir: Path | None = None,
    contact_file: Path | None = None,
) -> None:
    """Register and heartbeat forever (until cancelled) with ``load()``'s sample (default:
    nothing known, zeros; see :class:`localcast.metrics.load.NodeLoad`); post
    ``traffic_dir``'s counts; touch ``contact_file`` after every successful heartbeat."""
    own = client is None
    http = client or httpx.AsyncClient(timeout=max(interval_s, 2.0))
    reporter = Reporter(
        http,
        control_url,
        appliance_id,
        credential,
        store_dir,
        interval_s,
        now,
        load,
        traffic_dir,
        contact_file,
    )
    try:
        while True:
            await reporter.step()
            await asyncio.sleep(reporter.interval_s)
    finally:
        if own:
            await http.aclose()


def _lists(inventory: Inventory) -> dict[str, list[str]]:
    return {t: sorted(f) for t, f in inventory.items()}
