"""What the control plane knows about the fill, in memory: releases, manifests, last plan.

One immutable :class:`FillView`, replaced whole (like the steering snapshot):
loaded from the database at every snapshot reload, replaced by each plan.
Agent manifests, progress and catalog reads take ``fills.view`` once and use
that object for the whole request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from localcast.control.repository import StoredManifest
from localcast.core.forecast import Forecast, Release


def _empty() -> Mapping[str, Mapping[str, float]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class FillView:
    releases: Mapping[str, Release] = field(default_factory=lambda: MappingProxyType({}))
    manifests: Mapping[str, StoredManifest] = field(default_factory=lambda: MappingProxyType({}))
    forecast: Forecast = field(default_factory=_empty)  # of the last plan made here
    day: int | None = None  # UTC day of the last plan made here
    planned_at: float | None = None

    @cached_property
    def planned(self) -> Mapping[str, frozenset[str]]:
        """Title id -> the appliances whose manifest lists it (indexed on first use)."""
        out: dict[str, set[str]] = {}
        for aid, stored in self.manifests.items():
            for t in stored.manifest.titles:
                out.setdefault(t, set()).add(aid)
        return MappingProxyType({t: frozenset(a) for t, a in out.items()})
