"""One process's metrics: plain numbers in memory, a snapshot file written atomically.

A process keeps its counters as ordinary Python numbers on its hot path (no
locks, no syscalls per event) and, about once a second, copies them into a
:class:`MetricsWriter` and calls :meth:`MetricsWriter.flush`, which writes
``<dir>/<component>-<pid>.json`` (temp file + ``rename``: a reader never sees
half a file). Readers (``collect``) merge the files of every live process of
the node.

A family is a name, a type (counter or gauge), a help text, label names and
samples (label values -> number); a gauge also says how copies from several
processes combine (``sum``: e.g. open connections per worker; ``max``/``min``:
the same reading taken by each, e.g. free disk). Counters always add up.

Example (a process with a 1 s tick)::

    writer = MetricsWriter("fill", metrics_dir(config))
    writer.counter("localcast_fill_bytes", {"source": "peer"}, totals["peer"],
                   help="Bytes written to the store by fills, by source kind.")
    writer.gauge("localcast_fill_queue_files", None, len(queue))
    writer.flush()
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("localcast.metrics")

FORMAT = 1
COUNTER: Literal["counter"] = "counter"
GAUGE: Literal["gauge"] = "gauge"
Kind = Literal["counter", "gauge"]
Merge = Literal["sum", "max", "min"]
MERGES: tuple[Merge, ...] = ("sum", "max", "min")

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_COMPONENT_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
SUFFIX = ".json"
TMP_SUFFIX = ".tmp"

LabelValues = tuple[str, ...]


@dataclass
class Family:
    """One metric family as one process holds it."""

    name: str  # counters without ``_total`` (the exposition adds it)
    kind: Kind
    help: str
    labels: tuple[str, ...]
    merge: Merge = "sum"
    samples: dict[LabelValues, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "help": self.help,
            "labels": list(self.labels),
            "merge": self.merge,
            "samples": [[list(k), v] for k, v in self.samples.items()],
        }

    @classmethod
    def from_json(cls, name: str, doc: Mapping[str, Any]) -> Family:
        kind = doc["type"]
        merge = doc.get("merge", "sum")
        if kind not in (COUNTER, GAUGE) or merge not in MERGES or not _NAME_RE.match(name):
            raise ValueError(f"bad family {name!r}")
        labels = tuple(str(x) for x in doc["labels"])
        samples: dict[LabelValues, float] = {}
        for values, number in doc["samples"]:
            key = tuple(str(v) for v in values)
            if len(key) != len(labels) or isinstance(number, bool):
                raise ValueError(f"bad sample in {name!r}")
            samples[key] = float(number) if isinstance(number, float) else int(number)
        return cls(name, kind, str(doc.get("help", "")), labels, merge, samples)


@dataclass
class Snapshot:
    """What one process published: who (component, pid, process identity) and its families."""

    component: str
    pid: int
    identity: str  # boot id + process start time: tells a reused pid from its old owner
    written_at: float  # wall clock
    families: dict[str, Family]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "component": self.component,
            "pid": self.pid,
            "identity": self.identity,
            "written_at": self.written_at,
            "families": {n: f.to_json() for n, f in self.families.items()},
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Snapshot:
        if doc.get("format") != FORMAT:
            raise ValueError("unknown snapshot format")
        families = {n: Family.from_json(n, f) for n, f in doc["families"].items()}
        return cls(
            str(doc["component"]),
            int(doc["pid"]),
            str(doc["identity"]),
            float(doc["written_at"]),
            families,
        )


def counter_name(name: str) -> str:
    return name[: -len("_total")] if name.endswith("_total") else name


def snapshot_path(directory: Path, component: str, pid: int) -> Path:
    return directory / f"{component}-{pid}{SUFFIX}"


class MetricsWriter:
    """The metric families of one process, and the file they are published to.

    ``counter`` sets a counter's running total (the process keeps the number;
    ``add`` increments the copy here instead), ``gauge`` sets a reading,
    ``clear`` forgets a family's samples (label sets that no longer exist).
    Nothing here does I/O but :meth:`flush`. ``directory=None`` publishes
    nothing (``flush`` is a no-op) but :meth:`snapshot` still works.
    """

    def __init__(self, component: str, directory: str | os.PathLike[str] | None) -> None:
        if not _COMPONENT_RE.match(component):
            raise ValueError(f"component {component!r}: 1-40 of [a-z0-9_-], a letter first")
        self.component = component
        self.directory = Path(directory) if directory is not None else None
        self.families: dict[str, Family] = {}
        self._pid = -1
        self._identity = ""
        self._failing = False

    # --- recording (no I/O) ---------------------------------------------------------------

    def counter(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        value: float = 0,
        help: str = "",
    ) -> None:
        """Set the running total of counter ``name`` (``_total`` is added on exposition)."""
        fam = self._family(counter_name(name), COUNTER, help, labels, "sum")
        fam.samples[_values(fam, labels)] = value

    def add(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        amount: float = 1,
        help: str = "",
    ) -> None:
        """Add ``amount`` to counter ``name``."""
        fam = self._family(counter_name(name), COUNTER, help, labels, "sum")
        key = _values(fam, labels)
        fam.samples[key] = fam.samples.get(key, 0) + amount

    def gauge(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        value: float = 0,
        help: str = "",
        merge: Merge = "sum",
    ) -> None:
        """Set gauge ``name``; ``merge`` says how copies from several processes combine."""
        fam = self._family(name, GAUGE, help, labels, merge)
        fam.samples[_values(fam, labels)] = value

    def clear(self, name: str) -> None:
        """Forget every sample of ``name`` (its definition stays)."""
        fam = self.families.get(counter_name(name)) or self.families.get(name)
        if fam is not None:
            fam.samples.clear()

    def _family(
        self,
        name: str,
        kind: Kind,
        help: str,
        labels: Mapping[str, str] | None,
        merge: Merge,
    ) -> Family:
        fam = self.families.get(name)
        if fam is None:
            if not _NAME_RE.match(name):
                raise ValueError(f"bad metric name {name!r}")
            names = tuple(sorted(labels)) if labels else ()
            for label in names:
                if not _LABEL_RE.match(label) or label.startswith("__"):
                    raise ValueError(f"bad label name {label!r} for {name}")
            if merge not in MERGES:
                raise ValueError(f"merge must be one of {MERGES}")
            fam = self.families[name] = Family(name, kind, help or name, names, merge)
        elif fam.kind != kind:
            raise ValueError(f"{name} is a {fam.kind}, not a {kind}")
        elif help and fam.help != help:
            fam.help = help
        return fam

    # --- publishing -----------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> Snapshot:
        """A copy of the families as they stand."""
        self._who()
        families = {
            n: Family(f.name, f.kind, f.help, f.labels, f.merge, dict(f.samples))
            for n, f in self.families.items()
        }
        return Snapshot(
            self.component,
            self._pid,
            self._identity,
            time.time() if now is None else now,
            families,
        )

    @property
    def path(self) -> Path | None:
        if self.directory is None:
            return None
        self._who()
        return snapshot_path(self.directory, self.component, self._pid)

    def flush(self) -> bool:
        """Write the snapshot file (temp + rename). False if it could not be written."""
        path = self.path
        if path is None:
            return False
        snap = self.snapshot()
        data = json.dumps(snap.to_json(), separators=(",", ":")).encode()
        tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            if not self._failing:  # once per spell of trouble, not once a second
                log.warning("metrics snapshot %s not written: %s", path, exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def remove(self) -> None:
        """Delete this process's file (its counters then vanish from the sums: use with care)."""
        path = self.path
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def _who(self) -> None:
        pid = os.getpid()
        if pid != self._pid:  # first use, or we are a forked child now
            self._pid = pid
            self._identity = process_identity(pid) or ""


def _values(fam: Family, labels: Mapping[str, str] | None) -> LabelValues:
    if not labels:
        if fam.labels:
            raise ValueError(f"{fam.name} needs labels {fam.labels}")
        return ()
    if len(labels) != len(fam.labels):
        raise ValueError(f"{fam.name} has labels {fam.labels}, got {sorted(labels)}")
    try:
        return tuple(str(labels[n]) for n in fam.labels)
    except KeyError as exc:
        raise ValueError(f"{fam.name} has labels {fam.labels}, got {sorted(labels)}") from exc


# --- process identity -------------------------------------------------------------------------

_boot_id: str | None = None


def _boot() -> str:
    global _boot_id
    if _boot_id is None:
        try:
            _boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            _boot_id = "-"
    return _boot_id


def process_identity(pid: int) -> str | None:
    """``<boot id>:<start time>`` of a running process; None if it is gone (or a zombie).

    Where /proc is missing, only whether the pid exists is known (``"<boot>:?"``).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return f"{_boot()}:?"
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    return f"{_boot()}:{fields[19]}"  # field 22, starttime (clock ticks since boot)


def is_alive(pid: int, identity: str) -> bool:
    """Whether the process that wrote ``identity`` under ``pid`` still runs."""
    now = process_identity(pid)
    if now is None:
        return False
    return now == identity or now.endswith(":?") or identity.endswith(":?")
