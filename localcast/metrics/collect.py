"""Reading a node's metrics: every live process's snapshot, merged into one set of families.

:func:`read_directory` loads ``<dir>/*.json`` (one file per process, see
``snapshot``). A file whose process is gone (pid not running, or running but
started at another time: a reused pid) is *retired*: its gauges are dropped,
its counters are added into ``<dir>/retired.json`` and the file is deleted,
so a node's counters never go backwards when a worker is restarted (a sum
that fell would read as a counter reset: ``rate()`` would count the whole
total again). Retiring takes an ``flock`` on ``<dir>/.lock`` and records each
folded file's identity, so two readers (two workers answering a scrape) never
fold one file twice.

:func:`merge` adds counters, and combines gauges by their ``merge`` (``sum``,
``max``, ``min``); :class:`SnapshotCollector` is a ``prometheus_client``
collector over a directory (plus snapshots of the calling process, fresher
than its file); :func:`render` is the text exposition.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcast.metrics.snapshot import (
    COUNTER,
    SUFFIX,
    TMP_SUFFIX,
    Family,
    Snapshot,
    is_alive,
)

if TYPE_CHECKING:
    from prometheus_client.core import Metric

log = logging.getLogger("localcast.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes
RETIRED_NAME = "retired.json"
LOCK_NAME = ".lock"
PUBLISHERS = "localcast_metrics_publishers"
SNAPSHOT_AGE = "localcast_metrics_snapshot_age_seconds"


@dataclass
class Retired:
    """Counters of processes that are gone, and which files were folded in (file -> writer)."""

    families: dict[str, Family] = field(default_factory=dict)
    folded: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "folded": dict(sorted(self.folded.items())),
            "families": {n: f.to_json() for n, f in self.families.items()},
        }

    @classmethod
    def load(cls, path: Path) -> Retired:
        try:
            doc = json.loads(path.read_bytes())
            families = {n: Family.from_json(n, f) for n, f in doc["families"].items()}
            return cls(families, {str(k): str(v) for k, v in doc["folded"].items()})
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("metrics: ignoring unreadable %s: %s", path, exc)
            return cls()

    def fold(self, snap: Snapshot) -> None:
        for name, fam in snap.families.items():
            if fam.kind != COUNTER:
                continue
            mine = self.families.get(name)
            if mine is None:
                mine = self.families[name] = Family(name, fam.kind, fam.help, fam.labels)
            elif mine.labels != fam.labels:
                continue
            for key, value in fam.samples.items():
                mine.samples[key] = mine.samples.get(key, 0) + value


def writer_id(snap: Snapshot) -> str:
    return f"{snap.pid}@{snap.identity}"


@dataclass
class DirectoryView:
    """What a directory holds now: live snapshots, and the retired counters."""

    live: list[Snapshot]
    retired: Retired


def read_directory(directory: Path, retire: bool = True) -> DirectoryView:
    """Live snapshots of ``directory``; files of dead processes retired (``retire``)."""
    live: list[Snapshot] = []
    dead: list[tuple[Path, Snapshot]] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return DirectoryView([], Retired())
    for name in names:
        path = directory / name
        if name.startswith("."):
            if name.endswith(TMP_SUFFIX) and retire:
                _drop_stale_tmp(path, name)
            continue
        if not name.endswith(SUFFIX) or name == RETIRED_NAME:
            continue
        try:
            snap = Snapshot.from_json(json.loads(path.read_bytes()))
        except FileNotFoundError:
            continue  # retired by another reader meanwhile
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.debug("metrics: skipping %s: %s", path, exc)
            continue
        if is_alive(snap.pid, snap.identity):
            live.append(snap)
        else:
            dead.append((path, snap))
    retired = (
        _retire(directory, dead) if dead and retire else Retired.load(directory / RETIRED_NAME)
    )
    return DirectoryView(live, retired)


def _retire(directory: Path, dead: list[tuple[Path, Snapshot]]) -> Retired:
    """Fold the counters of dead processes' files into ``retired.json``; delete the files.

    Under the directory's lock, each file is read again (another reader may
    have retired it meanwhile, or a new process with the same pid rewritten
    it), folded unless ``folded`` says its writer already was (a reader that
    died between writing ``retired.json`` and deleting the file), then deleted.
    """
    path = directory / RETIRED_NAME
    try:
        lock_fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        log.warning("metrics: cannot lock %s: %s", directory, exc)
        return Retired.load(path)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        retired = Retired.load(path)
        present = {n for n in os.listdir(directory) if n.endswith(SUFFIX)}
        folded = {n: w for n, w in retired.folded.items() if n in present}
        gone: list[Path] = []
        for file, _ in dead:
            try:
                snap = Snapshot.from_json(json.loads(file.read_bytes()))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if is_alive(snap.pid, snap.identity):
                continue  # the pid's new owner wrote it since
            if folded.get(file.name) != writer_id(snap):
                retired.fold(snap)
                folded[file.name] = writer_id(snap)
            gone.append(file)
        retired.folded = folded
        if gone:
            _write_atomic(path, json.dumps(retired.to_json(), separators=(",", ":")).encode())
        for file in gone:
            with contextlib.suppress(FileNotFoundError):
                file.unlink()
        return retired
    except OSError as exc:
        log.warning("metrics: retiring dead snapshots in %s failed: %s", directory, exc)
        return Retired.load(path)
    finally:
        os.close(lock_fd)


def _drop_stale_tmp(path: Path, name: str) -> None:
    """``.<component>-<pid>.json.tmp`` left by a process that died mid-write."""
    if not name.endswith(SUFFIX + TMP_SUFFIX):
        return
    pid_text = name[1 : -len(SUFFIX + TMP_SUFFIX)].rsplit("-", 1)[-1]
    if pid_text.isdigit() and not is_alive(int(pid_text), ":?"):
        with contextlib.suppress(OSError):
            path.unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.stem}-{os.getpid()}{SUFFIX}{TMP_SUFFIX}")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# --- merging ------------------------------------------------------------------------------------


def merge(snapshots: Iterable[Snapshot], retired: Retired | None = None) -> dict[str, Family]:
    """One family per name: counters added, gauges combined by their ``merge``.

    A family that disagrees with the first seen copy (type or label names) is
    skipped, with a log line: two processes defining one name differently.
    """
    out: dict[str, Family] = {}
    sources: list[Iterable[Family]] = [s.families.values() for s in snapshots]
    if retired is not None:
        sources.append(retired.families.values())
    for families in sources:
        for fam in families:
            mine = out.get(fam.name)
            if mine is None:
                out[fam.name] = Family(
                    fam.name, fam.kind, fam.help, fam.labels, fam.merge, dict(fam.samples)
                )
                continue
            if mine.kind != fam.kind or mine.labels != fam.labels:
                log.warning("metrics: %s defined twice differently; one copy ignored", fam.name)
                continue
            combine = _COMBINE[mine.merge if mine.kind != COUNTER else "sum"]
            samples = mine.samples
            for key, value in fam.samples.items():
                old = samples.get(key)
                samples[key] = value if old is None else combine(old, value)
    return out


_COMBINE: dict[str, Callable[[float, float], float]] = {
    "sum": lambda a, b: a + b,
    "max": max,
    "min": min,
}


def publishers(snapshots: Iterable[Snapshot], now: float) -> list[Family]:
    """Live processes per component, and the age of each component's stalest snapshot
    (a process that is alive but stuck stops refreshing its file)."""
    count: dict[tuple[str, ...], float] = {}
    age: dict[tuple[str, ...], float] = {}
    for s in snapshots:
        key = (s.component,)
        count[key] = count.get(key, 0) + 1
        age[key] = max(age.get(key, 0.0), max(0.0, now - s.written_at))
    return [
        Family(
            PUBLISHERS,
            "gauge",
            "Processes of this node publishing metrics, by component.",
            ("component",),
            "sum",
            count,
        ),
        Family(
            SNAPSHOT_AGE,
            "gauge",
            "Age of the oldest live metrics snapshot of each component (seconds).",
            ("component",),
            "max",
            {k: round(v, 3) for k, v in age.items()},
        ),
    ]


# --- prometheus_client --------------------------------------------------------------------------


def to_metric(fam: Family) -> Metric:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    metric: CounterMetricFamily | GaugeMetricFamily
    if fam.kind == COUNTER:
        metric = CounterMetricFamily(fam.name, fam.help, labels=fam.labels)
    else:
        metric = GaugeMetricFamily(fam.name, fam.help, labels=fam.labels)
    for key in sorted(fam.samples):
        metric.add_metric(list(key), fam.samples[key])
    return metric


class SnapshotCollector:
    """A ``prometheus_client`` collector: the merged families of a metrics directory.

    ``own`` returns fresh snapshots of the calling process; they replace the
    files the same processes wrote (which may be a tick old).
    """

    def __init__(
        self,
        directory: Path | None,
        own: Callable[[], list[Snapshot]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.own = own
        self.clock = clock

    def families(self) -> dict[str, Family]:
        mine = self.own() if self.own is not None else []
        taken = {(s.component, s.pid) for s in mine}
        if self.directory is not None:
            view = read_directory(self.directory)
            live = mine + [s for s in view.live if (s.component, s.pid) not in taken]
            retired: Retired | None = view.retired
        else:
            live, retired = mine, None
        merged = merge(live, retired)
        for fam in publishers(live, self.clock()):
            merged.setdefault(fam.name, fam)
        return merged

    def collect(self) -> Iterator[Metric]:
        for name in sorted(fams := self.families()):
            yield to_metric(fams[name])


def preload() -> None:
    """Import ``prometheus_client`` now (a server does, so its first scrape is not slow)."""
    import prometheus_client.exposition  # noqa: F401


def render(collector: SnapshotCollector) -> bytes:
    """The text exposition format (``CONTENT_TYPE``) of ``collector``'s families."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
