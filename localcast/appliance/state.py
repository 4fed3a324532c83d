"""What one worker's connections share: plan context, store index, caches, log, counters.

Built once per worker from its settings and keyring. :meth:`ServerState.tick`
is the worker's periodic housekeeping: connection deadlines, store refresh
(evicted files leave every cache), keyring reload when its file changes,
access-log flush and rotation, and about once a second the worker's metrics
snapshot (``appliance.metrics``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Protocol

from localcast.appliance.accesslog import AccessLog, Counters, request_kind
from localcast.appliance.admission import contact_state
from localcast.appliance.entry import FileEntry
from localcast.appliance.fdcache import FdCache
from localcast.appliance.headers import CorsPolicy
from localcast.appliance.mapcache import MapCache
from localcast.appliance.metrics import DataPlaneMetrics
from localcast.appliance.plan import PlanContext
from localcast.appliance.settings import ApplianceSettings
from localcast.appliance.smallcache import SmallObjectCache
from localcast.appliance.store import StoreIndex
from localcast.appliance.tokencache import TokenVerifier
from localcast.appliance.traffic import TrafficCounter
from localcast.core.tokens import Keyring
from localcast.keyfile import KeyfileError, load_keyring

log = logging.getLogger("localcast.appliance")

METRICS_INTERVAL_S = 1.0


class Connection(Protocol):
    """What the state needs of a connection (``http.HttpConnection``)."""

    deadline: float

    def on_deadline(self) -> None: ...

    def abort(self) -> None: ...

    def close_if_idle(self) -> None: ...


class ServerState:
    """What one worker's connections share: the plan context, caches, log, counters, limits."""

    def __init__(
        self, settings: ApplianceSettings, keyring: Keyring, access_log: AccessLog | None
    ) -> None:
        self.settings = settings
        self.index = StoreIndex(settings.store)
        self.index.scan()
        self.small = SmallObjectCache(settings.small_object_bytes, settings.small_cache_bytes)
        self.fds = FdCache()
        self.maps = MapCache()
        self.verifier = TokenVerifier(
            keyring, settings.token_cache_s, session_ttl_s=settings.session_ttl_s
        )
        self.contact = contact_state(None, time.time(), 0.0)
        self.cors = CorsPolicy.of(settings.cors_origins)
        self.counters = Counters()
        self.traffic = TrafficCounter(settings.traffic_dir)  # per client network, for the reporter
        self.access_log = access_log
        self.connections: set[Connection] = set()
        self.metrics = DataPlaneMetrics(
            settings.metrics_dir,
            self.counters,
            lambda: len(self.connections),
            self.index.stats,
            self.index.root,
        )
        self._metrics_allow = settings.metrics_networks
        self.ctx = self._context()
        self.started_at = time.time()
        self._next_refresh = time.monotonic() + settings.refresh_interval_s
        self._next_metrics = time.monotonic()
        self._keys_mtime = _mtime(settings.keys)

    def _context(self) -> PlanContext:
        return PlanContext(
            self.index,
            self.verifier,
            self.cors,
            self.health_body,
            self.metrics.render,
            self._metrics_allow,
        )

    def health_body(self) -> bytes:
        titles, files = self.index.counts()
        doc: dict[str, Any] = {
            "status": "ok",
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 3),
            "connections": len(self.connections),
            "titles": titles,
            "files": files,
            "small_cache_bytes": self.small.size_bytes,
            "open_files": len(self.fds),
            "mapped_files": len(self.maps),
            "control": {"lost": self.contact.lost, "reason": self.contact.reason},
            **self.counters.snapshot(),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def record(
        self,
        client: str,
        method: str,
        target: bytes,
        status: int,
        nbytes: int,
        start: float,
        now: float,
    ) -> None:
        """Count and log one finished response (``start`` monotonic, ``now`` wall clock)."""
        self.counters.add(status, nbytes, target)
        self.traffic.add(client, target, status, nbytes, now)
        if self.access_log is not None:
            duration = time.monotonic() - start
            self.access_log.record(now, client, method, target, status, nbytes, duration)

    def refused(self, target: bytes, reason: str) -> None:
        """Count a token refusal (``reason``: a ``plan.REFUSALS`` code)."""
        self.counters.refused(reason, request_kind(target))

    def tick(self) -> None:
        """Periodic work: timeouts, store refresh, keyring reload, log flush, metrics."""
        now = time.monotonic()
        for conn in list(self.connections):
            if now >= conn.deadline:
                try:
                    conn.on_deadline()
                except Exception:
                    log.exception("internal error on a deadline; dropping the connection")
                    conn.abort()
        if now >= self._next_refresh:
            self._next_refresh = now + self.settings.refresh_interval_s
            for gone in self.index.refresh():
                self.small.drop(gone)
                self.fds.drop(gone.path)
                self.maps.drop(gone.path)
            self._maybe_reload_keys()
            self._check_contact()
            if self.access_log is not None:
                self.access_log.reopen_if_moved()
        if self.access_log is not None:
            self.access_log.flush()
        if now >= self._next_metrics:
            self._next_metrics = now + METRICS_INTERVAL_S
            self.metrics.publish()
        self.traffic.tick(now)  # <traffic dir>/<pid>.json, about once a second

    def forget(self, entry: FileEntry) -> None:
        """A file vanished under us: drop it from the index and the RAM cache."""
        self.small.drop(entry)
        self.fds.drop(entry.path)
        self.maps.drop(entry.path)
        title_id = os.path.basename(os.path.dirname(entry.path))
        self.index.forget(title_id, os.path.basename(entry.path))

    def _check_contact(self) -> None:
        """Lost the control plane (the reporter's contact mark too old)? See ``admission``."""
        path = self.settings.contact_file
        last = (_mtime(path) or None) if path is not None else None  # no mark: never reached
        state = contact_state(last, time.time(), self.settings.control_lost_after_s)
        if self.verifier.set_lost(state.lost_at):
            if state.lost:
                log.warning("appliance: %s", state.reason)
            else:
                log.info("appliance: control plane reached again; admitting new sessions")
        self.contact = state

    def _maybe_reload_keys(self) -> None:
        mtime = _mtime(self.settings.keys)
        if mtime == self._keys_mtime:
            return
        self._keys_mtime = mtime
        try:
            lost_at = self.verifier.lost_at
            self.verifier = TokenVerifier(
                load_keyring(self.settings.keys),
                self.verifier.ttl_s,
                session_ttl_s=self.settings.session_ttl_s,
            )
            self.verifier.set_lost(lost_at)
        except KeyfileError as exc:
            log.warning("keyring not reloaded, keeping the old one: %s", exc)
            return
        self.ctx = self._context()
        log.info("keyring reloaded")


def _mtime(path: os.PathLike[str] | str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
