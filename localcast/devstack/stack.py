"""A whole Localcast on loopback, as real processes: control plane, appliances, reporters.

One implementation for the demo, the browser test and the live tests::

    with LocalStack(root, spec) as stack:          # everything up, or nothing left behind
        ingest(source, "t1", "Title", DirectoryOriginStore(stack.origin), params)
        stack.publish("t1")                        # import, place, wait until steerable
        ...play against stack.control_url...
    # every process group stopped (also on an exception or Ctrl-C)

Layout under ``root``: ``control/`` (the control plane's home: database,
keyring, origin store, credentials), ``appliances/<id>/`` (each appliance's
home: a copy of the keyring, its credential, its ``store/``) and ``logs/``
(one file per process). The control plane listens on a free port; each
appliance on its own free port (asked for with port 0 and read back from its
start-up line), answering CORS for the control plane's origin so the watch
page can play from it. Appliances appear in the topology applied through the
control plane's API once their URLs are known; then their reporters start.

Each appliance (``appliance serve`` with its workers, and its reporter) is one
process group: :meth:`LocalStack.kill` is a power cut (SIGKILL to the group),
:meth:`LocalStack.stop_appliance` a clean stop.

Fault hooks, for the fault tests: :meth:`LocalStack.pause` and
:meth:`LocalStack.resume` (SIGSTOP / SIGCONT to the group: a hung node),
:meth:`LocalStack.restart_appliance` (a killed or stopped node again, same
home, store and port), :meth:`LocalStack.stop_control` and
:meth:`LocalStack.start_control` (the control plane down and back on the same
port and database), :meth:`LocalStack.spawn_beside` (another ``localcast``
command in a node's home and group, e.g. its BGP speaker). A node can run in a
network namespace of the caller's (:class:`~localcast.devstack.spec.NodeSpec`).

Placement, two ways. With ``fill=True`` each appliance (but the origin ones)
also runs its fill agent (``localcast appliance fill``) and
:meth:`LocalStack.publish` imports the title, asks the control plane for a
fill plan and waits until every appliance holds what its manifest lists: the
planner decides where the title goes. Without, :meth:`LocalStack.publish`
copies the title directory into the stores named (published by rename, so a
reporter never sees half a title): tests that need an exact placement.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from localcast.control.credentials import CredentialStore
from localcast.devstack.procs import (
    Proc,
    kill_group,
    localcast_argv,
    signal_group,
    spawn,
    stop_groups,
    wait_for_line,
    wait_until,
)
from localcast.devstack.spec import NodeSpec, StackSpec, control_config_toml, topology_document
from localcast.keyfile import create_keyring

LOOPBACK = "127.0.0.1"
CONTROL_READY_RE = re.compile(r"Uvicorn running on (http://\S+)")
APPLIANCE_READY_RE = re.compile(r"appliance listening on (http://\S+)")
CONTROL_DEFAULTS: dict[str, Any] = {
    "refresh_interval_s": 0.2,  # writes made by other processes show up fast
    "heartbeat_interval_s": 1.0,  # a dead appliance is noticed within a few seconds
    "steering_ttl_s": 2,  # players re-read the steering manifest this often
}


class StackError(RuntimeError):
    """A part of the stack did not come up or did not do what it was asked."""


@dataclass
class ApplianceNode:
    """One running appliance: its spec, home, store, URL and processes (serve, reporter)."""

    spec: NodeSpec
    home: Path
    store: Path
    url: str = ""
    procs: list[Proc] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as players and access logs name it."""
        return self.url.removeprefix("http://")

    def running(self) -> bool:
        return bool(self.procs) and self.procs[0].running()


class LocalStack:
    """Control plane + appliances (+ reporters) on loopback; a context manager. See module doc."""

    def __init__(
        self,
        root: Path,
        spec: StackSpec,
        *,
        workers: int = 1,
        reporter_interval_s: float = 0.5,
        log_level: str = "info",
        start_timeout_s: float = 30.0,
        fill: bool = False,
        fill_refresh_s: float = 1.0,
    ) -> None:
        self.root = root
        self.fill = fill
        self.fill_refresh_s = fill_refresh_s
        self.spec = spec
        self.workers = workers
        self.reporter_interval_s = reporter_interval_s
        self.log_level = log_level
        self.start_timeout_s = start_timeout_s
        self.control_home = root / "control"
        self.logs = root / "logs"
        self.control_url = ""
        self.control: Proc | None = None
        self.appliances: dict[str, ApplianceNode] = {
            n.id: ApplianceNode(
                n,
                root / "appliances" / n.id,
                self.origin if n.serves_origin else root / "appliances" / n.id / "store",
            )
            for n in spec.appliances
        }
        self._paused: set[str] = set()
        self._http = httpx.Client(trust_env=False, timeout=10.0)

    # --- where things are ------------------------------------------------------------------

    @property
    def origin(self) -> Path:
        """The origin store (ingest publishes here; the control plane imports from here)."""
        return self.control_home / "origin"

    @property
    def keys(self) -> Path:
        return self.control_home / "keys.json"

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Control plane, then appliances, then the topology (with their URLs), then reporters."""
        self._start_control()
        self._start_appliances()
        credentials = self._apply_topology()
        self._start_reporters(credentials)
        self.wait_alive()

    def wait_alive(self, appliance_ids: Iterable[str] | None = None) -> None:
        """Wait until the control plane counts each appliance alive (registered, heartbeating)."""
        wanted = set(self._ids(appliance_ids))

        def alive() -> bool:
            fleet = self._http.get(f"{self.control_url}/v1/appliances").json()
            return wanted <= {a["id"] for a in fleet if a.get("alive")}

        wait_until(alive, f"{', '.join(sorted(wanted))} alive", self.start_timeout_s)

    def close(self) -> None:
        """Stop every process this stack started (appliances first, then the control plane)."""
        for aid in sorted(self._paused):  # a stopped process would sit out SIGTERM
            self.resume(aid)
        groups = [a.procs for a in self.appliances.values()]
        stop_groups(groups, grace_s=10.0)
        if self.control is not None:
            stop_groups([[self.control]], grace_s=10.0)
        self._http.close()

    def _start_control(self, port: int = 0) -> None:
        home = self.control_home
        (home / "credentials").mkdir(parents=True, exist_ok=True)
        self.origin.mkdir(parents=True, exist_ok=True)
        settings = {**CONTROL_DEFAULTS, **self.spec.control, "listen": LOOPBACK, "port": port}
        (home / "config.toml").write_text(control_config_toml(settings))
        create_keyring(self.keys)  # keeps the existing keyring on a restart
        argv = localcast_argv(home, "control", "serve", log_level="info")
        self.control = spawn("control", argv, self.logs / "control.log")
        url = wait_for_line(self.control, CONTROL_READY_RE, self.start_timeout_s).group(1)
        self.control_url = url.rstrip("/")
        wait_until(
            lambda: self._http.get(f"{self.control_url}/healthz").status_code == 200,
            "the control plane's /healthz",
            self.start_timeout_s,
        )

    def _argv(self, node: ApplianceNode, *args: str) -> list[str]:
        """``localcast ARGS`` in the node's home (inside its network namespace, if any)."""
        argv = localcast_argv(node.home, *args, log_level=self.log_level)
        return argv if node.spec.netns is None else ["ip", "netns", "exec", node.spec.netns, *argv]

    def _spawn_serve(self, node: ApplianceNode, port: int = 0) -> None:
        serve = [
            *("appliance", "serve", "--listen", node.spec.listen, "--port", str(port)),
            *("--workers", str(self.workers), "--store", str(node.store)),
            *("--cors-origin", self.control_url, "--access-log", "off"),
        ]
        node.procs = [spawn(node.id, self._argv(node, *serve), self.logs / f"{node.id}.log")]

    def _start_appliances(self) -> None:
        for node in self.appliances.values():
            node.home.mkdir(parents=True, exist_ok=True)
            node.store.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.keys, node.home / "keys.json")
            (node.home / "keys.json").chmod(0o600)
            self._spawn_serve(node)
        for node in self.appliances.values():
            ready = wait_for_line(node.procs[0], APPLIANCE_READY_RE, self.start_timeout_s)
            node.url = ready.group(1).rstrip("/")

    def _apply_topology(self) -> dict[str, str]:
        urls = {aid: node.url for aid, node in self.appliances.items()}
        doc = topology_document(self.spec, urls)
        resp = self._http.post(f"{self.control_url}/v1/topology", json=doc)
        if resp.status_code != 200:
            raise StackError(f"topology refused: HTTP {resp.status_code} {resp.text[:300]}")
        credentials: dict[str, str] = resp.json()["credentials"]
        return credentials

    def _start_reporters(self, credentials: dict[str, str]) -> None:
        issued = CredentialStore(self.control_home / "credentials")  # from an earlier apply
        for node in self.appliances.values():
            secret = credentials.get(node.id) or issued.read(node.id)
            if secret is None:
                raise StackError(f"the control plane issued no credential for {node.id}")
            CredentialStore(node.home / "credentials").write(node.id, secret)
            self._spawn_agents(node)

    def _spawn_agents(self, node: ApplianceNode) -> None:
        """The node's reporter (and fill agent), in its process group."""
        control_url = node.spec.control_url or self.control_url
        report = [
            *("control", "reporter", "--appliance", node.id, "--store", str(node.store)),
            *("--control-url", control_url, "--interval", f"{self.reporter_interval_s:g}"),
        ]
        log = self.logs / f"{node.id}-reporter.log"
        group = node.procs[0].pgid
        node.procs.append(spawn(f"{node.id}-reporter", self._argv(node, *report), log, group=group))
        if self.fill and not node.spec.serves_origin:
            agent = [
                *("appliance", "fill", "--appliance", node.id, "--store", str(node.store)),
                *("--control-url", control_url, "--refresh", f"{self.fill_refresh_s:g}"),
                *("--retry", f"{self.fill_refresh_s:g}"),
            ]
            if node.spec.fill_reserve_mb is not None:
                agent += ["--reserve-mb", f"{node.spec.fill_reserve_mb:g}"]
            log = self.logs / f"{node.id}-fill.log"
            node.procs.append(spawn(f"{node.id}-fill", self._argv(node, *agent), log, group=group))

    # --- content ---------------------------------------------------------------------------

    def import_title(self, title_id: str) -> None:
        """Import ``origin/<title_id>/manifest.json`` into the catalog (``POST /v1/titles``)."""
        manifest = json.loads((self.origin / title_id / "manifest.json").read_text())
        resp = self._http.post(f"{self.control_url}/v1/titles", json=manifest)
        if resp.status_code not in (200, 201):
            raise StackError(f"title {title_id} refused: HTTP {resp.status_code} {resp.text[:300]}")

    def place(self, title_id: str, appliance_ids: Iterable[str] | None = None) -> list[str]:
        """Copy the title from the origin into each appliance's store; the ids it was copied to.

        A plain copy, published by rename (fills come later). Appliances that
        serve the origin store already hold everything.
        """
        source = self.origin / title_id
        placed = []
        for aid in self._ids(appliance_ids):
            node = self.appliances[aid]
            if node.spec.serves_origin:
                continue
            final = node.store / title_id
            if not final.exists():
                staging = node.store / f".{title_id}.placing"
                shutil.rmtree(staging, ignore_errors=True)
                shutil.copytree(source, staging)
                staging.rename(final)
            placed.append(aid)
        return placed

    def wait_serving(
        self, title_id: str, appliance_ids: Iterable[str] | None = None, timeout_s: float = 30.0
    ) -> None:
        """Wait until the control plane sees each appliance alive, holding ``title_id`` and
        taking new sessions (turned up: the control plane probed it once it held a title)."""
        wanted = set(self._ids(appliance_ids))

        def ready() -> bool:
            fleet = self._http.get(f"{self.control_url}/v1/appliances").json()
            alive = {a["id"] for a in fleet if a.get("alive") and _steerable(a)}
            title = self._http.get(f"{self.control_url}/v1/titles/{title_id}").json()
            return wanted <= alive and wanted <= set(title.get("appliances_holding", ()))

        wait_until(
            ready, f"{', '.join(sorted(wanted))} alive, holding {title_id}, turned up", timeout_s
        )

    def publish(self, title_id: str, appliance_ids: Iterable[str] | None = None) -> list[str]:
        """Import, place and wait until steering can use every appliance holding the title.

        With fills on and no ``appliance_ids``: the planner places it
        (:meth:`fill_titles`); the ids it went to, origin ones excluded.
        Otherwise: a copy onto ``appliance_ids`` (default every appliance).
        """
        if self.fill and appliance_ids is None:
            return self.fill_titles([title_id])[title_id]
        ids = list(self._ids(appliance_ids))
        self.import_title(title_id)
        placed = self.place(title_id, ids)
        self.wait_serving(title_id, ids)
        return placed

    def plan_fills(self) -> dict[str, Any]:
        """``POST /v1/fill/plan``: a new plan now (agents pick it up on their next refresh)."""
        resp = self._http.post(f"{self.control_url}/v1/fill/plan")
        if resp.status_code != 200:
            raise StackError(f"fill plan refused: HTTP {resp.status_code} {resp.text[:300]}")
        out: dict[str, Any] = resp.json()
        return out

    def fill_progress(self) -> dict[str, Any]:
        resp = self._http.get(f"{self.control_url}/v1/fill/progress")
        resp.raise_for_status()
        out: dict[str, Any] = resp.json()
        return out

    def fill_links(self) -> list[dict[str, Any]]:
        """``GET /v1/fill/links``: fill bytes and files per link (source site -> site)."""
        resp = self._http.get(f"{self.control_url}/v1/fill/links")
        resp.raise_for_status()
        out: list[dict[str, Any]] = resp.json()
        return out

    def release(self, title_id: str, release_at: float, expected_sessions: float) -> None:
        """Schedule ``title_id``'s release (``PUT /v1/titles/{id}/release``, every region)."""
        body = {"release_at": release_at, "expected_sessions": expected_sessions}
        resp = self._http.put(f"{self.control_url}/v1/titles/{title_id}/release", json=body)
        if resp.status_code != 200:
            raise StackError(f"release refused: HTTP {resp.status_code} {resp.text[:300]}")

    def fill_titles(
        self,
        title_ids: Iterable[str],
        timeout_s: float = 60.0,
        release: tuple[float, float] | None = None,
    ) -> dict[str, list[str]]:
        """Import ``title_ids`` (each released at ``release = (at, expected sessions)`` when
        given), plan, and wait until every appliance holds all its manifest lists (and the
        control plane has seen it); per title, the non-origin appliances holding it."""
        if not self.fill:
            raise StackError("this stack runs no fill agents (LocalStack(..., fill=True))")
        wanted = list(title_ids)
        for title_id in wanted:
            self.import_title(title_id)
            if release is not None:
                self.release(title_id, *release)
        self.plan_fills()

        def settled() -> bool:
            rows = [a for site in self.fill_progress()["sites"] for a in site["appliances"]]
            return bool(rows) and all(a["version"] > 0 and a["complete"] for a in rows)

        wait_until(settled, "every appliance holding its fill manifest", timeout_s)
        origin = {n.id for n in self.appliances.values() if n.spec.serves_origin}
        out = {}
        for title_id in wanted:
            title = self._http.get(f"{self.control_url}/v1/titles/{title_id}").json()
            out[title_id] = sorted(set(title.get("appliances_holding", ())) - origin)
        holders = set().union(origin, *out.values())

        def turned_up() -> bool:  # an appliance holding a title is probed, then turned up
            fleet = self._http.get(f"{self.control_url}/v1/appliances").json()
            return holders <= {a["id"] for a in fleet if _steerable(a)}

        wait_until(turned_up, f"{', '.join(sorted(holders))} turned up", timeout_s)
        return out

    def _ids(self, appliance_ids: Iterable[str] | None) -> Iterator[str]:
        ids = list(self.appliances) if appliance_ids is None else list(appliance_ids)
        for aid in ids:
            if aid not in self.appliances:
                raise KeyError(f"no appliance {aid!r} in this stack")
            yield aid

    # --- faults ----------------------------------------------------------------------------

    def kill(self, appliance_id: str) -> None:
        """SIGKILL the appliance's whole process group (server, workers, reporter)."""
        kill_group(self.appliances[appliance_id].procs)
        self._paused.discard(appliance_id)

    def stop_appliance(self, appliance_id: str) -> None:
        """Stop the appliance cleanly (SIGTERM to its group, SIGKILL after a grace period)."""
        self.resume(appliance_id)
        stop_groups([self.appliances[appliance_id].procs])

    def pause(self, appliance_id: str) -> None:
        """SIGSTOP the appliance's group: a hung node (sockets open, nothing answers, no
        heartbeats). :meth:`resume` undoes it; :meth:`close` resumes before stopping."""
        signal_group(self.appliances[appliance_id].procs[0].pgid, signal.SIGSTOP)
        self._paused.add(appliance_id)

    def resume(self, appliance_id: str) -> None:
        """SIGCONT the appliance's group (after :meth:`pause`)."""
        if appliance_id in self._paused:
            signal_group(self.appliances[appliance_id].procs[0].pgid, signal.SIGCONT)
            self._paused.discard(appliance_id)

    def restart_appliance(self, appliance_id: str) -> None:
        """Start a killed or stopped appliance again: same home, store, port and credential,
        its reporter (and fill agent) too; returns once it listens (not yet alive again:
        :meth:`wait_alive`)."""
        node = self.appliances[appliance_id]
        if node.running():
            raise StackError(f"{appliance_id} is running")
        port = int(node.url.rsplit(":", 1)[1])
        self._spawn_serve(node, port)
        wait_for_line(node.procs[0], APPLIANCE_READY_RE, self.start_timeout_s)
        self._spawn_agents(node)

    def spawn_beside(self, appliance_id: str, name: str, *args: str) -> Proc:
        """Run ``localcast ARGS`` in the appliance's home, namespace and process group (so it
        stops, dies or hangs with the node), logging to ``logs/<id>-<name>.log``."""
        node = self.appliances[appliance_id]
        log = self.logs / f"{node.id}-{name}.log"
        proc = spawn(f"{node.id}-{name}", self._argv(node, *args), log, group=node.procs[0].pgid)
        node.procs.append(proc)
        return proc

    def stop_control(self, kill: bool = True) -> None:
        """Stop the control plane: SIGKILL (a crash) or SIGTERM (a clean stop). Appliances,
        reporters and players carry on without it; :meth:`start_control` brings it back."""
        if self.control is None:
            return
        if kill:
            kill_group([self.control])
        else:
            stop_groups([[self.control]], grace_s=10.0)
        self.control = None

    def start_control(self) -> None:
        """Start the control plane again on its port, with its home and database."""
        if self.control is not None:
            raise StackError("the control plane is running")
        self._start_control(port=int(self.control_url.rsplit(":", 1)[1]))

    def views(self, profile_id: str, title_id: str) -> dict[str, Any] | None:
        """The stored view (``GET /v1/views/...``), or None if there is none."""
        resp = self._http.get(f"{self.control_url}/v1/views/{profile_id}/{title_id}")
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data


def _steerable(appliance: dict[str, Any]) -> bool:
    """An entry of ``GET /v1/appliances`` that steering sends new sessions to."""
    steering = appliance.get("steering") or {}
    return bool(steering.get("new_sessions", True))
