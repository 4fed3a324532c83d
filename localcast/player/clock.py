"""The player's clock: monotonic wall time scaled by ``--speed``.

Every time the player reasons about (the buffer, download durations, the
emulated link, steering TTLs, request timeouts) is on this clock, so at speed
F the whole session runs F times faster than real time yet behaves, as seen
by the player, like the same session at speed 1 on a link of the emulated
rate. Only sleeping and socket timeouts convert back to wall seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Clock:
    def __init__(self, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic):
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> float:
        """Seconds on the player's clock since it was created."""
        return (self._monotonic() - self._origin) * self.speed

    def wall(self, seconds: float) -> float:
        """Player-clock seconds as wall seconds."""
        return max(0.0, seconds) / self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.wall(seconds))
