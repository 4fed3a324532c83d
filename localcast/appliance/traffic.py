"""Traffic per client network: counted by each data plane worker, handed to the reporter by file.

Three parts, one per process role:

* :class:`TrafficCounter` (a worker, the hot path): :meth:`~TrafficCounter.add`
  is one dict increment per finished response to a tokened request, keyed by
  (client address, request kind): ``fill`` when the token's key id is a fill
  credential's (``fill-...``, :func:`localcast.core.tokens.is_fill_kid`),
  else ``viewer``. Requests without a token (``/healthz``, ``/metrics``,
  malformed targets) are not client traffic and are not counted. Per
  response: requests, body bytes sent, and whether the status was 5xx.
* :meth:`TrafficCounter.write` (the worker's tick, about once a second):
  addresses become client networks (:func:`localcast.core.traffic.client_net`:
  /24, /48) and the counts are added into the worker's file
  ``<traffic dir>/<pid>.json``, written atomically (temporary file + rename).
* :func:`take` (the reporter, each heartbeat interval, whether or not the
  control plane answers): reads every file of the directory (live workers'
  and dead ones') and deletes it. :class:`TrafficUplink` posts what was taken
  to ``POST /v1/appliances/{id}/traffic`` and keeps it until the control plane
  acknowledges it (the same body, same ``report_id``, is sent again after a
  failure; the control plane counts a report id once).

The reporter creates the directory; workers write only into an existing one
(an appliance run with no reporter keeps no counts), and a worker drops its
file's counts when nobody took them for :data:`STALE_S`.

Writers and the reader serialise on ``flock`` of ``<traffic dir>/.lock``: a
worker never blocks on it (it tries again at its next tick), and while it
holds the lock it knows its file is either as it last wrote it or taken, so
nothing is counted twice or lost. A worker killed loses at most the counts
of its last second; a worker stopping gracefully writes its last counts.

The file::

    {"pid": 1234, "period_start": 1767225600.1, "period_end": 1767225605.0,
     "rows": [{"net": "203.0.113.0/24", "kind": "viewer", "requests": 12,
               "bytes": 9437184, "errors_5xx": 0}]}
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcast.core.tokens import FILL_PREFIX, SEPARATOR, VERSION
from localcast.core.traffic import FILL, VIEWER, client_net

log = logging.getLogger("localcast.appliance")

LOCK_NAME = ".lock"
WRITE_INTERVAL_S = 1.0
STALE_S = 900.0  # a file not taken for this long has no reporter: its counts are dropped
MAX_REPORT_ROWS = 100_000  # rows per POST; more are sent as several reports
_NET_CACHE_MAX = 65_536
_TOKEN = ("/" + VERSION + SEPARATOR).encode()
_FILL_TOKEN = ("/" + VERSION + SEPARATOR + FILL_PREFIX).encode()

Rows = dict[tuple[str, str], list[int]]  # (net, kind) -> [requests, bytes, errors_5xx]


@contextlib.contextmanager
def _locked(directory: Path, blocking: bool) -> Iterator[bool]:
    """Hold the directory's lock; yields False (holding nothing) when busy and not blocking."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _rows_json(rows: Rows) -> list[dict[str, Any]]:
    return [
        {"net": net, "kind": kind, "requests": c[0], "bytes": c[1], "errors_5xx": c[2]}
        for (net, kind), c in sorted(rows.items())
    ]


def _merge_rows(into: Rows, rows: Any) -> None:
    for r in rows:
        c = into.setdefault((str(r["net"]), str(r["kind"])), [0, 0, 0])
        c[0] += int(r["requests"])
        c[1] += int(r["bytes"])
        c[2] += int(r.get("errors_5xx", 0))


class TrafficCounter:
    """One worker's traffic counts (see the module text). ``directory`` None: counts nothing."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.enabled = directory is not None
        self.counts: dict[tuple[str, str], list[int]] = {}  # (client address, kind) -> counts
        self.first: float | None = None  # wall clock of the first count in ``counts``
        self._in_file: Rows = {}  # what our file holds, when it has not been taken
        self._file_start: float | None = None
        self._owned = False  # wrote our file at least once (else a dead namesake's may be there)
        self._nets: dict[str, str | None] = {}
        self._next_write = 0.0

    def add(self, client: str, target: bytes, status: int, nbytes: int, now: float) -> None:
        """Count one finished response (the hot path: no I/O)."""
        if not self.enabled or not target.startswith(_TOKEN):
            return
        key = (client, FILL if target.startswith(_FILL_TOKEN) else VIEWER)
        c = self.counts.get(key)
        if c is None:
            if self.first is None:
                self.first = now
            self.counts[key] = [1, nbytes, 1 if status >= 500 else 0]
        else:
            c[0] += 1
            c[1] += nbytes
            if status >= 500:
                c[2] += 1

    def _net(self, client: str) -> str | None:
        try:
            return self._nets[client]
        except KeyError:
            pass
        if len(self._nets) >= _NET_CACHE_MAX:
            self._nets.clear()
        net = self._nets[client] = client_net(client)
        return net

    def tick(self, monotonic_now: float) -> None:
        """The worker's tick: write about once every ``WRITE_INTERVAL_S`` when there are counts."""
        if self.counts and monotonic_now >= self._next_write:
            self._next_write = monotonic_now + WRITE_INTERVAL_S
            self.write(time.time())

    def close(self) -> None:
        """A worker stopping: write its last counts now."""
        self.write(time.time())

    def write(self, now: float) -> bool:
        """Add the counts so far to this worker's file; False when nothing was written."""
        if self.directory is None or not self.counts:
            return False
        directory = self.directory
        if not directory.is_dir():  # no reporter ever took files: nobody wants them
            self.counts, self.first = {}, None
            return False
        try:
            with _locked(directory, blocking=False) as held:
                if not held:
                    return False  # the reporter is reading: next tick
                path = directory / f"{os.getpid()}.json"
                self._sync_with_file(path)
                rows = {key: list(c) for key, c in self._in_file.items()}
                for (client, kind), (req, nbytes, errs) in self.counts.items():
                    net = self._net(client)
                    if net is None:
                        continue
                    c = rows.setdefault((net, kind), [0, 0, 0])
                    c[0] += req
                    c[1] += nbytes
                    c[2] += errs
                start = self.first if self.first is not None else now
                if self._file_start is not None:
                    start = min(start, self._file_start)
                doc = {
                    "pid": os.getpid(),
                    "period_start": start,
                    "period_end": max(now, start),
                    "rows": _rows_json(rows),
                }
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_text(json.dumps(doc, separators=(",", ":")))
                os.replace(tmp, path)
                self._in_file, self._file_start, self._owned = rows, start, True
        except OSError as exc:
            log.warning("traffic counts not written to %s (kept for next time): %s", directory, exc)
            return False
        self.counts = {}
        self.first = None
        return True

    def _sync_with_file(self, path: Path) -> None:
        """Under the lock: forget what the reporter took; adopt a dead namesake's file."""
        if not path.exists():
            self._in_file, self._file_start = {}, None
        elif self._file_start is not None and time.time() - self._file_start > STALE_S:
            log.warning(
                "traffic counts in %s not taken for %.0f s (no reporter?): dropped",
                path,
                time.time() - self._file_start,
            )
            self._in_file, self._file_start = {}, None
        elif not self._owned:  # a previous process with our pid left counts there
            try:
                doc = json.loads(path.read_text())
                rows: Rows = {}
                _merge_rows(rows, doc.get("rows", ()))
                self._in_file, self._file_start = rows, float(doc["period_start"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("unreadable traffic file %s replaced: %s", path, exc)


@dataclass(frozen=True)
class TrafficBatch:
    period_start: float
    period_end: float
    rows: Rows


def take(directory: Path) -> TrafficBatch | None:
    """Read and delete every worker file of ``directory`` (the reporter); None when none."""
    if not directory.is_dir():
        return None
    rows: Rows = {}
    start: float | None = None
    end: float | None = None
    with _locked(directory, blocking=True):
        for path in sorted(directory.glob("*.json")):
            try:
                doc = json.loads(path.read_text())
                merged: Rows = {}
                _merge_rows(merged, doc.get("rows", ()))
                s, e = float(doc["period_start"]), float(doc["period_end"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("unreadable traffic file %s dropped: %s", path, exc)
                path.unlink(missing_ok=True)
                continue
            path.unlink(missing_ok=True)
            for key, c in merged.items():
                t = rows.setdefault(key, [0, 0, 0])
                for i in range(3):
                    t[i] += c[i]
            start = s if start is None else min(start, s)
            end = e if end is None else max(end, e)
    if start is None or end is None:
        return None
    return TrafficBatch(start, max(start, end), rows)


def report_bodies(batch: TrafficBatch, max_rows: int = MAX_REPORT_ROWS) -> list[dict[str, Any]]:
    """The ``POST .../traffic`` bodies of a batch (several when it has more than ``max_rows``)."""
    rows = _rows_json(batch.rows)
    chunks = [rows[i : i + max_rows] for i in range(0, len(rows), max_rows)] or [[]]
    base = uuid.uuid4().hex[:16]
    return [
        {
            "report_id": f"{base}-{i}",
            "period_start": batch.period_start,
            "period_end": batch.period_end,
            "rows": chunk,
        }
        for i, chunk in enumerate(chunks)
    ]


Post = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class TrafficUplink:
    """The reporter's side: take the workers' files every interval, post them until acknowledged.

    :meth:`collect` runs whether or not the control plane answers, so the
    workers' files stay small; what was taken waits here (merged per network
    and kind) until :meth:`send` gets it acknowledged.
    """

    def __init__(self, directory: Path, take_files: Callable[[Path], TrafficBatch | None] = take):
        self.directory = directory
        self._take = take_files
        self.pending: TrafficBatch | None = None  # taken, not yet in a report body
        self.unsent: list[dict[str, Any]] = []  # report bodies, sent again until acknowledged
        self.sent_reports = 0
        try:  # the workers write only into an existing directory: someone takes the files
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("traffic directory %s not usable: %s", directory, exc)

    async def collect(self) -> None:
        """Take the workers' files into :attr:`pending` (never raises)."""
        try:
            batch = await asyncio.to_thread(self._take, self.directory)
        except OSError as exc:
            log.warning("traffic files not taken from %s: %s", self.directory, exc)
            return
        if batch is None:
            return
        if self.pending is None:
            self.pending = batch
            return
        rows = self.pending.rows
        for key, c in batch.rows.items():
            t = rows.setdefault(key, [0, 0, 0])
            for i in range(3):
                t[i] += c[i]
        self.pending = TrafficBatch(
            min(self.pending.period_start, batch.period_start),
            max(self.pending.period_end, batch.period_end),
            rows,
        )

    async def send(self, post: Post) -> int:
        """Post the unacknowledged reports, else what is pending; how many were acknowledged.

        ``post(path, body)`` raises on a refusal or a network error; the body is
        kept and sent again next time, except on a 422 (it would be refused forever).
        """
        if not self.unsent:
            if self.pending is None:
                return 0
            self.unsent, self.pending = report_bodies(self.pending), None
        done = 0
        while self.unsent:
            body = self.unsent[0]
            try:
                await post("/traffic", body)
            except Exception as exc:
                if getattr(exc, "status", None) != 422:
                    raise
                log.error("traffic report %s refused, dropped: %s", body["report_id"], exc)
            self.unsent.pop(0)
            done += 1
            self.sent_reports += 1
        return done
