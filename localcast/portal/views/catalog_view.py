"""The operator's catalog: every title, where it is live and how many copies the fleet holds.

The figures (where each title is live, its copies, its size) read only the
snapshot's sites, its catalog and what each appliance holds. Snapshots share
what did not change (a heartbeat replaces one appliance entry and keeps its
titles), so :func:`catalog_figures` keeps the last figures and answers them
again while those parts are the same: a page view then costs one pass over the
appliances instead of one over every title each holds.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from localcast.control.fill_progress import live_regions
from localcast.core.fleet import CatalogTitle, FleetSnapshot, Site, SiteKind


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


def title_copies(snapshot: FleetSnapshot) -> dict[str, int]:
    """Title id -> appliances holding it complete, the origin's left out."""
    copies: dict[str, int] = {}
    for a in snapshot.appliances.values():
        site = snapshot.sites.get(a.site_id)
        if site is None or site.kind is SiteKind.ORIGIN:
            continue
        for t in a.titles:
            copies[t] = copies.get(t, 0) + 1
    return copies


def title_rows(
    snapshot: FleetSnapshot,
    live: Mapping[str, tuple[str, ...]],
    releases: Mapping[str, float],
    copies: Mapping[str, int] | None = None,
) -> list[TitleRow]:
    """A row per title, by id. ``copies``: :func:`title_copies` (computed when None)."""
    held = title_copies(snapshot) if copies is None else copies
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
                copies=held.get(tid, 0),
                live=live.get(tid, ()),
                release_at=releases.get(tid),
            )
        )
    return rows


# --- the figures, kept while what they read is the same -----------------------------------------


@dataclass(frozen=True)
class Holdings:
    """What the catalog's figures read of a snapshot: its sites, its catalog, and each
    appliance's site and titles held."""

    sites: Mapping[str, Site]
    catalog: Mapping[str, CatalogTitle]
    held: Mapping[str, tuple[str, frozenset[str]]]

    @classmethod
    def of(cls, snapshot: FleetSnapshot) -> Holdings:
        return cls(
            snapshot.sites,
            snapshot.catalog,
            {aid: (a.site_id, a.titles) for aid, a in snapshot.appliances.items()},
        )

    def same(self, other: Holdings) -> bool:
        """Whether the figures of ``other`` are those of this: the same sites and catalog
        (objects: a reload makes new ones), each appliance at the same site holding the same
        titles (the same object, or equal)."""
        if self.sites is not other.sites or self.catalog is not other.catalog:
            return False
        if len(self.held) != len(other.held):
            return False
        for aid, (site_id, titles) in self.held.items():
            theirs = other.held.get(aid)
            if theirs is None or theirs[0] != site_id:
                return False
            if theirs[1] is not titles and theirs[1] != titles:
                return False
        return True


@dataclass(frozen=True)
class CatalogFigures:
    live: Mapping[str, tuple[str, ...]]  # title id -> regions where it is live
    copies: Mapping[str, int]  # title id -> appliances holding it (origin left out)
    regions: tuple[str, ...]


_last: tuple[Holdings, int, int, CatalogFigures] | None = None
_last_lock = threading.Lock()


def catalog_figures(snapshot: FleetSnapshot, min_sites: int, min_copies: int) -> CatalogFigures:
    """Where each title is live (:func:`~localcast.control.fill_progress.live_regions` with
    the plane's ``live_min_sites`` and ``live_min_copies``), its copies and the regions;
    the last answer again while the snapshot's holdings are the same."""
    global _last
    holdings = Holdings.of(snapshot)
    with _last_lock:
        last = _last
    if last is not None and last[1:3] == (min_sites, min_copies) and last[0].same(holdings):
        return last[3]
    figures = CatalogFigures(
        live_regions(snapshot, min_sites, min_copies),
        title_copies(snapshot),
        tuple(regions(snapshot)),
    )
    with _last_lock:
        _last = (holdings, min_sites, min_copies, figures)
    return figures
