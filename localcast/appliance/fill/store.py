"""The store as the fill agent sees it: what is there, parts being filled, renames, deletions.

Layout::

    <store>/<title_id>/<sha256>.<ext>          served by the data plane
    <store>/.fill/<title_id>/<sha256>.<ext>.part   being filled (never served:
                                                   ``.fill`` is no title id)

A part grows by appends (a resumed transfer continues it); :class:`PartFile`
hashes what it writes, and on reopening hashes the bytes already on disk (local
reads, no bytes fetched twice). A verified part is fsynced and renamed into its
title directory: same filesystem, so the file appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from localcast.core.inventory import is_content_file
from localcast.media.manifest import TITLE_ID_RE

FILL_DIR = ".fill"
PART_SUFFIX = ".part"
_READ = 1 << 20


@dataclass(frozen=True)
class StoreUsage:
    """Bytes on disk: content files per title, and parts."""

    title_bytes: Mapping[str, int]
    part_bytes: int

    @property
    def content_bytes(self) -> int:
        return sum(self.title_bytes.values())

    @property
    def total(self) -> int:
        return self.content_bytes + self.part_bytes


class PartFile:
    """One ``.part`` file open for appending, with the running sha256 of its bytes."""

    def __init__(self, path: Path, expected_size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.hasher = hashlib.sha256()
        self._fh = open(path, "ab")  # noqa: SIM115 - closed by close()/discard()/finish()
        have = self._fh.tell()
        if have > expected_size:  # longer than the file can be: start again
            self._fh.truncate(0)
            have = 0
        elif have:
            with open(path, "rb") as fh:
                while chunk := fh.read(_READ):
                    self.hasher.update(chunk)
        self.have = have

    def restart(self) -> None:
        """Throw the bytes away (a source answered the whole file instead of the range)."""
        self._fh.truncate(0)
        self._fh.seek(0)
        self.hasher = hashlib.sha256()
        self.have = 0

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self.hasher.update(data)
        self.have += len(data)

    def close(self) -> None:
        """Keep the bytes for a later resume."""
        if not self._fh.closed:
            with contextlib.suppress(OSError):
                self._fh.close()

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def sync(self) -> str:
        """Flush and fsync; the hex sha256 of the whole part."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        return self.hasher.hexdigest()


class FillStore:
    """A store directory and its ``.fill`` area."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fill_root = root / FILL_DIR

    def path(self, title_id: str, name: str) -> Path:
        return self.root / title_id / name

    def part_path(self, title_id: str, name: str) -> Path:
        return self.fill_root / title_id / (name + PART_SUFFIX)

    def holds(self, title_id: str, name: str, size: int) -> bool:
        """The file is in the store with the manifest's size."""
        try:
            st = os.stat(self.path(title_id, name))
        except OSError:
            return False
        return st.st_size == size

    def part_size(self, title_id: str, name: str) -> int:
        try:
            return os.stat(self.part_path(title_id, name)).st_size
        except OSError:
            return 0

    def open_part(self, title_id: str, name: str, size: int) -> PartFile:
        return PartFile(self.part_path(title_id, name), size)

    def publish(self, part: Path, title_id: str, name: str) -> None:
        """Rename a synced, verified part into the store (atomic) and sync the directory."""
        title_dir = self.root / title_id
        title_dir.mkdir(parents=True, exist_ok=True)
        os.rename(part, title_dir / name)
        fd = os.open(title_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def usage(self) -> StoreUsage:
        titles: dict[str, int] = {}
        for title_id in self.titles():
            titles[title_id] = sum(size for _, size in self._content(self.root / title_id))
        parts = 0
        for dirpath, _, names in os.walk(self.fill_root):
            for n in names:
                with contextlib.suppress(OSError):
                    parts += os.stat(os.path.join(dirpath, n)).st_size
        return StoreUsage(titles, parts)

    def titles(self) -> list[str]:
        """Title directories in the store."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(e.name for e in entries if e.is_dir() and TITLE_ID_RE.match(e.name))

    def title_files(self, title_id: str) -> dict[str, int]:
        """A title's content files and their sizes."""
        return dict(self._content(self.root / title_id))

    def free_bytes(self) -> int:
        try:
            return shutil.disk_usage(self.root).free
        except FileNotFoundError:
            return shutil.disk_usage(self.root.parent).free

    def remove_title(self, title_id: str) -> int:
        """Delete a title's directory; the bytes of content it held."""
        title_dir = self.root / title_id
        freed = sum(size for _, size in self._content(title_dir))
        shutil.rmtree(title_dir, ignore_errors=True)
        shutil.rmtree(self.fill_root / title_id, ignore_errors=True)
        return freed

    def remove_stray_files(self, title_id: str, keep: Iterable[str]) -> int:
        """Delete content files of a wanted title that its manifest entry no longer lists."""
        keep_set = set(keep)
        freed = 0
        for name, size in self._content(self.root / title_id):
            if name not in keep_set:
                with contextlib.suppress(FileNotFoundError):
                    (self.root / title_id / name).unlink()
                    freed += size
        return freed

    def prune_parts(self, wanted: set[tuple[str, str]]) -> None:
        """Delete parts of files no longer wanted (resumable ones stay)."""
        try:
            title_dirs = list(os.scandir(self.fill_root))
        except FileNotFoundError:
            return
        for d in title_dirs:
            if not d.is_dir():
                with contextlib.suppress(OSError):
                    os.unlink(d.path)
                continue
            for f in os.scandir(d.path):
                name = f.name.removesuffix(PART_SUFFIX)
                if (d.name, name) not in wanted or not f.name.endswith(PART_SUFFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(f.path)
            with contextlib.suppress(OSError):
                os.rmdir(d.path)  # only when empty

    def remove_all_parts(self) -> None:
        shutil.rmtree(self.fill_root, ignore_errors=True)

    @staticmethod
    def _content(title_dir: Path) -> list[tuple[str, int]]:
        try:
            entries = list(os.scandir(title_dir))
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        for f in entries:
            if is_content_file(f.name) and f.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    out.append((f.name, f.stat(follow_symlinks=False).st_size))
        return out
