"""Small files kept in RAM, so a small object costs one ``sendmsg`` instead of open+sendfile+close.

Files are content-addressed, so a cached copy can never be stale; it is
dropped only when the file leaves the index (eviction) or to stay under the
byte budget (oldest first).
"""

from __future__ import annotations

from localcast.appliance.entry import FileEntry


class SmallObjectCache:
    """Whole contents of files of at most ``max_object_bytes``, ``budget_bytes`` in total."""

    def __init__(self, max_object_bytes: int = 64 * 1024, budget_bytes: int = 64 << 20) -> None:
        self.max_object_bytes = max_object_bytes
        self.budget_bytes = budget_bytes
        self._data: dict[str, bytes] = {}
        self._bytes = 0

    def wants(self, entry: FileEntry) -> bool:
        return entry.size <= self.max_object_bytes

    def get(self, entry: FileEntry) -> bytes | None:
        """The file's bytes (read on first use); None if it cannot be read whole."""
        data = self._data.get(entry.path)
        if data is not None:
            return data
        try:
            with open(entry.path, "rb", buffering=0) as fh:
                data = fh.read(entry.size + 1)
        except OSError:
            return None
        if len(data) != entry.size:
            return None
        while self._data and self._bytes + len(data) > self.budget_bytes:
            _, old = self._pop_oldest()
            self._bytes -= len(old)
        if len(data) <= self.budget_bytes:
            self._data[entry.path] = data
            self._bytes += len(data)
        return data

    def drop(self, entry: FileEntry) -> None:
        data = self._data.pop(entry.path, None)
        if data is not None:
            self._bytes -= len(data)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _pop_oldest(self) -> tuple[str, bytes]:
        key = next(iter(self._data))
        return key, self._data.pop(key)
