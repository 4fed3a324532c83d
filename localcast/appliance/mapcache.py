"""Read-only memory maps of big files, for small slices of them (a player's range request).

A slice of a map goes out with one ``sendmsg`` together with the head: one
copy (into the socket), no read syscall. Measured on the 64 KiB-range
benchmark: less CPU per request than ``pread`` + ``sendmsg`` and more
requests per second than ``sendfile`` for such sizes. Bodies larger than the
small-object size still go by zero-copy ``sendfile``.

This relies on the store's contract: a content-addressed file is never
rewritten in place (fills write elsewhere and rename; eviction unlinks, which
leaves existing maps valid). A file truncated under a map would fault the
worker (SIGBUS); the supervisor would restart it.

Maps are dropped, oldest first, beyond ``max_files``; a dropped map is
unmapped when the last slice of it in flight is released.
"""

from __future__ import annotations

import mmap
import os

from localcast.appliance.entry import FileEntry


class MapCache:
    """``slice(entry, offset, length)`` -> a memoryview into a cached read-only map."""

    def __init__(self, max_files: int = 64) -> None:
        self.max_files = max_files
        self._maps: dict[str, memoryview] = {}

    def slice(self, entry: FileEntry, offset: int, length: int) -> memoryview | None:
        """The bytes, or None if the file cannot be mapped as indexed (caller falls back)."""
        view = self._maps.get(entry.path)
        if view is None:
            view = self._map(entry)
            if view is None:
                return None
        if offset + length > len(view):
            return None
        return view[offset : offset + length]

    def drop(self, path: str) -> None:
        self._maps.pop(path, None)

    def __len__(self) -> int:
        return len(self._maps)

    def _map(self, entry: FileEntry) -> memoryview | None:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if entry.size == 0 or os.fstat(fd).st_size != entry.size:
                return None
            mapped = mmap.mmap(fd, entry.size, prot=mmap.PROT_READ)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        while len(self._maps) >= self.max_files:
            del self._maps[next(iter(self._maps))]
        view = memoryview(mapped)
        self._maps[entry.path] = view
        return view
