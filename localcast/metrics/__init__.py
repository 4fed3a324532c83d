"""Node metrics for Prometheus: each process publishes a snapshot file, the data plane serves them.

Every process of an appliance node (data-plane workers and their supervisor,
BGP speaker, fill agent, heartbeat reporter) keeps its counters as plain
numbers and, about once a second, writes them with a :class:`MetricsWriter`
to ``<metrics dir>/<component>-<pid>.json`` (``snapshot``). The data plane
answers ``GET /metrics`` by merging the files of live processes (counters
added, gauges by their merge rule, dead processes' counters kept in
``retired.json``) through :class:`SnapshotCollector` (``collect``), rendered
by ``prometheus_client``.

Publishing from an asyncio process::

    writer = MetricsWriter("fill", metrics_dir(config))

    def update(w: MetricsWriter) -> None:
        w.counter("localcast_fill_bytes", {"source": "peer"}, agent.bytes_from["peer"])
        w.gauge("localcast_fill_queue_files", None, len(agent.queue))

    task = asyncio.create_task(publish_loop(writer, update))   # flushes every second

The metrics directory is ``[appliance] metrics_dir`` in config.toml, by
default ``<home>/run/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from localcast.config import CONFIG_NAME, Config, ConfigError
from localcast.metrics.collect import (
    CONTENT_TYPE,
    SnapshotCollector,
    merge,
    read_directory,
    render,
)
from localcast.metrics.snapshot import Family, MetricsWriter, Snapshot

__all__ = [
    "CONTENT_TYPE",
    "Family",
    "MetricsWriter",
    "Snapshot",
    "SnapshotCollector",
    "merge",
    "metrics_dir",
    "publish_loop",
    "read_directory",
    "render",
]

log = logging.getLogger("localcast.metrics")

DEFAULT_DIR = "metrics"  # under paths.run


def metrics_dir(config: Config) -> Path:
    """The node's metrics directory: ``[appliance] metrics_dir``, else ``<run>/metrics``."""
    value = config.section("appliance").get("metrics_dir")
    if value is None:
        return config.paths.run / DEFAULT_DIR
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{CONFIG_NAME}: appliance.metrics_dir must be a path")
    p = Path(value).expanduser()
    return p if p.is_absolute() else config.paths.home / p


async def publish_loop(
    writer: MetricsWriter,
    update: Callable[[MetricsWriter], None],
    interval_s: float = 1.0,
) -> None:
    """Every ``interval_s``: ``update(writer)`` then ``writer.flush()``; once more on cancel."""

    def once() -> None:
        try:
            update(writer)
        except Exception:  # a metrics bug must not stop the process it watches
            log.exception("metrics update for %s failed", writer.component)
        writer.flush()

    try:
        while True:
            once()
            await asyncio.sleep(interval_s)
    finally:
        with contextlib.suppress(Exception):
            once()
