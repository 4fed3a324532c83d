"""The data plane's metric families: a worker's counters -> its snapshot; ``/metrics`` rendering.

Each worker counts in :class:`~localcast.appliance.accesslog.Counters`
(plain dicts, no I/O per request); :meth:`DataPlaneMetrics.publish` (the
worker's tick, about once a second) copies them into its
:class:`~localcast.metrics.MetricsWriter` and writes
``<metrics dir>/dataplane-<pid>.json``. ``GET /metrics`` renders every live
process's snapshot of the node merged (this worker's fresh from memory), see
:mod:`localcast.metrics`.

Families (counters end in ``_total`` on exposition)::

    localcast_appliance_requests_total{status, kind}        kind: viewer | fill | other
    localcast_appliance_response_bytes_total{status, kind}  body bytes sent
    localcast_appliance_token_refusals_total{reason, kind}  reason: plan.REFUSALS codes
    localcast_appliance_sendfile_errors_total{error}        errno name, or short_file
    localcast_appliance_connections_accepted_total
    localcast_appliance_connections                         open now (summed over workers)
    localcast_appliance_store_titles / _files / _bytes      the servable store index
    localcast_appliance_disk_size_bytes / _used_bytes / _free_bytes   the store's filesystem
    localcast_appliance_workers, localcast_appliance_worker_restarts_total   (supervisor)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from localcast.appliance.accesslog import Counters
from localcast.metrics import MetricsWriter, Snapshot, SnapshotCollector, render
from localcast.metrics.collect import preload

COMPONENT = "dataplane"
SUPERVISOR = "supervisor"
P = "localcast_appliance_"


class DataPlaneMetrics:
    """One worker's writer and the collector that answers ``/metrics``."""

    def __init__(
        self,
        directory: Path | None,
        counters: Counters,
        connections: Callable[[], int],
        store_stats: Callable[[], tuple[int, int, int]],
        store_root: str,
    ) -> None:
        self.writer = MetricsWriter(COMPONENT, directory)
        self.counters = counters
        self.connections = connections
        self.store_stats = store_stats
        self.store_root = store_root
        self.collector = SnapshotCollector(directory, own=self._own)
        preload()

    def update(self) -> None:
        """Copy the counters and readings into the writer (no I/O but one ``statvfs``)."""
        w, c = self.writer, self.counters
        for (status, kind), (n, nbytes) in c.responses.items():
            labels = {"status": str(status), "kind": kind}
            w.counter(P + "requests", labels, n, help="Responses sent, by status and kind.")
            w.counter(
                P + "response_bytes",
                labels,
                nbytes,
                help="Body bytes sent, by status and request kind.",
            )
        for (reason, kind), n in c.refusals.items():
            w.counter(
                P + "token_refusals",
                {"reason": reason, "kind": kind},
                n,
                help="Requests refused for their token (403), by reason and kind.",
            )
        for error, n in c.sendfile_errors.items():
            w.counter(
                P + "sendfile_errors",
                {"error": error},
                n,
                help="Responses ended by a sendfile error, by errno name.",
            )
        w.counter(P + "connections_accepted", None, c.connections, help="Connections accepted.")
        w.gauge(P + "connections", None, self.connections(), help="Open client connections.")
        titles, files, size = self.store_stats()
        w.gauge(P + "store_titles", None, titles, help="Titles in the store.", merge="max")
        w.gauge(P + "store_files", None, files, help="Servable files in the store.", merge="max")
        w.gauge(P + "store_bytes", None, size, help="Bytes of servable files.", merge="max")
        try:
            st = os.statvfs(self.store_root)
        except OSError:
            return
        total = st.f_blocks * st.f_frsize
        w.gauge(P + "disk_size_bytes", None, total, help="Store filesystem size.", merge="max")
        w.gauge(
            P + "disk_used_bytes",
            None,
            total - st.f_bfree * st.f_frsize,
            help="Store filesystem bytes in use.",
            merge="max",
        )
        w.gauge(
            P + "disk_free_bytes",
            None,
            st.f_bavail * st.f_frsize,
            help="Store filesystem bytes free (for unprivileged writers).",
            merge="max",
        )

    def publish(self) -> None:
        """The tick: update, then write the snapshot file."""
        self.update()
        self.writer.flush()

    def _own(self) -> list[Snapshot]:
        self.update()
        return [self.writer.snapshot()]

    def render(self) -> bytes:
        """The ``/metrics`` body: the node's merged families, text exposition format."""
        return render(self.collector)


class SupervisorMetrics:
    """The supervisor's own families: workers running and restarts."""

    def __init__(self, directory: Path | None) -> None:
        self.writer = MetricsWriter(SUPERVISOR, directory)
        self.restarts = 0

    def publish(self, workers: int) -> None:
        self.writer.gauge(P + "workers", None, workers, help="Data-plane worker processes.")
        self.writer.counter(
            P + "worker_restarts", None, self.restarts, help="Workers restarted after dying."
        )
        self.writer.flush()
