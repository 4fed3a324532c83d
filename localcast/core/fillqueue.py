"""The fill agent's decisions, pure: which source to try next for a file, or how long to wait.

Rules of :func:`next_step`, given the ranked sources of
:func:`localcast.core.fillsources.fill_sources` (hops in increasing order):

1. Walk the hops nearest first. In a hop, the first source that holds the file
   (COMPLETE or PARTIAL) and is not in backoff is the answer: :class:`Attempt`.
2. Else, when the hop lists a PLANNED source (a leader that will hold it) and
   ``now < first_wanted_at + policy.wait_s * (hop + 1)``: :class:`Wait` until
   that deadline, or until the earliest backoff end of a holder seen so far
   (hops up to this one) if sooner — a nearer copy is coming, do not go wider.
3. Else go to the next hop.
4. Past the last hop: every holder is in backoff -> wait for the earliest
   backoff end; no holder at all -> wait ``backoff_max_s`` and ask again (the
   planned copies may arrive, the manifest may change). It never gives up.

Backoff: after ``count`` consecutive failures of a source (for this file), the
source rests ``min(backoff_max_s, backoff_base_s * 2 ** (count - 1))`` seconds
from its last failure. The caller keeps one :class:`SourceFailures` per
(file, source) and passes the file's, keyed by source appliance id;
:func:`record_failure` builds the next one; a success forgets it.

:func:`order_files` orders the work: files of urgent titles first, otherwise
the manifest's title order (which is by demand), and the file order within a
title.

Pure: no I/O, no clock (``now`` is a parameter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import TypeVar

from localcast.core.fillsources import EscalationPolicy, FillSource, Holding

T = TypeVar("T")

_HOLDERS = (Holding.COMPLETE, Holding.PARTIAL)


@dataclass(frozen=True)
class Attempt:
    source: FillSource


@dataclass(frozen=True)
class Wait:
    until: float
    reason: str


@dataclass(frozen=True)
class SourceFailures:
    count: int
    last_at: float


def backoff_end(
    failures: SourceFailures | None, backoff_base_s: float = 1.0, backoff_max_s: float = 60.0
) -> float:
    """When a source may be tried again (``-inf`` when it never failed)."""
    if failures is None or failures.count <= 0:
        return float("-inf")
    exponent = min(failures.count - 1, 62)
    return failures.last_at + min(backoff_max_s, backoff_base_s * 2.0**exponent)


def record_failure(previous: SourceFailures | None, now: float) -> SourceFailures:
    """One more failure of a source, at ``now``."""
    return SourceFailures(count=(0 if previous is None else previous.count) + 1, last_at=now)


def next_step(
    sources: Sequence[FillSource],
    failures: Mapping[str, SourceFailures],
    first_wanted_at: float,
    now: float,
    policy: EscalationPolicy,
    backoff_base_s: float = 1.0,
    backoff_max_s: float = 60.0,
) -> Attempt | Wait:
    """What to do about one missing file now (see the module rules)."""

    def resting_until(s: FillSource) -> float:
        return backoff_end(failures.get(s.appliance_id), backoff_base_s, backoff_max_s)

    hops: dict[int, list[FillSource]] = {}
    for s in sources:
        hops.setdefault(s.hop, []).append(s)

    rest_ends: list[float] = []  # backoff ends of holders seen so far
    for hop in sorted(hops):
        group = hops[hop]
        for s in group:
            if s.holding in _HOLDERS:
                end = resting_until(s)
                if end <= now:
                    return Attempt(s)
                rest_ends.append(end)
        planned = [s for s in group if s.holding is Holding.PLANNED]
        deadline = first_wanted_at + policy.wait_s * (hop + 1)
        if planned and now < deadline:
            names = ", ".join(s.appliance_id for s in planned)
            return Wait(
                until=min([deadline, *rest_ends]),
                reason=f"waiting for {names} (hop {hop}) until {deadline:.0f}",
            )

    if rest_ends:
        return Wait(until=min(rest_ends), reason="every source holding it is in backoff")
    return Wait(until=now + backoff_max_s, reason="no source holds it yet")


def order_files(
    files: Sequence[tuple[str, T]], urgent_titles: Set[str]
) -> tuple[tuple[str, T], ...]:
    """``(title_id, file)`` pairs in manifest order, with urgent titles' files first (stable)."""
    return tuple(sorted(files, key=lambda f: f[0] not in urgent_titles))
