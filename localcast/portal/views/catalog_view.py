"""The operator's catalog: every title, where it is live and how many copies the fleet holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from localcast.core.fleet import FleetSnapshot, SiteKind


@dataclass(frozen=True)
class TitleRow:
    title_id: str
    name: str
    duration_s: float
    renditions: int
    bytes: int
    copies: int  # appliances holding it complete (the origin's left out)
    live: tuple[str, ...]  # regions where it is live
    release_at: float | None


def regions(snapshot: FleetSnapshot) -> list[str]:
    """Every region with a non-origin site, sorted."""
    return sorted({s.region_id for s in snapshot.sites.values() if s.kind is not SiteKind.ORIGIN})


def title_rows(
    snapshot: FleetSnapshot,
    live: Mapping[str, tuple[str, ...]],
    releases: Mapping[str, float],
) -> list[TitleRow]:
    copies: dict[str, int] = {}
    for a in snapshot.appliances.values():
        site = snapshot.sites.get(a.site_id)
        if site is None or site.kind is SiteKind.ORIGIN:
            continue
        for t in a.titles:
            copies[t] = copies.get(t, 0) + 1
    rows = []
    for tid, entry in sorted(snapshot.catalog.items()):
        m = entry.manifest
        rows.append(
            TitleRow(
                title_id=tid,
                name=m.name,
                duration_s=m.duration_s,
                renditions=len(m.renditions),
                bytes=sum(f.size for f in m.files()),
                copies=copies.get(tid, 0),
                live=live.get(tid, ()),
                release_at=releases.get(tid),
            )
        )
    return rows
