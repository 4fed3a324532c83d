"""Observed demand: playback sessions counted in memory, flushed to ``demand_daily``.

Each successful ``POST /v1/playback`` counts one session for (UTC day,
popularity region, title). The region is that of the client's best
non-origin candidate site in the steering decision (its ``region``, else the
site id), or ``"default"`` when the client has none (only the origin can
serve it). Counting is a dict increment under a lock: no database write per
playback. The refresh loop (and every fill plan) drains the counts into the
``demand_daily`` table, where the forecast reads its history.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from localcast.core.fillplan import demand_region
from localcast.core.fleet import Site
from localcast.core.steering import SteeringDecision

DAY_S = 86400

DemandKey = tuple[int, str, str]  # (UTC day, region, title_id)


def utc_day(now: float) -> int:
    """The UTC day number of unix time ``now``."""
    return int(now // DAY_S)


class DemandCounter:
    """Session counts not yet in the database."""

    def __init__(self) -> None:
        self._counts: dict[DemandKey, int] = {}
        self._lock = threading.Lock()

    def count(self, decision: SteeringDecision, sites: Mapping[str, Site], now: float) -> None:
        key = (utc_day(now), demand_region(decision, sites), decision.title_id)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def drain(self) -> dict[DemandKey, int]:
        """The counts so far; the counter starts again from zero."""
        with self._lock:
            out, self._counts = self._counts, {}
        return out

    def restore(self, counts: Mapping[DemandKey, int]) -> None:
        """Put back drained counts whose write failed (they are retried next flush)."""
        with self._lock:
            for key, n in counts.items():
                self._counts[key] = self._counts.get(key, 0) + n

    def pending(self) -> int:
        with self._lock:
            return sum(self._counts.values())
