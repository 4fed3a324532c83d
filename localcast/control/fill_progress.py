"""Fill progress, per-link byte accounting and where titles are live: read views, no I/O.

* :func:`progress`: per placed site and appliance, the manifest's version,
  titles and bytes wanted against those held (from the inventory, per file),
  the agent's last state and alarm, and the bytes it fetched per source kind.
* :func:`links`: fill transfers per link (source site -> site): bytes, files
  and how many times each file crossed it (``"<title>/<name>": n``); a peer
  "link" is a site to itself.
* :func:`live_regions`: a title is live in a region when at least
  ``min_sites`` of the region's sites hold it complete on at least
  ``min_copies`` appliances each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from localcast.control.fill_manifest import required_sizes
from localcast.control.fill_state import FillView
from localcast.control.repository import FillStatus, LinkCrossing
from localcast.core.fillplan import placed_sites
from localcast.core.fillwindow import is_open, parse_window
from localcast.core.fleet import FleetSnapshot, SiteKind
from localcast.core.health import liveness
from localcast.core.inventory import Inventory

SOURCE_KINDS = ("peer", "tier", "origin")


def progress(
    snapshot: FleetSnapshot,
    view: FillView,
    inventories: Mapping[str, Inventory],
    status: Mapping[str, FillStatus],
    fetched: Mapping[str, Mapping[str, int]],
    now: float,
) -> dict[str, Any]:
    sizes = {t: required_sizes(c) for t, c in snapshot.catalog.items()}
    sites = []
    for site in placed_sites(snapshot):
        window = parse_window(site.fill_window, site.tz)
        rows: list[dict[str, Any]] = []
        site_titles: set[str] = set()
        for a in sorted(snapshot.appliances_at(site.id), key=lambda a: a.id):
            stored = view.manifests.get(a.id)
            wanted = sorted(t for t in (stored.manifest.titles if stored else ()) if t in sizes)
            site_titles.update(wanted)
            inv = inventories.get(a.id, {})
            held = [t for t in wanted if t in a.titles]
            bytes_wanted = sum(sum(sizes[t].values()) for t in wanted)
            bytes_held = sum(
                size for t in wanted for name, size in sizes[t].items() if name in inv.get(t, ())
            )
            st = status.get(a.id)
            kinds = fetched.get(a.id, {})
            rows.append(
                {
                    "appliance_id": a.id,
                    "alive": liveness(a.health, now).alive,
                    "version": stored.manifest.version if stored else 0,
                    "day": stored.manifest.day if stored else None,
                    "titles_wanted": len(wanted),
                    "titles_held": len(held),
                    "titles_missing": [t for t in wanted if t not in a.titles],
                    "titles_extra": sorted(set(inv) - set(wanted)),
                    "bytes_wanted": bytes_wanted,
                    "bytes_held": bytes_held,
                    "complete": len(held) == len(wanted),
                    "state": st.state if st else None,
                    "alarm": st.alarm if st else None,
                    "reported_at": st.reported_at if st else None,
                    "fill_bytes": {k: kinds.get(k, 0) for k in SOURCE_KINDS},
                }
            )
        sites.append(
            {
                "site_id": site.id,
                "kind": site.kind.value,
                "region": site.region_id,
                "window": {"spec": window.spec, "tz": window.tz, "open": is_open(window, now)},
                "titles_wanted": len(site_titles),
                "bytes_wanted": sum(r["bytes_wanted"] for r in rows),
                "bytes_held": sum(r["bytes_held"] for r in rows),
                "complete": all(r["complete"] for r in rows),
                "alarms": sum(1 for r in rows if r["alarm"]),
                "appliances": rows,
            }
        )
    return {
        "planned": bool(view.manifests),
        "day": view.day,
        "planned_at": view.planned_at,
        "sites": sites,
    }


def links(crossings: Sequence[LinkCrossing], detail: bool = True) -> list[dict[str, Any]]:
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in crossings:
        key = (c.source_site, c.site_id, c.source_kind)
        row = out.setdefault(
            key,
            {
                "from_site": c.source_site,
                "to_site": c.site_id,
                "from_kind": c.source_kind,
                "bytes": 0,
                "files": 0,
                "transfers": 0,
                "max_crossings": 0,
                "crossings": {},
            },
        )
        row["bytes"] += c.bytes
        row["files"] += 1
        row["transfers"] += c.count
        row["max_crossings"] = max(row["max_crossings"], c.count)
        if detail:
            row["crossings"][f"{c.title_id}/{c.name}"] = c.count
    if not detail:
        for row in out.values():
            del row["crossings"]
    return [out[k] for k in sorted(out)]


def live_regions(
    snapshot: FleetSnapshot, min_sites: int = 1, min_copies: int = 1
) -> dict[str, tuple[str, ...]]:
    """Title id -> the regions where it is live (titles live nowhere are left out)."""
    copies: dict[tuple[str, str], int] = {}  # (site, title) -> appliances holding it
    for a in snapshot.appliances.values():
        site = snapshot.sites.get(a.site_id)
        if site is None or site.kind is SiteKind.ORIGIN:
            continue
        for t in a.titles:
            copies[(site.id, t)] = copies.get((site.id, t), 0) + 1
    sites_holding: dict[tuple[str, str], int] = {}  # (region, title) -> sites
    for (site_id, t), n in copies.items():
        if n >= min_copies:
            key = (snapshot.sites[site_id].region_id, t)
            sites_holding[key] = sites_holding.get(key, 0) + 1
    out: dict[str, list[str]] = {}
    for (region, t), n in sorted(sites_holding.items()):
        if n >= min_sites:
            out.setdefault(t, []).append(region)
    return {t: tuple(r) for t, r in out.items()}
