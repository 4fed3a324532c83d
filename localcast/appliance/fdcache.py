"""Open file descriptors kept for reuse, so a sendfile response costs no open/close.

Files are content-addressed and never rewritten, so a cached descriptor always
reads the right bytes. Descriptors are reference-counted while a response
uses them; unused ones beyond ``max_open`` are closed oldest first, and
:meth:`FdCache.drop` closes a file's descriptor once it leaves the store
(immediately, or when its last response ends).
"""

from __future__ import annotations

import os


class _Slot:
    __slots__ = ("fd", "refs")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.refs = 0


class FdCache:
    """``acquire(path) -> fd`` / ``release(path)``; at most ``max_open`` idle descriptors."""

    def __init__(self, max_open: int = 256) -> None:
        self.max_open = max_open
        self._slots: dict[str, _Slot] = {}  # insertion order = least recently opened first
        self._orphans: dict[int, _Slot] = {}  # dropped while in use, by fd

    def acquire(self, path: str) -> int:
        """An open read-only descriptor for ``path`` (raises OSError if it cannot be opened)."""
        slot = self._slots.get(path)
        if slot is None:
            slot = _Slot(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            if len(self._slots) >= self.max_open:
                self._evict()
            self._slots[path] = slot
        slot.refs += 1
        return slot.fd

    def release(self, path: str, fd: int) -> None:
        slot = self._slots.get(path)
        if slot is not None and slot.fd == fd:
            slot.refs -= 1
            return
        orphan = self._orphans.get(fd)
        if orphan is not None:
            orphan.refs -= 1
            if orphan.refs <= 0:
                del self._orphans[fd]
                os.close(fd)

    def drop(self, path: str) -> None:
        """``path`` left the store: close its descriptor now, or when its last user releases."""
        slot = self._slots.pop(path, None)
        if slot is None:
            return
        if slot.refs > 0:
            self._orphans[slot.fd] = slot
        else:
            os.close(slot.fd)

    def close_all(self) -> None:
        for path in list(self._slots):
            self.drop(path)

    def __len__(self) -> int:
        return len(self._slots)

    def _evict(self) -> None:
        for path, slot in list(self._slots.items()):
            if slot.refs == 0:
                del self._slots[path]
                os.close(slot.fd)
                if len(self._slots) < self.max_open:
                    return
