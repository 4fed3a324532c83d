"""An in-memory index of the content store: title -> file name -> :class:`FileEntry`.

The store is ``<root>/<title_id>/<sha256>.<ext>``. Lookups are dict hits;
fills add files while the appliance runs, so a miss probes the disk (one
``stat``) and indexes what it finds; :meth:`StoreIndex.refresh`, called every
few seconds by the worker, rescans only the title directories whose mtime
changed, which is how deletions (evictions) are noticed.

Only regular files whose name matches ``entry.FILE_NAME_RE`` in directories
whose name matches ``TITLE_ID_RE`` are indexed, and only if their real path
(symlinks resolved) lies inside the store: partial fill files, manifests and
symlinks pointing out of the store are never served.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from localcast.appliance.entry import FILE_NAME_RE, TITLE_ID_RE, FileEntry, make_entry


@dataclass
class _TitleDir:
    mtime_ns: int
    files: dict[str, FileEntry] = field(default_factory=dict)


class StoreIndex:
    """A ``plan.StoreView`` over a store directory (which may not exist yet)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.realpath(root)
        self._prefix = self.root.rstrip(os.sep) + os.sep
        self._titles: dict[str, _TitleDir] = {}
        self._stats: tuple[int, int, int] | None = None  # (titles, files, bytes); None: stale

    # --- the lookup (hot path) ------------------------------------------------------

    def get(self, title_id: str, name: str) -> FileEntry | None:
        title = self._titles.get(title_id)
        if title is not None:
            entry = title.files.get(name)
            if entry is not None:
                return entry
        return self._probe(title_id, name)

    # --- keeping it current -------------------------------------------------------------

    def scan(self) -> None:
        """Index every servable file of the store (at start)."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return
        for title_id in names:
            if TITLE_ID_RE.match(title_id):
                self._rescan_title(title_id)

    def refresh(self) -> list[FileEntry]:
        """Rescan title directories that changed; return the entries that went away."""
        gone: list[FileEntry] = []
        for title_id, title in list(self._titles.items()):
            try:
                st = os.stat(os.path.join(self.root, title_id))
            except OSError:
                gone.extend(self._titles.pop(title_id).files.values())
                self._stats = None
                continue
            if st.st_mtime_ns != title.mtime_ns:
                gone.extend(self._rescan_title(title_id))
        return gone

    def forget(self, title_id: str, name: str) -> FileEntry | None:
        """Drop one entry (its file vanished under us)."""
        title = self._titles.get(title_id)
        self._stats = None
        return title.files.pop(name, None) if title is not None else None

    def counts(self) -> tuple[int, int]:
        """(titles, files) currently indexed."""
        return len(self._titles), sum(len(t.files) for t in self._titles.values())

    def stats(self) -> tuple[int, int, int]:
        """(titles, files, bytes) currently indexed; recounted only after a change."""
        if self._stats is None:
            files = size = 0
            for t in self._titles.values():
                files += len(t.files)
                size += sum(e.size for e in t.files.values())
            self._stats = (len(self._titles), files, size)
        return self._stats

    # --- disk ---------------------------------------------------------------------------

    def _probe(self, title_id: str, name: str) -> FileEntry | None:
        if not TITLE_ID_RE.match(title_id) or not FILE_NAME_RE.match(name):
            return None
        title_path = os.path.join(self.root, title_id)
        entry = self._entry_for(title_path, name)
        if entry is None:
            return None
        title = self._titles.get(title_id)
        if title is None:
            try:
                mtime_ns = os.stat(title_path).st_mtime_ns
            except OSError:
                return None
            # A directory seen for the first time: index it whole (a player will want the rest).
            title = self._titles[title_id] = _TitleDir(mtime_ns)
            self._fill_title(title_id, title)
        title.files[name] = entry
        self._stats = None
        return entry

    def _rescan_title(self, title_id: str) -> list[FileEntry]:
        self._stats = None
        title_path = os.path.join(self.root, title_id)
        old = self._titles.get(title_id)
        try:
            st = os.stat(title_path)
        except OSError:
            self._titles.pop(title_id, None)
            return list(old.files.values()) if old else []
        if not stat.S_ISDIR(st.st_mode) or not self._inside(title_path):
            self._titles.pop(title_id, None)
            return list(old.files.values()) if old else []
        fresh = _TitleDir(st.st_mtime_ns)
        self._fill_title(title_id, fresh, old)
        self._titles[title_id] = fresh
        if old is None:
            return []
        return [e for n, e in old.files.items() if n not in fresh.files]

    def _fill_title(self, title_id: str, title: _TitleDir, old: _TitleDir | None = None) -> None:
        title_path = os.path.join(self.root, title_id)
        try:
            names = os.listdir(title_path)
        except OSError:
            return
        for name in names:
            if not FILE_NAME_RE.match(name):
                continue
            known = old.files.get(name) if old is not None else None
            entry = known if known is not None else self._entry_for(title_path, name)
            if entry is not None:
                title.files[name] = entry

    def _entry_for(self, title_path: str, name: str) -> FileEntry | None:
        path = os.path.join(title_path, name)
        try:
            lst = os.lstat(path)
            st = os.stat(path) if stat.S_ISLNK(lst.st_mode) else lst
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        real = os.path.realpath(path)
        if not real.startswith(self._prefix):
            return None
        return make_entry(real, name, st.st_size, st.st_mtime)

    def _inside(self, path: str) -> bool:
        return os.path.realpath(path).startswith(self._prefix)
