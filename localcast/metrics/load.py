"""An appliance's load for its heartbeats, read from the data plane's metric snapshots.

Every heartbeat the reporter reads the node's metrics directory (the files
the data plane's ``GET /metrics`` merges, see :mod:`localcast.metrics`),
read-only (``read_directory(retire=False)``: retiring dead processes' files
is left to the data plane's scrapes), into a :class:`NodeReading`: client
connections open now (the data plane's gauge, summed over its workers) and,
per live process, its running totals of body bytes sent (every response),
tokened requests answered (viewer and fill: ``/healthz``, ``/metrics`` and
other untokened requests are not traffic) and their 5xx answers, less the
503s a node that lost its control plane answers new sessions on purpose
(token refusal ``no_new_sessions``: the player takes its next pathway; not
a fault).

:func:`load_between` (pure) turns two readings into a :class:`LoadSample`:
egress bits/s over the seconds between them, and the serving window
(requests and 5xx answered in between, ``window_s`` = those seconds: the
status's serving component). The first reading has no rate: egress 0 and
no serving window (the heartbeat leaves it out).

Counters are compared **per process** (pid and start time, as the merge
names a writer), never as node sums: a dead worker drops out of a sum of
live files, and comes back as retired counters once a scrape retires its
file, so a sum would read a restart as a fall and then a burst. A process
seen both times counts its increase; one new since the previous reading (a
worker started or restarted) counts all it holds (it counted all of it
since then); one gone counts nothing more (what it counted after the
previous reading is lost: at most one interval of one process); totals that
fell (not expected of one process) count as a reset, from zero, as
Prometheus' ``rate()`` does. A window is never negative.

Bytes count when a response ends (the data plane counts finished responses):
a long transfer counts in the window it finishes in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from localcast.appliance.accesslog import FILL, VIEWER
from localcast.appliance.metrics import P
from localcast.metrics.collect import read_directory, writer_id
from localcast.metrics.snapshot import Family, Snapshot

REQUESTS = P + "requests"  # {status, kind}
RESPONSE_BYTES = P + "response_bytes"  # {status, kind}
REFUSALS = P + "token_refusals"  # {kind, reason}
CONNECTIONS = P + "connections"  # gauge, one per worker
TRAFFIC_KINDS = frozenset((VIEWER, FILL))
SHEDDING = "no_new_sessions"  # the 503 of a node that lost its control plane: by design
MAX_WINDOW_S = 86400.0  # the heartbeat's limit for a serving window


@dataclass(frozen=True)
class ServingSample:
    """Requests answered over the last ``window_s`` seconds, and how many were 5xx."""

    requests: int
    errors_5xx: int
    window_s: float


@dataclass(frozen=True)
class LoadSample:
    active_connections: int = 0
    egress_bps: float = 0.0
    serving: ServingSample | None = None  # None: not known (the heartbeat leaves it out)


@dataclass(frozen=True)
class Totals:
    """One process's running totals (since it started)."""

    requests: int = 0  # tokened requests answered (viewer, fill)
    errors_5xx: int = 0  # of those, 5xx answers (not the shedding 503s)
    bytes_sent: int = 0  # body bytes of every response

    def fell_from(self, before: Totals) -> bool:
        return (
            self.requests < before.requests
            or self.errors_5xx < before.errors_5xx
            or self.bytes_sent < before.bytes_sent
        )


@dataclass(frozen=True)
class NodeReading:
    """The node's data plane at one moment: ``at`` (monotonic seconds), open connections,
    and each live process's totals by writer id."""

    at: float
    connections: int
    processes: Mapping[str, Totals]


def totals_of(snap: Snapshot) -> Totals | None:
    """The data-plane totals in one process's snapshot; None if it publishes none."""
    if REQUESTS not in snap.families and RESPONSE_BYTES not in snap.families:
        return None
    requests = errors = 0
    for labels, value in _samples(snap.families.get(REQUESTS)):
        if labels.get("kind") in TRAFFIC_KINDS:
            requests += int(value)
            if _is_5xx(labels.get("status", "")):
                errors += int(value)
    for labels, value in _samples(snap.families.get(REFUSALS)):
        if labels.get("reason") == SHEDDING and labels.get("kind") in TRAFFIC_KINDS:
            errors -= int(value)  # those 503s are in the requests' 5xx
    nbytes = sum(int(value) for _, value in _samples(snap.families.get(RESPONSE_BYTES)))
    return Totals(requests, min(max(errors, 0), requests), nbytes)


def _samples(fam: Family | None) -> Iterator[tuple[dict[str, str], float]]:
    if fam is not None:
        for key, value in fam.samples.items():
            yield dict(zip(fam.labels, key, strict=True)), value


def _is_5xx(status: str) -> bool:
    return status.isdigit() and 500 <= int(status) <= 599


def reading_of(snapshots: Iterable[Snapshot], at: float) -> NodeReading:
    """A :class:`NodeReading` of live processes' snapshots, taken at ``at``."""
    connections = 0
    processes: dict[str, Totals] = {}
    for snap in snapshots:
        gauge = snap.families.get(CONNECTIONS)
        if gauge is not None:
            connections += int(sum(gauge.samples.values()))
        totals = totals_of(snap)
        if totals is not None:
            processes[writer_id(snap)] = totals
    return NodeReading(at, max(connections, 0), processes)


def load_between(prev: NodeReading | None, cur: NodeReading) -> LoadSample:
    """The load over ``prev`` -> ``cur`` (see the module doc); no rate without ``prev``."""
    elapsed = cur.at - prev.at if prev is not None else 0.0
    if prev is None or elapsed <= 0:
        return LoadSample(active_connections=cur.connections)
    requests = errors = nbytes = 0
    for writer, now in cur.processes.items():
        before = prev.processes.get(writer)
        if before is None or now.fell_from(before):  # new since, or reset: all it holds
            before = Totals()
        requests += now.requests - before.requests
        errors += now.errors_5xx - before.errors_5xx
        nbytes += now.bytes_sent - before.bytes_sent
    serving = (
        ServingSample(requests, min(errors, requests), elapsed) if elapsed <= MAX_WINDOW_S else None
    )
    return LoadSample(cur.connections, nbytes * 8 / elapsed, serving)


def read_node(directory: Path, at: float) -> NodeReading:
    """Read ``directory`` (read-only: no file retired) into a :class:`NodeReading`."""
    return reading_of(read_directory(directory, retire=False).live, at)


class NodeLoad:
    """The reporter's load sampler for a metrics directory: each call reads the node and
    returns the load since the previous call."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self.clock = clock
        self.last: NodeReading | None = None

    def __call__(self) -> LoadSample:
        reading = read_node(self.directory, self.clock())
        sample = load_between(self.last, reading)
        self.last = reading
        return sample
