"""The fill rate cap: one token bucket (``core.tokenbucket``) shared by every download.

Downloads call :meth:`RateLimiter.take` with the bytes they just read and
sleep for the overdraft the bucket returns, so the socket is not read while
over the cap and TCP flow control slows the source down. The burst is a
fraction of a second of the rate (at least one read), which keeps the sleeps
few without letting a short transfer run far over the cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from localcast.core.tokenbucket import TokenBucket, new_bucket, take

BURST_S = 0.05  # the bucket holds this many seconds of the rate
MIN_BURST_BYTES = 64 * 1024


class RateLimiter:
    """A token bucket over bytes read; ``rate_bps`` 0 means "no transfer allowed"."""

    def __init__(self, rate_bps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.rate_bps = 0.0
        self._bucket: TokenBucket | None = None
        self.set_rate(rate_bps)

    def set_rate(self, rate_bps: float) -> None:
        """A new rate (from a fresh manifest); an unchanged rate keeps the bucket's state."""
        if rate_bps == self.rate_bps and self._bucket is not None:
            return
        self.rate_bps = rate_bps
        if rate_bps <= 0:
            self._bucket = None
            return
        burst = max(MIN_BURST_BYTES, rate_bps / 8 * BURST_S)
        bucket = new_bucket(rate_bps, self.clock(), burst)
        if self._bucket is not None:  # carry an overdraft over: a rate change is no free burst
            bucket = TokenBucket(
                rate_bps, burst, min(burst, self._bucket.tokens_bytes), bucket.updated_s
            )
        self._bucket = bucket

    async def take(self, nbytes: int) -> None:
        """Account for ``nbytes`` just read; sleep while the bucket is overdrawn."""
        if self._bucket is None:
            raise RuntimeError("fill rate is 0: no transfer allowed")
        self._bucket, wait = take(self._bucket, nbytes, self.clock())
        if wait > 0:
            await asyncio.sleep(wait)
