"""Keeping fill within the disk: the manifest's capacity and the filesystem's free space.

A title is *admitted* before its first file is fetched in a pass, for all
the bytes it still lacks: admission fails when the store's bytes (content +
parts) plus everything admitted would pass ``capacity_bytes`` (when the
manifest sets one), or when the filesystem's free space minus ``reserve_bytes``
cannot take the bytes admitted but not yet written. A title is thus never
started without room for the whole of it. ENOSPC while writing is the
backstop (``download.Outcome.DISK``).
"""

from __future__ import annotations

from collections.abc import Callable


class DiskGuard:
    def __init__(
        self,
        capacity_bytes: int,
        reserve_bytes: int,
        used_bytes: int,
        free_bytes: Callable[[], int],
    ) -> None:
        self.capacity_bytes = capacity_bytes  # 0: no limit from the manifest
        self.reserve_bytes = reserve_bytes
        self.used = used_bytes  # store content + parts + admitted, not yet written
        self.outstanding = 0  # admitted bytes not yet written
        self.free_bytes = free_bytes

    def shortfall(self, need: int) -> tuple[int, str | None]:
        """Bytes missing to take ``need`` more now (0 if it fits), and the limit that binds."""
        short, why = 0, None
        if self.capacity_bytes > 0:
            over = self.used + need - self.capacity_bytes
            if over > 0:
                short, why = over, "capacity"
        over = need + self.outstanding - (self.free_bytes() - self.reserve_bytes)
        if over > short:
            short, why = over, "free space"
        return short, why

    def admit(self, title_id: str, need: int) -> str | None:
        """Reserve ``need`` bytes for ``title_id``; None, or why it does not fit (an alarm)."""
        _, why = self.shortfall(need)
        if why is not None:
            if why == "capacity":
                return (
                    f"disk full: {title_id} needs {need} bytes, the store holds {self.used} "
                    f"of its {self.capacity_bytes}-byte capacity"
                )
            return (
                f"disk full: {title_id} needs {need} bytes, the filesystem has "
                f"{self.free_bytes()} free with {self.reserve_bytes} reserved "
                f"and {self.outstanding} promised"
            )
        self.used += need
        self.outstanding += need
        return None

    def written(self, nbytes: int) -> None:
        """Bytes written to a part (negative: bytes thrown away that will be written again)."""
        self.outstanding = max(0, self.outstanding - nbytes)

    def freed(self, nbytes: int) -> None:
        """Bytes deleted from the store."""
        self.used = max(0, self.used - nbytes)
