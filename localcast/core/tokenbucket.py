"""An emulated link: a token bucket over bytes, and link rates written as ``3M``. Pure.

The player's ``--bandwidth`` limits every byte it downloads from appliances
through one shared bucket, so audio and video compete for the link as on a
real access line. The bucket fills at ``rate_bps / 8`` bytes per second up to
``burst_bytes``; taking bytes may overdraw it, and the overdraft is the wait
before those bytes are allowed (:func:`take`). Overdraft accumulates, so
concurrent takers queue behind one another and the long-run rate never exceeds
the link's.

Time is a parameter: the caller sleeps for the wait this returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

DEFAULT_BURST_BYTES = 16 * 1024
_RATE_RE = re.compile(
    r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[kmg]?)\s*(?:bps|bit/s|b/s|bit|b)?\s*$",
    re.IGNORECASE,
)
_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


class RateError(ValueError):
    """A link rate could not be read."""


def parse_rate(text: str) -> int:
    """``3M``, ``800k``, ``1.5Mbps``, ``250000`` -> bits per second."""
    m = _RATE_RE.match(text)
    if not m:
        raise RateError(f"bad rate {text!r}: use e.g. 3M, 800k or 1.5Mbps (bits per second)")
    bps = int(float(m["num"]) * _UNITS[m["unit"].lower()])
    if bps <= 0:
        raise RateError(f"bad rate {text!r}: must be positive")
    return bps


@dataclass(frozen=True)
class TokenBucket:
    rate_bps: float
    burst_bytes: float
    tokens_bytes: float  # negative while overdrawn
    updated_s: float

    @property
    def bytes_per_s(self) -> float:
        return self.rate_bps / 8


def new_bucket(
    rate_bps: float, now_s: float, burst_bytes: float = DEFAULT_BURST_BYTES
) -> TokenBucket:
    """A full bucket for a link of ``rate_bps``."""
    if rate_bps <= 0:
        raise RateError("rate_bps must be positive")
    if burst_bytes < 0:
        raise RateError("burst_bytes must not be negative")
    return TokenBucket(rate_bps, burst_bytes, burst_bytes, now_s)


def take(bucket: TokenBucket, nbytes: int, now_s: float) -> tuple[TokenBucket, float]:
    """Take ``nbytes`` at ``now_s``: the new bucket and the seconds to wait before using them."""
    if nbytes < 0:
        raise RateError("nbytes must not be negative")
    elapsed = max(0.0, now_s - bucket.updated_s)
    tokens = min(bucket.burst_bytes, bucket.tokens_bytes + elapsed * bucket.bytes_per_s) - nbytes
    wait = 0.0 if tokens >= 0 else -tokens / bucket.bytes_per_s
    return replace(bucket, tokens_bytes=tokens, updated_s=max(now_s, bucket.updated_s)), wait
