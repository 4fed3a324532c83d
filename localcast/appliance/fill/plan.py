"""The fill agent's own bookkeeping decisions, pure: what to fetch, in which order, what to evict.

Source choice, backoff and escalation are ``core.fillqueue``'s; this module
turns a manifest and what the store holds into work, and picks the titles
to delete.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from localcast.appliance.fill.schema import FillManifest
from localcast.core.fillqueue import order_files

FileKey = tuple[str, str]  # (title_id, name)


@dataclass(frozen=True)
class FileTask:
    title_id: str
    name: str
    size: int
    urgent: bool

    @property
    def key(self) -> FileKey:
        return (self.title_id, self.name)

    @property
    def sha256(self) -> str:
        return self.name.split(".", 1)[0]


Present = Mapping[str, Mapping[str, int]]  # title_id -> name -> size on disk


def wanted_files(manifest: FillManifest) -> dict[FileKey, FileTask]:
    """Every file the manifest lists, in manifest order (a name listed twice counts once)."""
    out: dict[FileKey, FileTask] = {}
    for t in manifest.titles:
        for f in t.files:
            out.setdefault((t.title_id, f.name), FileTask(t.title_id, f.name, f.size, t.urgent))
    return out


def missing(wanted: Mapping[FileKey, FileTask], present: Present) -> list[FileTask]:
    """Wanted files the store lacks (or holds at another size)."""
    return [
        task
        for task in wanted.values()
        if present.get(task.title_id, {}).get(task.name) != task.size
    ]


def fetch_order(tasks: Iterable[FileTask], window_open: bool) -> list[FileTask]:
    """What to fetch now: urgent titles first, then manifest order; only urgent ones while the
    window is closed (the manifest's rate is then the urgent rate)."""
    pairs = [(t.title_id, t) for t in tasks if window_open or t.urgent]
    return [t for _, t in order_files(pairs, {t.title_id for _, t in pairs if t.urgent})]


def missing_bytes_by_title(
    tasks: Iterable[FileTask], parts: Mapping[FileKey, int]
) -> dict[str, int]:
    """Bytes still to write per title, counting what parts already hold."""
    out: dict[str, int] = {}
    for t in tasks:
        out[t.title_id] = out.get(t.title_id, 0) + max(0, t.size - parts.get(t.key, 0))
    return out


def eviction_order(unlisted: Iterable[str], last_rank: Mapping[str, int]) -> list[str]:
    """Titles not in the manifest, coldest first: never listed (as far as this agent knows)
    first, then by their place in the last manifest that listed them, from the end
    (manifests list titles hottest first); ties by title id."""
    return sorted(unlisted, key=lambda t: (t in last_rank, -last_rank.get(t, 0), t))


def to_evict(order: Iterable[str], title_bytes: Mapping[str, int], need: int) -> list[str]:
    """The shortest prefix of ``order`` whose bytes reach ``need`` (all of it if none does)."""
    out: list[str] = []
    freed = 0
    for t in order:
        if freed >= need:
            break
        out.append(t)
        freed += title_bytes.get(t, 0)
    return out
