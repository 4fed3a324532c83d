"""Steering outcomes: what each playback decision served from, and the misses on the way.

A decision's outcome is the kind of its first pathway's site (``embedded``,
``pni``, ``ix``, ``origin``), unless a better-ranked site was passed over:
``content_miss`` when an appliance of a site ranked above the first
pathway's lacked the title complete, else ``health_miss`` when one was
saturated. ``by_kind`` counts the first pathway's kind whatever the
outcome, and ``content_miss_sites`` the sites that missed, so the fill
progress can be read from the serving side. In memory, per control plane
process; ``GET /v1/steering/stats`` shows it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from localcast.core.steering import SteeringDecision

CONTENT_MISS = "content_miss"
HEALTH_MISS = "health_miss"


@dataclass(frozen=True)
class Outcome:
    label: str  # embedded | pni | ix | origin | content_miss | health_miss
    kind: str  # the first pathway's site kind
    missed_sites: tuple[str, ...]  # better-ranked sites with a content miss


def outcome(decision: SteeringDecision) -> Outcome:
    """Classify a decision with at least one pathway (see the module text)."""
    first = decision.pathways[0]
    kind = first.kind.value
    if not decision.excluded:
        return Outcome(kind, kind, ())
    rank = {s.site_id: s.rank for s in decision.sites}
    best = rank.get(first.site_id, 0)
    content: list[str] = []
    health = False
    for x in decision.excluded:
        r = rank.get(x.site_id)
        if r is None or r >= best:
            continue
        if x.reason.startswith("content miss"):
            if x.site_id not in content:
                content.append(x.site_id)
        elif x.reason.startswith("health miss"):
            health = True
    label = CONTENT_MISS if content else HEALTH_MISS if health else kind
    return Outcome(label, kind, tuple(content))


class SteeringStats:
    """Counters of decision outcomes since ``started_at``."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self._lock = threading.Lock()
        self._decisions = 0
        self._outcomes: dict[str, int] = {}
        self._by_kind: dict[str, int] = {}
        self._missed: dict[str, int] = {}

    def count(self, decision: SteeringDecision) -> None:
        if not decision.pathways:
            return
        o = outcome(decision)
        with self._lock:
            self._decisions += 1
            self._outcomes[o.label] = self._outcomes.get(o.label, 0) + 1
            self._by_kind[o.kind] = self._by_kind.get(o.kind, 0) + 1
            for sid in o.missed_sites:
                self._missed[sid] = self._missed.get(sid, 0) + 1

    def view(self) -> dict[str, object]:
        with self._lock:
            return {
                "since": self.started_at,
                "decisions": self._decisions,
                "outcomes": dict(sorted(self._outcomes.items())),
                "by_kind": dict(sorted(self._by_kind.items())),
                "content_miss_sites": dict(sorted(self._missed.items())),
            }
